//! The hot-slug cache in front of [`LinkStore::find`](crate::storage::LinkStore::find).
//!
//! Redirect traffic is Pareto-shaped, so a bounded cache with TinyLFU
//! admission (moka) keeps the hot 20% of links in memory and lets one-off
//! links pass through. Correctness rule: a changed or deleted link is never
//! served from the cache. Invalidation bumps a generation counter, and a
//! loader only inserts what it read if no invalidation happened since it
//! started reading, so a slow read racing a PATCH cannot re-insert the old
//! version. Links that expire are still checked against the clock on every
//! hit; links with `max_visits` are never cached (their count lives in the
//! database).
//!
//! With a read replica, a load may read a copy up to the store's
//! `read_staleness` behind the primary, so a load that follows a change
//! notification can still see the old version. The cache then keeps no
//! load of a link changed (or of any link, after a reset) less than
//! `settle` ago: such a stale read is served once, never kept for the TTL.
//!
//! Its memory is reported as `reliable_memory_bytes{module="shortener",
//! component="link_cache"}`: each entry's own bytes (key, value, and the
//! strings they hold), measured when it is inserted and taken off when moka
//! removes it (replaced, invalidated, expired or evicted). Moka's
//! bookkeeping per entry (its node and queues) is not in the figure.

use crate::domain::{Link, Slug};
use axum::http::HeaderValue;
use kit::memory::MemoryRegistration;
use moka::notification::RemovalCause;
use moka::sync::Cache;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A link ready to redirect: the `Location` value is built once per load,
/// not once per request.
#[derive(Debug)]
pub struct CachedLink {
    pub link: Link,
    pub location: HeaderValue,
}

impl CachedLink {
    /// `None` if the URL is not a valid header value (the `url` crate's
    /// serialisation always is; this guards stored data).
    pub fn new(link: Link) -> Option<Self> {
        let location = HeaderValue::from_str(link.url.as_str()).ok()?;
        Some(Self { link, location })
    }
}

/// Slugs are short and the cache is read on every redirect: foldhash
/// instead of the standard SipHash (seeded per process, as SipHash is).
type SlugHasher = foldhash::fast::RandomState;

pub struct LinkCache {
    links: Cache<Slug, Arc<CachedLink>, SlugHasher>,
    generation: AtomicU64,
    /// Serialises "check generation + insert" against "bump + remove";
    /// holds the time of the last [`LinkCache::clear`].
    write: Mutex<Option<Instant>>,
    /// Slugs changed less than `settle` ago (only with a settle time).
    recent: Option<Cache<Slug, ()>>,
    settle: Duration,
    /// The entries' bytes ([`entry_bytes`]), and its registration.
    bytes: Arc<AtomicU64>,
    _memory: MemoryRegistration,
}

/// What one entry holds: the key, the value and the heap they point to.
fn entry_bytes(key: &Slug, value: &CachedLink) -> u64 {
    let link = &value.link;
    let strings = key.as_str().len()
        + link.slug.as_str().len()
        + link.url.as_str().len()
        + value.location.len()
        + link
            .tags
            .iter()
            .map(|t| t.as_str().len() + std::mem::size_of::<String>())
            .sum::<usize>();
    // The value sits in an `Arc` (two counters ahead of it).
    let fixed = std::mem::size_of::<Slug>()
        + std::mem::size_of::<Arc<CachedLink>>()
        + 2 * std::mem::size_of::<usize>()
        + std::mem::size_of::<CachedLink>();
    (fixed + strings) as u64
}

/// Proof that a load started at a given cache generation.
#[derive(Debug, Clone, Copy)]
pub struct LoadTicket(u64);

impl LinkCache {
    pub fn new(capacity: u64, ttl: Duration) -> Self {
        let bytes = Arc::new(AtomicU64::new(0));
        let removed = bytes.clone();
        let read = bytes.clone();
        Self {
            links: Cache::builder()
                .max_capacity(capacity)
                .time_to_live(ttl)
                .eviction_listener(
                    move |key: Arc<Slug>, value: Arc<CachedLink>, _: RemovalCause| {
                        removed.fetch_sub(entry_bytes(&key, &value), Ordering::Relaxed);
                    },
                )
                .build_with_hasher(SlugHasher::default()),
            generation: AtomicU64::new(0),
            write: Mutex::new(None),
            recent: None,
            settle: Duration::ZERO,
            bytes,
            _memory: kit::memory::measured(crate::SERVICE, "link_cache", move || {
                read.load(Ordering::Relaxed)
            }),
        }
    }

    /// Keeps no load of a link within `settle` of its last change (see
    /// the module docs); zero (the default) keeps every load.
    pub fn with_settle(mut self, settle: Duration) -> Self {
        self.settle = settle;
        self.recent = (!settle.is_zero()).then(|| Cache::builder().time_to_live(settle).build());
        self
    }

    pub fn get(&self, slug: &str) -> Option<Arc<CachedLink>> {
        self.links.get(slug)
    }

    /// Call before reading from the store.
    pub fn ticket(&self) -> LoadTicket {
        LoadTicket(self.generation.load(Ordering::Acquire))
    }

