//! One request as written to one [`RequestPlan`]: defaults applied,
//! templates parsed, captures bound to pools, checks built.
//!
//! Everything a request could get wrong is refused here, with the line of
//! the field, so the engine never meets a header it cannot send or a URL
//! that is not one.

use super::escape::Escaping;
use super::file::{CaptureSection, CheckSection, RequestFields};
use super::template::{Scope, Template, TemplateError};
use super::values::{DurationText, OrderedMap, StatusRange};
use super::{Capture, CaptureSource, Check, CheckKind, JsonBody, ScenarioError};
use crate::plan::{RequestPlan, StatusSet};
use http::{HeaderName, HeaderValue, Method};
use std::time::Duration;
use yamlspec::Located;

/// A request's timeout when neither it nor `defaults` sets one.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

/// What every request of the file is compiled against.
pub struct RequestContext<'a> {
    pub scope: Scope<'a>,
    /// `defaults.headers`, already parsed.
    pub headers: Vec<(HeaderName, Template)>,
    pub timeout: Duration,
    pub expect_status: StatusSet,
    /// Per pool: whether some capture fills it. A pool read but never
    /// filled would skip every request that reads it.
    pub filled_pools: Vec<bool>,
}

pub fn error(line: usize, path: impl Into<String>, message: impl Into<String>) -> ScenarioError {
    ScenarioError {
        line,
        path: path.into(),
        message: message.into(),
    }
}

fn template_error(line: usize, path: &str) -> impl FnOnce(TemplateError) -> ScenarioError + '_ {
    move |e| error(line, path, e.to_string())
}

/// Headers as written, checked and parsed (placeholders in values
/// allowed), each with its line.
pub fn headers(
    written: &OrderedMap<Located<String>>,
    path: &str,
    scope: &Scope<'_>,
) -> Result<Vec<(HeaderName, Template, usize)>, ScenarioError> {
    let mut headers = Vec::new();
    for (name, value) in written.iter() {
        let field = format!("{path}.{name}");
        let header = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| error(value.line, &field, format!("`{name}` is not a header name")))?;
        let template = Template::parse(&value.value, Escaping::Plain, scope)
            .map_err(template_error(value.line, &field))?;
        if let Some(text) = template.as_literal() {
            HeaderValue::from_str(text).map_err(|_| {
                error(
                    value.line,
                    &field,
                    "the value has characters a header cannot carry",
                )
            })?;
        }
        headers.push((header, template, value.line));
    }
    Ok(headers)
}

pub fn duration(value: &Located<DurationText>, path: &str) -> Result<Duration, ScenarioError> {
    if value.value.0.is_zero() {
        return Err(error(value.line, path, "must be longer than zero"));
    }
    Ok(value.value.0)
}

pub fn status_set(
    written: &Located<Vec<StatusRange>>,
    path: &str,
) -> Result<StatusSet, ScenarioError> {
    if written.value.is_empty() {
        return Err(error(
            written.line,
            path,
            "give at least one status or range",
        ));
    }
    Ok(StatusSet(
        written.value.iter().map(|r| (r.0, r.1)).collect(),
    ))
}

