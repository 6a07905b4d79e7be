//! The set of proxies: the one place that creates, changes and removes
//! them, used by the HTTP API and directly by tests ([`Proxies`]).
//!
//! Changes are serialised by one async lock (they are rare and may bind or
//! resolve); connections never take it: they read their upstream and
//! toxics from what the proxy shares with them ([`super::link::Shared`]).

use super::endpoint::{bind, resolve, same_listen};
use super::error::ApiError;
use super::link::{accept_loop, Shared};
use super::pump::{Chain, LiveToxic};
use super::spec::{ProxyInfo, ProxySpec, ProxyUpdate};
use super::toxic::{Stream, ToxicSpec};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// A handle on a set of fault proxies (cheap to clone).
#[derive(Clone)]
pub struct Proxies {
    inner: Arc<Inner>,
}

struct Inner {
    proxies: tokio::sync::Mutex<BTreeMap<String, Entry>>,
    tracker: TaskTracker,
    shutdown: CancellationToken,
    seed: u64,
    next_uid: AtomicU64,
}

struct Entry {
    listen: String,
    enabled: bool,
    toxics: Vec<(ToxicSpec, u64, u64)>,
    publish: watch::Sender<Chain>,
    shared: Arc<Shared>,
    /// The accept loop while enabled.
    listening: Option<Listening>,
}

/// A running accept loop: cancel `stop`, then await `task` so the
/// listening socket is closed before the API answers (a client that
/// disables a proxy and then connects must be refused).
struct Listening {
    stop: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

/// A proxy's counters, for `/metrics`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxyCounters {
    pub name: String,
    pub connections: u64,
    pub bytes_upstream: u64,
    pub bytes_downstream: u64,
    pub toxics: usize,
}

impl Default for Proxies {
    fn default() -> Self {
        Self::new()
    }
}

impl Proxies {
    /// Toxicity draws seeded from the clock.
    pub fn new() -> Self {
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        Self::with_seed(seed)
    }

    /// Toxicity draws from `seed`: the same seed and the same order of
    /// connections give the same connections affected.
    pub fn with_seed(seed: u64) -> Self {
        Self {
            inner: Arc::new(Inner {
                proxies: tokio::sync::Mutex::new(BTreeMap::new()),
                tracker: TaskTracker::new(),
                shutdown: CancellationToken::new(),
                seed,
                next_uid: AtomicU64::new(1),
            }),
        }
    }

    /// Creates a proxy (and starts it when `spec.enabled`).
    pub async fn create(&self, spec: ProxySpec) -> Result<ProxyInfo, ApiError> {
        let mut proxies = self.inner.proxies.lock().await;
        if proxies.contains_key(&spec.name) {
            return Err(ApiError::proxy_exists(&spec.name));
        }
        resolve(&spec.upstream).await?;
        let entry = self.entry(&spec)?;
        let mut entry = entry;
        if spec.enabled {
            self.start(&mut entry).await?;
        }
        let info = info(&spec.name, &entry);
        proxies.insert(spec.name, entry);
        Ok(info)
    }

    /// Creates or replaces each proxy (toxiproxy's `/populate`): one with
    /// the same listen and upstream is kept as it is. Stops at the first
    /// error, returning what was done so far with it.
    pub async fn populate(&self, specs: Vec<ProxySpec>) -> (Vec<ProxyInfo>, Option<ApiError>) {
        let mut done = Vec::new();
        for spec in specs {
            let existing = self.get(&spec.name).await.ok();
            if let Some(existing) = existing {
                if existing.upstream == spec.upstream && same_listen(&existing.listen, &spec.listen)
                {
                    done.push(existing);
                    continue;
                }
                if let Err(e) = self.delete(&spec.name).await {
                    return (done, Some(e));
                }
            }
            match self.create(spec).await {
                Ok(info) => done.push(info),
                Err(e) => return (done, Some(e)),
            }
        }
        (done, None)
    }

    pub async fn get(&self, name: &str) -> Result<ProxyInfo, ApiError> {
        let proxies = self.inner.proxies.lock().await;
        let entry = proxies
            .get(name)
            .ok_or_else(|| ApiError::proxy_not_found(name))?;
        Ok(info(name, entry))
    }

    pub async fn list(&self) -> Vec<ProxyInfo> {
        let proxies = self.inner.proxies.lock().await;
        proxies.iter().map(|(name, e)| info(name, e)).collect()
    }

