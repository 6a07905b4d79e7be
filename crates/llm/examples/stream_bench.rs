//! A load client for streamed chat completions: how long a client waits
//! for its first token through an LLM gateway, against the same backend
//! called directly (`scripts/bench-llm` runs it against the floor, the
//! LLM gateway and LiteLLM).
//!
//! ```text
//! stream_bench --url http://127.0.0.1:8080/v1/chat/completions \
//!     --header 'Authorization: Bearer KEY' --rate 50 --duration 10
//! {"mode":"rate","rate":50.0,"sent":500,"late":0,"completed":500,"errors":0,"ttft_ms":{"p50":51.2,...},...}
//! ```
//!
//! Two modes, one JSON line on stdout at the end:
//! - `--rate R --duration S` (open model): streams start on a fixed
//!   schedule whether or not earlier ones finished, after `--warmup`
//!   seconds at the same rate that are not counted. A send that leaves more
//!   than 1 ms after its scheduled instant counts as `late` (the client
//!   fell behind). Time to first token is counted from the scheduled
//!   instant to the arrival of the first event carrying content, so
//!   queueing anywhere counts.
//! - `--hold N --ramp R`: opens N streams at R per second and reports how
//!   many were open at once (`peak_open`: sent and not ended;
//!   `peak_streaming`: response head received and not ended), for memory
//!   measurements against a slow backend.
//!
//! The schedule runs on its own OS thread with precise sleeps (not Tokio's
//! millisecond timer), and each stream starts at a uniformly random instant
//! within its 1/R slot: the scripted backend's delays end on its own
//! millisecond ticks, and sends phase-locked to those ticks would round a
//! gateway's sub-millisecond overhead to 0 or 1 ms. With random phases the
//! rounding averages out and the difference of medians is the overhead.
//!
//! A stream succeeds when it answers 200, carries content, and ends with
//! `data: [DONE]`; anything else (status, transport error, an error event,
//! no `[DONE]`, still open `--drain` seconds after the last send) is an
//! error, and the first one is printed as `first_error`.

use bytes::Bytes;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue, CONTENT_TYPE};
use serde_json::{json, Value};
use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::task::JoinHandle;

const USAGE: &str = "usage: stream_bench --url URL [--model ID] [--header 'Name: value']... \
    (--rate R --duration S [--warmup S] | --hold N [--ramp R]) [--threads N] [--drain S]";

/// A send later than this after its scheduled instant counts as late.
const LATE_AFTER: Duration = Duration::from_millis(1);

enum Mode {
    Rate {
        rate: f64,
        duration: Duration,
        warmup: Duration,
    },
    Hold {
        streams: usize,
        ramp: f64,
    },
}

struct Args {
    url: String,
    model: String,
    headers: HeaderMap,
    mode: Mode,
    threads: usize,
    drain: Duration,
}

fn parse_args(mut argv: impl Iterator<Item = String>) -> Result<Args, String> {
    let (mut url, mut model, mut headers) = (None, "bench-model".to_string(), HeaderMap::new());
    let (mut rate, mut duration, mut warmup) = (None, None, Duration::from_secs(2));
    let (mut hold, mut ramp) = (None, 500.0);
    let (mut threads, mut drain) = (1, Duration::from_secs(60));
    while let Some(flag) = argv.next() {
        let value = argv
            .next()
            .ok_or_else(|| format!("{flag} needs a value\n{USAGE}"));
        let positive = |v: &str| match v.trim_end_matches('s').parse::<f64>() {
            Ok(x) if x.is_finite() && x > 0.0 => Ok(x),
            _ => Err(format!("{flag}: '{v}' is not a positive number")),
        };
        match flag.as_str() {
            "--url" => url = Some(value?),
            "--model" => model = value?,
            "--header" => {
                let line = value?;
                let (name, val) = line
                    .split_once(':')
                    .ok_or_else(|| format!("--header: '{line}' is not 'Name: value'"))?;
                let name = HeaderName::from_bytes(name.trim().as_bytes())
                    .map_err(|_| format!("--header: bad name in '{line}'"))?;
                let val = HeaderValue::from_str(val.trim())
                    .map_err(|_| format!("--header: bad value in '{line}'"))?;
                headers.append(name, val);
            }
            "--rate" => rate = Some(positive(&value?)?),
            "--duration" => duration = Some(Duration::from_secs_f64(positive(&value?)?)),
            "--warmup" => {
                let v = value?;
                warmup = match v.trim_end_matches('s') {
                    "0" => Duration::ZERO,
                    _ => Duration::from_secs_f64(positive(&v)?),
                }
            }
            "--hold" => hold = Some(positive(&value?)? as usize),
            "--ramp" => ramp = positive(&value?)?,
            "--threads" => threads = positive(&value?)? as usize,
            "--drain" => drain = Duration::from_secs_f64(positive(&value?)?),
            "-h" | "--help" => return Err(USAGE.to_string()),
            other => return Err(format!("unknown flag '{other}'\n{USAGE}")),
        }
    }
    let url = url.ok_or_else(|| format!("--url is required\n{USAGE}"))?;
    let mode = match (rate, duration, hold) {
        (Some(rate), Some(duration), None) => Mode::Rate {
            rate,
            duration,
            warmup,
        },
        (None, None, Some(streams)) => Mode::Hold { streams, ramp },
        _ => return Err(format!("give --rate and --duration, or --hold\n{USAGE}")),
    };
    Ok(Args {
        url,
        model,
        headers,
        mode,
        threads: threads.max(1),
        drain,
    })
}

