//! `reliable chaos ...`: fault injection. `proxy` serves the fault proxy
//! (toxiproxy's HTTP API, crates/chaos); further subcommands (experiments)
//! are added to [`Action`].

use chaos::proxy::{Proxies, ProxyServer, ProxySpec};
use clap::{Args, Subcommand};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Debug, Args)]
pub struct ChaosArgs {
    #[command(subcommand)]
    action: Action,
}

#[derive(Debug, Subcommand)]
enum Action {
    /// Serve the fault proxy: TCP proxies with injected faults, driven
    /// through Shopify toxiproxy's HTTP API (its clients work unchanged).
    Proxy(ProxyArgs),
}

#[derive(Debug, Args)]
pub struct ProxyArgs {
    /// Address of the control API (toxiproxy's default; port 0 picks one,
    /// printed as `listening on http://ADDR`).
    #[arg(long, default_value = "127.0.0.1:8474")]
    listen: SocketAddr,
    /// Proxies to create at start: a JSON list as `POST /populate` takes
    /// (toxiproxy's `-config`).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Seed for the toxicity draws (default: from the clock), so a run
    /// affects the same connections when repeated.
    #[arg(long)]
    seed: Option<u64>,
    /// Log filter (as RELIABLE_LOG).
    #[arg(long, env = "RELIABLE_LOG", default_value = "info")]
    log: String,
}

pub fn run(args: ChaosArgs) -> ExitCode {
    match args.action {
        Action::Proxy(args) => proxy(args),
    }
}

fn proxy(args: ProxyArgs) -> ExitCode {
    // Usage errors first: a bad file must not leave a half-started proxy.
    let specs = match &args.config {
        None => Vec::new(),
        Some(path) => match std::fs::read(path) {
            Err(e) => {
                eprintln!("error: cannot read {}: {e}", path.display());
                return ExitCode::from(2);
            }
            Ok(bytes) => match ProxySpec::list_from_json(&bytes) {
                Ok(specs) => specs,
                Err(e) => {
                    eprintln!("error: {}: {e}", path.display());
                    return ExitCode::from(2);
                }
            },
        },
    };
    let telemetry = match kit::telemetry::init("chaos-proxy", &args.log) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let Some(runtime) = crate::runtime() else {
        return ExitCode::FAILURE;
    };
    let code = runtime.block_on(async {
        let stop = kit::shutdown::signal();
        let proxies = args.seed.map_or_else(Proxies::new, Proxies::with_seed);
        let (done, error) = proxies.populate(specs).await;
        if let Some(e) = error {
            eprintln!("error: {}: {e}", args.config.as_deref().unwrap_or_else(|| "config".as_ref()).display());
            proxies.shutdown().await;
            return ExitCode::FAILURE;
        }
        let server = match ProxyServer::start_with(args.listen, proxies).await {
            Ok(server) => server,
            Err(e) => {
                eprintln!("error: cannot listen on {}: {e}", args.listen);
                return ExitCode::FAILURE;
            }
        };
        for p in &done {
            tracing::info!(proxy = %p.name, listen = %p.listen, upstream = %p.upstream, "proxy created from the config file");
        }
        println!("listening on {}", server.url());
        stop.await;
        server.shutdown().await;
        ExitCode::SUCCESS
    });
    telemetry.shutdown();
    code
}
