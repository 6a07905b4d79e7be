//! The stream's existence and replica count.
//!
//! The stream is created with the configured replica count (R1 on one
//! server, R3 on a three-node cluster: every message is stored on three
//! servers before the publish is acknowledged, so losing any one server
//! loses nothing and a new leader is elected among the other two).
//! Consumers are created without a replica count of their own, so they
//! inherit the stream's and follow it when it changes.
//!
//! An existing stream with another replica count is updated in place:
//! JetStream moves a clustered stream between R1 and R3 (and back) while
//! it keeps serving. Where it cannot, the error says why and with what the
//! server reports about its cluster: a single server keeps one replica
//! only, and a cluster cannot place more replicas than it has servers.

use super::JetStreamBus;
use crate::BusError;
use async_nats::jetstream::context::{CreateStreamErrorKind, GetStreamErrorKind};
use async_nats::jetstream::{stream, ErrorCode};

impl JetStreamBus {
    /// The stream as configured: created if missing, its replica count
    /// changed if it differs.
    pub(super) async fn ensure_stream(&self) -> Result<stream::Stream, BusError> {
        let name = self.config.stream.as_str();
        let wanted = self.config.replicas;
        // A single server takes an update to R3 and goes on keeping one
        // copy (only a create is refused), so ask the server what it is.
        if wanted > 1 && self.is_connected() && self.client.server_info().cluster.is_none() {
            return Err(self.single_server(None));
        }
        match self.context.get_stream(name).await {
            Ok(stream) => {
                let current = stream.cached_info().config.num_replicas;
                if current == wanted {
                    return Ok(stream);
                }
                let mut config = stream.cached_info().config.clone();
                config.num_replicas = wanted;
                self.context
                    .update_stream(config)
                    .await
                    .map_err(|e| self.refusal(e.kind(), Some(current)))?;
                tracing::info!(
                    stream = name,
                    from = current,
                    to = wanted,
                    "stream replica count changed"
                );
                self.context
                    .get_stream(name)
                    .await
                    .map_err(BusError::unavailable)
            }
            Err(e) if is_not_found(&e.kind()) => self.create_stream().await,
            Err(e) => Err(BusError::unavailable(e)),
        }
    }

    async fn create_stream(&self) -> Result<stream::Stream, BusError> {
        let config = stream::Config {
            name: self.config.stream.clone(),
            subjects: vec![format!("{}.>", self.config.subject_prefix)],
            storage: stream::StorageType::File,
            duplicate_window: self.config.duplicate_window,
            num_replicas: self.config.replicas,
            ..Default::default()
        };
        match self.context.create_stream(config).await {
            Ok(stream) => Ok(stream),
            // Another replica of the app created it in between.
            Err(e) if jetstream_code(&e.kind()) == Some(ErrorCode::STREAM_NAME_EXIST) => self
                .context
                .get_stream(&self.config.stream)
                .await
                .map_err(BusError::unavailable),
            Err(e) => Err(self.refusal(e.kind(), None)),
        }
    }

    /// Turns a create or update refusal into an error that says what the
    /// server is; timeouts and the like stay [`BusError::Unavailable`].
    fn refusal(&self, kind: CreateStreamErrorKind, current: Option<usize>) -> BusError {
        let name = &self.config.stream;
        let wanted = self.config.replicas;
        let CreateStreamErrorKind::JetStream(error) = &kind else {
            return BusError::unavailable(kind);
        };
        let was = current
            .map(|n| format!(" (it has {n} now)"))
            .unwrap_or_default();
        let code = error.error_code();
        if code == ErrorCode::STREAM_REPLICAS_NOT_SUPPORTED {
            self.single_server(current)
        } else if code == ErrorCode::CLUSTER_NO_PEERS || code == ErrorCode::INSUFFICIENT_RESOURCES {
            BusError::Config(format!(
                "stream {name} wants {wanted} replicas{was}, but JetStream found no {wanted} \
                 servers to place them on: {} ({error}); set the replicas to at most the \
                 cluster size",
                self.cluster_shown()
            ))
        } else if code == ErrorCode::STREAM_REPLICAS_NOT_UPDATABLE {
            BusError::Config(format!(
                "stream {name} cannot change to {wanted} replicas{was} on {}: {error}",
                self.cluster_shown()
            ))
        } else {
            BusError::Config(format!(
                "JetStream refused stream {name} with {wanted} replicas{was}: {error}"
            ))
        }
    }

    fn single_server(&self, current: Option<usize>) -> BusError {
        let was = current
            .map(|n| format!(" (it has {n} now)"))
            .unwrap_or_default();
        BusError::Config(format!(
            "stream {} wants {} replicas{was}, but {} is a single NATS server, not a cluster \
             (cluster size 1), which keeps 1 replica only: set the replicas to 1 or run a \
             JetStream cluster of at least {} servers",
            self.config.stream,
            self.config.replicas,
            self.server_shown(),
            self.config.replicas
        ))
    }

    /// `server `n1` (127.0.0.1:4222)`: the server this client talks to.
    fn server_shown(&self) -> String {
        let info = self.client.server_info();
        format!(
            "server `{}` ({}:{})",
            info.server_name, info.host, info.port
        )
    }

    /// The cluster as the connected server advertises it: its name and
    /// how many servers it lists for clients (`connect_urls`, the servers
    /// up and routed now).
    fn cluster_shown(&self) -> String {
        let info = self.client.server_info();
        match &info.cluster {
            None => format!(
                "{} is a single server, not a cluster (cluster size 1)",
                self.server_shown()
            ),
            Some(cluster) => format!(
                "cluster `{cluster}` has {} servers up (cluster size as {} reports it)",
                info.connect_urls.len().max(1),
                self.server_shown()
            ),
        }
    }
}

fn jetstream_code(kind: &CreateStreamErrorKind) -> Option<ErrorCode> {
    match kind {
        CreateStreamErrorKind::JetStream(e) => Some(e.error_code()),
        _ => None,
    }
}

fn is_not_found(kind: &GetStreamErrorKind) -> bool {
    matches!(kind, GetStreamErrorKind::JetStream(e) if e.error_code() == ErrorCode::STREAM_NOT_FOUND)
}