fn main() -> ExitCode {
    let args = match parse_args(std::env::args().skip(1)) {
        Ok(args) => args,
        Err(message) => {
            eprintln!("stream_bench: {message}");
            return ExitCode::from(2);
        }
    };
    match run(args) {
        Ok(report) => {
            println!("{report}");
            ExitCode::SUCCESS
        }
        Err(message) => {
            eprintln!("stream_bench: {message}");
            ExitCode::FAILURE
        }
    }
}

/// What every stream shares.
struct Target {
    client: reqwest::Client,
    url: String,
    headers: HeaderMap,
    body: Bytes,
    /// Streams sent and not ended.
    open: AtomicUsize,
    peak_open: AtomicUsize,
    /// Streams whose response head arrived, not ended.
    streaming: AtomicUsize,
    peak_streaming: AtomicUsize,
}

fn run(args: Args) -> Result<Value, String> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.threads)
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))?;
    let client = reqwest::Client::builder()
        .http1_only()
        .no_proxy()
        .tcp_nodelay(true)
        .pool_max_idle_per_host(usize::MAX)
        .build()
        .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
    let mut headers = args.headers;
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    let body = json!({
        "model": args.model,
        "stream": true,
        "messages": [{"role": "user", "content": "Say something."}],
    });
    let target = Arc::new(Target {
        client,
        url: args.url,
        headers,
        body: Bytes::from(body.to_string()),
        open: AtomicUsize::new(0),
        peak_open: AtomicUsize::new(0),
        streaming: AtomicUsize::new(0),
        peak_streaming: AtomicUsize::new(0),
    });
    let handle = runtime.handle().clone();
    let (sends, rate, unmeasured) = match args.mode {
        Mode::Rate {
            rate,
            duration,
            warmup,
        } => {
            let count = |d: Duration| (d.as_secs_f64() * rate).round() as usize;
            (count(warmup) + count(duration), rate, count(warmup))
        }
        Mode::Hold { streams, ramp } => (streams, ramp, 0),
    };
    let mut launched: Vec<(bool, JoinHandle<Outcome>)> = Vec::with_capacity(sends);
    let dispatch = schedule(sends, rate, |i, scheduled| {
        let measured = i >= unmeasured;
        let task = handle.spawn(one_stream(target.clone(), scheduled));
        launched.push((measured, task));
        measured
    });
    let outcomes = runtime.block_on(collect(launched, dispatch.last_send + args.drain));
    let measured: Vec<&Outcome> = outcomes.iter().filter(|o| o.measured).collect();
    let mut ttft: Vec<Duration> = measured.iter().filter_map(|o| o.ttft).collect();
    let mut total: Vec<Duration> = measured
        .iter()
        .filter(|o| o.error.is_none())
        .filter_map(|o| o.total)
        .collect();
    let completed = measured.iter().filter(|o| o.error.is_none()).count();
    let errors = measured.len() - completed;
    let first_error = measured.iter().find_map(|o| o.error.clone());
    let events: u64 = measured.iter().map(|o| u64::from(o.events)).sum();
    let mut report = json!({
        "sent": measured.len(),
        "late": dispatch.late,
        "completed": completed,
        "errors": errors,
        "first_error": first_error,
        "ttft_ms": percentiles(&mut ttft),
        "total_ms": percentiles(&mut total),
        "events_per_stream": events as f64 / measured.len().max(1) as f64,
    });
    match args.mode {
        Mode::Rate { rate, duration, .. } => {
            report["mode"] = json!("rate");
            report["rate"] = json!(rate);
            report["duration_s"] = json!(duration.as_secs_f64());
            report["achieved_rate"] = json!(completed as f64 / duration.as_secs_f64());
        }
        Mode::Hold { streams, ramp } => {
            report["mode"] = json!("hold");
            report["streams"] = json!(streams);
            report["ramp"] = json!(ramp);
            report["peak_open"] = json!(target.peak_open.load(Ordering::Relaxed));
            report["peak_streaming"] = json!(target.peak_streaming.load(Ordering::Relaxed));
        }
    }
    Ok(report)
}

