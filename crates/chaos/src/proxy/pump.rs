//! One direction of one connection: read, apply the toxics, write.
//!
//! Why it looks like this: a proxy with no toxics must cost about what
//! `tokio::io::copy_bidirectional` costs, yet toxics added later must reach
//! connections already open (toxiproxy does that). So a pump reads into
//! one buffer and writes it straight out while no toxic is active for its
//! connection (the fast path), and watches the proxy's toxic list between
//! reads (a `watch` channel, polled in the same `select!` as the read, so
//! an idle connection learns of a new toxic too). With toxics active, each
//! chunk read becomes timed pieces in a queue (latency, bandwidth and
//! slicer set when each piece is due; timeout and reset_peer drop; limit
//! data truncates) and the pump keeps reading while it waits to write,
//! the way toxiproxy's pipeline of goroutines does, in one task.
//!
//! Toxicity is drawn once per connection and toxic (and again when the
//! toxic is updated) from the connection's seeded RNG.

use super::toxic::{Stream, ToxicKind};
use bytes::Bytes;
use rand::rngs::StdRng;
use rand::Rng;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::watch;
use tokio::time::{sleep_until, Instant};

/// Read buffer per direction: large enough that bulk transfers move in few
/// system calls (copy_bidirectional uses 8 KiB).
const BUF: usize = 64 * 1024;
/// Bytes held for later delivery before the pump stops reading.
const QUEUE_CAP: usize = 1 << 20;

/// A toxic as published to the connections.
#[derive(Debug, Clone)]
pub(crate) struct LiveToxic {
    /// Stable for the toxic's life.
    pub uid: u64,
    /// Bumped by every update: connections draw again and restart timers.
    pub generation: u64,
    pub stream: Stream,
    pub toxicity: f64,
    pub kind: ToxicKind,
}

pub(crate) type Chain = Arc<Vec<LiveToxic>>;

/// How a direction ended.
#[derive(Debug)]
pub(crate) enum End {
    /// The source closed and the close was passed on: the other
    /// direction may go on.
    Eof,
    /// A toxic closes the connection (timeout, limit_data, removal of a
    /// timeout toxic).
    Close,
    /// reset_peer: close with RST.
    Reset,
    /// A read or write failed.
    Failed,
    /// The proxy is gone.
    Stopped,
}

/// A toxic on this connection, with what it remembers here.
struct Applied {
    uid: u64,
    generation: u64,
    /// This connection's draw against the toxicity.
    on: bool,
    kind: ToxicKind,
    /// timeout: when the toxic closes the connection; reset_peer: when it
    /// resets it (set by the first data).
    deadline: Option<Instant>,
    /// limit_data: bytes let through so far.
    sent: u64,
    /// bandwidth: when the link is free again.
    free_at: Option<Instant>,
}

enum Piece {
    Data(Bytes),
    Eof,
    Close,
}

pub(crate) struct Pump {
    stream: Stream,
    rng: StdRng,
    toxics: watch::Receiver<Chain>,
    applied: Vec<Applied>,
    queue: VecDeque<(Instant, Piece)>,
    queued: usize,
    last_due: Instant,
    source_done: bool,
    bytes: Arc<AtomicU64>,
}

impl Pump {
    pub fn new(
        stream: Stream,
        rng: StdRng,
        toxics: watch::Receiver<Chain>,
        bytes: Arc<AtomicU64>,
    ) -> Self {
        Self {
            stream,
            rng,
            toxics,
            applied: Vec::new(),
            queue: VecDeque::new(),
            queued: 0,
            last_due: Instant::now(),
            source_done: false,
            bytes,
        }
    }

