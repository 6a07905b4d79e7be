//! SQLite's visit block (migration 0004): a batch's visits of one link in
//! one row, so the writer pays one B-tree insert per link and batch
//! instead of one per visit (issue 18).
//!
//! A block's `data` is a JSON array of
//! `[visited_at, referrer_host, client_ip, user_agent, is_bot]` entries,
//! times in Unix microseconds and `is_bot` 0 or 1. JSON rather than a
//! binary format: SQLite reads it too, so the `visits` view still shows
//! one row per visit to `sqlite3`, exports and ad-hoc queries, and a
//! block stays readable by hand.

use super::StoreError;
use crate::domain::{DayCount, ReferrerCount, Visit, VisitSummary};
use chrono::{DateTime, NaiveDate};
use kit::storage::time::to_micros;
use serde::de::IgnoredAny;
use serde::Deserialize;
use serde_json::value::RawValue;
use std::collections::{BTreeMap, HashMap};

/// One row of `visit_blocks`, but its nonce.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Block {
    pub link_id: i64,
    /// The latest visit's time: part of the key, so a link's visits since
    /// a time are a range, and whole blocks expire by it.
    pub last_at: i64,
    /// The earliest visit's time.
    pub first_at: i64,
    /// Entries in `data`.
    pub visits: i64,
    pub data: String,
}

/// Bytes a block's entry takes besides its strings.
const ENTRY_OVERHEAD: usize = 48;

/// One entry, `[visited_at, referrer_host, client_ip, user_agent,
/// is_bot]`, byte for byte what `serde_json` writes for that tuple
/// (a unit test compares them), written by hand: serializing through
/// serde, with the address made a `String` first, cost about 690
/// instructions a visit, most of a batch's encoding (issue 18).
fn push_entry(data: &mut String, at: i64, visit: &Visit) {
    let text = |data: &mut String, value: Option<&str>| match value {
        Some(value) => kit::text::push_json_str(data, value),
        None => data.push_str("null"),
    };
    data.push('[');
    kit::text::push_signed(data, at);
    data.push(',');
    text(data, visit.referrer_host.as_deref());
    data.push(',');
    match visit.client_ip {
        Some(ip) => {
            data.push('"');
            kit::net::push_ip_text(data, ip);
            data.push('"');
        }
        None => data.push_str("null"),
    }
    data.push(',');
    text(data, visit.user_agent.as_deref());
    data.push(',');
    data.push(if visit.is_bot { '1' } else { '0' });
    data.push(']');
}

/// The block of `visits`, all of one link, in the order given.
pub(super) fn encode(link_id: i64, visits: &[&Visit]) -> Result<Block, StoreError> {
    if visits.is_empty() {
        return Err(StoreError::Corrupt("an empty visit block".to_string()));
    }
    let strings: usize = visits
        .iter()
        .map(|v| {
            v.referrer_host.as_ref().map_or(0, String::len)
                + v.user_agent.as_ref().map_or(0, String::len)
        })
        .sum();
    let mut data = String::with_capacity(2 + strings + visits.len() * ENTRY_OVERHEAD);
    data.push('[');
    let (mut first_at, mut last_at) = (i64::MAX, i64::MIN);
    for (i, visit) in visits.iter().enumerate() {
        if i > 0 {
            data.push(',');
        }
        let at = to_micros(visit.at);
        first_at = first_at.min(at);
        last_at = last_at.max(at);
        push_entry(&mut data, at, visit);
    }
    data.push(']');
    Ok(Block {
        link_id,
        last_at,
        first_at,
        visits: visits.len() as i64,
        data,
    })
}

/// What the summary reads of an entry: time, referrer and bot flag.
#[derive(Deserialize)]
struct Seen(i64, Option<String>, IgnoredAny, IgnoredAny, u8);

/// What retention reads of an entry: its time.
#[derive(Deserialize)]
struct Timed(i64, IgnoredAny, IgnoredAny, IgnoredAny, IgnoredAny);

fn corrupt(e: serde_json::Error) -> StoreError {
    StoreError::Corrupt(format!("a visit block: {e}"))
}