struct Dispatch {
    /// Measured sends that left more than [`LATE_AFTER`] after schedule.
    late: usize,
    last_send: Instant,
}

/// Calls `launch(i, scheduled)` for `sends` streams at `rate` per second,
/// each at a random instant within its slot, sleeping in between on this
/// thread. `launch` says whether the send is measured (counts as late).
fn schedule(sends: usize, rate: f64, mut launch: impl FnMut(usize, Instant) -> bool) -> Dispatch {
    let period = 1.0 / rate;
    let start = Instant::now() + Duration::from_millis(10);
    let mut random = SplitMix64(0x5eed_1e55_ca11_ab1e);
    let mut late = 0;
    let mut last_send = start;
    for i in 0..sends {
        let scheduled = start + Duration::from_secs_f64((i as f64 + random.unit()) * period);
        let now = Instant::now();
        if scheduled > now {
            std::thread::sleep(scheduled - now);
        }
        last_send = Instant::now();
        let behind = last_send.saturating_duration_since(scheduled) > LATE_AFTER;
        if launch(i, scheduled) && behind {
            late += 1;
        }
    }
    Dispatch { late, last_send }
}

/// splitmix64: uniform numbers for the send phases, the same every run.
struct SplitMix64(u64);

impl SplitMix64 {
    fn unit(&mut self) -> f64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        (z >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Waits for every stream until `deadline`; those still open then are
/// aborted and count as errors.
async fn collect(launched: Vec<(bool, JoinHandle<Outcome>)>, deadline: Instant) -> Vec<Outcome> {
    let deadline = tokio::time::Instant::from_std(deadline);
    let mut outcomes = Vec::with_capacity(launched.len());
    for (measured, mut task) in launched {
        let mut outcome = match tokio::time::timeout_at(deadline, &mut task).await {
            Ok(Ok(outcome)) => outcome,
            Ok(Err(e)) => Outcome::failed(format!("stream task failed: {e}")),
            Err(_) => {
                task.abort();
                Outcome::failed("still open after --drain".to_string())
            }
        };
        outcome.measured = measured;
        outcomes.push(outcome);
    }
    outcomes
}

fn percentiles(values: &mut [Duration]) -> Value {
    if values.is_empty() {
        return Value::Null;
    }
    values.sort_unstable();
    let at = |q: f64| {
        let rank = ((q * values.len() as f64).ceil() as usize).clamp(1, values.len());
        (values[rank - 1].as_secs_f64() * 1e6).round() / 1e3
    };
    json!({"p50": at(0.50), "p90": at(0.90), "p99": at(0.99), "max": at(1.0), "n": values.len()})
}

/// How one stream went.
#[derive(Default)]
struct Outcome {
    measured: bool,
    /// From the scheduled instant to the first event with content.
    ttft: Option<Duration>,
    /// From the scheduled instant to the end of the body.
    total: Option<Duration>,
    events: u32,
    error: Option<String>,
}

impl Outcome {
    fn failed(error: String) -> Self {
        Self {
            error: Some(error),
            ..Self::default()
        }
    }
}

/// Counts a stream open while alive, and streaming once the head came.
struct Gauge<'a> {
    target: &'a Target,
    streaming: bool,
}

impl<'a> Gauge<'a> {
    fn open(target: &'a Target) -> Self {
        let now = target.open.fetch_add(1, Ordering::Relaxed) + 1;
        target.peak_open.fetch_max(now, Ordering::Relaxed);
        Self {
            target,
            streaming: false,
        }
    }

