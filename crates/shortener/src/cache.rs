//! The hot-slug cache in front of [`LinkStore::find`](crate::storage::LinkStore::find).
//!
//! Redirect traffic is Pareto-shaped, so a bounded cache with a
//! scan-resistant policy (quick_cache's, close to S3-FIFO) keeps the hot
//! links in memory and lets one-off links pass through. It is read on
//! every redirect, so the read is what it is chosen for: a hash, a shard's
//! read lock and a reference counter (moka, used before, pinned an epoch,
//! read its clock and recorded every read for its TinyLFU: about 800
//! instructions a redirect against about 200, issue 18).
//!
//! Correctness rule: a changed or deleted link is never served from the
//! cache. Invalidation bumps a generation counter, and a loader only
//! inserts what it read if no invalidation happened since it started
//! reading, so a slow read racing a PATCH cannot re-insert the old
//! version. An entry older than the TTL is not served (a read compares its
//! load time with the time the request read from the module's clock,
//! which a redirect reads anyway: a clock read of the cache's own cost
//! about 90 instructions a redirect, issue 18; a clock set back before
//! a load counts the entry as old), and the next load replaces it. Links that
//! expire are still checked against the clock on every hit; links with
//! `max_visits` are never cached (their count lives in the database).
//!
//! With a read replica, a load may read a copy up to the store's
//! `read_staleness` behind the primary, so a load that follows a change
//! notification can still see the old version. The cache then keeps no
//! load of a link changed (or of any link, after a reset) less than
//! `settle` ago: such a stale read is served once, never kept for the TTL.
//!
//! Its memory is reported as `reliable_memory_bytes{module="shortener",
//! component="link_cache"}`: each entry's own bytes (key, value, and the
//! strings they hold), measured when it is inserted and taken off when it
//! leaves (replaced or evicted, reported by the cache's lifecycle hook;
//! invalidated or cleared, taken off here). The cache's own bookkeeping
//! per entry (its slot and hash table) is not in the figure.

use crate::domain::{Link, Slug};
use axum::http::HeaderValue;
use chrono::{DateTime, TimeDelta, Utc};
use kit::memory::MemoryRegistration;
use moka::sync::Cache;
use quick_cache::{Lifecycle, UnitWeighter};
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

/// A cached link and when it was loaded (for the TTL).
#[derive(Clone)]
struct Entry {
    link: Arc<CachedLink>,
    loaded: DateTime<Utc>,
    /// `loaded` plus the TTL: from then on it is not served.
    stale_at: DateTime<Utc>,
}

/// Takes an entry's bytes off the reported figure when the cache lets it
/// go by itself: evicted, or replaced by a newer load.
#[derive(Clone)]
struct TakeOffBytes(Arc<AtomicU64>);

impl Lifecycle<Slug, Entry> for TakeOffBytes {
    type RequestState = ();

    fn on_evict(&self, _: &mut (), key: Slug, entry: Entry) {
        take_off(&self.0, &key, &entry);
    }
}

/// Takes an entry that left the cache off the reported bytes.
fn take_off(bytes: &AtomicU64, key: &Slug, entry: &Entry) {
    bytes.fetch_sub(entry_bytes(key, &entry.link), Ordering::Relaxed);
}

type Links = quick_cache::sync::Cache<Slug, Entry, UnitWeighter, SlugHasher, TakeOffBytes>;

pub struct LinkCache {
    links: Links,
    ttl: TimeDelta,
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
        + std::mem::size_of::<Entry>()
        + 2 * std::mem::size_of::<usize>()
        + std::mem::size_of::<CachedLink>();
    (fixed + strings) as u64
}

/// Proof that a load started at a given cache generation.
#[derive(Debug, Clone, Copy)]
pub struct LoadTicket(u64);

