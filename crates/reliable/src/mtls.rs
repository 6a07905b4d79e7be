//! Wiring `[tls]` into the process: the listener serves HTTPS with this
//! process's identity, the shared HTTP client presents the same identity
//! and trusts the platform CA, and one supervised task re-reads the
//! certificate and key when they change (each reload recorded on the
//! change timeline as `config_reload`). The mechanisms are `kit::tls`'s.

use anyhow::anyhow;
use kit::changes::{ChangeEvent, ChangeKind, ChangeRecorder};
use kit::server::{HttpServer, TlsListener};
use kit::tasks::{OnFailure, TaskSpawner};
use kit::tls::{ClientTls, TlsConfig};

/// `server` as `config` asks (unchanged when no certificate is set), with
/// the client side registered and the reload task started on `tasks`.
pub fn secure(
    server: HttpServer,
    config: &TlsConfig,
    tasks: &TaskSpawner,
    changes: ChangeRecorder,
    clock: std::sync::Arc<dyn kit::Clock>,
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
        identity
            .watch_notifying(interval, stop.cancelled_owned(), |files| {
                changes.record(reload_event(clock.now(), &files.cert_file));
            })
            .await;
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

/// The timeline's line for a reloaded identity: which certificate file,
/// never the key's contents.
fn reload_event(at: chrono::DateTime<chrono::Utc>, cert_file: &std::path::Path) -> ChangeEvent {
    ChangeEvent::new(
        at,
        ChangeKind::ConfigReload,
        "platform",
        "system",
        "tls identity",
        format!(
            "TLS certificate and key reloaded from {}",
            cert_file.display()
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reload_is_a_config_reload_naming_the_certificate_file() {
        let at = chrono::Utc::now();
        let event = reload_event(at, std::path::Path::new("/etc/reliable/tls.crt"));
        assert_eq!(event.kind, ChangeKind::ConfigReload);
        assert_eq!(
            (event.service.as_str(), event.actor.as_str()),
            ("platform", "system")
        );
        assert_eq!(event.subject, "tls identity");
        assert_eq!(event.at, at);
        assert!(
            event.summary.contains("/etc/reliable/tls.crt"),
            "{}",
            event.summary
        );
    }
}
