//! The HTML report opens in a real browser and its charts render: headless
//! Chromium (Debian's `chromium`, installed by scripts/test) screenshots a
//! report built from hand-made results, and the test reads the pixels.
//!
//! Without Chromium the test fails and says how to get it, unless
//! `RELIABLE_SKIP_BROWSER=1` asks to skip it.

use reliable_load::output::{self, SERIES_COLORS};
use reliable_load::plan::{Executor, Plan, RequestPlan, ScenarioPlan, StatusSet};
use reliable_load::results::{record, Outcome, Point, Results, ScenarioResults, Series, Stats};
use reliable_load::scenario::Template;
use reliable_load::threshold::Verdict;
use std::path::{Path, PathBuf};
use std::time::Duration;

const WIDTH: u32 = 1200;
const HEIGHT: u32 = 2400;
const BROWSER_TIMEOUT: Duration = Duration::from_secs(60);

fn request(name: &str) -> RequestPlan {
    RequestPlan {
        name: name.to_string(),
        weight: 1,
        method: http::Method::GET,
        url: Template::literal("http://127.0.0.1:8080/"),
        headers: Vec::new(),
        body: None,
        captures: Vec::new(),
        checks: Vec::new(),
        expect_status: StatusSet::default(),
        timeout: Duration::from_secs(5),
    }
}

fn plan() -> Plan {
    Plan {
        pools: Vec::new(),
        setup: Vec::new(),
        scenarios: vec![ScenarioPlan {
            name: "baseline".to_string(),
            executor: Executor::ConstantArrivalRate {
                rate: 50.0,
                duration: Duration::from_secs(60),
            },
            start: Duration::ZERO,
            connections: 16,
            http2: false,
            insecure_tls: false,
            warmup: Duration::ZERO,
            requests: vec![
                request("create"),
                request("redirect"),
                request("<b>stats</b>"),
            ],
        }],
        teardown: Vec::new(),
        thresholds: Vec::new(),
        dau: None,
    }
}

/// `n` answers from 1 ms rising to `slowest_ms`.
fn stats(n: u64, slowest_ms: u64) -> Stats {
    let mut stats = Stats::default();
    for i in 0..n {
        let us = 1_000 + i * slowest_ms * 1_000 / n;
        stats.record_outcome(Outcome::Status(200), true, Duration::from_micros(us));
        record(&mut stats.lateness, Duration::from_micros(50));
    }
    stats.sent = n;
    stats
}

fn series(name: &str, base_us: u64, phase: f64) -> Series {
    let mut series = Series {
        scenario: "baseline".to_string(),
        name: name.to_string(),
        points: Vec::new(),
    };
    for second in 0..60u64 {
        let wave = ((second as f64 + phase) / 5.0).sin() * 0.5 + 0.5;
        let p50 = base_us + (wave * base_us as f64) as u64;
        series.push(Point {
            t: (second + 1) as f64,
            width: 1.0,
            sent: 10 + (wave * 20.0) as u64,
            completed: 10 + (wave * 20.0) as u64,
            errors: (wave * 3.0) as u64,
            check_failures: 0,
            p50_us: p50,
            p90_us: p50 * 2,
            p99_us: p50 * 3,
            max_us: p50 * 4,
            lateness_p99_us: 60,
        });
    }
    series
}

fn results() -> Results {
    Results {
        setup: Vec::new(),
        scenarios: vec![ScenarioResults {
            name: "baseline".to_string(),
            executor: "constant-arrival-rate",
            target_rate: Some(50.0),
            connections: 16,
            start: Duration::ZERO,
            duration: Duration::from_secs(60),
            scheduled: 3_000,
            dropped: 0,
            requests: vec![
                ("create".to_string(), stats(300, 20)),
                ("redirect".to_string(), stats(2_400, 12)),
                ("<b>stats</b>".to_string(), stats(300, 40)),
            ],
        }],
        teardown: Vec::new(),
        series: vec![
            series("create", 2_000, 0.0),
            series("redirect", 1_000, 2.0),
            series("<b>stats</b>", 4_000, 4.0),
        ],
        started_unix_ms: 1_700_000_000_000,
        elapsed: Duration::from_secs(60),
        aborted_by: None,
    }
}

fn verdicts() -> Vec<Verdict> {
    vec![Verdict {
        key: "http_req_duration".to_string(),
        expression: "p(99) < 25ms".to_string(),
        observed: Some("24.1ms".to_string()),
        passed: true,
    }]
}

fn find_chromium() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .flat_map(|dir| ["chromium", "chromium-browser"].map(|name| dir.join(name)))
        .find(|candidate| candidate.is_file())
}

