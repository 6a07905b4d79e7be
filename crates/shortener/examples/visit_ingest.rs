//! Visit ingest into one PostgreSQL, for `scripts/bench-visit-ingest`: the
//! shipped writer (`LinkStore::record_visits`, binary `COPY` in batches of
//! BENCH_BATCH) against, in the same run, a row-at-a-time writer (one
//! transaction per visit: its `INSERT` and its link's count `UPDATE`) and
//! the batched `INSERT ... SELECT FROM UNNEST` the store used before.
//! Runs alternate (`copy, unnest, row`, then reversed) so machine drift
//! hits every writer; medians are printed as a Markdown table.
//!
//! Each phase is checked: the visits and the links' counts it added equal
//! the visits it wrote (the `lost` column). CPU is read from /proc: the
//! PostgreSQL server's (every process in `pg_stat_activity`) and this
//! process's, per visit, so a figure from a shared machine can be told
//! apart from a limit of the writer.
//!
//! Environment: BENCH_VISITS (200000, per COPY/UNNEST phase), BENCH_ROW_VISITS
//! (10000, per row-at-a-time phase), BENCH_RUNS (5), BENCH_BATCH (5000),
//! BENCH_WRITERS (1: concurrent writers, as replicas would be), BENCH_LINKS (1000).
//! The server is private (testkit: a temp dir, a free port,
//! `synchronous_commit=on`, `fsync=off`).

use chrono::{Duration as Delta, Utc};
use kit::storage::{Pool, PoolConfig};
use shortener::domain::{NewLink, RedirectStatus, Slug, Tags, TargetUrl, Visit};
use shortener::storage::{LinkStore, PostgresStore};
use sqlx::PgPool;
use std::sync::Arc;
use std::time::Instant;

type Error = Box<dyn std::error::Error + Send + Sync>;

