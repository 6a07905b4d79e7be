//! Incident notes: what an operator tells the public about a component.
//!
//! Texts are parsed once here (trimmed, length-bounded, no control
//! characters but newlines in the body); they are stored as written and
//! escaped only when the page renders them, so the JSON API returns what
//! the operator wrote.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

pub const MAX_TITLE_CHARS: usize = 200;
pub const MAX_BODY_CHARS: usize = 5_000;
pub const MAX_COMPONENT_CHARS: usize = crate::config::MAX_COMPONENT_CHARS;

/// Where an incident stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Hash, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum IncidentStatus {
    Investigating,
    Identified,
    Monitoring,
    Resolved,
}

impl IncidentStatus {
    pub const ALL: [Self; 4] = [
        Self::Investigating,
        Self::Identified,
        Self::Monitoring,
        Self::Resolved,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Investigating => "investigating",
            Self::Identified => "identified",
            Self::Monitoring => "monitoring",
            Self::Resolved => "resolved",
        }
    }

    pub fn parse(text: &str) -> Result<Self, IncidentError> {
        Self::ALL
            .into_iter()
            .find(|s| s.as_str() == text)
            .ok_or_else(|| IncidentError {
                field: "status",
                reason: "must be investigating, identified, monitoring or resolved".to_string(),
            })
    }
}

/// A note as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[schema(as = StatusIncident)]
pub struct Incident {
    pub id: i64,
    pub component: String,
    pub title: String,
    pub body: String,
    pub status: IncidentStatus,
    /// An API key's name, or `cli:$USER`.
    pub author: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// Which field of a note is wrong, and why.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct IncidentError {
    pub field: &'static str,
    pub reason: String,
}

/// A note to create, parsed.
#[derive(Debug, Clone, PartialEq)]
pub struct NewIncident {
    pub component: String,
    pub title: String,
    pub body: String,
    pub status: IncidentStatus,
}

impl NewIncident {
    pub fn parse(
        component: &str,
        title: &str,
        body: Option<&str>,
        status: Option<&str>,
    ) -> Result<Self, IncidentError> {
        Ok(Self {
            component: line("component", component, MAX_COMPONENT_CHARS)?,
            title: line("title", title, MAX_TITLE_CHARS)?,
            body: parse_body(body.unwrap_or(""))?,
            status: status
                .map(IncidentStatus::parse)
                .transpose()?
                .unwrap_or(IncidentStatus::Investigating),
        })
    }
}

/// A change to a note, parsed; absent fields stay as they are.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct IncidentUpdate {
    pub title: Option<String>,
    pub body: Option<String>,
    pub status: Option<IncidentStatus>,
}

impl IncidentUpdate {
    pub fn parse(
        title: Option<&str>,
        body: Option<&str>,
        status: Option<&str>,
    ) -> Result<Self, IncidentError> {
        let update = Self {
            title: title
                .map(|t| line("title", t, MAX_TITLE_CHARS))
                .transpose()?,
            body: body.map(parse_body).transpose()?,
            status: status.map(IncidentStatus::parse).transpose()?,
        };
        if update == Self::default() {
            return Err(IncidentError {
                field: "status",
                reason: "give at least one of title, body, status".to_string(),
            });
        }
        Ok(update)
    }
}

fn line(field: &'static str, text: &str, max: usize) -> Result<String, IncidentError> {
    let text = text.trim();
    if text.is_empty() || text.chars().count() > max || text.chars().any(char::is_control) {
        return Err(IncidentError {
            field,
            reason: format!("must be 1 to {max} characters on one line"),
        });
    }
    Ok(text.to_string())
}

fn parse_body(text: &str) -> Result<String, IncidentError> {
    let text = text.trim();
    if text.chars().count() > MAX_BODY_CHARS
        || text
            .chars()
            .any(|c| c.is_control() && c != '\n' && c != '\r' && c != '\t')
    {
        return Err(IncidentError {
            field: "body",
            reason: format!("must be at most {MAX_BODY_CHARS} characters of text"),
        });
    }
    Ok(text.to_string())
}

impl Incident {
    /// The change timeline's line for this note: `verb` is what happened
    /// to it (`opened`, `updated`), `actor` who did it.
    pub fn change_event(&self, actor: &str, verb: &str) -> kit::changes::ChangeEvent {
        kit::changes::ChangeEvent::new(
            self.updated_at,
            kit::changes::ChangeKind::Incident,
            "status",
            actor,
            format!("incident/{}", self.id),
            format!(
                "{verb} [{}] {}: {}",
                self.status.as_str(),
                self.component,
                self.title
            ),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notes_are_trimmed_bounded_and_default_to_investigating() {
        let note = NewIncident::parse(" Links ", " Slow ", None, None).unwrap();
        assert_eq!(note.component, "Links");
        assert_eq!(note.title, "Slow");
        assert_eq!(note.status, IncidentStatus::Investigating);
        let long = "x".repeat(MAX_TITLE_CHARS + 1);
        assert_eq!(
            NewIncident::parse("Links", &long, None, None)
                .unwrap_err()
                .field,
            "title"
        );
        assert_eq!(
            NewIncident::parse("Links", "a\u{7}b", None, None)
                .unwrap_err()
                .field,
            "title"
        );
        assert_eq!(
            NewIncident::parse("Links", "t", None, Some("fixed"))
                .unwrap_err()
                .field,
            "status"
        );
        let body = "x".repeat(MAX_BODY_CHARS + 1);
        assert_eq!(
            NewIncident::parse("Links", "t", Some(&body), None)
                .unwrap_err()
                .field,
            "body"
        );
    }

    #[test]
    fn an_update_changes_something() {
        assert!(IncidentUpdate::parse(None, None, None).is_err());
        let u = IncidentUpdate::parse(None, None, Some("resolved")).unwrap();
        assert_eq!(u.status, Some(IncidentStatus::Resolved));
    }
}
