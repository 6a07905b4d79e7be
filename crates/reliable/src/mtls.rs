//! Wiring `[tls]` into the process: the listener serves HTTPS with this
//! process's identity, the shared HTTP client presents the same identity
//! and trusts the platform CA, and one supervised task re-reads the
//! certificate and key when they change. The mechanisms are `kit::tls`'s.

use anyhow::anyhow;
use kit::server::{HttpServer, TlsListener};
use kit::tasks::{OnFailure, TaskSpawner};
use kit::tls::{ClientTls, TlsConfig};

/// `server` as `config` asks (unchanged when no certificate is set), with
/// the client side registered and the reload task started on `tasks`.
pub fn secure(
    server: HttpServer,
    config: &TlsConfig,
    tasks: &TaskSpawner,
) -> anyhow::Result<HttpServer> {
    let Some(transport) = config.build()? else {
        // No identity of our own, but a private CA to trust when calling.
        if let Some(ca_file) = &config.ca_file {
            let client =
                ClientTls::new(Some(ca_file), None).map_err(|e| anyhow!("tls.ca_file: {e}"))?;
            register(client)?;
        }
        return Ok(server);
    };
    register(transport.client.clone())?;
    let identity = transport.identity.clone();
    let interval = transport.reload_interval;
    let stop = tasks.stop_token();
    tasks.spawn("tls-reload", OnFailure::Unready, async move {
        identity.watch(interval, stop.cancelled_owned()).await;
        Ok::<(), std::convert::Infallible>(())
    });
    Ok(server.with_tls(TlsListener {
        config: transport.server,
        allow: transport.allow,
    }))
}

fn register(client: ClientTls) -> anyhow::Result<()> {
    resilience::use_platform_tls(client)
        .map_err(|_| anyhow!("the platform's TLS client settings were registered twice"))
}
