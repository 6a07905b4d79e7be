//! Toxics on real sockets (127.0.0.1, an echo server in the test). Timing
//! is only ever checked as a lower bound ("at least the latency").

mod proxy_support;

use chaos::proxy::{Proxies, ProxyServer, ProxySpec, ProxyUpdate, ToxicKind, ToxicSpec};
use proxy_support::{call, create_proxy, echo_server, round_trip, server, tag_server};
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Long enough that a missing byte is missing, not late.
const QUIET: Duration = Duration::from_millis(300);

async fn proxy(p: &Proxies, name: &str, upstream: SocketAddr) -> SocketAddr {
    p.create(ProxySpec::new(name, upstream.to_string()))
        .await
        .unwrap()
        .listen_addr()
        .unwrap()
}

/// Reads until the proxy closes the connection: the bytes before the
/// close, or the error it closed with.
async fn read_until_closed(s: &mut TcpStream) -> std::io::Result<Vec<u8>> {
    let mut got = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut got))
        .await
        .expect("the proxy closes the connection")?;
    Ok(got)
}

#[tokio::test]
async fn latency_delays_the_reply_by_at_least_the_latency() {
    let p = Proxies::with_seed(1);
    let addr = proxy(&p, "lat", echo_server().await).await;
    p.add_toxic(
        "lat",
        ToxicSpec::new(ToxicKind::Latency {
            latency: 150,
            jitter: 0,
        }),
    )
    .await
    .unwrap();
    let mut s = TcpStream::connect(addr).await.unwrap();
    let t0 = Instant::now();
    assert_eq!(round_trip(&mut s, b"ping").await.unwrap(), b"ping");
    assert!(t0.elapsed() >= Duration::from_millis(150));
    p.shutdown().await;
}

#[tokio::test]
async fn a_toxic_added_later_applies_to_an_open_connection() {
    let p = Proxies::with_seed(1);
    let addr = proxy(&p, "late", echo_server().await).await;
    let mut s = TcpStream::connect(addr).await.unwrap();
    assert_eq!(round_trip(&mut s, b"before").await.unwrap(), b"before");
    p.add_toxic(
        "late",
        ToxicSpec::new(ToxicKind::Timeout { timeout: 10 }).upstream(),
    )
    .await
    .unwrap();
    s.write_all(b"after").await.unwrap();
    assert_eq!(
        read_until_closed(&mut s).await.unwrap_or_default(),
        b"",
        "timeout drops, then closes"
    );
    p.shutdown().await;
}

#[tokio::test]
async fn timeout_zero_holds_the_connection_until_the_toxic_goes() {
    let p = Proxies::with_seed(1);
    let addr = proxy(&p, "hold", echo_server().await).await;
    p.add_toxic("hold", ToxicSpec::new(ToxicKind::Timeout { timeout: 0 }))
        .await
        .unwrap();
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(b"lost").await.unwrap();
    let mut buf = [0u8; 4];
    assert!(
        tokio::time::timeout(QUIET, s.read(&mut buf)).await.is_err(),
        "nothing comes back, nothing closes"
    );
    // toxiproxy closes what a timeout toxic held when the toxic is removed.
    p.remove_toxic("hold", "timeout_downstream").await.unwrap();
    assert_eq!(read_until_closed(&mut s).await.unwrap_or_default(), b"");
    p.shutdown().await;
}

#[tokio::test]
async fn blackhole_forwards_nothing_and_the_stream_resumes_when_removed() {
    let p = Proxies::with_seed(1);
    let addr = proxy(&p, "bh", echo_server().await).await;
    p.add_toxic("bh", ToxicSpec::new(ToxicKind::Blackhole).upstream())
        .await
        .unwrap();
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(b"held").await.unwrap();
    let mut buf = [0u8; 4];
    assert!(
        tokio::time::timeout(QUIET, s.read(&mut buf)).await.is_err(),
        "no reply while blackholed"
    );
    p.remove_toxic("bh", "blackhole_upstream").await.unwrap();
    s.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, b"held");
    p.shutdown().await;
}

#[tokio::test]
async fn reset_peer_resets_the_connection() {
    let p = Proxies::with_seed(1);
    let addr = proxy(&p, "rst", echo_server().await).await;
    p.add_toxic(
        "rst",
        ToxicSpec::new(ToxicKind::ResetPeer { timeout: 0 }).upstream(),
    )
    .await
    .unwrap();
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(b"x").await.unwrap();
    let err = read_until_closed(&mut s).await.unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionReset, "{err}");
    p.shutdown().await;
}

#[tokio::test]
async fn limit_data_closes_after_that_many_bytes() {
    let p = Proxies::with_seed(1);
    let addr = proxy(&p, "lim", echo_server().await).await;
    p.add_toxic("lim", ToxicSpec::new(ToxicKind::LimitData { bytes: 6 }))
        .await
        .unwrap();
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(b"0123456789").await.unwrap();
    assert_eq!(read_until_closed(&mut s).await.unwrap(), b"012345");
    p.shutdown().await;
}

