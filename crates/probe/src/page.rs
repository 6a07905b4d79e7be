//! The status page as HTML: server-rendered with maud (which escapes every
//! interpolated value, so an incident note with `<script>` in it shows as
//! text), inline CSS, no JavaScript, no external assets, usable on a phone.
//! Each component has 90 bars, coloured by the day's uptime, each with a
//! `title` giving the date and percentage.

use crate::report::{Component, Day, Report, State};
use maud::{html, Markup, DOCTYPE};

const CSS: &str = "\
body{font-family:system-ui,sans-serif;margin:0 auto;max-width:60rem;padding:1rem;color:#1f2328}\
h1{font-size:1.5rem}.banner{padding:.75rem 1rem;border-radius:.4rem;color:#fff;font-weight:600}\
.operational{background:#1a7f37}.degraded{background:#bf8700}.down{background:#cf222e}.unknown{background:#6e7781}\
.component{margin:1.5rem 0}.head{display:flex;justify-content:space-between;gap:1rem}\
.state-operational{color:#1a7f37}.state-degraded{color:#9a6700}.state-down{color:#cf222e}.state-unknown{color:#6e7781}\
.bars{display:flex;gap:1px;height:2.2rem;margin:.4rem 0}.bars span{flex:1;border-radius:1px}\
.u100{background:#2da44e}.u999{background:#7bc96f}.u99{background:#d4a72c}.u95{background:#e16f24}.ulow{background:#cf222e}.unone{background:#d0d7de}\
.axis{display:flex;justify-content:space-between;font-size:.8rem;color:#57606a}\
.incident{border-left:3px solid #d0d7de;padding:.2rem .8rem;margin:1rem 0}.incident p{white-space:pre-wrap}\
.meta{font-size:.85rem;color:#57606a}";

/// The page's Content-Security-Policy: nothing loads, nothing runs, and
/// only its own inline stylesheet applies (allowed by its hash, so the
/// platform's API policy `default-src 'none'` need not be loosened).
pub fn content_security_policy() -> &'static str {
    static POLICY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    POLICY.get_or_init(|| {
        use base64::Engine as _;
        use sha2::Digest as _;
        let hash = base64::engine::general_purpose::STANDARD.encode(sha2::Sha256::digest(CSS));
        format!(
            "default-src 'none'; style-src 'sha256-{hash}'; base-uri 'none'; \
             form-action 'none'; frame-ancestors 'none'"
        )
    })
}

/// The whole page.
pub fn render(report: &Report) -> String {
    let markup = html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (report.title) }
                style { (maud::PreEscaped(CSS)) }
            }
            body {
                h1 { (report.title) }
                div class={ "banner " (css_state(report.state)) } { (banner(report.state)) }
                @for component in &report.components {
                    (component_section(component))
                }
                @if report.components.is_empty() {
                    p { "No probes are configured." }
                }
                h2 { "Incidents" }
                @if report.incidents.is_empty() {
                    p { "No incidents reported." }
                }
                @for incident in &report.incidents {
                    div class="incident" {
                        h3 { (incident.title) }
                        div class="meta" {
                            (incident.component) " · " strong { (incident.status.as_str()) }
                            " · posted " (incident.created_at.format("%Y-%m-%d %H:%M UTC"))
                            @if incident.updated_at != incident.created_at {
                                " · updated " (incident.updated_at.format("%Y-%m-%d %H:%M UTC"))
                            }
                        }
                        @if !incident.body.is_empty() {
                            p { (incident.body) }
                        }
                    }
                }
                p class="meta" { "Updated " (report.generated_at.format("%Y-%m-%d %H:%M:%S UTC")) }
            }
        }
    };
    markup.into_string()
}

fn component_section(component: &Component) -> Markup {
    html! {
        section class="component" {
            div class="head" {
                strong { (component.name) }
                span class={ "state-" (css_state(component.state)) } { (component.state.label()) }
            }
            div class="bars" role="img" aria-label={ (component.name) " uptime, last 90 days" } {
                @for day in &component.days {
                    span class=(bar_class(day)) title=(bar_title(day)) {}
                }
            }
            div class="axis" {
                span { "90 days ago" }
                span { (match component.uptime_90d {
                    Some(u) => format!("{} uptime", percent(u)),
                    None => "no data".to_string(),
                }) }
                span { "today" }
            }
        }
    }
}

fn banner(state: State) -> &'static str {
    match state {
        State::Operational => "All systems operational",
        State::Degraded => "Some systems degraded",
        State::Down => "Major outage",
        State::Unknown => "Waiting for the first probe results",
    }
}

fn css_state(state: State) -> &'static str {
    match state {
        State::Operational => "operational",
        State::Degraded => "degraded",
        State::Down => "down",
        State::Unknown => "unknown",
    }
}

/// The bar's colour class by uptime.
pub fn bar_class(day: &Day) -> &'static str {
    match day.uptime {
        None => "unone",
        Some(u) if u >= 1.0 => "u100",
        Some(u) if u >= 0.999 => "u999",
        Some(u) if u >= 0.99 => "u99",
        Some(u) if u >= 0.95 => "u95",
        Some(_) => "ulow",
    }
}

fn bar_title(day: &Day) -> String {
    match day.uptime {
        Some(u) => format!("{}: {} uptime", day.date, percent(u)),
        None => format!("{}: no data", day.date),
    }
}

fn percent(ratio: f64) -> String {
    let p = ratio * 100.0;
    if p >= 100.0 {
        "100%".to_string()
    } else {
        // Floor, so 99.996% never shows as a perfect day.
        format!("{:.2}%", (p * 100.0).floor() / 100.0)
    }
}
