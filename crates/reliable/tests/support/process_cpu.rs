//! CPU seconds spent by the processes of a benchmark, read from /proc, so
//! a run on a shared machine can say which process took the time: the
//! platform, PostgreSQL, each NATS server, the load generator.

use std::path::Path;

/// Clock ticks per second (`getconf CLK_TCK`, 100 on Linux).
fn ticks() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100.0)
}

/// The fields of /proc/PID/stat after the command name.
fn stat_fields(pid: u32) -> Option<Vec<String>> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = stat.get(stat.rfind(')')? + 2..)?;
    Some(rest.split(' ').map(str::to_string).collect())
}

fn field(fields: &[String], i: usize) -> f64 {
    fields.get(i).and_then(|v| v.parse().ok()).unwrap_or(0.0)
}

/// User + system CPU seconds of `pid`; with `children`, also of its
/// children that have exited and were waited for.
pub fn cpu_seconds(pid: u32, children: bool) -> f64 {
    let Some(f) = stat_fields(pid) else {
        return 0.0;
    };
    // utime, stime, cutime, cstime are fields 14-17 of stat (11-14 here).
    let own = field(&f, 11) + field(&f, 12);
    let waited = if children {
        field(&f, 13) + field(&f, 14)
    } else {
        0.0
    };
    (own + waited) / ticks()
}

fn parent_of(pid: u32) -> Option<u32> {
    stat_fields(pid)?.get(1)?.parse().ok()
}

fn all_pids() -> Vec<u32> {
    std::fs::read_dir("/proc")
        .map(|d| {
            d.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// CPU seconds of a PostgreSQL server, given one of its backends: the
/// postmaster, its live children and those that have exited.
pub fn postgres_cpu(backend_pid: u32) -> f64 {
    let Some(postmaster) = parent_of(backend_pid) else {
        return 0.0;
    };
    cpu_seconds(postmaster, true)
        + all_pids()
            .into_iter()
            .filter(|&p| parent_of(p) == Some(postmaster))
            .map(|p| cpu_seconds(p, false))
            .sum::<f64>()
}

/// The pids of processes named `name` whose command line contains
/// `needle` (a port, a config directory).
pub fn pids_of(name: &str, needle: &str) -> Vec<u32> {
    all_pids()
        .into_iter()
        .filter(|&p| {
            let comm = std::fs::read_to_string(format!("/proc/{p}/comm")).unwrap_or_default();
            let cmdline = std::fs::read(format!("/proc/{p}/cmdline"))
                .map(|c| String::from_utf8_lossy(&c).replace('\0', " "))
                .unwrap_or_default();
            comm.trim() == name && cmdline.contains(needle)
        })
        .collect()
}

/// The pid in a pid file, if it holds one.
pub fn pid_in(file: &Path) -> Option<u32> {
    std::fs::read_to_string(file).ok()?.trim().parse().ok()
}