    /// Changes a proxy's listen address, upstream or enabled state. A new
    /// upstream takes effect for new connections at once; the open ones
    /// are closed (as toxiproxy does), so clients reconnect to it.
    pub async fn update(&self, name: &str, update: ProxyUpdate) -> Result<ProxyInfo, ApiError> {
        let mut proxies = self.inner.proxies.lock().await;
        let entry = proxies
            .get_mut(name)
            .ok_or_else(|| ApiError::proxy_not_found(name))?;
        let new_upstream = update.upstream.filter(|u| *u != entry.shared.upstream());
        if let Some(upstream) = &new_upstream {
            resolve(upstream).await?;
        }
        let new_listen = update.listen.filter(|l| !same_listen(&entry.listen, l));
        let enabled = update.enabled.unwrap_or(entry.enabled);
        if let Some(listen) = new_listen {
            if enabled {
                // Bind the new address before letting go of the old one,
                // so a refused address changes nothing.
                let listener = bind(&listen).await?;
                self.stop(entry).await;
                self.serve(entry, listener)?;
            } else {
                self.stop(entry).await;
                entry.listen = listen;
            }
        }
        if let Some(upstream) = new_upstream {
            entry.shared.set_upstream(upstream);
            entry
                .shared
                .close_connections(self.inner.shutdown.child_token());
        }
        if enabled && !entry.enabled {
            self.start(entry).await?;
        } else if !enabled && entry.enabled {
            self.stop(entry).await;
        }
        Ok(info(name, entry))
    }

    /// Stops a proxy and forgets it.
    pub async fn delete(&self, name: &str) -> Result<(), ApiError> {
        let mut proxies = self.inner.proxies.lock().await;
        let mut entry = proxies
            .remove(name)
            .ok_or_else(|| ApiError::proxy_not_found(name))?;
        self.stop(&mut entry).await;
        Ok(())
    }

    /// Enables every proxy and removes every toxic (`POST /reset`).
    pub async fn reset(&self) -> Result<(), ApiError> {
        let mut proxies = self.inner.proxies.lock().await;
        for entry in proxies.values_mut() {
            if !entry.enabled {
                self.start(entry).await?;
            }
            entry.toxics.clear();
            publish(entry);
        }
        Ok(())
    }

    /// Adds a toxic; it applies to open connections too.
    pub async fn add_toxic(&self, proxy: &str, toxic: ToxicSpec) -> Result<ToxicSpec, ApiError> {
        toxic.validate()?;
        let mut proxies = self.inner.proxies.lock().await;
        let entry = proxies
            .get_mut(proxy)
            .ok_or_else(|| ApiError::proxy_not_found(proxy))?;
        if entry.toxics.iter().any(|(t, _, _)| t.name == toxic.name) {
            return Err(ApiError::toxic_exists(&toxic.name));
        }
        let uid = self.inner.next_uid.fetch_add(1, Ordering::Relaxed);
        entry.toxics.push((toxic.clone(), uid, 0));
        publish(entry);
        Ok(toxic)
    }

    /// Replaces a toxic's attributes and toxicity (its name, type and
    /// stream stay); `change` gets the current toxic.
    pub async fn update_toxic(
        &self,
        proxy: &str,
        toxic: &str,
        change: impl FnOnce(&ToxicSpec) -> Result<ToxicSpec, ApiError>,
    ) -> Result<ToxicSpec, ApiError> {
        let mut proxies = self.inner.proxies.lock().await;
        let entry = proxies
            .get_mut(proxy)
            .ok_or_else(|| ApiError::proxy_not_found(proxy))?;
        let slot = entry
            .toxics
            .iter_mut()
            .find(|(t, _, _)| t.name == toxic)
            .ok_or_else(|| ApiError::toxic_not_found(toxic))?;
        let mut next = change(&slot.0)?;
        next.name = slot.0.name.clone();
        next.stream = slot.0.stream;
        if next.kind.type_name() != slot.0.kind.type_name() {
            return Err(ApiError::bad_body(
                "a toxic's type cannot change; delete it and add another",
            ));
        }
        next.validate()?;
        slot.0 = next.clone();
        slot.2 += 1;
        publish(entry);
        Ok(next)
    }

    /// Removes a toxic from a proxy (and from its open connections).
    pub async fn remove_toxic(&self, proxy: &str, toxic: &str) -> Result<(), ApiError> {
        let mut proxies = self.inner.proxies.lock().await;
        let entry = proxies
            .get_mut(proxy)
            .ok_or_else(|| ApiError::proxy_not_found(proxy))?;
        let before = entry.toxics.len();
        entry.toxics.retain(|(t, _, _)| t.name != toxic);
        if entry.toxics.len() == before {
            return Err(ApiError::toxic_not_found(toxic));
        }
        publish(entry);
        Ok(())
    }

