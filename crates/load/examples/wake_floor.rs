//! The open model's lateness floor, for `scripts/bench-load`: how late the
//! machine wakes a thread that only waits on the generator's precise
//! timer, every PERIOD_US (default 200, the dispatcher's batch window),
//! for SECS seconds. Run it beside `reliable load --rate` to see what part
//! of the generator's lateness is the machine's:
//! `cargo run --release -p reliable-load --example wake_floor -- SECS [PERIOD_US]`
//! prints the overshoot percentiles as JSON (the fields of `lateness`).

use std::time::Duration;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let usage = "usage: wake_floor SECS [PERIOD_US]";
    let secs: f64 = args.next().ok_or(usage)?.parse()?;
    let period_us: u64 = args.next().map(|p| p.parse()).transpose()?.unwrap_or(200);
    let overshoot = reliable_load::floor::wake_overshoot(
        Duration::from_secs_f64(secs),
        Duration::from_micros(period_us.max(1)),
    )?;
    println!("{}", serde_json::to_string(&overshoot)?);
    Ok(())
}