/// Compiles one request; `line` is the line of the list item.
pub fn request(
    name: &Located<String>,
    weight: u32,
    fields: RequestFields<'_>,
    path: &str,
    context: &RequestContext<'_>,
) -> Result<RequestPlan, ScenarioError> {
    let scope = &context.scope;
    if name.value.trim().is_empty() {
        return Err(error(
            name.line,
            format!("{path}.name"),
            "must not be empty",
        ));
    }
    let method = match fields.method {
        None => Method::GET,
        Some(method) => {
            Method::from_bytes(method.value.to_ascii_uppercase().as_bytes()).map_err(|_| {
                error(
                    method.line,
                    format!("{path}.method"),
                    format!("`{}` is not an HTTP method", method.value),
                )
            })?
        }
    };

    let url_path = format!("{path}.url");
    let url = Template::parse(&fields.url.value, Escaping::Url, scope)
        .map_err(template_error(fields.url.line, &url_path))?;
    check_url(&url, fields.url.line, &url_path)?;
    check_filled(&url, context, fields.url.line, &url_path)?;

    let mut headers = context.headers.clone();
    let headers_path = format!("{path}.headers");
    for (header, value, line) in self::headers(fields.headers, &headers_path, scope)? {
        check_filled(&value, context, line, &format!("{headers_path}.{header}"))?;
        headers.retain(|(existing, _)| *existing != header);
        headers.push((header, value));
    }

    let body = match (fields.json, fields.body) {
        (Some(json), Some(_)) => {
            return Err(error(
                json.line,
                format!("{path}.json"),
                "give `json` or `body`, not both",
            ));
        }
        (Some(json), None) => {
            let json_path = format!("{path}.json");
            let template = Template::json(&json.value, scope)
                .map_err(template_error(json.line, &json_path))?;
            check_filled(&template, context, json.line, &json_path)?;
            let content_type = http::header::CONTENT_TYPE;
            if !headers.iter().any(|(name, _)| *name == content_type) {
                headers.push((content_type, Template::literal("application/json")));
            }
            Some(template)
        }
        (None, Some(body)) => {
            let body_path = format!("{path}.body");
            let template = Template::parse(&body.value, Escaping::Raw, scope)
                .map_err(template_error(body.line, &body_path))?;
            check_filled(&template, context, body.line, &body_path)?;
            Some(template)
        }
        (None, None) => None,
    };

    let mut captures = Vec::new();
    for (pool_name, section) in fields.capture.iter() {
        captures.push(capture(
            pool_name,
            section,
            &format!("{path}.capture.{pool_name}"),
            scope,
        )?);
    }

    let mut checks = Vec::new();
    for (i, section) in fields.checks.iter().enumerate() {
        let check_path = format!("{path}.checks[{i}]");
        let check = check(section, &check_path)?;
        if checks.iter().any(|c: &Check| c.name == check.name) {
            return Err(error(
                section.line,
                format!("{check_path}.name"),
                format!("a check named `{}` is already in this request", check.name),
            ));
        }
        checks.push(check);
    }

    let expect_status = match fields.expect_status {
        Some(written) => status_set(written, &format!("{path}.expect_status"))?,
        None => context.expect_status.clone(),
    };
    let timeout = match fields.timeout {
        Some(written) => duration(written, &format!("{path}.timeout"))?,
        None => context.timeout,
    };

    Ok(RequestPlan {
        name: name.value.clone(),
        weight,
        method,
        url,
        headers,
        body,
        captures,
        checks,
        expect_status,
        timeout,
    })
}

/// A template that reads a pool no capture fills would skip every
/// request: usually a typo in the capture's pool name.
fn check_filled(
    template: &Template,
    context: &RequestContext<'_>,
    line: usize,
    path: &str,
) -> Result<(), ScenarioError> {
    for pool in template.pools() {
        if !context.filled_pools.get(pool).copied().unwrap_or(false) {
            let name = context
                .scope
                .pools
                .get(pool)
                .map_or("", |p| p.name.as_str());
            return Err(error(
                line,
                path,
                format!("pool `{name}` is read here, but no `capture` fills it"),
            ));
        }
    }
    Ok(())
}

/// The URL must render to an absolute http(s) URL whatever the run-time
/// values are, so its literal start must already say so.
fn check_url(url: &Template, line: usize, path: &str) -> Result<(), ScenarioError> {
    let prefix = url.literal_prefix();
    if !(prefix.starts_with("http://") || prefix.starts_with("https://")) {
        return Err(error(
            line,
            path,
            "must start with http:// or https:// (usually `{{target}}/...`)",
        ));
    }
    if let Some(text) = url.as_literal() {
        url::Url::parse(text)
            .map_err(|e| error(line, path, format!("`{text}` is not a URL: {e}")))?;
    }
    Ok(())
}

