//! `redis-cli` against one local node, and bounded polling on its answers
//! (the launchers wait for what they need to see, never for time).

use std::io;
use std::process::Command;
use std::time::{Duration, Instant};

/// `redis-cli -p PORT ARGS...`: its output, or an error with its stderr.
pub fn cli(port: u16, args: &[&str]) -> io::Result<String> {
    let out = Command::new("redis-cli")
        .args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .args(args)
        .output()?;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    if !out.status.success() || stdout.starts_with("ERR") || stdout.starts_with("Could not connect")
    {
        return Err(io::Error::other(format!(
            "redis-cli -p {port} {}: {stdout}{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        )));
    }
    Ok(stdout)
}

/// The value of `field:` in an `INFO` answer.
pub fn info_field(info: &str, field: &str) -> Option<String> {
    info.lines()
        .find_map(|l| l.trim().strip_prefix(field)?.strip_prefix(':'))
        .map(str::to_string)
}

/// Checks `check` every 20 ms until it returns `Some`, for at most
/// `limit`; an error naming `what` after that.
pub fn poll<T>(what: &str, limit: Duration, mut check: impl FnMut() -> Option<T>) -> io::Result<T> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(value) = check() {
            return Ok(value);
        }
        if Instant::now() > deadline {
            return Err(io::Error::other(format!(
                "timed out after {limit:?} waiting for {what}"
            )));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}