    /// Forwards from `reader` to `writer` until the direction ends.
    pub async fn run<R, W>(&mut self, reader: &mut R, writer: &mut W) -> End
    where
        R: AsyncRead + Unpin,
        W: AsyncWrite + Unpin,
    {
        let mut buf = vec![0u8; BUF];
        if let Some(end) = self.refresh() {
            return end;
        }
        loop {
            if self.is_plain() {
                // The fast path: no toxic on this connection and nothing held.
                tokio::select! {
                    biased;
                    changed = self.toxics.changed() => {
                        if changed.is_err() {
                            return End::Stopped;
                        }
                        if let Some(end) = self.refresh() {
                            return end;
                        }
                    }
                    read = reader.read(&mut buf) => match read {
                        Ok(0) => {
                            let _ = writer.shutdown().await;
                            return End::Eof;
                        }
                        Ok(n) => {
                            if writer.write_all(&buf[..n]).await.is_err() {
                                return End::Failed;
                            }
                            self.bytes.fetch_add(n as u64, Ordering::Relaxed);
                        }
                        Err(_) => return End::Failed,
                    },
                }
                continue;
            }
            let next_due = self.queue.front().map(|(due, _)| *due);
            let deadline = self.deadline();
            let deadline_at = deadline.as_ref().map(|(at, _)| *at);
            let can_read = !self.source_done && self.queued < QUEUE_CAP && !self.blackholed();
            tokio::select! {
                biased;
                changed = self.toxics.changed() => {
                    if changed.is_err() {
                        return End::Stopped;
                    }
                    if let Some(end) = self.refresh() {
                        return end;
                    }
                }
                () = sleep_until(deadline_at.unwrap_or_else(Instant::now)), if deadline_at.is_some() => {
                    if let Some((_, end)) = deadline {
                        return end;
                    }
                }
                () = sleep_until(next_due.unwrap_or_else(Instant::now)), if next_due.is_some() => {
                    if let Some(end) = self.deliver(writer).await {
                        return end;
                    }
                }
                read = reader.read(&mut buf), if can_read => match read {
                    Ok(0) => self.source_closed(),
                    Ok(n) => self.take(Bytes::copy_from_slice(&buf[..n])),
                    Err(_) => return End::Failed,
                },
            }
        }
    }

    /// No toxic active here and nothing waiting: bytes go straight through.
    fn is_plain(&self) -> bool {
        self.queue.is_empty() && !self.applied.iter().any(|a| a.on)
    }

    fn blackholed(&self) -> bool {
        self.applied
            .iter()
            .any(|a| a.on && matches!(a.kind, ToxicKind::Blackhole))
    }

    /// The earliest pending close or reset.
    fn deadline(&self) -> Option<(Instant, End)> {
        self.applied
            .iter()
            .filter(|a| a.on)
            .filter_map(|a| match a.kind {
                ToxicKind::Timeout { .. } => a.deadline.map(|at| (at, false)),
                ToxicKind::ResetPeer { .. } => a.deadline.map(|at| (at, true)),
                _ => None,
            })
            .min_by_key(|(at, _)| *at)
            .map(|(at, reset)| (at, if reset { End::Reset } else { End::Close }))
    }

    /// Takes the proxy's current toxics. Returns an end when a timeout
    /// toxic that held this connection was removed (toxiproxy closes).
    fn refresh(&mut self) -> Option<End> {
        let chain = self.toxics.borrow_and_update().clone();
        let now = Instant::now();
        let mut next = Vec::with_capacity(chain.len());
        for t in chain.iter().filter(|t| t.stream == self.stream) {
            let old = self
                .applied
                .iter()
                .position(|a| a.uid == t.uid)
                .map(|i| self.applied.swap_remove(i));
            match old {
                Some(a) if a.generation == t.generation => next.push(a),
                old => {
                    let on = t.toxicity > 0.0 && self.rng.random::<f64>() < t.toxicity;
                    let deadline = match t.kind {
                        ToxicKind::Timeout { timeout } if on && timeout > 0 => {
                            Some(now + Duration::from_millis(timeout))
                        }
                        _ => None,
                    };
                    next.push(Applied {
                        uid: t.uid,
                        generation: t.generation,
                        on,
                        kind: t.kind.clone(),
                        deadline,
                        sent: old.as_ref().map_or(0, |a| a.sent),
                        free_at: None,
                    });
                }
            }
        }
        let removed_timeout = self
            .applied
            .iter()
            .any(|a| a.on && matches!(a.kind, ToxicKind::Timeout { .. }));
        self.applied = next;
        removed_timeout.then_some(End::Close)
    }

    fn source_closed(&mut self) {
        self.source_done = true;
        let hold: u64 = self
            .applied
            .iter()
            .filter(|a| a.on)
            .map(|a| match a.kind {
                ToxicKind::SlowClose { delay } => delay,
                _ => 0,
            })
            .sum();
        let due = self.last_due.max(Instant::now()) + Duration::from_millis(hold);
        self.push(due, Piece::Eof);
    }

