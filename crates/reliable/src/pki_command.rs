//! `reliable pki init|issue`: a development CA and the certificates it
//! issues, for local runs and tests (production mounts certificates that
//! cert-manager or step-ca issue; see docs/operations/tls.md).
//!
//! Exit codes: 0 done, 2 bad input (a bad service name, no CA yet, a CA
//! that exists without `--force`), 1 anything else (a write that failed).

use clap::{Args, Subcommand};
use kit::tls::pki::{self, Ca, LeafRequest, PkiError, ServiceName};
use std::net::IpAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

#[derive(Debug, Args)]
pub struct PkiArgs {
    #[command(subcommand)]
    action: Action,
    /// Where the CA lives.
    #[arg(long, global = true, default_value = "./data/pki")]
    dir: PathBuf,
}

#[derive(Debug, Subcommand)]
enum Action {
    /// Create the CA: an ECDSA P-256 root and an intermediate that signs
    /// leaves; keys are written 0600. `ca.pem` is what peers trust.
    Init {
        /// Replace an existing CA (every certificate it issued stops being
        /// trusted once peers load the new ca.pem).
        #[arg(long)]
        force: bool,
    },
    /// Issue a leaf for a service: URI SAN spiffe://reliable/<service>,
    /// serverAuth and clientAuth; writes <service>.pem (leaf and
    /// intermediate) and <service>-key.pem (0600).
    Issue {
        /// Service name: lowercase letters, digits and `-`.
        #[arg(long)]
        service: String,
        /// Lifetime, e.g. 24h, 90m.
        #[arg(long, default_value = "24h", value_parser = humantime::parse_duration)]
        ttl: Duration,
        /// DNS names the certificate covers (repeat or comma-separate);
        /// default: localhost and the service name.
        #[arg(long, value_delimiter = ',')]
        dns: Vec<String>,
        /// IP addresses it covers; default 127.0.0.1.
        #[arg(long, value_delimiter = ',')]
        ip: Vec<IpAddr>,
        /// Output directory; default: the CA directory.
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

pub fn run(args: PkiArgs) -> ExitCode {
    let outcome = match args.action {
        Action::Init { force } => init(&args.dir, force),
        Action::Issue {
            service,
            ttl,
            dns,
            ip,
            out,
        } => issue(&args.dir, &service, ttl, dns, ip, out),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            match e {
                PkiError::NotInitialized { .. }
                | PkiError::AlreadyInitialized { .. }
                | PkiError::BadName(_)
                | PkiError::BadDnsName(_)
                | PkiError::ZeroLifetime
                | PkiError::BadCaFile { .. } => ExitCode::from(2),
                _ => ExitCode::FAILURE,
            }
        }
    }
}

fn init(dir: &std::path::Path, force: bool) -> Result<(), PkiError> {
    Ca::generate()?.write(dir, force)?;
    println!(
        "CA written to {}; trust {} (tls.ca_file)",
        dir.display(),
        dir.join(pki::CA_BUNDLE).display()
    );
    Ok(())
}

fn issue(
    dir: &std::path::Path,
    service: &str,
    ttl: Duration,
    dns: Vec<String>,
    ip: Vec<IpAddr>,
    out: Option<PathBuf>,
) -> Result<(), PkiError> {
    let service = ServiceName::parse(service)?;
    if ttl.is_zero() {
        return Err(PkiError::ZeroLifetime);
    }
    let ca = Ca::load(dir)?;
    let mut request = LeafRequest::new(service.clone(), ttl);
    if !dns.is_empty() {
        request.dns = dns;
    }
    if !ip.is_empty() {
        request.ips = ip;
    }
    let leaf = ca.issue(&request)?;
    let out = out.unwrap_or_else(|| dir.to_path_buf());
    let (cert, key) = pki::write_leaf(&out, &service, &leaf)?;
    println!(
        "certificate for {} valid for {}: {} and {}",
        service.spiffe_id(),
        humantime::format_duration(ttl),
        cert.display(),
        key.display()
    );
    Ok(())
}
