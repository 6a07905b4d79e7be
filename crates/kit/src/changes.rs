//! The change-event port: "what changed six hours ago?" answered in one
//! place.
//!
//! Why here: the things that change a running platform live in many
//! crates (the gateway's keys and splits, the inference module's model
//! versions, the canary controller's steps, TLS reloads, drills), and the
//! console that shows them as one timeline is another crate. Module crates
//! never depend on each other, so they meet through this trait: the binary
//! puts one [`ChangeRecorder`] into [`crate::module::Ports`] (backed by the
//! platform's storage, bounded), each module that changes something records
//! an event, and the console reads them back through [`ChangeFeed`].
//!
//! Recording never blocks and never fails the change it describes: an
//! adapter that cannot keep up drops the event and counts it
//! (`platform_changes_dropped_total`), because a change that happened must
//! not be undone for want of its log line.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::sync::{Arc, Mutex};

/// What kind of change an event records; the timeline filters by it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ChangeKind {
    /// Configuration read again at runtime: a TLS identity, a canary spec
    /// directory, a routes file.
    ConfigReload,
    /// An API key was created.
    KeyCreated,
    /// An API key was revoked.
    KeyRevoked,
    /// A model version was loaded (or reloaded).
    ModelLoaded,
    /// A model version was unloaded.
    ModelUnloaded,
    /// A canary moved to its next step (or started).
    CanaryStep,
    /// A canary was rolled back (by its judge or by hand).
    CanaryRollback,
    /// A canary was promoted to all traffic.
    CanaryPromoted,
    /// A traffic split's canary share changed (by hand or by a controller).
    SplitChanged,
    /// A drill ran (game day, canary drill, DR); the summary has its figures.
    Drill,
    /// An operator's incident note on the status page.
    Incident,
}

impl ChangeKind {
    /// Every kind, in the order the docs list them.
    pub const ALL: [ChangeKind; 11] = [
        ChangeKind::ConfigReload,
        ChangeKind::KeyCreated,
        ChangeKind::KeyRevoked,
        ChangeKind::ModelLoaded,
        ChangeKind::ModelUnloaded,
        ChangeKind::CanaryStep,
        ChangeKind::CanaryRollback,
        ChangeKind::CanaryPromoted,
        ChangeKind::SplitChanged,
        ChangeKind::Drill,
        ChangeKind::Incident,
    ];

    /// The stored and wire name (`key_created`).
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeKind::ConfigReload => "config_reload",
            ChangeKind::KeyCreated => "key_created",
            ChangeKind::KeyRevoked => "key_revoked",
            ChangeKind::ModelLoaded => "model_loaded",
            ChangeKind::ModelUnloaded => "model_unloaded",
            ChangeKind::CanaryStep => "canary_step",
            ChangeKind::CanaryRollback => "canary_rollback",
            ChangeKind::CanaryPromoted => "canary_promoted",
            ChangeKind::SplitChanged => "split_changed",
            ChangeKind::Drill => "drill",
            ChangeKind::Incident => "incident",
        }
    }

    /// Parses a stored or query name; `None` for anything else.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == name)
    }
}

impl std::fmt::Display for ChangeKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Longest `actor`, `subject` and `service` kept; longer values are cut.
pub const MAX_NAME_CHARS: usize = 200;
/// Longest `summary` kept; a longer one is cut.
pub const MAX_SUMMARY_CHARS: usize = 2_000;

/// One change: what, to what, by whom, when.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ChangeEvent {
    /// When it took effect.
    pub at: DateTime<Utc>,
    pub kind: ChangeKind,
    /// The module it belongs to (`gateway`, `inference`), or `platform`.
    pub service: String,
    /// Who made it: an API key's name, `canary-controller`, a CLI user
    /// (`cli:alice`), `system` for the platform itself. Never a secret.
    pub actor: String,
    /// What it changed: a route, a key's name or id, `model/version`.
    pub subject: String,
    /// One human line: `canary share 10% -> 30%`.
    pub summary: String,
}