#[tokio::test]
async fn bandwidth_and_slicer_keep_the_bytes_intact() {
    let p = Proxies::with_seed(1);
    let addr = proxy(&p, "bw", echo_server().await).await;
    // 100 KB/s downstream: 50 000 bytes take at least about half a second.
    p.add_toxic("bw", ToxicSpec::new(ToxicKind::Bandwidth { rate: 100 }))
        .await
        .unwrap();
    let slicer = ToxicKind::Slicer {
        average_size: 500,
        size_variation: 100,
        delay: 10,
    };
    p.add_toxic("bw", ToxicSpec::new(slicer).upstream())
        .await
        .unwrap();
    let data: Vec<u8> = (0..50_000u32).map(|i| (i % 251) as u8).collect();
    let mut s = TcpStream::connect(addr).await.unwrap();
    let t0 = Instant::now();
    let (mut r, mut w) = s.split();
    let send = async {
        w.write_all(&data).await.unwrap();
    };
    let mut got = vec![0u8; data.len()];
    let recv = r.read_exact(&mut got);
    let ((), read) = tokio::join!(send, recv);
    read.unwrap();
    assert_eq!(got, data);
    assert!(t0.elapsed() >= Duration::from_millis(400));
    p.shutdown().await;
}

#[tokio::test]
async fn toxicity_zero_affects_no_connection_and_one_every_connection() {
    let p = Proxies::with_seed(1);
    let addr = proxy(&p, "tox", echo_server().await).await;
    let cut = |t: f64| {
        ToxicSpec::new(ToxicKind::Timeout { timeout: 1 })
            .upstream()
            .with_toxicity(t)
    };
    p.add_toxic("tox", cut(0.0)).await.unwrap();
    for _ in 0..10 {
        let mut s = TcpStream::connect(addr).await.unwrap();
        assert_eq!(round_trip(&mut s, b"ok").await.unwrap(), b"ok");
    }
    p.update_toxic("tox", "timeout_upstream", |t| {
        Ok(t.clone().with_toxicity(1.0))
    })
    .await
    .unwrap();
    for _ in 0..10 {
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(b"no").await.unwrap();
        assert_eq!(read_until_closed(&mut s).await.unwrap_or_default(), b"");
    }
    p.shutdown().await;
}

#[tokio::test]
async fn toxicity_affects_about_that_fraction_of_connections() {
    let p = Proxies::with_seed(42);
    let addr = proxy(&p, "half", echo_server().await).await;
    let cut = ToxicSpec::new(ToxicKind::Timeout { timeout: 1 })
        .upstream()
        .with_toxicity(0.5);
    p.add_toxic("half", cut).await.unwrap();
    let mut affected = 0;
    for _ in 0..40 {
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(b"?").await.unwrap();
        if read_until_closed_or_echo(&mut s).await {
            affected += 1;
        }
    }
    // Seeded: the same count every run; the bounds only say "a fraction".
    assert!((8..=32).contains(&affected), "{affected} of 40 affected");
    p.shutdown().await;
}

/// True when the connection was closed without an echo.
async fn read_until_closed_or_echo(s: &mut TcpStream) -> bool {
    let mut buf = [0u8; 1];
    match tokio::time::timeout(Duration::from_secs(10), s.read(&mut buf)).await {
        Ok(Ok(1)) => false,
        Ok(_) => true,
        Err(_) => panic!("neither an echo nor a close"),
    }
}

#[tokio::test]
async fn a_new_upstream_takes_new_connections_on_a_live_proxy() {
    let server: ProxyServer = server().await;
    let a = tag_server("A").await;
    let b = tag_server("B").await;
    let addr = create_proxy(&server, "rw", a).await;
    let mut s = TcpStream::connect(addr).await.unwrap();
    let mut tag = [0u8; 1];
    s.read_exact(&mut tag).await.unwrap();
    assert_eq!(&tag, b"A");

    let (status, json) = call(
        &server,
        "POST",
        "/proxies/rw",
        Some(&format!(r#"{{"upstream":"{b}"}}"#)),
    )
    .await;
    assert_eq!(status, 200, "{json}");
    assert_eq!(
        json["listen"],
        addr.to_string(),
        "the listener stays where it was"
    );
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.read_exact(&mut tag).await.unwrap();
    assert_eq!(&tag, b"B");

    // The same through the Rust handle, back to A.
    server
        .proxies()
        .update(
            "rw",
            ProxyUpdate {
                upstream: Some(a.to_string()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.read_exact(&mut tag).await.unwrap();
    assert_eq!(&tag, b"A");
    server.shutdown().await;
}

#[tokio::test]
async fn changing_upstream_closes_the_open_connections() {
    let p = Proxies::with_seed(1);
    let addr = proxy(&p, "mv", echo_server().await).await;
    let mut s = TcpStream::connect(addr).await.unwrap();
    assert_eq!(round_trip(&mut s, b"hi").await.unwrap(), b"hi");
    let other = echo_server().await;
    p.update(
        "mv",
        ProxyUpdate {
            upstream: Some(other.to_string()),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(read_until_closed(&mut s).await.unwrap_or_default(), b"");
    p.shutdown().await;
}
