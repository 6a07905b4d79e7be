//! Who may read: loopback needs nothing; elsewhere a `console:read` key
//! by basic auth, bearer token or the login form's session.

use crate::support::*;
use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use base64::Engine;
use console::Access;

fn remote(tls: bool) -> axum::Router {
    app(Setup {
        access: Access::Remote { tls },
        ..Setup::default()
    })
}

async fn with_auth(router: &axum::Router, uri: &str, authorization: &str) -> Answer {
    let request = Request::get(uri)
        .header(header::AUTHORIZATION, authorization)
        .body(Body::empty())
        .expect("a valid request");
    send(router, request).await
}

fn basic(user: &str, password: &str) -> String {
    let text = format!("{user}:{password}");
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(text)
    )
}

async fn login(router: &axum::Router, key: &str) -> Answer {
    let request = Request::post("/login")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from(format!("key={key}")))
        .expect("a valid request");
    send(router, request).await
}

#[tokio::test]
async fn loopback_needs_no_key() {
    let router = loopback();
    for path in PAGES.iter().chain(APIS.iter()) {
        assert_eq!(get(&router, path).await.status, StatusCode::OK, "{path}");
    }
}

#[tokio::test]
async fn remote_without_a_key_is_401_with_a_challenge() {
    let router = remote(false);
    for path in PAGES.iter().chain(APIS.iter()) {
        let answer = get(&router, path).await;
        assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{path}");
        assert!(
            answer
                .header("www-authenticate")
                .starts_with("Basic realm="),
            "{path}"
        );
        assert_eq!(answer.header("x-frame-options"), "DENY", "{path}");
    }
    let api = get(&router, "/api/v1/slos").await;
    assert_eq!(api.header("content-type"), "application/problem+json");
    assert_eq!(api.json()["type"], "/problems/unauthorized");
    let page = get(&router, "/slos").await;
    assert!(
        page.body.contains(r#"action="/login""#),
        "the 401 page offers the login form"
    );
    // Health, the stylesheet and the login form stay reachable.
    for path in ["/healthz", "/style.css", "/login"] {
        assert_eq!(get(&router, path).await.status, StatusCode::OK, "{path}");
    }
}

#[tokio::test]
async fn unknown_keys_are_401_and_keys_without_the_scope_403() {
    let router = remote(false);
    for auth in [
        basic("", "nope"),
        "Bearer nope".to_string(),
        "Digest abc".to_string(),
        "Basic !!!".to_string(),
    ] {
        let answer = with_auth(&router, "/api/v1/overview", &auth).await;
        assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{auth}");
    }
    for auth in [basic("ops", "weak-key"), "Bearer weak-key".to_string()] {
        let answer = with_auth(&router, "/api/v1/overview", &auth).await;
        assert_eq!(answer.status, StatusCode::FORBIDDEN, "{auth}");
        assert_eq!(answer.json()["type"], "/problems/forbidden");
        let page = with_auth(&router, "/", &auth).await;
        assert_eq!(page.status, StatusCode::FORBIDDEN);
        assert!(page.body.contains("console:read"));
    }
}

#[tokio::test]
async fn good_keys_by_basic_auth_and_bearer() {
    let router = remote(false);
    for auth in [
        basic("ops", "good-key"),
        basic("good-key", ""),
        "Bearer good-key".to_string(),
    ] {
        for path in ["/", "/api/v1/slos"] {
            let answer = with_auth(&router, path, &auth).await;
            assert_eq!(answer.status, StatusCode::OK, "{auth} {path}");
        }
    }
}

#[tokio::test]
async fn the_login_form_opens_a_session() {
    let router = remote(true);
    let weak = login(&router, "weak-key").await;
    assert_eq!(weak.status, StatusCode::FORBIDDEN);
    assert!(weak.headers.get(header::SET_COOKIE).is_none());
    let unknown = login(&router, "nope").await;
    assert_eq!(unknown.status, StatusCode::UNAUTHORIZED);

    let answer = login(&router, "good-key").await;
    assert_eq!(answer.status, StatusCode::SEE_OTHER);
    let cookie = answer.header("set-cookie").to_string();
    for attribute in ["HttpOnly", "SameSite=Strict", "Secure", "Path=/"] {
        assert!(cookie.contains(attribute), "{cookie} lacks {attribute}");
    }
    assert!(
        !cookie.contains("good-key"),
        "the cookie never carries the key"
    );
    let pair = cookie.split(';').next().unwrap_or_default().to_string();
    let request = Request::get("/slos")
        .header(header::COOKIE, format!("theme=dark; {pair}"))
        .body(Body::empty())
        .expect("a valid request");
    assert_eq!(send(&router, request).await.status, StatusCode::OK);

    let forged = Request::get("/slos")
        .header(header::COOKIE, "console_session=forged")
        .body(Body::empty())
        .expect("a valid request");
    assert_eq!(send(&router, forged).await.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn the_session_cookie_is_not_secure_without_tls() {
    let answer = login(&remote(false), "good-key").await;
    assert_eq!(answer.status, StatusCode::SEE_OTHER);
    assert!(!answer.header("set-cookie").contains("Secure"));
}

#[tokio::test]
async fn the_listener_address_decides_the_access() {
    let loopback: std::net::SocketAddr =
        "127.0.0.1:8081".parse().unwrap_or_else(|_| unreachable!());
    let any: std::net::SocketAddr = "0.0.0.0:8081".parse().unwrap_or_else(|_| unreachable!());
    assert_eq!(Access::for_listener(loopback, false), Access::Loopback);
    assert_eq!(
        Access::for_listener(any, true),
        Access::Remote { tls: true }
    );
}

#[tokio::test]
async fn a_remote_console_without_a_key_store_refuses_with_503() {
    let mut setup = Setup {
        access: Access::Remote { tls: false },
        ..Setup::default()
    };
    setup.keys = false;
    let router = app(setup);
    let answer = with_auth(&router, "/api/v1/overview", "Bearer good-key").await;
    assert_eq!(answer.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(answer.json()["type"], "/problems/unavailable");
}