impl ChangeEvent {
    /// An event at `at`, with every text cut to its bound (on a character
    /// boundary), so no caller can grow the store without limit.
    pub fn new(
        at: DateTime<Utc>,
        kind: ChangeKind,
        service: impl Into<String>,
        actor: impl Into<String>,
        subject: impl Into<String>,
        summary: impl Into<String>,
    ) -> Self {
        Self {
            at,
            kind,
            service: bounded(service.into(), MAX_NAME_CHARS),
            actor: bounded(actor.into(), MAX_NAME_CHARS),
            subject: bounded(subject.into(), MAX_NAME_CHARS),
            summary: bounded(summary.into(), MAX_SUMMARY_CHARS),
        }
    }
}

fn bounded(mut text: String, max_chars: usize) -> String {
    if let Some((cut, _)) = text.char_indices().nth(max_chars) {
        text.truncate(cut);
    }
    text
}

/// A recorded event with its store id (ids grow with time; paging uses
/// them).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct StoredChange {
    pub id: i64,
    #[serde(flatten)]
    pub event: ChangeEvent,
}

/// Which events to read, newest first.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ChangeQuery {
    /// Only events at or after this time.
    pub since: Option<DateTime<Utc>>,
    /// Only events before this time.
    pub until: Option<DateTime<Utc>>,
    /// Only these kinds (empty: every kind).
    pub kinds: Vec<ChangeKind>,
    /// Only this service's events.
    pub service: Option<String>,
    /// Only events with an id below this one (the next page).
    pub before_id: Option<i64>,
    /// At most this many (an adapter caps it at [`MAX_PAGE`]).
    pub limit: usize,
}

/// The most events one read returns.
pub const MAX_PAGE: usize = 500;

/// Records changes. Never blocks, never fails the caller.
pub trait ChangeLog: Send + Sync {
    fn record(&self, event: ChangeEvent);
}

/// Reads recorded changes back.
#[async_trait]
pub trait ChangeFeed: Send + Sync {
    async fn list(
        &self,
        query: &ChangeQuery,
    ) -> Result<Vec<StoredChange>, crate::storage::StoreError>;
}

/// The port as [`crate::module::Ports`] carries it: modules take a copy
/// and call [`ChangeRecorder::record`]; without one wired, use
/// [`ChangeRecorder::discard`].
#[derive(Clone)]
pub struct ChangeRecorder(pub Arc<dyn ChangeLog>);

impl ChangeRecorder {
    /// A recorder that keeps nothing (a module started without the port).
    pub fn discard() -> Self {
        struct Discard;
        impl ChangeLog for Discard {
            fn record(&self, _event: ChangeEvent) {}
        }
        Self(Arc::new(Discard))
    }

    /// The recorder wired in `ports`, or one that keeps nothing.
    pub fn from_ports(ports: &crate::module::Ports) -> Self {
        ports.get::<Self>().unwrap_or_else(|_| Self::discard())
    }

    pub fn record(&self, event: ChangeEvent) {
        self.0.record(event);
    }
}

impl std::fmt::Debug for ChangeRecorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ChangeRecorder")
    }
}

/// An in-memory log, newest kept, bounded: for tests and for a process
/// that has no store (the ids are its insertion order).
pub struct MemoryChangeLog {
    capacity: usize,
    events: Mutex<(i64, std::collections::VecDeque<StoredChange>)>,
}

impl MemoryChangeLog {
    pub fn new(capacity: usize) -> Arc<Self> {
        Arc::new(Self {
            capacity: capacity.max(1),
            events: Mutex::new((0, std::collections::VecDeque::new())),
        })
    }

    /// Everything kept, oldest first.
    pub fn snapshot(&self) -> Vec<StoredChange> {
        let guard = self.events.lock().unwrap_or_else(|e| e.into_inner());
        guard.1.iter().cloned().collect()
    }
}

