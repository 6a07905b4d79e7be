//! The one storage error of every module, and the one place that decides
//! what "the database is unavailable" means.
//!
//! Callers branch on two questions only: is it the client's conflict
//! ([`StoreError::Conflict`], e.g. a taken slug) and may it be retried
//! ([`StoreError::is_unavailable`]: answer 503 with `Retry-After`, back
//! off, turn readiness false). Everything else is our bug or bad data: 500,
//! logged with its source chain, never shown.

use crate::problem::Problem;
use sqlx::error::DatabaseError;
use sqlx::migrate::MigrateError;

/// Why a storage operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("unsupported database URL scheme (expected sqlite: or postgres:)")]
    UnsupportedUrl,
    /// A unique key is taken; the text says which (e.g. "slug `abc`").
    #[error("{0} already exists")]
    Conflict(String),
    #[error("database error")]
    Database(#[from] sqlx::Error),
    #[error("migration failed")]
    Migration(#[from] MigrateError),
    /// A stored row cannot be read back into a domain value.
    #[error("stored data is invalid: {0}")]
    Corrupt(String),
}

/// Seconds a client is asked to wait after a 503 for an unavailable database.
const RETRY_AFTER_SECS: u64 = 1;

impl StoreError {
    /// The database could not be reached or is overloaded (as opposed to
    /// a bug or bad data): the same request may succeed later.
    pub fn is_unavailable(&self) -> bool {
        match self {
            Self::Database(e) => sqlx_unavailable(e),
            Self::Migration(MigrateError::Execute(e)) => sqlx_unavailable(e),
            _ => false,
        }
    }

    /// An insert's error: [`StoreError::Conflict`] naming `what` when a
    /// unique key was violated, the database's error otherwise.
    pub fn conflict_if_unique(error: sqlx::Error, what: impl FnOnce() -> String) -> Self {
        if is_unique_violation(&error) {
            Self::Conflict(what())
        } else {
            Self::Database(error)
        }
    }

    /// The response for a storage failure a handler cannot handle itself:
    /// 503 with `Retry-After` when the database is unavailable, 500
    /// otherwise. The cause is logged here and never reaches the client.
    /// `database` names it for the client, e.g. "the link database".
    pub fn to_problem(&self, database: &str) -> Problem {
        if self.is_unavailable() {
            tracing::error!(
                error = self as &dyn std::error::Error,
                "{database} unavailable"
            );
            Problem::unavailable(format!("{database} is unavailable"))
                .with_retry_after(RETRY_AFTER_SECS)
        } else {
            tracing::error!(error = self as &dyn std::error::Error, "{database} failed");
            Problem::internal()
        }
    }
}

/// True when `error` is a unique-constraint violation (either engine).
pub fn is_unique_violation(error: &sqlx::Error) -> bool {
    matches!(error, sqlx::Error::Database(db) if db.is_unique_violation())
}

fn sqlx_unavailable(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_)
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(db) => {
            if let Some(pg) = db.try_downcast_ref::<sqlx::postgres::PgDatabaseError>() {
                postgres_unavailable(pg.code())
            } else if let Some(lite) = db.try_downcast_ref::<sqlx::sqlite::SqliteError>() {
                lite.code().is_some_and(|c| sqlite_unavailable(&c))
            } else {
                false
            }
        }
        _ => false,
    }
}

/// SQLSTATE classes and codes that mean "not now" rather than "never".
///
/// A failover produces all of them: connections to the old primary end
/// (57P01 on a fast shutdown, 57P02 when a sibling backend crashed, an I/O
/// error on SIGKILL), the promoted standby refuses connections while it
/// finishes recovery (57P03) and writes while it is still a standby
/// (25006 `read_only_sql_transaction`, also what a demoted node answers).
/// Each maps to a retryable 503; the transaction it cut was rolled back.
fn postgres_unavailable(code: &str) -> bool {
    // 08: connection exception; 53: insufficient resources (too many
    // connections, disk full); 57P01-03: admin shutdown, crash shutdown,
    // cannot connect now (starting up or in recovery); 25006: read-only
    // transaction (a standby, before or instead of promotion).
    code.starts_with("08")
        || code.starts_with("53")
        || matches!(code, "57P01" | "57P02" | "57P03" | "25006")
}

/// SQLite result codes (extended codes carry the primary in the low byte):
/// `SQLITE_BUSY` (5) after the busy timeout, `SQLITE_LOCKED` (6).
fn sqlite_unavailable(code: &str) -> bool {
    code.parse::<i32>().is_ok_and(|c| matches!(c & 0xff, 5 | 6))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::StatusCode;

    #[test]
    fn connection_failures_are_unavailable() {
        for error in [
            sqlx::Error::PoolTimedOut,
            sqlx::Error::PoolClosed,
            sqlx::Error::Io(std::io::Error::from(std::io::ErrorKind::ConnectionRefused)),
            sqlx::Error::WorkerCrashed,
        ] {
            assert!(StoreError::Database(error).is_unavailable());
        }
    }

    #[test]
    fn bugs_and_bad_data_are_not_unavailable() {
        assert!(!StoreError::Database(sqlx::Error::RowNotFound).is_unavailable());
        assert!(!StoreError::Corrupt("x".into()).is_unavailable());
        assert!(!StoreError::Conflict("slug `a`".into()).is_unavailable());
        assert!(!StoreError::UnsupportedUrl.is_unavailable());
    }

    #[test]
    fn postgres_codes() {
        for code in [
            "08006", "08001", "08P01", "53300", "57P01", "57P02", "57P03", "25006",
        ] {
            assert!(postgres_unavailable(code), "{code}");
        }
        for code in ["23505", "42P01", "40001", "57014", "25001"] {
            assert!(!postgres_unavailable(code), "{code}");
        }
    }

    #[test]
    fn sqlite_codes() {
        for code in ["5", "6", "261", "517"] {
            assert!(sqlite_unavailable(code), "{code}");
        }
        for code in ["19", "2067", "1", "x"] {
            assert!(!sqlite_unavailable(code), "{code}");
        }
    }

    #[test]
    fn one_mapping_to_problem_json() {
        let down = StoreError::Database(sqlx::Error::PoolTimedOut).to_problem("the link database");
        assert_eq!(down.status(), StatusCode::SERVICE_UNAVAILABLE);
        let response = axum::response::IntoResponse::into_response(down);
        assert_eq!(response.headers()["retry-after"], "1");
        let bug = StoreError::Corrupt("row 1".into()).to_problem("the link database");
        assert_eq!(bug.status(), StatusCode::INTERNAL_SERVER_ERROR);
    }

    #[test]
    fn conflict_names_what() {
        assert_eq!(
            StoreError::Conflict("slug `abc`".into()).to_string(),
            "slug `abc` already exists"
        );
        let other = StoreError::conflict_if_unique(sqlx::Error::RowNotFound, || "x".into());
        assert!(matches!(other, StoreError::Database(_)));
    }
}
