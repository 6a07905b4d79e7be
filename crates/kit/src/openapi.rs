//! OpenAPI 3.1 documents, generated from the handlers so they cannot drift.
//!
//! Each module describes its operations next to its handlers
//! (`#[utoipa::path]`, collected by `utoipa_axum`'s router) and returns the
//! document from [`crate::module::Module::openapi`]. What every operation
//! may answer whatever its module says, because the platform's stack
//! answers it (a malformed body, a timeout, a database that is down), is
//! added here once by [`add_standard_responses`], so a client generated
//! from the document knows every status it can get and every problem
//! `type` behind it.

use crate::problem::Problem;
use utoipa::openapi::content::ContentBuilder;
use utoipa::openapi::path::{Operation, ParameterIn};
use utoipa::openapi::response::{Response, ResponseBuilder};
use utoipa::openapi::{OpenApi, Ref, RefOr};
use utoipa::{PartialSchema, ToSchema};

pub use utoipa;

/// The media type of every error.
pub const PROBLEM_JSON: &str = crate::problem::CONTENT_TYPE;

/// A problem+json response whose description lists the problem `type`s it
/// may carry, so clients can match on them.
pub fn problem_response(summary: &str, kinds: &[&str]) -> Response {
    let types: Vec<String> = kinds.iter().map(|k| format!("`/problems/{k}`")).collect();
    let description = if types.is_empty() {
        summary.to_string()
    } else {
        format!("{summary} Problem types: {}.", types.join(", "))
    };
    ResponseBuilder::new()
        .description(description)
        .content(
            PROBLEM_JSON,
            ContentBuilder::new()
                .schema(Some(Ref::from_schema_name(Problem::name())))
                .build(),
        )
        .build()
}

/// `(status, applies to, summary, problem kinds)`: a response to add to the
/// operations it applies to.
pub type ResponseRule = (
    &'static str,
    fn(&Operation) -> bool,
    &'static str,
    &'static [&'static str],
);

/// A standard response: its status, when it applies, what it says.
struct Standard {
    status: &'static str,
    applies: fn(&Operation) -> bool,
    summary: &'static str,
    kinds: &'static [&'static str],
}

fn always(_: &Operation) -> bool {
    true
}

fn has_body(operation: &Operation) -> bool {
    operation.request_body.is_some()
}

fn has_query(operation: &Operation) -> bool {
    operation
        .parameters
        .iter()
        .flatten()
        .any(|p| p.parameter_in == ParameterIn::Query)
}

/// What the platform's HTTP stack answers on any route (see `kit::http`).
const STACK: &[Standard] = &[
    Standard {
        status: "400",
        applies: has_body,
        summary: "The body is not valid JSON or could not be read.",
        kinds: &["malformed-json", "unreadable-body"],
    },
    Standard {
        status: "400",
        applies: has_query,
        summary: "A query parameter is invalid.",
        kinds: &["invalid-query"],
    },
    Standard {
        status: "413",
        applies: has_body,
        summary: "The body is over the limit (`http.body_limit_bytes`).",
        kinds: &["body-too-large"],
    },
    Standard {
        status: "415",
        applies: has_body,
        summary: "The body is not `application/json`.",
        kinds: &["unsupported-media-type"],
    },
    Standard {
        status: "422",
        applies: has_body,
        summary: "The body is JSON of the wrong shape, or a field is invalid.",
        kinds: &["invalid-body", "invalid-field"],
    },
    Standard {
        status: "500",
        applies: always,
        summary: "A bug; the cause is logged, never sent.",
        kinds: &["internal"],
    },
    Standard {
        status: "503",
        applies: always,
        summary: "A dependency (the database) is unavailable, or the request ran out of time (`http.request_timeout`).",
        kinds: &["unavailable", "timeout"],
    },
];

/// Adds the responses the platform's stack may give to every operation
/// (see [`add_responses`]), and the `Problem` schema they refer to. Call
/// once, on the document a process serves.
pub fn add_standard_responses(api: &mut OpenApi) {
    let rules: Vec<ResponseRule> = STACK
        .iter()
        .map(|s| (s.status, s.applies, s.summary, s.kinds))
        .collect();
    add_responses(api, &rules);
}