    /// Caches what was read, unless something was invalidated meanwhile.
    pub fn insert(&self, ticket: LoadTicket, cached: Arc<CachedLink>) {
        if cached.link.max_visits.is_some() {
            return;
        }
        let cleared_at = self.write.lock().unwrap_or_else(|e| e.into_inner());
        if self.generation.load(Ordering::Acquire) != ticket.0 {
            return;
        }
        if let Some(recent) = &self.recent {
            let settling = recent.contains_key(&cached.link.slug)
                || cleared_at.is_some_and(|at| at.elapsed() < self.settle);
            if settling {
                return;
            }
        }
        let slug = cached.link.slug.clone();
        // Added before the insert: a replaced entry is taken off by the
        // listener, which may run at once.
        self.bytes
            .fetch_add(entry_bytes(&slug, &cached), Ordering::Relaxed);
        self.links.insert(slug, cached);
    }

    pub fn invalidate(&self, slug: &Slug) {
        let _guard = self.write.lock().unwrap_or_else(|e| e.into_inner());
        self.generation.fetch_add(1, Ordering::AcqRel);
        if let Some(recent) = &self.recent {
            recent.insert(slug.clone(), ());
        }
        self.links.invalidate(slug);
    }

    pub fn clear(&self) {
        let mut cleared_at = self.write.lock().unwrap_or_else(|e| e.into_inner());
        *cleared_at = Some(Instant::now());
        self.generation.fetch_add(1, Ordering::AcqRel);
        self.links.invalidate_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{RedirectStatus, Tags, TargetUrl};
    use chrono::Utc;

    fn link(slug: &str, max_visits: Option<i64>) -> Arc<CachedLink> {
        let link = Link {
            id: 1,
            slug: Slug::parse(slug).expect("valid"),
            url: TargetUrl::parse("https://example.com").expect("valid"),
            redirect_status: RedirectStatus::Found,
            created_at: Utc::now(),
            updated_at: Utc::now(),
            expires_at: None,
            max_visits,
            visit_count: 0,
            tags: Tags::default(),
        };
        Arc::new(CachedLink::new(link).expect("valid header"))
    }

    #[test]
    fn a_load_that_raced_an_invalidation_is_not_cached() {
        let cache = LinkCache::new(100, Duration::from_secs(60));
        let ticket = cache.ticket();
        cache.invalidate(&Slug::parse("abc").expect("valid"));
        cache.insert(ticket, link("abc", None));
        assert!(cache.get("abc").is_none());

        let ticket = cache.ticket();
        cache.insert(ticket, link("abc", None));
        assert!(cache.get("abc").is_some());
    }

    #[test]
    fn a_link_changed_within_the_settle_time_is_not_cached() {
        let cache =
            LinkCache::new(100, Duration::from_secs(60)).with_settle(Duration::from_secs(60));
        cache.insert(cache.ticket(), link("abc", None));
        assert!(cache.get("abc").is_some(), "unchanged links are cached");
        cache.invalidate(&Slug::parse("abc").expect("valid"));
        cache.insert(cache.ticket(), link("abc", None));
        assert!(
            cache.get("abc").is_none(),
            "a possibly stale copy is not kept"
        );
        cache.insert(cache.ticket(), link("other", None));
        assert!(cache.get("other").is_some());
        cache.clear();
        cache.insert(cache.ticket(), link("other", None));
        assert!(
            cache.get("other").is_none(),
            "after a reset every link settles"
        );

        let no_replica = LinkCache::new(100, Duration::from_secs(60));
        no_replica.invalidate(&Slug::parse("abc").expect("valid"));
        no_replica.insert(no_replica.ticket(), link("abc", None));
        assert!(no_replica.get("abc").is_some());
    }

    #[test]
    fn the_cache_reports_the_bytes_of_the_entries_it_holds() {
        let cache = LinkCache::new(100, Duration::from_secs(60));
        assert_eq!(cache.bytes.load(Ordering::Relaxed), 0);
        let one = link("abc", None);
        let size = entry_bytes(&one.link.slug, &one);
        assert!(size > 100, "{size}");
        cache.insert(cache.ticket(), one);
        cache.insert(cache.ticket(), link("def", None));
        cache.links.run_pending_tasks();
        assert_eq!(cache.bytes.load(Ordering::Relaxed), 2 * size);
        // Replacing an entry counts it once.
        cache.insert(cache.ticket(), link("abc", None));
        cache.links.run_pending_tasks();
        assert_eq!(cache.bytes.load(Ordering::Relaxed), 2 * size);
        cache.invalidate(&Slug::parse("abc").expect("valid"));
        cache.links.run_pending_tasks();
        assert_eq!(cache.bytes.load(Ordering::Relaxed), size);
        cache.clear();
        cache.links.run_pending_tasks();
        assert_eq!(cache.bytes.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn limited_links_are_never_cached() {
        let cache = LinkCache::new(100, Duration::from_secs(60));
        cache.insert(cache.ticket(), link("lim", Some(5)));
        assert!(cache.get("lim").is_none());
    }
}