fn env(name: &str, default: usize) -> Result<usize, Error> {
    match std::env::var(name) {
        Ok(v) => Ok(v
            .parse()
            .map_err(|e| format!("{name}={v}: not a count ({e})"))?),
        Err(_) => Ok(default),
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Writer {
    Copy,
    Unnest,
    Row,
}

impl Writer {
    fn name(self) -> &'static str {
        match self {
            Writer::Copy => "COPY batches (shipped)",
            Writer::Unnest => "INSERT ... UNNEST batches (previous)",
            Writer::Row => "row at a time (baseline)",
        }
    }
}

struct Phase {
    rate: f64,
    server_us: f64,
    client_us: f64,
    lost: i64,
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    let visits_n = env("BENCH_VISITS", 200_000)?;
    let row_n = env("BENCH_ROW_VISITS", 10_000)?;
    let runs = env("BENCH_RUNS", 5)?.max(1);
    let batch = env("BENCH_BATCH", 5_000)?.max(1);
    let writers = env("BENCH_WRITERS", 1)?.max(1);
    let links_n = env("BENCH_LINKS", 1_000)?.max(1);

    let server = testkit::PgServer::start_durable()?;
    let url = server.create_database();
    let store = Arc::new(
        PostgresStore::connect(&url, &PoolConfig::with_max_connections(writers as u32 + 1)).await?,
    );
    let Pool::Postgres(pool) = store.pool() else {
        return Err("not a PostgreSQL pool".into());
    };
    let now = Utc::now();
    store.maintain_visits(now, None).await?;
    let mut link_ids = Vec::with_capacity(links_n);
    for i in 0..links_n {
        let link = NewLink {
            slug: None,
            url: TargetUrl::parse(&format!("https://target.example/{i}"))?,
            redirect_status: RedirectStatus::Found,
            expires_at: None,
            max_visits: None,
            tags: Tags::default(),
        };
        link_ids.push(
            store
                .create(&Slug::parse(&format!("l{i}"))?, &link, now)
                .await?
                .id,
        );
    }
    let make = |n: usize| -> Vec<Visit> {
        (0..n)
            .map(|i| Visit {
                link_id: link_ids[i % link_ids.len()],
                at: now + Delta::microseconds(i as i64),
                referrer_host: Some("news.example.com".into()),
                client_ip: Some(std::net::IpAddr::from([198, 51, (i % 256) as u8, 0])),
                user_agent: Some(
                    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36"
                        .into(),
                ),
                is_bot: i % 10 == 0,
                counted: false,
            })
            .collect()
    };
    let batched = Arc::new(make(visits_n));
    let rows = Arc::new(make(row_n));
    let ticks = clock_ticks();
    eprintln!(
        "visit_ingest: {visits_n} visits per batched phase, {row_n} per row phase, batch {batch}, {writers} writer(s), {runs} runs"
    );

    let order = [Writer::Copy, Writer::Unnest, Writer::Row];
    let mut results: Vec<(Writer, Vec<Phase>)> = order.iter().map(|w| (*w, Vec::new())).collect();
    for run in 0..runs {
        let mut this_run = order.to_vec();
        if run % 2 == 1 {
            this_run.reverse();
        }
        for writer in this_run {
            let visits = if writer == Writer::Row {
                &rows
            } else {
                &batched
            };
            let before = totals(&pool).await?;
            let (server0, client0) = (server_cpu(&pool, ticks).await?, self_cpu(ticks)?);
            let started = Instant::now();
            write(writer, &store, &pool, visits, batch, writers).await?;
            let seconds = started.elapsed().as_secs_f64();
            let (server1, client1) = (server_cpu(&pool, ticks).await?, self_cpu(ticks)?);
            let after = totals(&pool).await?;
            let n = visits.len() as f64;
            let written = (after.0 - before.0).min(after.1 - before.1);
            let phase = Phase {
                rate: n / seconds,
                server_us: (server1 - server0) * 1e6 / n,
                client_us: (client1 - client0) * 1e6 / n,
                lost: visits.len() as i64 - written,
            };
            eprintln!(
                "run {}: {:<38} {:>9.0} visits/s  server {:>5.1} us/visit  client {:>5.1} us/visit  lost {}",
                run + 1,
                writer.name(),
                phase.rate,
                phase.server_us,
                phase.client_us,
                phase.lost
            );
            if let Some((_, phases)) = results.iter_mut().find(|(w, _)| *w == writer) {
                phases.push(phase);
            }
        }
    }

    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        let mid = v.len() / 2;
        if v.len() % 2 == 1 {
            v[mid]
        } else {
            (v[mid - 1] + v[mid]) / 2.0
        }
    };
    let row_rate = results
        .iter()
        .find(|(w, _)| *w == Writer::Row)
        .map(|(_, p)| median(p.iter().map(|p| p.rate).collect()))
        .unwrap_or(f64::NAN);
    println!("| writer | visits/s (median of {runs}) | vs row at a time | PostgreSQL CPU per visit | writer CPU per visit | lost |");
    println!("|---|---:|---:|---:|---:|---:|");
    for (writer, phases) in &results {
        let rate = median(phases.iter().map(|p| p.rate).collect());
        println!(
            "| {} | {:.0} | {:.1}x | {:.1} us | {:.1} us | {} |",
            writer.name(),
            rate,
            rate / row_rate,
            median(phases.iter().map(|p| p.server_us).collect()),
            median(phases.iter().map(|p| p.client_us).collect()),
            phases.iter().map(|p| p.lost).sum::<i64>()
        );
    }
    Ok(())
}

/// Writes `visits` with `writer`, split over `writers` concurrent tasks.
async fn write(
    writer: Writer,
    store: &Arc<PostgresStore>,
    pool: &PgPool,
    visits: &Arc<Vec<Visit>>,
    batch: usize,
    writers: usize,
) -> Result<(), Error> {
    let share = visits.len().div_ceil(writers);
    let mut tasks = tokio::task::JoinSet::new();
    for w in 0..writers {
        let (store, pool, visits) = (store.clone(), pool.clone(), visits.clone());
        tasks.spawn(async move {
            let mine = &visits[(w * share).min(visits.len())..((w + 1) * share).min(visits.len())];
            match writer {
                Writer::Copy => {
                    for chunk in mine.chunks(batch) {
                        store.record_visits(chunk).await?;
                    }
                }
                Writer::Unnest => {
                    for chunk in mine.chunks(batch) {
                        unnest_batch(&pool, chunk).await?;
                    }
                }
                Writer::Row => {
                    for visit in mine {
                        row(&pool, visit).await?;
                    }
                }
            }
            Ok::<(), Error>(())
        });
    }
    while let Some(done) = tasks.join_next().await {
        done??;
    }
    Ok(())
}

