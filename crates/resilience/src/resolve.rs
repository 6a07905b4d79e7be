//! Name resolution for the client, with an optional address filter.
//!
//! A service that calls URLs it did not choose (webhook targets written by
//! users) must not be steered at internal addresses, and checking the name
//! once when the URL is configured is not enough: DNS may later answer
//! with a private address (rebinding). The filter runs on every resolution
//! the client makes, so every new connection is checked. Addresses written
//! literally in a URL are not resolved, so the caller checks those when it
//! parses the URL.

use hyper_util::client::legacy::connect::dns::Name;
use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::task::{Context, Poll};

/// Which resolved addresses a client may connect to.
pub type AddressFilter = fn(IpAddr) -> bool;

/// The system resolver (`getaddrinfo` on the blocking pool), keeping only
/// the addresses the filter allows; a name left with none fails to
/// resolve, which the client reports as a connect error.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct FilteredResolver {
    pub(crate) filter: Option<AddressFilter>,
}

type Resolving = Pin<Box<dyn Future<Output = io::Result<std::vec::IntoIter<SocketAddr>>> + Send>>;

impl tower::Service<Name> for FilteredResolver {
    type Response = std::vec::IntoIter<SocketAddr>;
    type Error = io::Error;
    type Future = Resolving;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, name: Name) -> Self::Future {
        let filter = self.filter;
        Box::pin(async move {
            let allowed: Vec<SocketAddr> = tokio::net::lookup_host((name.as_str(), 0))
                .await?
                .filter(|addr| filter.is_none_or(|allows| allows(addr.ip())))
                .collect();
            if allowed.is_empty() {
                return Err(io::Error::new(
                    io::ErrorKind::PermissionDenied,
                    format!("{} resolves to no allowed address", name.as_str()),
                ));
            }
            Ok(allowed.into_iter())
        })
    }
}