/// Aggregates blocks into a link's summary: the visits at or after
/// `since`, bots among them, visits per UTC day in date order, and the
/// `top` referrers by visits (ties by host, direct traffic first), as
/// the row-per-visit queries did.
#[derive(Default)]
pub(super) struct Summarizer {
    since: i64,
    total: i64,
    bots: i64,
    per_day: BTreeMap<NaiveDate, i64>,
    referrers: HashMap<Option<String>, i64>,
}

impl Summarizer {
    pub fn since(since: i64) -> Self {
        Self {
            since,
            ..Self::default()
        }
    }

    /// Adds one block's entries.
    pub fn add(&mut self, data: &str) -> Result<(), StoreError> {
        let entries: Vec<Seen> = serde_json::from_str(data).map_err(corrupt)?;
        for Seen(at, referrer, _, _, bot) in entries {
            if at < self.since {
                continue;
            }
            let day = DateTime::from_timestamp(at.div_euclid(1_000_000), 0)
                .ok_or_else(|| StoreError::Corrupt(format!("visit time {at}")))?
                .date_naive();
            self.total += 1;
            self.bots += i64::from(bot != 0);
            *self.per_day.entry(day).or_default() += 1;
            *self.referrers.entry(referrer).or_default() += 1;
        }
        Ok(())
    }

    pub fn finish(self, top: u32) -> VisitSummary {
        let mut referrers: Vec<ReferrerCount> = self
            .referrers
            .into_iter()
            .map(|(host, visits)| ReferrerCount { host, visits })
            .collect();
        referrers.sort_by(|a, b| b.visits.cmp(&a.visits).then_with(|| a.host.cmp(&b.host)));
        referrers.truncate(top as usize);
        let per_day = self
            .per_day
            .into_iter()
            .map(|(date, visits)| DayCount { date, visits })
            .collect();
        VisitSummary::new(self.total, self.bots, per_day, referrers)
    }
}

/// A block trimmed by retention: the entries at or after the cutoff.
#[derive(Debug, PartialEq)]
pub(super) struct Trimmed {
    pub data: String,
    pub visits: i64,
    pub first_at: i64,
    pub removed: i64,
}

