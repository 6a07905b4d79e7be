//! The pump on in-memory pipes under tokio's paused clock: time-based
//! toxics are checked against the virtual clock, never by sleeping.

use super::*;
use rand::SeedableRng;
use tokio::io::{duplex, AsyncReadExt, AsyncWriteExt, DuplexStream};

fn chain(toxics: Vec<(Stream, ToxicKind, f64)>) -> Chain {
    Arc::new(
        toxics
            .into_iter()
            .enumerate()
            .map(|(i, (stream, kind, toxicity))| LiveToxic {
                uid: i as u64 + 1,
                generation: 0,
                stream,
                toxicity,
                kind,
            })
            .collect(),
    )
}

/// A downstream pump between two pipes: returns the writing end of its
/// source, the reading end of its destination, and the toxics' sender.
fn start(
    toxics: Chain,
) -> (
    DuplexStream,
    DuplexStream,
    watch::Sender<Chain>,
    tokio::task::JoinHandle<End>,
) {
    let (tx, rx) = watch::channel(toxics);
    let (source_far, mut source) = duplex(1 << 16);
    let (mut dest, dest_far) = duplex(1 << 16);
    let handle = tokio::spawn(async move {
        let mut pump = Pump::new(
            Stream::Downstream,
            StdRng::seed_from_u64(7),
            rx,
            Arc::default(),
        );
        pump.run(&mut source, &mut dest).await
    });
    (source_far, dest_far, tx, handle)
}

#[tokio::test(start_paused = true)]
async fn latency_holds_each_chunk_back() {
    let latency = ToxicKind::Latency {
        latency: 100,
        jitter: 0,
    };
    let (mut src, mut dst, _tx, _h) = start(chain(vec![(Stream::Downstream, latency, 1.0)]));
    let t0 = Instant::now();
    src.write_all(b"ping").await.unwrap();
    let mut buf = [0u8; 4];
    dst.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, b"ping");
    assert!(Instant::now() - t0 >= Duration::from_millis(100));
}

#[tokio::test(start_paused = true)]
async fn a_toxic_on_the_other_stream_or_at_toxicity_zero_changes_nothing() {
    let latency = ToxicKind::Latency {
        latency: 100,
        jitter: 0,
    };
    let (mut src, mut dst, _tx, _h) = start(chain(vec![
        (Stream::Upstream, latency.clone(), 1.0),
        (Stream::Downstream, latency, 0.0),
    ]));
    let t0 = Instant::now();
    src.write_all(b"ping").await.unwrap();
    let mut buf = [0u8; 4];
    dst.read_exact(&mut buf).await.unwrap();
    assert_eq!(Instant::now(), t0);
}

#[tokio::test(start_paused = true)]
async fn a_toxic_added_later_reaches_an_open_connection_and_leaves_with_removal() {
    let (mut src, mut dst, tx, _h) = start(chain(vec![]));
    tx.send_replace(chain(vec![(Stream::Downstream, ToxicKind::Blackhole, 1.0)]));
    tokio::task::yield_now().await;
    src.write_all(b"held").await.unwrap();
    let mut buf = [0u8; 4];
    let read = tokio::time::timeout(Duration::from_secs(60), dst.read_exact(&mut buf)).await;
    assert!(read.is_err(), "a blackhole forwards nothing");
    tx.send_replace(chain(vec![]));
    dst.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, b"held", "the held bytes flow once it is removed");
}

#[tokio::test(start_paused = true)]
async fn timeout_drops_data_then_closes() {
    let timeout = ToxicKind::Timeout { timeout: 1000 };
    let (mut src, mut dst, _tx, h) = start(chain(vec![(Stream::Downstream, timeout, 1.0)]));
    let t0 = Instant::now();
    src.write_all(b"lost").await.unwrap();
    assert!(matches!(h.await.unwrap(), End::Close));
    assert!(Instant::now() - t0 >= Duration::from_millis(1000));
    let mut rest = Vec::new();
    dst.read_to_end(&mut rest).await.unwrap();
    assert!(rest.is_empty());
}

#[tokio::test(start_paused = true)]
async fn limit_data_passes_that_many_bytes_then_closes() {
    let limit = ToxicKind::LimitData { bytes: 5 };
    let (mut src, mut dst, _tx, h) = start(chain(vec![(Stream::Downstream, limit, 1.0)]));
    src.write_all(b"0123456789").await.unwrap();
    assert!(matches!(h.await.unwrap(), End::Close));
    let mut got = Vec::new();
    dst.read_to_end(&mut got).await.unwrap();
    assert_eq!(got, b"01234");
}

#[tokio::test(start_paused = true)]
async fn reset_peer_resets_after_its_timeout_once_data_comes() {
    let reset = ToxicKind::ResetPeer { timeout: 50 };
    let (mut src, _dst, _tx, h) = start(chain(vec![(Stream::Downstream, reset, 1.0)]));
    let t0 = Instant::now();
    src.write_all(b"x").await.unwrap();
    assert!(matches!(h.await.unwrap(), End::Reset));
    assert!(Instant::now() - t0 >= Duration::from_millis(50));
}

#[tokio::test(start_paused = true)]
async fn bandwidth_paces_the_bytes() {
    // 10 KB/s: 20 000 bytes take at least two seconds.
    let bw = ToxicKind::Bandwidth { rate: 10 };
    let (mut src, mut dst, _tx, _h) = start(chain(vec![(Stream::Downstream, bw, 1.0)]));
    let t0 = Instant::now();
    let data = vec![7u8; 20_000];
    let writer = tokio::spawn(async move {
        src.write_all(&data).await.unwrap();
        src
    });
    let mut got = vec![0u8; 20_000];
    dst.read_exact(&mut got).await.unwrap();
    assert!(Instant::now() - t0 >= Duration::from_millis(1900));
    drop(writer.await.unwrap());
}

#[tokio::test(start_paused = true)]
async fn slicer_and_slow_close_keep_every_byte_in_order() {
    let (mut src, mut dst, _tx, h) = start(chain(vec![
        (
            Stream::Downstream,
            ToxicKind::Slicer {
                average_size: 3,
                size_variation: 1,
                delay: 10,
            },
            1.0,
        ),
        (Stream::Downstream, ToxicKind::SlowClose { delay: 500 }, 1.0),
    ]));
    let t0 = Instant::now();
    src.write_all(b"abcdefghijklmnopqrstuvwxyz").await.unwrap();
    drop(src);
    let mut got = Vec::new();
    dst.read_to_end(&mut got).await.unwrap();
    assert_eq!(got, b"abcdefghijklmnopqrstuvwxyz");
    assert!(Instant::now() - t0 >= Duration::from_millis(500));
    assert!(matches!(h.await.unwrap(), End::Eof));
}

#[test]
fn slices_cover_the_chunk() {
    let mut rng = StdRng::seed_from_u64(1);
    for len in [1usize, 2, 3, 10, 1000] {
        let mut cuts = vec![0];
        slice(&mut rng, 0, len, 4, 2, &mut cuts);
        assert_eq!(*cuts.last().unwrap(), len);
        assert!(cuts.windows(2).all(|w| w[0] < w[1]), "{cuts:?}");
    }
}
