//! Who may read the console.
//!
//! On loopback nobody is asked: whoever can reach 127.0.0.1 already runs
//! on the machine. On any other address every request needs an API key
//! with the `console:read` scope, presented as the password of basic
//! auth, as `Authorization: Bearer`, or once through the login form,
//! which opens a session: the cookie carries a random token, never the
//! key, and the key is checked again on every request so a revoked key
//! stops working at once.

use crate::layout;
use crate::sources::READ_SCOPE;
use crate::App;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use base64::Engine;
use chrono::{DateTime, Utc};
use kit::problem::Problem;
use serde::Deserialize;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

/// Where the console listens, which decides whether it asks for a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Bound to loopback: no authentication.
    Loopback,
    /// Reachable from elsewhere: a `console:read` key on every request.
    /// `tls` marks the session cookie `Secure`.
    Remote { tls: bool },
}

impl Access {
    /// `Loopback` for a loopback address, `Remote` otherwise.
    pub fn for_listener(addr: SocketAddr, tls: bool) -> Self {
        if addr.ip().is_loopback() {
            Self::Loopback
        } else {
            Self::Remote { tls }
        }
    }
}

const COOKIE: &str = "console_session";
/// How long a login lasts.
const SESSION_TTL: chrono::Duration = chrono::Duration::hours(12);
/// Most sessions kept; the oldest goes first beyond it, so logins cannot
/// grow memory without bound.
const MAX_SESSIONS: usize = 10_000;
/// Longest key accepted (real keys are far shorter).
const MAX_KEY_BYTES: usize = 512;

/// Login sessions: token -> (key, expiry), in memory (a restart logs
/// everyone out, which is fine for a read-only console).
#[derive(Default)]
pub(crate) struct Sessions(Mutex<HashMap<String, (String, DateTime<Utc>)>>);

impl Sessions {
    fn open(&self, key: String, now: DateTime<Utc>) -> String {
        let bytes: [u8; 32] = rand::random();
        let token = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        map.retain(|_, (_, expires)| *expires > now);
        while map.len() >= MAX_SESSIONS {
            let oldest = map
                .iter()
                .min_by_key(|(_, (_, expires))| *expires)
                .map(|(t, _)| t.clone());
            match oldest {
                Some(t) => map.remove(&t),
                None => break,
            };
        }
        map.insert(token.clone(), (key, now + SESSION_TTL));
        token
    }

    fn key(&self, token: &str, now: DateTime<Utc>) -> Option<String> {
        let map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        map.get(token)
            .filter(|(_, expires)| *expires > now)
            .map(|(key, _)| key.clone())
    }
}

/// The key a request presents, from its headers or its session cookie.
fn presented(app: &App, headers: &HeaderMap) -> Option<String> {
    if let Some(auth) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    {
        let (scheme, value) = auth.trim().split_once(' ')?;
        let value = value.trim();
        if scheme.eq_ignore_ascii_case("bearer") {
            return Some(value.to_string());
        }
        if scheme.eq_ignore_ascii_case("basic") {
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(value)
                .ok()?;
            let text = String::from_utf8(decoded).ok()?;
            let (user, password) = text.split_once(':')?;
            // `curl -u KEY:` puts the key in the user name.
            let key = if password.is_empty() { user } else { password };
            return Some(key.to_string());
        }
        return None;
    }
    let cookies = headers.get_all(header::COOKIE);
    cookies
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .and_then(|(_, token)| app.sessions.key(token, app.now()))
}

enum Denied {
    Unknown,
    NoScope,
    Unavailable(String),
}