/// Adds `(status, applies, summary, problem kinds)` responses to every
/// operation they apply to, and the `Problem` schema. Where the operation
/// documents the status already, the summary and kinds are appended to its
/// description (its own body schema stays). A fronting module (the
/// gateway) adds its own this way.
pub fn add_responses(api: &mut OpenApi, rules: &[ResponseRule]) {
    for item in api.paths.paths.values_mut() {
        for operation in operations_mut(item) {
            for &(status, applies, summary, kinds) in rules {
                if !applies(operation) {
                    continue;
                }
                let added = problem_response(summary, kinds);
                match operation.responses.responses.get_mut(status) {
                    Some(RefOr::T(existing)) => {
                        if !existing.description.contains(&added.description) {
                            existing.description =
                                format!("{} Or: {}", existing.description, added.description);
                        }
                    }
                    Some(RefOr::Ref(_)) => {}
                    None => {
                        operation
                            .responses
                            .responses
                            .insert(status.to_string(), RefOr::T(added));
                    }
                }
            }
        }
    }
    let components = api.components.get_or_insert_with(Default::default);
    for (name, schema) in [
        (Problem::name().to_string(), Problem::schema()),
        (
            crate::problem::InvalidParam::name().to_string(),
            crate::problem::InvalidParam::schema(),
        ),
    ] {
        components.schemas.entry(name).or_insert(schema);
    }
}

/// Every operation of a path item.
pub fn operations_mut(
    item: &mut utoipa::openapi::PathItem,
) -> impl Iterator<Item = &mut Operation> {
    [
        &mut item.get,
        &mut item.put,
        &mut item.post,
        &mut item.delete,
        &mut item.options,
        &mut item.head,
        &mut item.patch,
        &mut item.trace,
    ]
    .into_iter()
    .filter_map(Option::as_mut)
}

/// Operations that any route may answer: for a fronting module's list.
pub fn any_operation(_: &Operation) -> bool {
    true
}

/// Declares that the `status` response of operation `from` leads to
/// operation `to`, with `to`'s parameters taken from the response
/// (`("slug", "$response.body#/slug")`): OpenAPI links, which clients and
/// stateful API testers (Schemathesis) follow to act on what was created.
/// Does nothing if either operation or the response is missing.
pub fn add_link(
    api: &mut OpenApi,
    from: &str,
    status: &str,
    to: &str,
    parameters: &[(&str, &str)],
) {
    let known = api
        .paths
        .paths
        .values_mut()
        .flat_map(operations_mut)
        .any(|op| op.operation_id.as_deref() == Some(to));
    if !known {
        return;
    }
    let mut link = utoipa::openapi::link::LinkBuilder::new().operation_id(to);
    for (name, expression) in parameters {
        link = link.parameter(*name, serde_json::Value::from(*expression));
    }
    let link = link.build();
    for operation in api.paths.paths.values_mut().flat_map(operations_mut) {
        if operation.operation_id.as_deref() != Some(from) {
            continue;
        }
        if let Some(RefOr::T(response)) = operation.responses.responses.get_mut(status) {
            response
                .links
                .insert(to.to_string(), RefOr::T(link.clone()));
        }
    }
}

/// Every operation id in `api`.
pub fn operation_ids(api: &OpenApi) -> Vec<String> {
    let mut api = api.clone();
    api.paths
        .paths
        .values_mut()
        .flat_map(operations_mut)
        .filter_map(|op| op.operation_id.clone())
        .collect()
}

/// The document as served and committed: pretty JSON with one trailing
/// newline. utoipa 5.5 writes a Link Object's fields in snake case
/// (`operation_id`), which OpenAPI validators and Schemathesis refuse, so
/// they are renamed to the specification's names here.
pub fn to_json(api: &OpenApi) -> String {
    let mut value = serde_json::to_value(api).unwrap_or_default();
    if let Some(paths) = value
        .get_mut("paths")
        .and_then(serde_json::Value::as_object_mut)
    {
        for item in paths
            .values_mut()
            .filter_map(serde_json::Value::as_object_mut)
        {
            for operation in item.values_mut() {
                let responses = operation
                    .get_mut("responses")
                    .and_then(serde_json::Value::as_object_mut);
                for response in responses.into_iter().flat_map(|r| r.values_mut()) {
                    let links = response
                        .get_mut("links")
                        .and_then(serde_json::Value::as_object_mut);
                    for link in links.into_iter().flat_map(|l| l.values_mut()) {
                        rename_link_fields(link);
                    }
                }
            }
        }
    }
    let mut json = serde_json::to_string_pretty(&value).unwrap_or_else(|_| "{}".to_string());
    json.push('\n');
    json
}

fn rename_link_fields(link: &mut serde_json::Value) {
    let Some(link) = link.as_object_mut() else {
        return;
    };
    for (from, to) in [
        ("operation_id", "operationId"),
        ("operation_ref", "operationRef"),
        ("request_body", "requestBody"),
    ] {
        if let Some(value) = link.remove(from) {
            link.insert(to.to_string(), value);
        }
    }
}
