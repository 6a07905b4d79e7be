//! The scripted OpenAI-compatible backend as a standalone process, for
//! benchmarks that need a backend whose speed is known exactly
//! (`scripts/bench-llm` puts the LLM gateway and LiteLLM in front of it).
//!
//! ```text
//! cargo run --release -p reliable-testkit --example openai_backend -- \
//!     --ttft-ms 50 --inter-token-ms 5 --tokens 64
//! listening on 127.0.0.1:40213
//! ```
//!
//! It prints `listening on ADDR` once ready (base URL `http://ADDR/v1`)
//! and serves until SIGINT or SIGTERM. Flags: `--port` (only `0`: the
//! backend binds a free port itself; read the address from the line it
//! prints), `--ttft-ms` (0), `--inter-token-ms` (0), `--tokens` (64),
//! `--model` (`bench-model`, the id `GET /v1/models` lists), `--threads`
//! (Tokio worker threads, 1).
//!
//! Timed delays are Tokio sleeps, so they end on the runtime's next
//! millisecond tick: a 50 ms first token takes 50-51 ms.

use std::process::ExitCode;
use std::time::Duration;
use testkit::openai::{Script, ScriptedBackend};

struct Args {
    ttft: Duration,
    inter_token: Duration,
    tokens: u32,
    model: String,
    threads: usize,
}

const USAGE: &str = "usage: openai_backend [--port 0] [--ttft-ms N] [--inter-token-ms N] \
                     [--tokens N] [--model ID] [--threads N]";

fn parse_args(mut argv: impl Iterator<Item = String>) -> Result<Args, String> {
    let mut args = Args {
        ttft: Duration::ZERO,
        inter_token: Duration::ZERO,
        tokens: 64,
        model: "bench-model".to_string(),
        threads: 1,
    };
    while let Some(flag) = argv.next() {
        let mut value = || argv.next().ok_or_else(|| format!("{flag} needs a value"));
        let number = |v: String| {
            v.parse::<u64>()
                .map_err(|_| format!("{flag}: '{v}' is not a whole number"))
        };
        match flag.as_str() {
            "--port" => {
                if number(value()?)? != 0 {
                    return Err("--port: the scripted backend binds a free port itself \
                                (pass 0 and read the `listening on` line)"
                        .to_string());
                }
            }
            "--ttft-ms" => args.ttft = Duration::from_millis(number(value()?)?),
            "--inter-token-ms" => args.inter_token = Duration::from_millis(number(value()?)?),
            "--tokens" => {
                args.tokens = u32::try_from(number(value()?)?)
                    .map_err(|_| "--tokens: too large".to_string())?
            }
            "--model" => args.model = value()?,
            "--threads" => {
                args.threads = usize::try_from(number(value()?)?.max(1))
                    .map_err(|_| "--threads: too large".to_string())?
            }
            "-h" | "--help" => return Err(USAGE.to_string()),
            other => return Err(format!("unknown flag '{other}'\n{USAGE}")),
        }
    }
    Ok(args)
}

fn main() -> ExitCode {
    let args = match parse_args(std::env::args().skip(1)) {
        Ok(args) => args,
        Err(message) => {
            eprintln!("openai_backend: {message}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.threads)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("openai_backend: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(serve(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("openai_backend: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(args: Args) -> std::io::Result<()> {
    let backend = ScriptedBackend::start(Script {
        ttft: args.ttft,
        inter_token: args.inter_token,
        tokens: args.tokens,
        models: vec![args.model],
        ..Script::default()
    })
    .await?;
    println!("listening on {}", backend.addr());
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate.recv() => {}
    }
    backend.stop().await;
    let stats = backend.stats();
    eprintln!(
        "openai_backend: {} requests, {} completed, {} cancelled, {} connections",
        stats.requests, stats.completed, stats.cancelled, stats.connections
    );
    Ok(())
}
