//! TLS handshakes per second against a listener, full or resumed:
//! `scripts/bench-tls` runs it against `reliable serve` with mTLS.
//!
//!   handshakes ADDR CA_FILE CERT_FILE KEY_FILE SECONDS full|resumed [CONCURRENCY]
//!
//! Each connection does a handshake (presenting CERT_FILE), one
//! `GET /healthz` with `Connection: close`, and closes; `resumed` keeps one
//! client configuration (and its session cache) so every connection after
//! the first resumes, `full` disables resumption. Prints one JSON line.

use rustls::pki_types::ServerName;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn usage() -> ! {
    eprintln!(
        "usage: handshakes ADDR CA_FILE CERT_FILE KEY_FILE SECONDS full|resumed [CONCURRENCY]"
    );
    std::process::exit(2)
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() < 6 {
        usage();
    }
    let addr = args[0].clone();
    let seconds: u64 = args[4].parse().unwrap_or_else(|_| usage());
    let resumed = match args[5].as_str() {
        "full" => false,
        "resumed" => true,
        _ => usage(),
    };
    let concurrency: usize = args
        .get(6)
        .map_or(Ok(8), |c| c.parse())
        .unwrap_or_else(|_| usage());
    let identity = tls::Identity::load(tls::identity::IdentityFiles {
        cert_file: args[2].clone().into(),
        key_file: args[3].clone().into(),
    })
    .unwrap_or_else(|e| {
        eprintln!("error: {e}");
        std::process::exit(2)
    });
    let client = tls::ClientTls::new(Some(std::path::Path::new(&args[1])), Some(identity))
        .and_then(|c| c.client_config(rustls::RootCertStore::empty()))
        .unwrap_or_else(|e| {
            eprintln!("error: {e}");
            std::process::exit(2)
        });
    let mut client = client;
    if !resumed {
        client.resumption = rustls::client::Resumption::disabled();
    }
    let connector = tokio_rustls::TlsConnector::from(Arc::new(client));
    let done = Arc::new(AtomicU64::new(0));
    let resumptions = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let started = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..concurrency {
        let (connector, addr) = (connector.clone(), addr.clone());
        let (done, resumptions, errors) = (done.clone(), resumptions.clone(), errors.clone());
        workers.push(tokio::spawn(async move {
            while Instant::now() < deadline {
                match once(&connector, &addr).await {
                    Ok(was_resumed) => {
                        done.fetch_add(1, Ordering::Relaxed);
                        if was_resumed {
                            resumptions.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    Err(_) => {
                        errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }));
    }
    for worker in workers {
        let _ = worker.await;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let done = done.load(Ordering::Relaxed);
    println!(
        "{{\"mode\":\"{}\",\"handshakes\":{done},\"per_second\":{:.1},\"resumed\":{},\"errors\":{}}}",
        args[5],
        done as f64 / elapsed,
        resumptions.load(Ordering::Relaxed),
        errors.load(Ordering::Relaxed)
    );
}

async fn once(connector: &tokio_rustls::TlsConnector, addr: &str) -> std::io::Result<bool> {
    let tcp = tokio::net::TcpStream::connect(addr).await?;
    tcp.set_nodelay(true)?;
    let name = ServerName::try_from("localhost").map_err(std::io::Error::other)?;
    let mut stream = connector.connect(name, tcp).await?;
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .await?;
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response).await;
    if !response.starts_with(b"HTTP/1.1 200") {
        return Err(std::io::Error::other("not a 200"));
    }
    Ok(stream.get_ref().1.handshake_kind() == Some(rustls::HandshakeKind::Resumed))
}