    /// Turns a chunk read into timed pieces through every active toxic.
    fn take(&mut self, chunk: Bytes) {
        let now = Instant::now();
        let mut pieces = vec![(now, chunk)];
        let mut close_after = false;
        for a in self.applied.iter_mut().filter(|a| a.on) {
            match a.kind {
                ToxicKind::Latency { latency, jitter } => {
                    let mut delay = latency as i64;
                    if jitter > 0 {
                        let j = jitter as i64;
                        delay += self.rng.random_range(-j..j);
                    }
                    let delay = Duration::from_millis(delay.max(0) as u64);
                    for (due, _) in &mut pieces {
                        *due += delay;
                    }
                }
                ToxicKind::Bandwidth { rate } if rate > 0 => {
                    // rate KB/s = rate bytes per millisecond; pieces of at
                    // most 100 ms worth, as toxiproxy sends them.
                    let step = (rate * 100) as usize;
                    let mut out = Vec::new();
                    for (due, data) in pieces {
                        let mut rest = data;
                        while !rest.is_empty() {
                            let part = rest.split_to(step.min(rest.len()));
                            let start = a.free_at.map_or(due, |f| f.max(due));
                            let free =
                                start + Duration::from_micros(part.len() as u64 * 1000 / rate);
                            a.free_at = Some(free);
                            out.push((free, part));
                        }
                    }
                    pieces = out;
                }
                ToxicKind::Timeout { .. } | ToxicKind::Blackhole => pieces.clear(),
                ToxicKind::ResetPeer { timeout } => {
                    if a.deadline.is_none() {
                        a.deadline = Some(now + Duration::from_millis(timeout));
                    }
                    pieces.clear();
                }
                ToxicKind::LimitData { bytes } => {
                    let mut out = Vec::new();
                    for (due, mut data) in pieces {
                        let left = bytes.saturating_sub(a.sent) as usize;
                        data.truncate(left);
                        a.sent += data.len() as u64;
                        if !data.is_empty() {
                            out.push((due, data));
                        }
                    }
                    pieces = out;
                    if a.sent >= bytes {
                        close_after = true;
                    }
                }
                ToxicKind::Slicer {
                    average_size,
                    size_variation,
                    delay,
                } => {
                    let mut out = Vec::new();
                    for (due, data) in pieces {
                        let mut cuts = vec![0];
                        slice(
                            &mut self.rng,
                            0,
                            data.len(),
                            average_size as usize,
                            size_variation as usize,
                            &mut cuts,
                        );
                        for (k, w) in cuts.windows(2).enumerate() {
                            let at = due + Duration::from_micros(delay * k as u64);
                            out.push((at, data.slice(w[0]..w[1])));
                        }
                    }
                    pieces = out;
                }
                ToxicKind::Bandwidth { .. } | ToxicKind::SlowClose { .. } => {}
            }
        }
        for (due, data) in pieces {
            self.push(due, Piece::Data(data));
        }
        if close_after {
            self.push(self.last_due, Piece::Close);
        }
    }

    fn push(&mut self, due: Instant, piece: Piece) {
        let due = due.max(self.last_due);
        self.last_due = due;
        if let Piece::Data(d) = &piece {
            self.queued += d.len();
        }
        self.queue.push_back((due, piece));
    }

    /// Writes every piece that is due.
    async fn deliver<W: AsyncWrite + Unpin>(&mut self, writer: &mut W) -> Option<End> {
        let now = Instant::now();
        while let Some((due, _)) = self.queue.front() {
            if *due > now {
                break;
            }
            let Some((_, piece)) = self.queue.pop_front() else {
                break;
            };
            match piece {
                Piece::Data(data) => {
                    self.queued -= data.len();
                    if writer.write_all(&data).await.is_err() {
                        return Some(End::Failed);
                    }
                    self.bytes.fetch_add(data.len() as u64, Ordering::Relaxed);
                }
                Piece::Eof => {
                    let _ = writer.shutdown().await;
                    return Some(End::Eof);
                }
                Piece::Close => return Some(End::Close),
            }
        }
        None
    }
}

/// Cut points splitting `start..end` into pieces of about `average` bytes,
/// give or take `variation` (toxiproxy's halving, so no piece tends to be
/// small at either end). Appends the cut after each piece to `cuts`.
fn slice(
    rng: &mut StdRng,
    start: usize,
    end: usize,
    average: usize,
    variation: usize,
    cuts: &mut Vec<usize>,
) {
    if (end - start) <= average + variation || end - start < 2 {
        cuts.push(end);
        return;
    }
    let mut mid = start + (end - start) / 2;
    if variation > 0 {
        let v = variation as i64;
        let shifted = mid as i64 + rng.random_range(-v..v);
        mid = shifted.clamp(start as i64 + 1, end as i64 - 1) as usize;
    }
    slice(rng, start, mid, average, variation, cuts);
    slice(rng, mid, end, average, variation, cuts);
}

#[cfg(test)]
mod tests;
