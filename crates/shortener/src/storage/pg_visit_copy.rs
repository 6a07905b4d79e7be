//! Visit batches into PostgreSQL with binary `COPY`.
//!
//! `COPY ... FROM STDIN (FORMAT binary)` streams a batch as one message: no
//! statement per row, no parameter arrays for the server to unnest, no
//! text to parse back into numbers, and the server inserts the rows in
//! multi-row batches into the day's partition. It is what lets one
//! PostgreSQL take tens of thousands of visits a second (the "Visit
//! ingest" figures in docs/performance.md).
//!
//! A batch is one transaction, so it is written whole or not at all and
//! the writer (`crate::visits`) retries a failed one until it succeeds:
//! 1. `SELECT ... FOR KEY SHARE` on the batch's links: the ones still
//!    there, locked until commit. A delete racing the batch waits, then
//!    its trigger (migration 0003) removes the batch's visits; a delete
//!    that came first hides its link here. Visits of deleted links are
//!    skipped, as before. (`visits` has no foreign key: its per-row check
//!    halved the `COPY` rate; this lock is what keeps it consistent.)
//! 2. the `COPY` of the visits of existing links;
//! 3. the `visit_count` of each link grows by its visits that the redirect
//!    did not already count (`Visit::counted`: links with `max_visits`
//!    claim theirs atomically on the redirect path), so the accounting
//!    stays exact.

use super::StoreError;
use crate::domain::Visit;
use kit::storage::time::to_micros;
use sqlx::PgPool;
use std::collections::{BTreeMap, BTreeSet};

/// The columns a batch fills (`id` comes from its sequence).
const COPY_VISITS: &str =
    "COPY visits (link_id, visited_at, referrer_host, client_ip, user_agent, is_bot) FROM STDIN (FORMAT binary)";

/// Binary `COPY` signature, flags (no OIDs) and header extension length.
const HEADER: &[u8] = b"PGCOPY\n\xff\r\n\0\0\0\0\0\0\0\0\0";
const FIELDS: i16 = 6;

pub(super) async fn record_visits(pool: &PgPool, visits: &[Visit]) -> Result<(), StoreError> {
    if visits.is_empty() {
        return Ok(());
    }
    let ids: Vec<i64> = visits
        .iter()
        .map(|v| v.link_id)
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let mut tx = pool.begin().await?;
    // Ordered ids: replicas locking overlapping sets take them in one order.
    let live: BTreeSet<i64> =
        sqlx::query_scalar("SELECT id FROM links WHERE id = ANY($1) ORDER BY id FOR KEY SHARE")
            .bind(&ids)
            .fetch_all(&mut *tx)
            .await?
            .into_iter()
            .collect();
    let kept = visits.iter().filter(|v| live.contains(&v.link_id));
    let mut uncounted: BTreeMap<i64, i64> = BTreeMap::new();
    for visit in kept.clone().filter(|v| !v.counted) {
        *uncounted.entry(visit.link_id).or_default() += 1;
    }
    let rows = encode(kept);
    if rows.len() > HEADER.len() + 2 {
        let mut copy = tx.copy_in_raw(COPY_VISITS).await?;
        copy.send(rows).await?;
        copy.finish().await?;
    }
    if !uncounted.is_empty() {
        let (count_ids, counts): (Vec<i64>, Vec<i64>) = uncounted.into_iter().unzip();
        sqlx::query(
            "UPDATE links l SET visit_count = l.visit_count + c.n
             FROM UNNEST($1::bigint[], $2::bigint[]) AS c(id, n) WHERE l.id = c.id",
        )
        .bind(&count_ids)
        .bind(&counts)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(())
}

/// The binary `COPY` stream of `visits`: header, one tuple per visit,
/// trailer.
pub(crate) fn encode<'a>(visits: impl Iterator<Item = &'a Visit>) -> Vec<u8> {
    let mut out = Vec::with_capacity(4096);
    out.extend_from_slice(HEADER);
    for visit in visits {
        out.extend_from_slice(&FIELDS.to_be_bytes());
        put_i64(&mut out, visit.link_id);
        put_i64(&mut out, to_micros(visit.at));
        put_text(&mut out, visit.referrer_host.as_deref());
        put_text(&mut out, visit.client_ip.map(kit::net::ip_text).as_deref());
        put_text(&mut out, visit.user_agent.as_deref());
        out.extend_from_slice(&1i32.to_be_bytes());
        out.push(u8::from(visit.is_bot));
    }
    out.extend_from_slice(&(-1i16).to_be_bytes());
    out
}

fn put_i64(out: &mut Vec<u8>, value: i64) {
    out.extend_from_slice(&8i32.to_be_bytes());
    out.extend_from_slice(&value.to_be_bytes());
}

/// A `text` field, or SQL NULL. PostgreSQL text cannot hold NUL: one such
/// byte would fail the whole batch on every retry, so NULs are dropped
/// (header values cannot carry them; this is a last line of defence).
fn put_text(out: &mut Vec<u8>, value: Option<&str>) {
    let Some(value) = value else {
        out.extend_from_slice(&(-1i32).to_be_bytes());
        return;
    };
    let start = out.len();
    out.extend_from_slice(&0i32.to_be_bytes());
    if value.contains('\0') {
        out.extend(value.bytes().filter(|b| *b != 0));
    } else {
        out.extend_from_slice(value.as_bytes());
    }
    // A header value is far below 2 GiB; saturate rather than wrap.
    let len = i32::try_from(out.len() - start - 4).unwrap_or(i32::MAX);
    out[start..start + 4].copy_from_slice(&len.to_be_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::DateTime;

    fn visit(user_agent: Option<&str>) -> Visit {
        Visit {
            link_id: 7,
            at: DateTime::from_timestamp_micros(1_000_001).expect("time"),
            referrer_host: Some("r.example".into()),
            client_ip: None,
            user_agent: user_agent.map(str::to_string),
            is_bot: true,
            counted: false,
        }
    }

    #[test]
    fn one_visit_encodes_as_postgres_binary_copy() {
        let bytes = encode([visit(Some("ua"))].iter());
        let mut expected = HEADER.to_vec();
        expected.extend_from_slice(&[0, 6]);
        expected.extend_from_slice(&[0, 0, 0, 8, 0, 0, 0, 0, 0, 0, 0, 7]);
        expected.extend_from_slice(&[0, 0, 0, 8, 0, 0, 0, 0, 0, 0x0f, 0x42, 0x41]);
        expected.extend_from_slice(&[0, 0, 0, 9]);
        expected.extend_from_slice(b"r.example");
        expected.extend_from_slice(&[0xff, 0xff, 0xff, 0xff]);
        expected.extend_from_slice(&[0, 0, 0, 2, b'u', b'a']);
        expected.extend_from_slice(&[0, 0, 0, 1, 1]);
        expected.extend_from_slice(&[0xff, 0xff]);
        assert_eq!(bytes, expected);
    }

    #[test]
    fn an_empty_batch_is_header_and_trailer() {
        assert_eq!(encode(std::iter::empty()).len(), HEADER.len() + 2);
    }

    #[test]
    fn nul_bytes_are_dropped_from_text() {
        let with_nul = encode([visit(Some("a\0b"))].iter());
        let without = encode([visit(Some("ab"))].iter());
        assert_eq!(with_nul, without);
    }
}