    fn head_arrived(&mut self) {
        self.streaming = true;
        let now = self.target.streaming.fetch_add(1, Ordering::Relaxed) + 1;
        self.target.peak_streaming.fetch_max(now, Ordering::Relaxed);
    }
}

impl Drop for Gauge<'_> {
    fn drop(&mut self) {
        self.target.open.fetch_sub(1, Ordering::Relaxed);
        if self.streaming {
            self.target.streaming.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

async fn one_stream(target: Arc<Target>, scheduled: Instant) -> Outcome {
    let mut gauge = Gauge::open(&target);
    let sent = target
        .client
        .post(&target.url)
        .headers(target.headers.clone())
        .body(target.body.clone())
        .send()
        .await;
    let mut response = match sent {
        Ok(response) => response,
        Err(e) => return Outcome::failed(format!("request failed: {e}")),
    };
    let status = response.status();
    if !status.is_success() {
        let text = response.text().await.unwrap_or_default();
        let text: String = text.chars().take(300).collect();
        return Outcome::failed(format!("status {status}: {text}"));
    }
    gauge.head_arrived();
    let mut events = EventStream::default();
    loop {
        match response.chunk().await {
            Ok(Some(bytes)) => events.feed(&bytes, Instant::now()),
            Ok(None) => break,
            Err(e) => {
                events.error.get_or_insert(format!("stream broke: {e}"));
                break;
            }
        }
    }
    let end = Instant::now();
    let error = events.error.or_else(|| {
        if events.first_content.is_none() {
            Some("no content in the stream".to_string())
        } else if !events.done {
            Some("the stream ended without [DONE]".to_string())
        } else {
            None
        }
    });
    Outcome {
        measured: false,
        ttft: events.first_content.map(|t| t - scheduled),
        total: Some(end - scheduled),
        events: events.events,
        error,
    }
}

/// Server-sent events read as they arrive: when the first content came,
/// how many events, whether `[DONE]` ended it. Only events up to the first
/// content are parsed as JSON; later ones are only checked for an error.
#[derive(Default)]
struct EventStream {
    pending: Vec<u8>,
    first_content: Option<Instant>,
    events: u32,
    done: bool,
    error: Option<String>,
}

impl EventStream {
    fn feed(&mut self, bytes: &[u8], now: Instant) {
        let mut pending = std::mem::take(&mut self.pending);
        pending.extend_from_slice(bytes);
        let mut at = 0;
        while let Some((len, separator)) = event_end(&pending[at..]) {
            self.event(&pending[at..at + len], now);
            at += len + separator;
        }
        pending.drain(..at);
        self.pending = pending;
    }

    fn event(&mut self, event: &[u8], now: Instant) {
        for line in event.split(|&b| b == b'\n') {
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            let Some(data) = line.strip_prefix(b"data:") else {
                continue;
            };
            let data = data.strip_prefix(b" ").unwrap_or(data);
            if data == b"[DONE]" {
                self.done = true;
                continue;
            }
            self.events += 1;
            if self.first_content.is_some() && !contains(data, b"\"error\"") {
                continue;
            }
            match serde_json::from_slice::<Value>(data) {
                Ok(value) if value.get("error").is_some() => {
                    self.error
                        .get_or_insert(format!("error event: {}", value["error"]));
                }
                Ok(value) => {
                    let choice = &value["choices"][0];
                    let content = choice["delta"]["content"]
                        .as_str()
                        .or_else(|| choice["text"].as_str());
                    if content.is_some_and(|c| !c.is_empty()) {
                        self.first_content.get_or_insert(now);
                    }
                }
                Err(_) => {
                    self.error.get_or_insert_with(|| {
                        format!("not JSON: {}", String::from_utf8_lossy(data))
                    });
                }
            }
        }
    }
}

/// The length of the first complete event and of its blank-line separator.
fn event_end(bytes: &[u8]) -> Option<(usize, usize)> {
    let lf = find(bytes, b"\n\n").map(|i| (i, 2));
    let crlf = find(bytes, b"\r\n\r\n").map(|i| (i, 4));
    match (lf, crlf) {
        (Some(a), Some(b)) => Some(if a.0 <= b.0 { a } else { b }),
        (a, b) => a.or(b),
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    find(haystack, needle).is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_split_across_reads_are_reassembled() {
        let now = Instant::now();
        let mut events = EventStream::default();
        let role = br#"data: {"choices":[{"delta":{"role":"assistant"}}]}"#;
        let content = br#"data: {"choices":[{"delta":{"content":"hi"}}]}"#;
        let mut all = Vec::new();
        for event in [&role[..], &content[..], b"data: [DONE]"] {
            all.extend_from_slice(event);
            all.extend_from_slice(b"\n\n");
        }
        let (a, b) = all.split_at(60);
        events.feed(a, now);
        assert!(events.first_content.is_none());
        events.feed(b, now + Duration::from_millis(1));
        assert_eq!(events.first_content, Some(now + Duration::from_millis(1)));
        assert_eq!(events.events, 2);
        assert!(events.done);
        assert!(events.error.is_none());
    }

    #[test]
    fn an_error_event_after_content_is_an_error() {
        let now = Instant::now();
        let mut events = EventStream::default();
        events.feed(
            b"data: {\"choices\":[{\"text\":\"x\"}]}\r\n\r\ndata: {\"error\":{\"message\":\"boom\"}}\r\n\r\n",
            now,
        );
        assert!(events.first_content.is_some());
        assert!(events.error.as_deref().is_some_and(|e| e.contains("boom")));
        assert!(!events.done);
    }
}
