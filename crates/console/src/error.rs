//! Why a page could not be shown: the caller's fault (400, 404) or a
//! source's (503, logged, its cause never shown).

use crate::sources::SourceError;
use axum::http::StatusCode;
use kit::problem::Problem;

#[derive(Debug, thiserror::Error)]
pub enum PageError {
    #[error("{name}: {reason}")]
    BadQuery { name: &'static str, reason: String },
    #[error("{0}")]
    BadId(String),
    #[error("no SLO with id `{0}`")]
    UnknownSlo(String),
    #[error("{what} cannot be read now")]
    Unavailable {
        what: &'static str,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

impl PageError {
    pub fn bad_query(name: &'static str, reason: impl Into<String>) -> Self {
        Self::BadQuery {
            name,
            reason: reason.into(),
        }
    }

    pub fn source(what: &'static str, source: SourceError) -> Self {
        Self::Unavailable {
            what,
            source: Box::new(source),
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            Self::BadQuery { .. } | Self::BadId(_) => StatusCode::BAD_REQUEST,
            Self::UnknownSlo(_) => StatusCode::NOT_FOUND,
            Self::Unavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// The problem+json answer; a source failure is logged here.
    pub fn problem(&self) -> Problem {
        match self {
            Self::BadQuery { name, reason } => Problem::invalid_query(name, reason.clone()),
            Self::BadId(reason) => {
                Problem::new(StatusCode::BAD_REQUEST, "invalid-id", "Invalid id")
                    .with_detail(reason.clone())
            }
            Self::UnknownSlo(_) => Problem::not_found(self.to_string()),
            Self::Unavailable { what, source } => {
                tracing::warn!(error = %source, "console: {what} cannot be read");
                Problem::unavailable(self.to_string())
            }
        }
    }
}
