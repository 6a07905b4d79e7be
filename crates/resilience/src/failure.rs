//! What a failure means for the next attempt.
//!
//! Retrying is only safe when the service cannot have acted on the
//! request, or when acting twice is harmless (an idempotent method whose
//! body can be sent again). Which case a failure is comes from its type:
//! a refused connection sent nothing, a reset mid-exchange may have been
//! processed, a bad certificate will fail the same way next time. Callers
//! decide from [`Classify`] and [`classify_status`], never by matching
//! error messages.

use http::{Method, StatusCode};
use std::error::Error;

/// Whether another attempt may follow a failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retry {
    /// Nothing reached the service (connection refused, DNS failure):
    /// any request may go again, preferably to another endpoint.
    Safe,
    /// The service may have seen the request: only a request that is
    /// idempotent *and* whose body can be sent again may go again.
    IfIdempotent,
    /// Another attempt would fail the same way (a certificate that is not
    /// trusted, a body over a limit), or the caller has already waited the
    /// whole timeout.
    Never,
}

impl Retry {
    /// Whether a request may be attempted again; `replayable` is true for
    /// an idempotent method whose body was not consumed (empty or kept).
    pub fn allows(self, replayable: bool) -> bool {
        match self {
            Retry::Safe => true,
            Retry::IfIdempotent => replayable,
            Retry::Never => false,
        }
    }
}

/// A typed failure that knows whether it may be retried and whether it
/// counts against the endpoint (its breaker).
pub trait Classify {
    fn retry(&self) -> Retry;
    /// False for failures that are the caller's own (a request body over
    /// its limit): the endpoint's breaker must not open for those.
    fn blames_endpoint(&self) -> bool;
}

/// What an answer's status says about the endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The endpoint works (a 4xx is the client's problem, not the
    /// endpoint's).
    Success,
    /// A 5xx: counts against the endpoint; 502/503/504 may be retried
    /// for replayable requests, other 5xx are relayed as they are.
    Failure(Retry),
}

/// The verdict on an answer with `status`.
pub fn classify_status(status: StatusCode) -> Verdict {
    match status {
        StatusCode::BAD_GATEWAY | StatusCode::SERVICE_UNAVAILABLE | StatusCode::GATEWAY_TIMEOUT => {
            Verdict::Failure(Retry::IfIdempotent)
        }
        s if s.is_server_error() => Verdict::Failure(Retry::Never),
        _ => Verdict::Success,
    }
}

/// Methods that may be sent twice with the effect of once (RFC 9110
/// §9.2.2).
pub fn is_idempotent(method: &Method) -> bool {
    matches!(
        *method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE | Method::PUT | Method::DELETE
    )
}

/// `error` and every error under it, outermost first. Steps *into* an
/// `io::Error` (whose `source()` skips the error it wraps), so a typed
/// cause inside one (a TLS alert, a body limit) is found.
pub(crate) fn causes<'a>(
    error: &'a (dyn Error + 'static),
) -> impl Iterator<Item = &'a (dyn Error + 'static)> {
    std::iter::successors(Some(error), |&error| -> Option<&'a (dyn Error + 'static)> {
        match error.downcast_ref::<std::io::Error>() {
            Some(io) => io.get_ref().map(|inner| inner as &(dyn Error + 'static)),
            None => error.source(),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_replayable_requests_retry_after_the_service_may_have_seen_them() {
        assert!(Retry::Safe.allows(false));
        assert!(Retry::IfIdempotent.allows(true));
        assert!(!Retry::IfIdempotent.allows(false));
        assert!(!Retry::Never.allows(true));
    }

    #[test]
    fn gateway_statuses_retry_other_server_errors_do_not() {
        for status in [502, 503, 504] {
            let status = StatusCode::from_u16(status).expect("status");
            assert_eq!(
                classify_status(status),
                Verdict::Failure(Retry::IfIdempotent)
            );
        }
        assert_eq!(
            classify_status(StatusCode::INTERNAL_SERVER_ERROR),
            Verdict::Failure(Retry::Never)
        );
        assert_eq!(classify_status(StatusCode::NOT_FOUND), Verdict::Success);
        assert!(!is_idempotent(&Method::POST));
        assert!(is_idempotent(&Method::PUT));
    }
}