async fn screenshot(chromium: &Path, page: &Path, dir: &Path) -> PathBuf {
    let shot = dir.join("report.png");
    let mut command = tokio::process::Command::new(chromium);
    command
        .arg("--headless")
        .arg("--no-sandbox")
        .arg("--disable-gpu")
        .arg("--disable-dev-shm-usage")
        .arg("--hide-scrollbars")
        .arg("--force-device-scale-factor=1")
        .arg(format!("--user-data-dir={}", dir.join("profile").display()))
        .arg(format!("--screenshot={}", shot.display()))
        .arg(format!("--window-size={WIDTH},{HEIGHT}"))
        .arg(format!("file://{}", page.display()))
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true);
    let output = tokio::time::timeout(BROWSER_TIMEOUT, command.output())
        .await
        .unwrap_or_else(|_| panic!("chromium took more than {BROWSER_TIMEOUT:?}; killed"))
        .expect("chromium starts");
    assert!(
        output.status.success() && shot.is_file(),
        "chromium failed ({}):\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    shot
}

/// RGB pixels, row by row.
fn decode(png_file: &Path) -> (u32, u32, Vec<[u8; 3]>) {
    let file =
        std::io::BufReader::new(std::fs::File::open(png_file).expect("the screenshot opens"));
    let mut reader = png::Decoder::new(file).read_info().expect("a PNG");
    let mut buffer = vec![0; reader.output_buffer_size().expect("a sane size")];
    let info = reader.next_frame(&mut buffer).expect("one frame");
    let channels = info.color_type.samples();
    assert_eq!(info.bit_depth, png::BitDepth::Eight);
    let pixels = buffer[..info.buffer_size()]
        .chunks(channels)
        .map(|p| match p {
            [gray] | [gray, _] => [*gray; 3],
            [r, g, b, ..] => [*r, *g, *b],
            [] => [255; 3],
        })
        .collect();
    (info.width, info.height, pixels)
}

fn hex(color: &str) -> [u8; 3] {
    let channel = |i: usize| u8::from_str_radix(&color[i..i + 2], 16).expect("a hex colour");
    [channel(1), channel(3), channel(5)]
}

fn near(a: [u8; 3], b: [u8; 3]) -> bool {
    a.iter().zip(b).all(|(x, y)| x.abs_diff(y) <= 24)
}

#[tokio::test]
async fn the_report_renders_its_charts_in_chromium() {
    let Some(chromium) = find_chromium() else {
        if std::env::var("RELIABLE_SKIP_BROWSER").as_deref() == Ok("1") {
            println!("skipped: no chromium on PATH and RELIABLE_SKIP_BROWSER=1");
            return;
        }
        panic!(
            "no `chromium` or `chromium-browser` on PATH: run scripts/test, which installs \
             Debian's chromium (or set RELIABLE_SKIP_BROWSER=1 to skip this test)"
        );
    };
    let dir = tempfile::tempdir().expect("a temp dir");
    let page = dir.path().join("report.html");
    std::fs::write(&page, output::html(&plan(), &results(), &verdicts())).expect("writable");

    let shot = screenshot(&chromium, &page, dir.path()).await;
    let (width, height, pixels) = decode(&shot);
    assert_eq!((width, height), (WIDTH, HEIGHT));

    // Not an empty page: text, tables and charts put ink on it.
    let ink = pixels.iter().filter(|p| p.iter().any(|c| *c < 200)).count();
    assert!(ink > 20_000, "only {ink} non-white pixels");

    // Each series colour draws lines, not just a legend swatch (56 px):
    // a 2.5 px line across a 1,000 px chart is a few thousand pixels.
    for color in &SERIES_COLORS[..3] {
        let rgb = hex(color);
        let count = pixels.iter().filter(|p| near(**p, rgb)).count();
        assert!(count > 2_000, "series colour {color}: {count} pixels");
    }

    // Four charts: bands of rows holding series colours, separated by
    // rows that hold none (legends are thin and ignored).
    let coloured_rows: Vec<usize> = (0..height as usize)
        .map(|y| {
            pixels[y * width as usize..(y + 1) * width as usize]
                .iter()
                .filter(|p| SERIES_COLORS[..3].iter().any(|c| near(**p, hex(c))))
                .count()
        })
        .collect();
    // (first row, last row, pixels)
    let mut bands: Vec<(usize, usize, usize)> = Vec::new();
    for (y, count) in coloured_rows.iter().enumerate() {
        if *count == 0 {
            continue;
        }
        match bands.last_mut() {
            Some(band) if y <= band.1 + 20 => {
                band.1 = y;
                band.2 += count;
            }
            _ => bands.push((y, y, *count)),
        }
    }
    let charts = bands
        .iter()
        .filter(|(first, last, pixels)| last - first >= 15 && *pixels > 1_000)
        .count();
    assert!(
        charts >= 4,
        "chart bands (first row, last row, pixels): {bands:?}"
    );
}
