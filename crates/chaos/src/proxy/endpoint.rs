//! Addresses given to the API: a listen address to bind, an upstream to
//! check. An upstream is resolved when it is set, so a typo in a host is a
//! 400 at once rather than a refused connection later.

use super::error::ApiError;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::net::TcpListener;

/// How long resolving an upstream's host may take at create or update.
const RESOLVE_TIMEOUT: Duration = Duration::from_secs(5);

/// Whether two listen addresses are the same (`localhost:80` and
/// `127.0.0.1:80` are not compared by resolving: only literal addresses).
pub(super) fn same_listen(current: &str, asked: &str) -> bool {
    match (current.parse::<SocketAddr>(), asked.parse::<SocketAddr>()) {
        (Ok(a), Ok(b)) => a == b,
        _ => current == asked,
    }
}

pub(super) async fn bind(listen: &str) -> Result<TcpListener, ApiError> {
    match TcpListener::bind(listen).await {
        Ok(l) => Ok(l),
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => {
            Err(ApiError::listen_in_use(listen, &e))
        }
        Err(e) => Err(ApiError::bad_listen(listen, e)),
    }
}

/// Checks that an upstream is `HOST:PORT` and that the host resolves.
pub(super) async fn resolve(upstream: &str) -> Result<(), ApiError> {
    let Some((host, port)) = upstream.rsplit_once(':') else {
        return Err(ApiError::bad_upstream(format!(
            "{upstream:?} is not HOST:PORT"
        )));
    };
    if port.parse::<u16>().is_err() {
        return Err(ApiError::bad_upstream(format!(
            "{upstream:?}: port {port:?} is not a number from 0 to 65535"
        )));
    }
    let host = host.trim_start_matches('[').trim_end_matches(']');
    match tokio::time::timeout(RESOLVE_TIMEOUT, tokio::net::lookup_host(upstream)).await {
        Ok(Ok(addrs)) => {
            let mut addrs = addrs;
            if addrs.next().is_some() {
                Ok(())
            } else {
                Err(ApiError::bad_upstream(format!(
                    "host {host:?} has no address"
                )))
            }
        }
        Ok(Err(e)) => Err(ApiError::bad_upstream(format!(
            "host {host:?} does not resolve: {e}"
        ))),
        Err(_) => Err(ApiError::bad_upstream(format!(
            "host {host:?} did not resolve within {RESOLVE_TIMEOUT:?}"
        ))),
    }
}
