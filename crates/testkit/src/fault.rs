//! A dependency behind the fault proxy (crates/chaos), for tests that
//! inject faults between the code under test and PostgreSQL, NATS,
//! Redis, an upstream or a webhook receiver:
//!
//! ```text
//! let link = testkit::fault_proxy(pg_addr).await;   // connect to link.addr()
//! link.latency(200).await;                          // every reply 200 ms late
//! link.blackhole().await;                           // a partition
//! link.clear().await;                               // healed
//! ```
//!
//! Each link is its own in-process proxy, so tests stay independent; the
//! helpers panic with the proxy's refusal, as a test wants.

pub use chaos::proxy::{Proxies, ProxySpec, ProxyUpdate, Stream, ToxicKind, ToxicSpec};
use std::net::SocketAddr;

/// A proxy in front of one dependency.
pub struct FaultyLink {
    proxies: Proxies,
    name: String,
    addr: SocketAddr,
}

/// Puts `upstream` (`HOST:PORT`) behind a fresh fault proxy on a free
/// loopback port; point the code under test at [`FaultyLink::addr`].
pub async fn fault_proxy(upstream: impl std::fmt::Display) -> FaultyLink {
    let proxies = Proxies::with_seed(0);
    let name = "link".to_string();
    let info = proxies
        .create(ProxySpec::new(&name, upstream.to_string()))
        .await
        .unwrap_or_else(|e| panic!("cannot put {upstream} behind the fault proxy: {e}"));
    let addr = info
        .listen_addr()
        .unwrap_or_else(|| panic!("the fault proxy listens on {}", info.listen));
    FaultyLink {
        proxies,
        name,
        addr,
    }
}

impl FaultyLink {
    /// Where the code under test connects.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The proxy set, for anything the helpers below do not cover.
    pub fn proxies(&self) -> &Proxies {
        &self.proxies
    }

    /// The name the proxy has in [`Self::proxies`].
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Adds a toxic (it reaches open connections too); returns its name.
    pub async fn add(&self, toxic: ToxicSpec) -> String {
        let name = toxic.name.clone();
        self.proxies
            .add_toxic(&self.name, toxic)
            .await
            .unwrap_or_else(|e| panic!("cannot add toxic {name}: {e}"));
        name
    }

    /// Removes a toxic by name.
    pub async fn remove(&self, toxic: &str) {
        self.proxies
            .remove_toxic(&self.name, toxic)
            .await
            .unwrap_or_else(|e| panic!("cannot remove toxic {toxic}: {e}"));
    }

    /// Replies `ms` milliseconds late.
    pub async fn latency(&self, ms: u64) -> String {
        self.add(ToxicSpec::new(ToxicKind::Latency {
            latency: ms,
            jitter: 0,
        }))
        .await
    }

    /// Nothing passes either way; connections stay open (a partition).
    pub async fn blackhole(&self) -> String {
        self.add(ToxicSpec::new(ToxicKind::Blackhole).upstream())
            .await;
        self.add(ToxicSpec::new(ToxicKind::Blackhole).downstream())
            .await
    }

    /// Requests vanish and the connection closes after `ms` (0: never).
    pub async fn timeout(&self, ms: u64) -> String {
        self.add(ToxicSpec::new(ToxicKind::Timeout { timeout: ms }).upstream())
            .await
    }

    /// The next request resets its connection.
    pub async fn reset_peer(&self) -> String {
        self.add(ToxicSpec::new(ToxicKind::ResetPeer { timeout: 0 }).upstream())
            .await
    }

    /// Replies at most `kb_per_s` KB/s.
    pub async fn bandwidth(&self, kb_per_s: u64) -> String {
        self.add(ToxicSpec::new(ToxicKind::Bandwidth { rate: kb_per_s }))
            .await
    }

    /// Removes every toxic and re-enables the proxy.
    pub async fn clear(&self) {
        self.proxies
            .reset()
            .await
            .unwrap_or_else(|e| panic!("cannot reset the fault proxy: {e}"));
    }

    /// Refuses connections (closes open ones) until [`Self::enable`].
    pub async fn disable(&self) {
        self.set_enabled(false).await;
    }

    pub async fn enable(&self) {
        self.set_enabled(true).await;
    }

    async fn set_enabled(&self, enabled: bool) {
        let update = ProxyUpdate {
            enabled: Some(enabled),
            ..ProxyUpdate::default()
        };
        self.proxies
            .update(&self.name, update)
            .await
            .unwrap_or_else(|e| panic!("cannot set the fault proxy enabled={enabled}: {e}"));
    }

    /// Sends new connections to another upstream (open ones close).
    pub async fn set_upstream(&self, upstream: impl std::fmt::Display) {
        let update = ProxyUpdate {
            upstream: Some(upstream.to_string()),
            ..ProxyUpdate::default()
        };
        self.proxies
            .update(&self.name, update)
            .await
            .unwrap_or_else(|e| panic!("cannot repoint the fault proxy to {upstream}: {e}"));
    }
}

impl Drop for FaultyLink {
    fn drop(&mut self) {
        self.proxies.stop_all();
    }
}

/// A TCP echo server on a free loopback port, on the current Tokio
/// runtime: the simplest dependency to put behind a fault proxy.
pub async fn echo_server() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap_or_else(|e| panic!("bind echo server: {e}"));
    let addr = listener
        .local_addr()
        .unwrap_or_else(|e| panic!("echo server address: {e}"));
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let (mut read, mut write) = stream.split();
                let _ = tokio::io::copy(&mut read, &mut write).await;
            });
        }
    });
    addr
}
