//! testkit::fault_proxy: a dependency behind the in-process fault proxy.

use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

#[tokio::test]
async fn faults_come_and_go_on_a_linked_dependency() {
    let link = testkit::fault_proxy(testkit::echo_server().await).await;
    let mut s = TcpStream::connect(link.addr()).await.unwrap();
    let mut buf = [0u8; 2];

    link.latency(100).await;
    let t0 = Instant::now();
    s.write_all(b"hi").await.unwrap();
    s.read_exact(&mut buf).await.unwrap();
    assert!(t0.elapsed() >= Duration::from_millis(100));

    link.clear().await;
    link.blackhole().await;
    s.write_all(b"yo").await.unwrap();
    assert!(
        tokio::time::timeout(Duration::from_millis(300), s.read_exact(&mut buf))
            .await
            .is_err()
    );
    link.clear().await;
    s.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, b"yo");

    let other = testkit::echo_server().await;
    link.set_upstream(other).await;
    let mut s = TcpStream::connect(link.addr()).await.unwrap();
    s.write_all(b"ok").await.unwrap();
    s.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, b"ok");
}
