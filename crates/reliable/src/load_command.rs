//! `reliable load`: the CLI face of the `load` crate.

use clap::Args;
use http::{HeaderName, HeaderValue, Method};
use std::process::ExitCode;
use std::time::Duration;

#[derive(Debug, Args)]
pub struct LoadArgs {
    /// Target URL (http only).
    #[arg(long)]
    url: url::Url,
    /// Requests per second (open model). Omit for maximum throughput.
    #[arg(long)]
    rate: Option<f64>,
    /// Measured duration, e.g. `10s`.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    duration: Duration,
    /// Unmeasured run before the measured one.
    #[arg(long, default_value = "0s", value_parser = humantime::parse_duration)]
    warmup: Duration,
    /// Concurrent keep-alive connections.
    #[arg(long, default_value_t = 64)]
    connections: usize,
    #[arg(long, default_value = "GET")]
    method: Method,
    /// Extra request header, `Name: value`; repeatable.
    #[arg(long = "header", value_parser = parse_header)]
    headers: Vec<(HeaderName, HeaderValue)>,
    /// A request slower than this is an error.
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    timeout: Duration,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

fn parse_header(value: &str) -> Result<(HeaderName, HeaderValue), String> {
    let (name, value) = value
        .split_once(':')
        .ok_or_else(|| "expected `Name: value`".to_string())?;
    let name = HeaderName::try_from(name.trim()).map_err(|e| e.to_string())?;
    let value = HeaderValue::try_from(value.trim()).map_err(|e| e.to_string())?;
    Ok((name, value))
}

pub fn run(args: LoadArgs) -> ExitCode {
    let spec = load::LoadSpec {
        url: args.url,
        method: args.method,
        headers: args.headers,
        rate: args.rate,
        duration: args.duration,
        warmup: args.warmup,
        connections: args.connections,
        timeout: args.timeout,
    };
    let Some(runtime) = crate::runtime() else {
        return ExitCode::FAILURE;
    };
    match runtime.block_on(load::run(spec)) {
        Ok(report) => {
            if args.json {
                match serde_json::to_string(&report) {
                    Ok(json) => println!("{json}"),
                    Err(e) => {
                        eprintln!("error: {e}");
                        return ExitCode::FAILURE;
                    }
                }
            } else {
                print!("{report}");
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}