/// `data` without its entries before `cutoff`; `None` when none is.
/// The latest entry is never removed here (a block whose last visit is
/// before the cutoff is deleted whole), so the block's key stays.
pub(super) fn trim(data: &str, cutoff: i64) -> Result<Option<Trimmed>, StoreError> {
    let entries: Vec<&RawValue> = serde_json::from_str(data).map_err(corrupt)?;
    let mut kept = Vec::with_capacity(entries.len());
    let mut first_at = i64::MAX;
    for entry in &entries {
        let Timed(at, ..) = serde_json::from_str(entry.get()).map_err(corrupt)?;
        if at >= cutoff {
            first_at = first_at.min(at);
            kept.push(entry.get());
        }
    }
    let removed = (entries.len() - kept.len()) as i64;
    if removed == 0 || kept.is_empty() {
        return Ok(None);
    }
    Ok(Some(Trimmed {
        data: format!("[{}]", kept.join(",")),
        visits: kept.len() as i64,
        first_at,
        removed,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeZone, Utc};
    use std::net::IpAddr;

    fn visit(secs: i64, referrer: Option<&str>, bot: bool) -> Visit {
        Visit {
            link_id: 7,
            at: Utc.timestamp_opt(secs, 0).single().expect("a time"),
            referrer_host: referrer.map(str::to_string),
            client_ip: Some(IpAddr::from([192, 0, 2, 0])),
            user_agent: Some("Mozilla/5.0 \"quoted\" \\ ünïcode".to_string()),
            is_bot: bot,
            counted: false,
        }
    }

    #[test]
    fn an_entry_is_written_byte_for_byte_as_serde_json_writes_its_tuple() {
        let v6: IpAddr = "2001:db8::".parse().expect("address");
        let agents = [
            None,
            Some("curl/8.5"),
            Some("tab\tnl\n \u{1} \"q\" \\ é 🙂 \u{7f}"),
        ];
        for (i, agent) in agents.into_iter().enumerate() {
            for (ip, referrer, bot) in [
                (Some(IpAddr::from([10, 0, 0, 0])), Some("a.example"), false),
                (Some(v6), None, true),
                (None, Some("quo\"te.example"), false),
            ] {
                let mut visit = visit(1_733_356_800 + i as i64, referrer, bot);
                visit.client_ip = ip;
                visit.user_agent = agent.map(str::to_string);
                let at = to_micros(visit.at);
                let mut ours = String::new();
                push_entry(&mut ours, at, &visit);
                let theirs = serde_json::to_string(&(
                    at,
                    visit.referrer_host.as_deref(),
                    visit.client_ip.map(kit::net::ip_text),
                    visit.user_agent.as_deref(),
                    u8::from(visit.is_bot),
                ))
                .expect("JSON");
                assert_eq!(ours, theirs);
            }
        }
    }

    #[test]
    fn a_block_holds_its_visits_in_order_with_their_time_range() {
        let visits = [visit(200, Some("a.example"), false), visit(100, None, true)];
        let refs: Vec<&Visit> = visits.iter().collect();
        let block = encode(7, &refs).expect("encoded");
        assert_eq!(block.link_id, 7);
        assert_eq!((block.first_at, block.last_at), (100_000_000, 200_000_000));
        assert_eq!(block.visits, 2);
        let entries: Vec<serde_json::Value> = serde_json::from_str(&block.data).expect("JSON");
        assert_eq!(
            entries[0],
            serde_json::json!([
                200_000_000,
                "a.example",
                "192.0.2.0",
                "Mozilla/5.0 \"quoted\" \\ ünïcode",
                0
            ])
        );
        assert_eq!(entries[1][1], serde_json::Value::Null);
        assert_eq!(entries[1][4], 1);
    }

    #[test]
    fn no_block_is_made_of_no_visits() {
        assert!(matches!(encode(7, &[]), Err(StoreError::Corrupt(_))));
    }

    #[test]
    fn the_summary_counts_visits_since_its_start_by_day_and_referrer() {
        let day = 86_400;
        let visits = [
            visit(10 * day + 5, Some("b.example"), false),
            visit(10 * day + 6, Some("a.example"), true),
            visit(11 * day, None, false),
            visit(11 * day + 1, Some("b.example"), false),
            visit(9 * day, Some("old.example"), false),
        ];
        let (one, two) = visits.split_at(2);
        let mut summary = Summarizer::since(10 * day * 1_000_000);
        for part in [one, two] {
            let refs: Vec<&Visit> = part.iter().collect();
            summary
                .add(&encode(7, &refs).expect("encoded").data)
                .expect("added");
        }
        let got = summary.finish(2);
        let date = |d: i64| {
            DateTime::from_timestamp(d * day, 0)
                .expect("a date")
                .date_naive()
        };
        let expected = VisitSummary::new(
            4,
            1,
            vec![
                DayCount {
                    date: date(10),
                    visits: 2,
                },
                DayCount {
                    date: date(11),
                    visits: 2,
                },
            ],
            vec![
                ReferrerCount {
                    host: Some("b.example".into()),
                    visits: 2,
                },
                // A tie at 1: direct traffic (no host) sorts first.
                ReferrerCount {
                    host: None,
                    visits: 1,
                },
            ],
        );
        assert_eq!(got, expected);
    }

    #[test]
    fn a_corrupt_block_is_an_error_not_a_panic() {
        let mut summary = Summarizer::since(0);
        for bad in ["", "{}", "[[1]]", "[[\"x\",null,null,null,0]]", "[1,2"] {
            assert!(
                matches!(summary.add(bad), Err(StoreError::Corrupt(_))),
                "{bad:?}"
            );
            assert!(
                matches!(trim(bad, 0), Err(StoreError::Corrupt(_))),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn trimming_keeps_the_entries_from_the_cutoff_byte_for_byte() {
        let visits = [
            visit(300, Some("c.example"), false),
            visit(100, Some("a.example"), false),
            visit(200, None, true),
        ];
        let refs: Vec<&Visit> = visits.iter().collect();
        let block = encode(7, &refs).expect("encoded");
        let trimmed = trim(&block.data, 200_000_000)
            .expect("trimmed")
            .expect("one removed");
        assert_eq!(trimmed.removed, 1);
        assert_eq!(trimmed.visits, 2);
        assert_eq!(trimmed.first_at, 200_000_000);
        let kept: Vec<&Visit> = vec![&visits[0], &visits[2]];
        assert_eq!(trimmed.data, encode(7, &kept).expect("encoded").data);
        // Nothing before the cutoff: nothing to rewrite.
        assert_eq!(trim(&block.data, 100_000_000).expect("read"), None);
    }
}
