use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;
use std::net::IpAddr;

/// One redirect served, as recorded for analytics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Visit {
    pub link_id: i64,
    pub at: DateTime<Utc>,
    pub referrer_host: Option<String>,
    /// Anonymised unless the operator configured otherwise.
    pub client_ip: Option<IpAddr>,
    pub user_agent: Option<String>,
    pub is_bot: bool,
    /// True when the link's `visit_count` was already incremented on the
    /// redirect path (links with `max_visits` claim their visit atomically);
    /// false when the batch writer must count it.
    pub counted: bool,
}

/// Longest user agent kept; the rest is noise and a storage-amplification risk.
pub const MAX_USER_AGENT: usize = 256;

/// Zeroes the host part of an address: the last octet of IPv4, the last 80
/// bits of IPv6 (what analytics tools such as Matomo and Shlink do), so a
/// stored visit no longer identifies a person.
pub fn anonymize_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, c, _] = v4.octets();
            IpAddr::from([a, b, c, 0])
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return anonymize_ip(IpAddr::V4(v4));
            }
            let mut octets = v6.octets();
            octets[6..].fill(0);
            IpAddr::from(octets)
        }
    }
}

/// Substrings (lower case) that mark crawlers, link unfurlers, monitors and
/// scripted clients.
const BOT_MARKERS: &[&str] = &[
    "bot",
    "crawl",
    "spider",
    "slurp",
    "fetch",
    "preview",
    "scan",
    "monitor",
    "curl/",
    "wget/",
    "python-requests",
    "python-urllib",
    "go-http-client",
    "java/",
    "okhttp",
    "libwww",
    "httpclient",
    "headless",
    "facebookexternalhit",
    "whatsapp",
    "embedly",
    "lighthouse",
    "pingdom",
    "wrk",
];

/// Classifies a user agent; a missing one counts as a bot (browsers always send one).
pub fn is_bot(user_agent: Option<&str>) -> bool {
    match user_agent {
        None => true,
        Some(ua) if ua.trim().is_empty() => true,
        Some(ua) => {
            let ua = ua.to_ascii_lowercase();
            BOT_MARKERS.iter().any(|m| ua.contains(m))
        }
    }
}

/// The host of a `Referer` header, lower-cased; `None` when absent or not a URL.
pub fn referrer_host(referer: Option<&str>) -> Option<String> {
    let url = url::Url::parse(referer?).ok()?;
    let host = url.host_str()?.to_ascii_lowercase();
    (host.len() <= 253).then_some(host)
}

/// Visits to one link per UTC day.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct DayCount {
    pub date: NaiveDate,
    pub visits: i64,
}

/// Visits to one link by referring host; `host: None` is direct traffic.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct ReferrerCount {
    pub host: Option<String>,
    pub visits: i64,
}

/// Aggregated visits to one link since a point in time.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct VisitSummary {
    pub total: i64,
    pub bots: i64,
    pub humans: i64,
    /// Share of visits from bots, 0.0 to 1.0 (0 when there were none).
    pub bot_share: f64,
    pub per_day: Vec<DayCount>,
    pub top_referrers: Vec<ReferrerCount>,
}

impl VisitSummary {
    pub fn new(
        total: i64,
        bots: i64,
        per_day: Vec<DayCount>,
        top_referrers: Vec<ReferrerCount>,
    ) -> Self {
        let bot_share = if total > 0 {
            bots as f64 / total as f64
        } else {
            0.0
        };
        Self {
            total,
            bots,
            humans: total - bots,
            bot_share,
            per_day,
            top_referrers,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn anonymizes_v4_and_v6() {
        assert_eq!(
            anonymize_ip("203.0.113.77".parse().unwrap()),
            "203.0.113.0".parse::<IpAddr>().unwrap()
        );
        assert_eq!(
            anonymize_ip("2001:db8:abcd:1234:5678:9abc:def0:1234".parse().unwrap()),
            "2001:db8:abcd::".parse::<IpAddr>().unwrap()
        );
        assert_eq!(
            anonymize_ip("::ffff:198.51.100.9".parse().unwrap()),
            "198.51.100.0".parse::<IpAddr>().unwrap()
        );
    }

    #[test]
    fn classifies_bots() {
        assert!(is_bot(None));
        assert!(is_bot(Some("")));
        assert!(is_bot(Some("Mozilla/5.0 (compatible; Googlebot/2.1)")));
        assert!(is_bot(Some("curl/8.5.0")));
        assert!(is_bot(Some("Slackbot-LinkExpanding 1.0")));
        assert!(!is_bot(Some(
            "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36"
        )));
    }

    #[test]
    fn extracts_referrer_hosts() {
        assert_eq!(
            referrer_host(Some("https://News.Example.com/a?b")),
            Some("news.example.com".into())
        );
        assert_eq!(referrer_host(Some("not a url")), None);
        assert_eq!(referrer_host(None), None);
    }
}