/// One visit, one transaction: what a redirect writing its own visit does.
async fn row(pool: &PgPool, v: &Visit) -> Result<(), Error> {
    let mut tx = pool.begin().await?;
    sqlx::query(
        "INSERT INTO visits (link_id, visited_at, referrer_host, client_ip, user_agent, is_bot)
         SELECT $1, $2, $3, $4, $5, $6 WHERE EXISTS (SELECT 1 FROM links WHERE id = $1)",
    )
    .bind(v.link_id)
    .bind(v.at.timestamp_micros())
    .bind(&v.referrer_host)
    .bind(v.client_ip.map(|ip| ip.to_string()))
    .bind(&v.user_agent)
    .bind(v.is_bot)
    .execute(&mut *tx)
    .await?;
    sqlx::query("UPDATE links SET visit_count = visit_count + 1 WHERE id = $1")
        .bind(v.link_id)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(())
}

/// The store's batch before `COPY`: one `INSERT ... SELECT FROM UNNEST`
/// and one count `UPDATE` per batch.
async fn unnest_batch(pool: &PgPool, visits: &[Visit]) -> Result<(), Error> {
    let mut counts = std::collections::BTreeMap::<i64, i64>::new();
    for v in visits {
        *counts.entry(v.link_id).or_default() += 1;
    }
    let (ids, ns): (Vec<i64>, Vec<i64>) = counts.into_iter().unzip();
    let mut tx = pool.begin().await?;
    sqlx::query(
        "INSERT INTO visits (link_id, visited_at, referrer_host, client_ip, user_agent, is_bot)
         SELECT v.link_id, v.visited_at, v.referrer_host, v.client_ip, v.user_agent, v.is_bot
         FROM UNNEST($1::bigint[], $2::bigint[], $3::text[], $4::text[], $5::text[], $6::bool[])
              AS v(link_id, visited_at, referrer_host, client_ip, user_agent, is_bot)
         WHERE EXISTS (SELECT 1 FROM links l WHERE l.id = v.link_id)",
    )
    .bind(visits.iter().map(|v| v.link_id).collect::<Vec<_>>())
    .bind(
        visits
            .iter()
            .map(|v| v.at.timestamp_micros())
            .collect::<Vec<_>>(),
    )
    .bind(
        visits
            .iter()
            .map(|v| v.referrer_host.clone())
            .collect::<Vec<_>>(),
    )
    .bind(
        visits
            .iter()
            .map(|v| v.client_ip.map(|ip| ip.to_string()))
            .collect::<Vec<_>>(),
    )
    .bind(
        visits
            .iter()
            .map(|v| v.user_agent.clone())
            .collect::<Vec<_>>(),
    )
    .bind(visits.iter().map(|v| v.is_bot).collect::<Vec<_>>())
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "UPDATE links l SET visit_count = l.visit_count + c.n
         FROM UNNEST($1::bigint[], $2::bigint[]) AS c(id, n) WHERE l.id = c.id",
    )
    .bind(&ids)
    .bind(&ns)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(())
}

/// Visits stored and visits counted on links.
async fn totals(pool: &PgPool) -> Result<(i64, i64), Error> {
    Ok(sqlx::query_as(
        "SELECT (SELECT count(*) FROM visits), (SELECT COALESCE(sum(visit_count), 0)::bigint FROM links)",
    )
    .fetch_one(pool)
    .await?)
}

fn clock_ticks() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100.0)
}

/// User + system CPU seconds of a process, from /proc/PID/stat.
fn cpu_of(pid: &str, ticks: f64) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name, which is in parentheses.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split(' ').collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / ticks)
}

fn self_cpu(ticks: f64) -> Result<f64, Error> {
    cpu_of("self", ticks).ok_or_else(|| "cannot read /proc/self/stat".into())
}

/// CPU seconds of every server process PostgreSQL lists (backends,
/// WAL writer, checkpointer, background writer...).
async fn server_cpu(pool: &PgPool, ticks: f64) -> Result<f64, Error> {
    let pids: Vec<i32> = sqlx::query_scalar("SELECT pid FROM pg_stat_activity")
        .fetch_all(pool)
        .await?;
    Ok(pids
        .iter()
        .filter_map(|pid| cpu_of(&pid.to_string(), ticks))
        .sum())
}
