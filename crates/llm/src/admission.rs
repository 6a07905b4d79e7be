//! Admission: who calls, may they call this model, and may they spend what
//! this request may cost, before a backend is asked anything.
//!
//! The caller is the API key the gateway in front checked (with the
//! `llm:invoke` scope); the gateway names it in `X-Api-Key-Name` and drops
//! any such header a client sent. Its limits are [`KeyPolicy`]s from
//! config. A request reserves its worst case (the prompt's estimate plus
//! `max_tokens` times `n`) against tokens per minute and the daily and
//! monthly budgets, all on the shared limiter (Redis when configured, so
//! they hold across replicas); [`Ticket::settle`] later charges what the
//! backend reported and gives the rest back.

use crate::config::{KeyPolicy, LlmConfig};
use crate::error::LlmError;
use http::HeaderMap;
use ratelimit::{BudgetWindow, Quota, RateLimiter};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

/// The header the gateway names the caller's key in.
pub const X_API_KEY_NAME: &str = "x-api-key-name";

pub use crate::usage::ANONYMOUS;

/// The caller: an API key's name, or [`ANONYMOUS`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller(String);

impl Caller {
    /// The caller the gateway named, if any; a malformed name is refused
    /// like a missing one (only the gateway sets it).
    pub fn from_headers(headers: &HeaderMap, allow_anonymous: bool) -> Result<Self, LlmError> {
        let named = headers
            .get(X_API_KEY_NAME)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .filter(|name| {
                !name.is_empty()
                    && name.len() <= 128
                    && name
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"-_.:@".contains(&b))
            });
        match named {
            Some(name) => Ok(Self(name.to_string())),
            None if allow_anonymous => Ok(Self(ANONYMOUS.to_string())),
            None => Err(LlmError::Unauthenticated),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A key's limits, parsed once.
#[derive(Debug, Clone)]
struct Limits {
    rpm: Option<Quota>,
    tpm: Option<Quota>,
    day: Option<u64>,
    month: Option<u64>,
    models: Vec<String>,
}

impl Limits {
    fn of(policy: &KeyPolicy) -> Self {
        // Config validation keeps these within the limiter's range.
        let per_minute =
            |n: Option<u64>| n.and_then(|n| Quota::new(n, Duration::from_secs(60), Some(n)).ok());
        Self {
            rpm: per_minute(policy.requests_per_minute),
            tpm: per_minute(policy.tokens_per_minute),
            day: policy.tokens_per_day,
            month: policy.tokens_per_month,
            models: policy.models.clone(),
        }
    }
}

/// Every key's limits and the limiter they are kept on.
pub struct Admission {
    limiter: Arc<dyn RateLimiter>,
    keys: BTreeMap<String, Limits>,
    default: Limits,
    allow_anonymous: bool,
}

/// A request admitted, with what it reserved; settle it once the answer
/// is known (or drop it to charge nothing more, e.g. when the request
/// never reached a backend).
#[derive(Debug, Clone)]
pub struct Ticket {
    pub caller: Caller,
    reserved: u64,
    tpm: Option<Quota>,
    budgets: Vec<(BudgetWindow, i64)>,
}

impl Admission {
    pub fn new(config: &LlmConfig, limiter: Arc<dyn RateLimiter>) -> Self {
        Self {
            limiter,
            keys: config
                .keys
                .iter()
                .map(|(name, policy)| (name.clone(), Limits::of(&policy.or(&config.default_key))))
                .collect(),
            default: Limits::of(&config.default_key),
            allow_anonymous: config.allow_anonymous,
        }
    }

    pub fn caller(&self, headers: &HeaderMap) -> Result<Caller, LlmError> {
        Caller::from_headers(headers, self.allow_anonymous)
    }

    fn limits(&self, caller: &Caller) -> &Limits {
        self.keys.get(caller.as_str()).unwrap_or(&self.default)
    }

    /// May `caller` call the model known by `names` (its public name and
    /// aliases)?
    pub fn may_call(&self, caller: &Caller, names: &[&str]) -> bool {
        let allowed = &self.limits(caller).models;
        allowed.is_empty() || names.iter().any(|n| allowed.iter().any(|a| a == n))
    }

    /// Counts the request and reserves `tokens`; refuses (429, naming the
    /// limit, with when to retry) without reserving anything.
    pub async fn admit(&self, caller: Caller, tokens: u64) -> Result<Ticket, LlmError> {
        let limits = self.limits(&caller).clone();
        let key = caller.as_str();
        if let Some(rpm) = &limits.rpm {
            let decision = self
                .limiter
                .check(&format!("llm:rpm:{key}"), rpm)
                .await
                .map_err(LlmError::limiter)?;
            if !decision.allowed {
                return Err(LlmError::RateLimited {
                    limit: "requests_per_minute",
                    retry_after: Duration::from_micros(decision.retry_after_us),
                });
            }
        }
        let mut ticket = Ticket {
            caller: caller.clone(),
            reserved: tokens,
            tpm: None,
            budgets: Vec::new(),
        };
        if let Some(tpm) = &limits.tpm {
            let decision = self
                .limiter
                .check_n(&format!("llm:tpm:{key}"), tpm, tokens)
                .await
                .map_err(LlmError::limiter)?;
            if !decision.allowed {
                if decision.exceeds_burst() {
                    return Err(LlmError::OverLimit {
                        limit: "tokens_per_minute",
                        asked: tokens,
                        allowed: tpm.burst(),
                    });
                }
                return Err(LlmError::RateLimited {
                    limit: "tokens_per_minute",
                    retry_after: Duration::from_micros(decision.retry_after_us),
                });
            }
            ticket.tpm = Some(*tpm);
        }
        let budgets = [
            (BudgetWindow::Day, limits.day, "tokens_per_day"),
            (BudgetWindow::Month, limits.month, "tokens_per_month"),
        ];
        for (window, limit, name) in budgets {
            let Some(limit) = limit else { continue };
            let reserved = self
                .limiter
                .reserve(&format!("llm:budget:{key}"), window, limit, tokens)
                .await;
            let decision = match reserved {
                Ok(decision) => decision,
                Err(e) => {
                    self.release(&ticket).await;
                    return Err(LlmError::limiter(e));
                }
            };
            if !decision.allowed {
                self.release(&ticket).await;
                if tokens > limit {
                    return Err(LlmError::OverLimit {
                        limit: name,
                        asked: tokens,
                        allowed: limit,
                    });
                }
                return Err(LlmError::BudgetExhausted {
                    limit: name,
                    used: decision.used,
                    budget: limit,
                    retry_after: decision.reset_after,
                });
            }
            ticket.budgets.push((window, decision.window_id));
        }
        Ok(ticket)
    }

    /// Gives back everything `ticket` reserved (the request never reached
    /// a backend).
    pub async fn release(&self, ticket: &Ticket) {
        self.adjust(ticket, 0).await;
    }

    /// Charges `used` tokens against what `ticket` reserved: the
    /// difference goes back (or, past the reservation, is charged).
    pub async fn settle(&self, ticket: &Ticket, used: u64) {
        self.adjust(ticket, used).await;
    }

    async fn adjust(&self, ticket: &Ticket, used: u64) {
        let key = ticket.caller.as_str();
        if let Some(tpm) = &ticket.tpm {
            let bucket = format!("llm:tpm:{key}");
            let result = if used < ticket.reserved {
                self.limiter
                    .refund(&bucket, tpm, ticket.reserved - used)
                    .await
            } else if used > ticket.reserved {
                // Spent already: charged whatever the limiter decides.
                self.limiter
                    .check_n(&bucket, tpm, used - ticket.reserved)
                    .await
                    .map(|_| ())
            } else {
                Ok(())
            };
            if let Err(e) = result {
                tracing::warn!(error = %e, "tokens per minute not settled");
            }
        }
        let delta = used as i64 - ticket.reserved as i64;
        if delta != 0 {
            for (window, window_id) in &ticket.budgets {
                if let Err(e) = self
                    .limiter
                    .settle(&format!("llm:budget:{key}"), *window, *window_id, delta)
                    .await
                {
                    tracing::warn!(error = %e, "token budget not settled");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    #[test]
    fn the_caller_is_the_key_the_gateway_named() {
        let mut headers = HeaderMap::new();
        assert!(matches!(
            Caller::from_headers(&headers, false),
            Err(LlmError::Unauthenticated)
        ));
        assert_eq!(
            Caller::from_headers(&headers, true)
                .expect("anonymous")
                .as_str(),
            ANONYMOUS
        );
        headers.insert(X_API_KEY_NAME, HeaderValue::from_static("team-a"));
        assert_eq!(
            Caller::from_headers(&headers, false)
                .expect("named")
                .as_str(),
            "team-a"
        );
        headers.insert(
            X_API_KEY_NAME,
            HeaderValue::from_static("no spaces allowed"),
        );
        assert!(Caller::from_headers(&headers, false).is_err());
    }
}