impl LinkCache {
    /// Holds at most `capacity` links, each served for at most `ttl`
    /// after it was loaded.
    pub fn new(capacity: u64, ttl: Duration) -> Self {
        let bytes = Arc::new(AtomicU64::new(0));
        let read = bytes.clone();
        // Every entry weighs one, so the capacity is also the number of
        // entries to expect (it sizes the cache's record of recently
        // evicted keys; the tables themselves grow as links are loaded).
        let entries = usize::try_from(capacity).unwrap_or(usize::MAX);
        Self {
            links: Links::with(
                entries,
                capacity,
                UnitWeighter,
                SlugHasher::default(),
                TakeOffBytes(bytes.clone()),
            ),
            // Past chrono's range (about 292,000 years) is forever.
            ttl: TimeDelta::from_std(ttl).unwrap_or(TimeDelta::MAX),
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

    /// The link cached at `slug`, unless it was loaded a TTL or more
    /// before `now` (or after it: a clock set back).
    pub fn get(&self, slug: &str, now: DateTime<Utc>) -> Option<Arc<CachedLink>> {
        let entry = self.links.get(slug)?;
        (entry.loaded <= now && now < entry.stale_at).then_some(entry.link)
    }

    /// Call before reading from the store.
    pub fn ticket(&self) -> LoadTicket {
        LoadTicket(self.generation.load(Ordering::Acquire))
    }

    /// Caches what was read at `loaded` (the time the read started),
    /// unless something was invalidated meanwhile.
    pub fn insert(&self, ticket: LoadTicket, cached: Arc<CachedLink>, loaded: DateTime<Utc>) {
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
        // Added before the insert: a replaced or evicted entry is taken
        // off by the lifecycle hook, inside the insert.
        self.bytes
            .fetch_add(entry_bytes(&slug, &cached), Ordering::Relaxed);
        let entry = Entry {
            link: cached,
            loaded,
            stale_at: loaded
                .checked_add_signed(self.ttl)
                .unwrap_or(DateTime::<Utc>::MAX_UTC),
        };
        self.links.insert(slug, entry);
    }

    pub fn invalidate(&self, slug: &Slug) {
        let _guard = self.write.lock().unwrap_or_else(|e| e.into_inner());
        self.generation.fetch_add(1, Ordering::AcqRel);
        if let Some(recent) = &self.recent {
            recent.insert(slug.clone(), ());
        }
        if let Some((key, entry)) = self.links.remove(slug) {
            take_off(&self.bytes, &key, &entry);
        }
    }

    pub fn clear(&self) {
        let mut cleared_at = self.write.lock().unwrap_or_else(|e| e.into_inner());
        *cleared_at = Some(Instant::now());
        self.generation.fetch_add(1, Ordering::AcqRel);
        for (key, entry) in self.links.drain() {
            take_off(&self.bytes, &key, &entry);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{RedirectStatus, Tags, TargetUrl};
    use chrono::Utc;

    /// The time every test's loads and reads happen at, unless it says.
    const T0: DateTime<Utc> = DateTime::<Utc>::from_timestamp_nanos(1_700_000_000_000_000_000);

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
        cache.insert(ticket, link("abc", None), T0);
        assert!(cache.get("abc", T0).is_none());

        let ticket = cache.ticket();
        cache.insert(ticket, link("abc", None), T0);
        assert!(cache.get("abc", T0).is_some());
    }

    #[test]
    fn a_link_changed_within_the_settle_time_is_not_cached() {
        let cache =
            LinkCache::new(100, Duration::from_secs(60)).with_settle(Duration::from_secs(60));
        cache.insert(cache.ticket(), link("abc", None), T0);
        assert!(cache.get("abc", T0).is_some(), "unchanged links are cached");
        cache.invalidate(&Slug::parse("abc").expect("valid"));
        cache.insert(cache.ticket(), link("abc", None), T0);
        assert!(
            cache.get("abc", T0).is_none(),
            "a possibly stale copy is not kept"
        );
        cache.insert(cache.ticket(), link("other", None), T0);
        assert!(cache.get("other", T0).is_some());
        cache.clear();
        cache.insert(cache.ticket(), link("other", None), T0);
        assert!(
            cache.get("other", T0).is_none(),
            "after a reset every link settles"
        );

        let no_replica = LinkCache::new(100, Duration::from_secs(60));
        no_replica.invalidate(&Slug::parse("abc").expect("valid"));
        no_replica.insert(no_replica.ticket(), link("abc", None), T0);
        assert!(no_replica.get("abc", T0).is_some());
    }

    #[test]
    fn the_cache_reports_the_bytes_of_the_entries_it_holds() {
        let cache = LinkCache::new(100, Duration::from_secs(60));
        assert_eq!(cache.bytes.load(Ordering::Relaxed), 0);
        let one = link("abc", None);
        let size = entry_bytes(&one.link.slug, &one);
        assert!(size > 100, "{size}");
        cache.insert(cache.ticket(), one, T0);
        cache.insert(cache.ticket(), link("def", None), T0);
        assert_eq!(cache.bytes.load(Ordering::Relaxed), 2 * size);
        // Replacing an entry counts it once.
        cache.insert(cache.ticket(), link("abc", None), T0);
        assert_eq!(cache.bytes.load(Ordering::Relaxed), 2 * size);
        cache.invalidate(&Slug::parse("abc").expect("valid"));
        assert_eq!(cache.bytes.load(Ordering::Relaxed), size);
        cache.clear();
        assert_eq!(cache.bytes.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn evicted_links_leave_the_reported_bytes() {
        let cache = LinkCache::new(2, Duration::from_secs(60));
        let size = entry_bytes(&link("abc", None).link.slug, &link("abc", None));
        for slug in ["abc", "def", "ghi", "jkl"] {
            cache.insert(cache.ticket(), link(slug, None), T0);
        }
        assert_eq!(cache.links.len(), 2, "the capacity holds");
        assert_eq!(cache.bytes.load(Ordering::Relaxed), 2 * size);
    }

    #[test]
    fn a_link_loaded_a_ttl_ago_is_not_served() {
        let ttl = Duration::from_secs(60);
        let cache = LinkCache::new(100, ttl);
        cache.insert(cache.ticket(), link("abc", None), T0);
        let later = |secs| T0 + TimeDelta::seconds(secs);
        assert!(cache.get("abc", T0).is_some());
        assert!(cache.get("abc", later(59)).is_some());
        assert!(cache.get("abc", later(60)).is_none(), "loaded a TTL ago");
        assert!(
            cache.get("abc", later(-1)).is_none(),
            "a clock set back before the load"
        );
        // The next load replaces it, and counts once.
        cache.insert(cache.ticket(), link("abc", None), later(60));
        assert!(cache.get("abc", later(60)).is_some());
        let size = entry_bytes(&link("abc", None).link.slug, &link("abc", None));
        assert_eq!(cache.bytes.load(Ordering::Relaxed), size);

        let no_ttl = LinkCache::new(100, Duration::ZERO);
        no_ttl.insert(no_ttl.ticket(), link("abc", None), T0);
        assert!(
            no_ttl.get("abc", T0).is_none(),
            "loaded no less than a TTL ago"
        );

        let forever = LinkCache::new(100, Duration::MAX);
        forever.insert(forever.ticket(), link("abc", None), T0);
        assert!(forever.get("abc", later(100 * 365 * 86_400)).is_some());
    }

    #[test]
    fn a_cache_of_no_capacity_keeps_nothing_and_reports_nothing() {
        let cache = LinkCache::new(0, Duration::from_secs(60));
        cache.insert(cache.ticket(), link("abc", None), T0);
        assert!(cache.get("abc", T0).is_none());
        assert_eq!(cache.bytes.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn limited_links_are_never_cached() {
        let cache = LinkCache::new(100, Duration::from_secs(60));
        cache.insert(cache.ticket(), link("lim", Some(5)), T0);
        assert!(cache.get("lim", T0).is_none());
    }
}
