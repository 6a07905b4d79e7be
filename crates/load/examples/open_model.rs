//! The quick mode without the rest of the binary, for profiling the
//! engine in a build of one crate:
//! `cargo run --release -p reliable-load --example open_model -- URL RATE SECS [THREADS]`
//! prints the same JSON report as `reliable load --json`.

use std::time::Duration;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let usage = "usage: open_model URL RATE SECS [THREADS]";
    let url: url::Url = args.next().ok_or(usage)?.parse()?;
    let rate: f64 = args.next().ok_or(usage)?.parse()?;
    let secs: u64 = args.next().ok_or(usage)?.parse()?;
    let options = reliable_load::EngineOptions {
        threads: args.next().map(|t| t.parse()).transpose()?,
        ..Default::default()
    };
    let spec = reliable_load::LoadSpec {
        url,
        method: http::Method::GET,
        headers: Vec::new(),
        rate: (rate > 0.0).then_some(rate),
        duration: Duration::from_secs(secs),
        warmup: Duration::ZERO,
        connections: 64,
        timeout: Duration::from_secs(5),
    };
    let report = reliable_load::run_url(spec, &options).await?;
    println!("{}", serde_json::to_string(&report)?);
    Ok(())
}
