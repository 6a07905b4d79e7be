//! Active health checks: every `interval`, `GET <endpoint><path>` on each
//! endpoint of each pool (an in-process endpoint is called in-process); a non-2xx answer, an error or no answer within
//! `timeout` takes the endpoint out of the pool until a check passes.
//! Complements the breaker (passive): the breaker reacts to live traffic,
//! the check finds a dead endpoint before traffic does and brings an
//! endpoint back without risking a client request on it.

use crate::pool::Endpoint;
use crate::Shared;
use bytes::Bytes;
use http_body_util::Full;
use std::net::Ipv4Addr;
use std::sync::Arc;

pub(crate) async fn run(shared: &Arc<Shared>, shutdown: kit::CancellationToken) {
    let config = &shared.config.health;
    if config.interval.is_zero() {
        return;
    }
    let mut ticks = tokio::time::interval(config.interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = ticks.tick() => {}
        }
        let checks = shared
            .pools
            .iter()
            .flat_map(|p| p.endpoints.iter())
            .map(|endpoint| check(shared, endpoint));
        // Concurrently: one slow endpoint must not delay the others.
        futures::future::join_all(checks).await;
    }
}

async fn check(shared: &Shared, endpoint: &Arc<Endpoint>) {
    let config = &shared.config.health;
    let uri = endpoint.upstream.uri(&config.path);
    let Ok(request) = http::Request::get(uri).body(Full::new(Bytes::new())) else {
        return;
    };
    // The gateway itself asks: an in-process module sees a loopback peer.
    let probe = endpoint
        .upstream
        .send(&shared.client, request, Ipv4Addr::LOCALHOST.into());
    let healthy = matches!(
        tokio::time::timeout(config.timeout, probe).await,
        Ok(Ok(response)) if response.status().is_success()
    );
    endpoint.set_healthy(healthy);
}
