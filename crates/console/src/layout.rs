//! The page shell: navigation, the optional auto-refresh, the stylesheet,
//! and the few pages every route may answer with (a message, the login).

use axum::http::header;
use axum::response::IntoResponse;
use maud::{html, Markup, DOCTYPE};

/// The stylesheet, embedded so the console needs no files and no CDN.
pub const CSS: &str = include_str!("console.css");

pub async fn stylesheet() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/css; charset=utf-8")], CSS)
}

/// The navigation entries: (path, label).
const NAV: [(&str, &str); 7] = [
    ("/", "Overview"),
    ("/slos", "SLOs"),
    ("/alerts", "Alerts"),
    ("/changes", "Changes"),
    ("/canaries", "Canaries"),
    ("/models", "Models"),
    ("/cost", "Cost"),
];

/// A page: `active` is its navigation path, `refresh` the reload period
/// in seconds (`None`: no reload).
pub fn page(title: &str, active: &str, refresh: Option<u64>, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                @if let Some(seconds) = refresh {
                    meta http-equiv="refresh" content=(seconds);
                }
                title { (title) " · Reliable console" }
                link rel="stylesheet" href="/style.css";
            }
            body {
                header {
                    span.brand { "Reliable" }
                    nav {
                        @for (path, label) in NAV {
                            @if path == active {
                                a.active href=(path) { (label) } " "
                            } @else {
                                a href=(path) { (label) } " "
                            }
                        }
                    }
                }
                main { (body) }
            }
        }
    }
}

/// A page that only says something (bad input, a refusal).
pub fn message_page(title: &str, message: &str) -> Markup {
    page(
        title,
        "",
        None,
        html! {
            h1 { (title) }
            div.notice { (message) }
            p { a href="/" { "Back to the overview" } }
        },
    )
}

/// The login form; `problem` says why it is shown again.
pub fn login_page(problem: Option<&str>) -> Markup {
    page(
        "Log in",
        "",
        None,
        html! {
            h1 { "Log in" }
            @if let Some(problem) = problem {
                div.notice { (problem) }
            }
            div.card {
                p { "This console listens beyond loopback: it needs an API key with the "
                    code { "console:read" } " scope." }
                form method="post" action="/login" {
                    label for="key" { "API key " }
                    input id="key" name="key" type="password" autocomplete="current-password" required;
                    " "
                    button type="submit" { "Log in" }
                }
            }
        },
    )
}