fn capture(
    pool_name: &str,
    section: &Located<CaptureSection>,
    path: &str,
    scope: &Scope<'_>,
) -> Result<Capture, ScenarioError> {
    let line = section.line;
    let pool = scope
        .pools
        .iter()
        .position(|p| p.name == pool_name)
        .ok_or_else(|| error(line, path, format!("no pool named `{pool_name}`")))?;
    let (source, label) = match (&section.value.json, &section.value.header) {
        (Some(pointer), None) => {
            if !(pointer.is_empty() || pointer.starts_with('/')) {
                return Err(error(
                    line,
                    format!("{path}.json"),
                    format!("`{pointer}` is not a JSON pointer; it starts with `/`, e.g. /slug"),
                ));
            }
            (
                CaptureSource::JsonPointer(pointer.clone()),
                format!("{pool_name} <- json {pointer}"),
            )
        }
        (None, Some(header)) => {
            let name = HeaderName::from_bytes(header.as_bytes()).map_err(|_| {
                error(
                    line,
                    format!("{path}.header"),
                    format!("`{header}` is not a header name"),
                )
            })?;
            let label = format!("{pool_name} <- header {name}");
            (CaptureSource::Header(name), label)
        }
        _ => {
            return Err(error(
                line,
                path,
                "give exactly one of `json` (a pointer) or `header`",
            ))
        }
    };
    Ok(Capture {
        pool,
        source,
        label,
        line,
    })
}

fn check(section: &Located<CheckSection>, path: &str) -> Result<Check, ScenarioError> {
    let line = section.line;
    let written = &section.value;
    if written.name.trim().is_empty() {
        return Err(error(line, format!("{path}.name"), "must not be empty"));
    }
    let kind = match (
        &written.status,
        &written.header,
        &written.json,
        &written.equals,
    ) {
        (Some(statuses), None, None, None) => {
            if statuses.is_empty() {
                return Err(error(
                    line,
                    format!("{path}.status"),
                    "give at least one status",
                ));
            }
            let mut codes: Vec<u16> = statuses.iter().flat_map(|r| r.0..=r.1).collect();
            codes.sort_unstable();
            codes.dedup();
            CheckKind::StatusIn(codes)
        }
        (None, Some(header), None, None) => {
            CheckKind::HeaderPresent(HeaderName::from_bytes(header.as_bytes()).map_err(|_| {
                error(
                    line,
                    format!("{path}.header"),
                    format!("`{header}` is not a header name"),
                )
            })?)
        }
        (None, None, Some(pointer), Some(equals)) => {
            if !(pointer.is_empty() || pointer.starts_with('/')) {
                return Err(error(
                    line,
                    format!("{path}.json"),
                    format!("`{pointer}` is not a JSON pointer; it starts with `/`"),
                ));
            }
            CheckKind::JsonEquals {
                pointer: pointer.clone(),
                value: to_json_value(equals),
            }
        }
        (None, None, Some(_), None) => {
            return Err(error(
                line,
                format!("{path}.equals"),
                "`json` needs `equals`: the value to compare with",
            ));
        }
        _ => {
            return Err(error(
                line,
                path,
                "give exactly one of `status`, `header` or `json` (with `equals`)",
            ));
        }
    };
    Ok(Check {
        name: written.name.clone(),
        kind,
    })
}

fn to_json_value(body: &JsonBody) -> serde_json::Value {
    match body {
        JsonBody::Null => serde_json::Value::Null,
        JsonBody::Bool(b) => serde_json::Value::Bool(*b),
        JsonBody::Number(n) => serde_json::Value::Number(n.clone()),
        JsonBody::String(s) => serde_json::Value::String(s.clone()),
        JsonBody::Array(items) => {
            serde_json::Value::Array(items.iter().map(to_json_value).collect())
        }
        JsonBody::Object(entries) => serde_json::Value::Object(
            entries
                .iter()
                .map(|(k, v)| (k.clone(), to_json_value(v)))
                .collect(),
        ),
    }
}
