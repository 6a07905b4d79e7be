//! The fault proxy against a floor: a bare `tokio::io::copy_bidirectional`
//! forwarder, measured in the same run, in alternating rounds
//! (scripts/bench-chaos-proxy runs it; docs/performance.md has figures).
//!
//! Each round runs, for the floor, the proxy with no toxic and the proxy
//! with a `latency 0` toxic (every byte through the toxic pipeline):
//! bulk throughput both ways (client to a sink, a source to the client)
//! and small request/response round trips on one connection (p50, p99).
//! Everything is on loopback, in this process.
//!
//! Usage: proxy_bench [--rounds N] [--mib M] [--round-trips K]
#![forbid(unsafe_code)]

use chaos::proxy::{Proxies, ProxySpec, ToxicKind, ToxicSpec};
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const CHUNK: usize = 64 * 1024;
const MESSAGE: usize = 64;

#[derive(Default)]
struct Samples {
    up_mib_s: Vec<f64>,
    down_mib_s: Vec<f64>,
    p50_us: Vec<f64>,
    p99_us: Vec<f64>,
}

fn arg(args: &[String], name: &str, default: u64) -> u64 {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let rounds = arg(&args, "--rounds", 5);
    let mib = arg(&args, "--mib", 1024);
    let trips = arg(&args, "--round-trips", 20_000) as usize;
    let bytes = mib * 1024 * 1024;

    let sink = serve(Upstream::Sink).await;
    let source = serve(Upstream::Source(bytes)).await;
    let echo = serve(Upstream::Echo).await;

    let proxies = Proxies::with_seed(1);
    let mut plain = Vec::new();
    let mut toxic = Vec::new();
    for (name, up) in [("sink", sink), ("source", source), ("echo", echo)] {
        let a = proxies
            .create(ProxySpec::new(name, up.to_string()))
            .await
            .expect("proxy");
        plain.push(a.listen_addr().expect("addr"));
        let tname = format!("{name}-toxic");
        let b = proxies
            .create(ProxySpec::new(&tname, up.to_string()))
            .await
            .expect("proxy");
        for t in [ToxicSpec::new(ToxicKind::Latency {
            latency: 0,
            jitter: 0,
        })] {
            proxies.add_toxic(&tname, t.clone()).await.expect("toxic");
            proxies
                .add_toxic(&tname, t.upstream())
                .await
                .expect("toxic");
        }
        toxic.push(b.listen_addr().expect("addr"));
    }
    let floor = vec![
        forwarder(sink).await,
        forwarder(source).await,
        forwarder(echo).await,
    ];

    let targets = [
        ("floor (copy_bidirectional)", floor),
        ("proxy, no toxic", plain),
        ("proxy, latency 0 toxic", toxic),
    ];
    let mut samples: Vec<Samples> = targets.iter().map(|_| Samples::default()).collect();
    for round in 0..rounds {
        // Alternate the order so drift (heat, other load) hits each alike.
        let mut order: Vec<usize> = (0..targets.len()).collect();
        if round % 2 == 1 {
            order.reverse();
        }
        for i in order {
            let addrs = &targets[i].1;
            let s = &mut samples[i];
            s.up_mib_s.push(upload(addrs[0], bytes).await);
            s.down_mib_s.push(download(addrs[1], bytes).await);
            let (p50, p99) = round_trips(addrs[2], trips).await;
            s.p50_us.push(p50);
            s.p99_us.push(p99);
            eprintln!(
                "round {round} {:<28} up {:>8.0} MiB/s  down {:>8.0} MiB/s  p50 {:>6.1} us  p99 {:>6.1} us",
                targets[i].0,
                s.up_mib_s.last().unwrap_or(&0.0),
                s.down_mib_s.last().unwrap_or(&0.0),
                p50,
                p99
            );
        }
    }
    println!("rounds={rounds} bytes={mib} MiB per transfer, round trips={trips} x {MESSAGE} B (medians of rounds)");
    println!();
    println!("| target | upload MiB/s | download MiB/s | round trip p50 µs | round trip p99 µs |");
    println!("|---|---:|---:|---:|---:|");
    let floor = median(&samples[0].up_mib_s);
    for (i, (name, _)) in targets.iter().enumerate() {
        let s = &samples[i];
        println!(
            "| {name} | {:.0} ({:.0}%) | {:.0} ({:.0}%) | {:.1} | {:.1} |",
            median(&s.up_mib_s),
            100.0 * median(&s.up_mib_s) / floor,
            median(&s.down_mib_s),
            100.0 * median(&s.down_mib_s) / median(&samples[0].down_mib_s),
            median(&s.p50_us),
            median(&s.p99_us)
        );
    }
    proxies.shutdown().await;
}

fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

#[derive(Clone, Copy)]
enum Upstream {
    /// Reads everything, then answers with one byte.
    Sink,
    /// Sends this many bytes, then closes.
    Source(u64),
    Echo,
}

async fn serve(kind: Upstream) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let _ = s.set_nodelay(true);
            tokio::spawn(async move {
                let mut buf = vec![0u8; CHUNK];
                match kind {
                    Upstream::Sink => {
                        while let Ok(n) = s.read(&mut buf).await {
                            if n == 0 {
                                break;
                            }
                        }
                        let _ = s.write_all(b"k").await;
                    }
                    Upstream::Source(mut left) => {
                        while left > 0 {
                            let n = left.min(CHUNK as u64) as usize;
                            if s.write_all(&buf[..n]).await.is_err() {
                                break;
                            }
                            left -= n as u64;
                        }
                    }
                    Upstream::Echo => {
                        let (mut r, mut w) = s.split();
                        let _ = tokio::io::copy(&mut r, &mut w).await;
                    }
                }
            });
        }
    });
    addr
}

/// The floor: accept, dial, `copy_bidirectional`.
async fn forwarder(upstream: SocketAddr) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((mut client, _)) = listener.accept().await {
            tokio::spawn(async move {
                let Ok(mut up) = TcpStream::connect(upstream).await else {
                    return;
                };
                let _ = client.set_nodelay(true);
                let _ = up.set_nodelay(true);
                let _ = tokio::io::copy_bidirectional(&mut client, &mut up).await;
            });
        }
    });
    addr
}

async fn upload(addr: SocketAddr, bytes: u64) -> f64 {
    let mut s = TcpStream::connect(addr).await.expect("connect");
    let buf = vec![1u8; CHUNK];
    let t0 = Instant::now();
    let mut left = bytes;
    while left > 0 {
        let n = left.min(CHUNK as u64) as usize;
        s.write_all(&buf[..n]).await.expect("write");
        left -= n as u64;
    }
    s.shutdown().await.expect("shutdown");
    let mut k = [0u8; 1];
    s.read_exact(&mut k).await.expect("ack");
    bytes as f64 / (1024.0 * 1024.0) / t0.elapsed().as_secs_f64()
}

async fn download(addr: SocketAddr, bytes: u64) -> f64 {
    let mut s = TcpStream::connect(addr).await.expect("connect");
    let mut buf = vec![0u8; CHUNK];
    let t0 = Instant::now();
    let mut got = 0u64;
    while got < bytes {
        let n = s.read(&mut buf).await.expect("read");
        if n == 0 {
            break;
        }
        got += n as u64;
    }
    assert_eq!(got, bytes, "short download");
    bytes as f64 / (1024.0 * 1024.0) / t0.elapsed().as_secs_f64()
}

/// Sequential round trips on one connection: (p50, p99) in microseconds.
async fn round_trips(addr: SocketAddr, n: usize) -> (f64, f64) {
    let mut s = TcpStream::connect(addr).await.expect("connect");
    let _ = s.set_nodelay(true);
    let msg = [7u8; MESSAGE];
    let mut back = [0u8; MESSAGE];
    let mut times: Vec<Duration> = Vec::with_capacity(n);
    for _ in 0..n {
        let t0 = Instant::now();
        s.write_all(&msg).await.expect("write");
        s.read_exact(&mut back).await.expect("read");
        times.push(t0.elapsed());
    }
    times.sort();
    let at = |q: f64| times[((n as f64 * q) as usize).min(n - 1)].as_secs_f64() * 1e6;
    (at(0.50), at(0.99))
}