async fn check(app: &App, key: &str) -> Result<(), Denied> {
    if key.is_empty() || key.len() > MAX_KEY_BYTES {
        return Err(Denied::Unknown);
    }
    let Some(keys) = &app.sources.keys else {
        return Err(Denied::Unavailable(
            "no key store is wired, so no key can be checked".into(),
        ));
    };
    match keys.scopes(key).await {
        Ok(None) => Err(Denied::Unknown),
        Ok(Some(scopes)) if scopes.iter().any(|s| s == READ_SCOPE) => Ok(()),
        Ok(Some(_)) => Err(Denied::NoScope),
        Err(e) => {
            tracing::warn!(error = %e, "console: the key store cannot be read");
            Err(Denied::Unavailable(
                "the key store cannot be read now".into(),
            ))
        }
    }
}

/// The access check, in front of every route but `/healthz`, the
/// stylesheet and the login form.
pub(crate) async fn guard(State(app): State<Arc<App>>, request: Request, next: Next) -> Response {
    let Access::Remote { .. } = app.access else {
        return next.run(request).await;
    };
    let path = request.uri().path();
    if matches!(path, "/healthz" | "/style.css" | "/login") {
        return next.run(request).await;
    }
    let api = path.starts_with("/api/");
    let result = match presented(&app, request.headers()) {
        None => Err(Denied::Unknown),
        Some(key) => check(&app, &key).await,
    };
    match result {
        Ok(()) => next.run(request).await,
        Err(denied) => refusal(api, denied),
    }
}

fn refusal(api: bool, denied: Denied) -> Response {
    let (status, title, detail) = match denied {
        Denied::Unknown => (
            StatusCode::UNAUTHORIZED,
            "Unauthorized",
            format!("present an API key with the `{READ_SCOPE}` scope (basic auth password, bearer token or the login form)"),
        ),
        Denied::NoScope => (
            StatusCode::FORBIDDEN,
            "Forbidden",
            format!("this key lacks the `{READ_SCOPE}` scope"),
        ),
        Denied::Unavailable(detail) => (StatusCode::SERVICE_UNAVAILABLE, "Unavailable", detail),
    };
    let mut response = if api {
        let kind = match status {
            StatusCode::UNAUTHORIZED => "unauthorized",
            StatusCode::FORBIDDEN => "forbidden",
            _ => "unavailable",
        };
        Problem::new(status, kind, title)
            .with_detail(detail)
            .into_response()
    } else if status == StatusCode::UNAUTHORIZED {
        (status, layout::login_page(Some(&detail))).into_response()
    } else {
        (status, layout::message_page(title, &detail)).into_response()
    };
    if status == StatusCode::UNAUTHORIZED {
        let headers = response.headers_mut();
        headers.append(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Basic realm=\"reliable console\", charset=\"UTF-8\""),
        );
        headers.append(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"reliable console\""),
        );
    }
    response
}

pub(crate) async fn login_form(State(app): State<Arc<App>>) -> Response {
    match app.access {
        Access::Loopback => Redirect::to("/").into_response(),
        Access::Remote { .. } => layout::login_page(None).into_response(),
    }
}

#[derive(Deserialize)]
pub(crate) struct LoginForm {
    key: String,
}

/// Checks the key and opens a session (HttpOnly, SameSite=Strict, Secure
/// when served over TLS).
pub(crate) async fn login(
    State(app): State<Arc<App>>,
    form: Result<Form<LoginForm>, axum::extract::rejection::FormRejection>,
) -> Response {
    let Access::Remote { tls } = app.access else {
        return Redirect::to("/").into_response();
    };
    let Ok(Form(form)) = form else {
        let page = layout::login_page(Some("send the form's `key` field"));
        return (StatusCode::BAD_REQUEST, page).into_response();
    };
    let key = form.key.trim().to_string();
    if let Err(denied) = check(&app, &key).await {
        return refusal(false, denied);
    }
    let token = app.sessions.open(key, app.now());
    let secure = if tls { "; Secure" } else { "" };
    let cookie = format!(
        "{COOKIE}={token}; HttpOnly; SameSite=Strict; Path=/; Max-Age={}{secure}",
        SESSION_TTL.num_seconds()
    );
    let mut response = Redirect::to("/").into_response();
    if let Ok(value) = HeaderValue::from_str(&cookie) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    response
}