    pub async fn toxic(&self, proxy: &str, toxic: &str) -> Result<ToxicSpec, ApiError> {
        let info = self.get(proxy).await?;
        info.toxics
            .into_iter()
            .find(|t| t.name == toxic)
            .ok_or_else(|| ApiError::toxic_not_found(toxic))
    }

    /// Counters of every proxy, for `/metrics`.
    pub async fn counters(&self) -> Vec<ProxyCounters> {
        let proxies = self.inner.proxies.lock().await;
        proxies
            .iter()
            .map(|(name, e)| ProxyCounters {
                name: name.clone(),
                connections: e.shared.accepted.load(Ordering::Relaxed),
                bytes_upstream: e.shared.bytes_upstream.load(Ordering::Relaxed),
                bytes_downstream: e.shared.bytes_downstream.load(Ordering::Relaxed),
                toxics: e.toxics.len(),
            })
            .collect()
    }

    /// Stops every proxy and closes every connection, without waiting.
    pub fn stop_all(&self) {
        self.inner.shutdown.cancel();
    }

    /// Stops every proxy and waits for their connections to close.
    pub async fn shutdown(&self) {
        self.inner.shutdown.cancel();
        self.inner.tracker.close();
        self.inner.tracker.wait().await;
    }

    fn entry(&self, spec: &ProxySpec) -> Result<Entry, ApiError> {
        let (publish, toxics) = watch::channel(Chain::default());
        Ok(Entry {
            listen: spec.listen.clone(),
            enabled: false,
            toxics: Vec::new(),
            publish,
            shared: Arc::new(Shared {
                name: spec.name.clone(),
                upstream: Mutex::new(spec.upstream.clone()),
                connections: Mutex::new(self.inner.shutdown.child_token()),
                toxics,
                seed: self.inner.seed ^ fnv(&spec.name),
                accepted: AtomicU64::new(0),
                bytes_upstream: Arc::default(),
                bytes_downstream: Arc::default(),
            }),
            listening: None,
        })
    }

    async fn start(&self, entry: &mut Entry) -> Result<(), ApiError> {
        let listener = bind(&entry.listen).await?;
        self.serve(entry, listener)
    }

    fn serve(&self, entry: &mut Entry, listener: TcpListener) -> Result<(), ApiError> {
        let addr = listener
            .local_addr()
            .map_err(|e| ApiError::bad_listen(&entry.listen, e))?;
        let stop = self.inner.shutdown.child_token();
        let task = self.inner.tracker.spawn(accept_loop(
            listener,
            entry.shared.clone(),
            stop.clone(),
            self.inner.tracker.clone(),
        ));
        entry.listen = addr.to_string();
        entry.listening = Some(Listening { stop, task });
        entry.enabled = true;
        Ok(())
    }

    /// Stops listening (the socket is closed when this returns) and closes
    /// the open connections.
    async fn stop(&self, entry: &mut Entry) {
        if let Some(listening) = entry.listening.take() {
            listening.stop.cancel();
            // The loop returns at its next poll; a panic in it has already
            // been reported by the runtime, and the socket is gone either way.
            let _ = listening.task.await;
        }
        entry
            .shared
            .close_connections(self.inner.shutdown.child_token());
        entry.enabled = false;
    }
}

fn publish(entry: &Entry) {
    let chain: Vec<LiveToxic> = entry
        .toxics
        .iter()
        .map(|(t, uid, generation)| LiveToxic {
            uid: *uid,
            generation: *generation,
            stream: t.stream,
            toxicity: t.toxicity,
            kind: t.kind.clone(),
        })
        .collect();
    entry.publish.send_replace(Arc::new(chain));
}

fn info(name: &str, entry: &Entry) -> ProxyInfo {
    let mut toxics: Vec<ToxicSpec> = entry.toxics.iter().map(|(t, _, _)| t.clone()).collect();
    // toxiproxy lists upstream toxics first, then downstream ones.
    toxics.sort_by_key(|t| t.stream == Stream::Downstream);
    ProxyInfo {
        name: name.to_string(),
        listen: entry.listen.clone(),
        upstream: entry.shared.upstream(),
        enabled: entry.enabled,
        toxics,
    }
}

/// FNV-1a: a proxy's name folded into its seed, so two proxies draw apart.
fn fnv(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    })
}