impl ChangeLog for MemoryChangeLog {
    fn record(&self, event: ChangeEvent) {
        let mut guard = self.events.lock().unwrap_or_else(|e| e.into_inner());
        guard.0 += 1;
        let id = guard.0;
        guard.1.push_back(StoredChange { id, event });
        while guard.1.len() > self.capacity {
            guard.1.pop_front();
        }
    }
}

#[async_trait]
impl ChangeFeed for MemoryChangeLog {
    async fn list(
        &self,
        query: &ChangeQuery,
    ) -> Result<Vec<StoredChange>, crate::storage::StoreError> {
        let guard = self.events.lock().unwrap_or_else(|e| e.into_inner());
        let limit = query.limit.clamp(1, MAX_PAGE);
        Ok(guard
            .1
            .iter()
            .rev()
            .filter(|c| matches(query, c))
            .take(limit)
            .cloned()
            .collect())
    }
}

/// Whether `change` passes `query`'s filters (adapters that filter in
/// memory share this).
pub fn matches(query: &ChangeQuery, change: &StoredChange) -> bool {
    query.since.is_none_or(|s| change.event.at >= s)
        && query.until.is_none_or(|u| change.event.at < u)
        && (query.kinds.is_empty() || query.kinds.contains(&change.event.kind))
        && query
            .service
            .as_deref()
            .is_none_or(|s| change.event.service == s)
        && query.before_id.is_none_or(|b| change.id < b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn event(minute: u32, kind: ChangeKind) -> ChangeEvent {
        ChangeEvent::new(
            Utc.with_ymd_and_hms(2026, 11, 30, 12, minute, 0).unwrap(),
            kind,
            "gateway",
            "ops",
            "route/api",
            "something changed",
        )
    }

    #[test]
    fn kinds_round_trip_their_names() {
        for kind in ChangeKind::ALL {
            assert_eq!(ChangeKind::parse(kind.as_str()), Some(kind));
            let json = serde_json::to_string(&kind).unwrap();
            assert_eq!(json, format!("\"{}\"", kind.as_str()));
        }
        assert_eq!(ChangeKind::parse("KeyCreated"), None);
    }

    #[test]
    fn texts_are_cut_to_their_bounds_on_char_boundaries() {
        let long = "é".repeat(MAX_SUMMARY_CHARS + 10);
        let e = ChangeEvent::new(Utc::now(), ChangeKind::Drill, long.clone(), "a", "b", long);
        assert_eq!(e.summary.chars().count(), MAX_SUMMARY_CHARS);
        assert_eq!(e.service.chars().count(), MAX_NAME_CHARS);
    }

    #[tokio::test]
    async fn the_memory_log_is_bounded_and_reads_newest_first_with_filters() {
        let log = MemoryChangeLog::new(3);
        log.record(event(1, ChangeKind::KeyCreated));
        log.record(event(2, ChangeKind::SplitChanged));
        log.record(event(3, ChangeKind::KeyRevoked));
        log.record(event(4, ChangeKind::SplitChanged));
        let all = log
            .list(&ChangeQuery {
                limit: 10,
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(all.iter().map(|c| c.id).collect::<Vec<_>>(), vec![4, 3, 2]);
        let splits = log
            .list(&ChangeQuery {
                kinds: vec![ChangeKind::SplitChanged],
                limit: 10,
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(splits.iter().map(|c| c.id).collect::<Vec<_>>(), vec![4, 2]);
        let page = log
            .list(&ChangeQuery {
                before_id: Some(4),
                limit: 1,
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(page.iter().map(|c| c.id).collect::<Vec<_>>(), vec![3]);
    }

    #[test]
    fn a_missing_port_discards() {
        let ports = crate::module::Ports::new();
        ChangeRecorder::from_ports(&ports).record(event(1, ChangeKind::Drill));
    }
}
