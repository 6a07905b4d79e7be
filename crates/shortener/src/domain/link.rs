use super::{Slug, Tags, TargetUrl};
use chrono::{DateTime, Utc};

/// The HTTP status a link redirects with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RedirectStatus {
    /// 301: permanent; browsers may rewrite a POST to GET.
    MovedPermanently,
    /// 302: the default; temporary.
    #[default]
    Found,
    /// 307: temporary, method and body preserved.
    Temporary,
    /// 308: permanent, method and body preserved.
    Permanent,
}

impl RedirectStatus {
    pub fn from_code(code: u16) -> Option<Self> {
        match code {
            301 => Some(Self::MovedPermanently),
            302 => Some(Self::Found),
            307 => Some(Self::Temporary),
            308 => Some(Self::Permanent),
            _ => None,
        }
    }

    pub fn code(self) -> u16 {
        match self {
            Self::MovedPermanently => 301,
            Self::Found => 302,
            Self::Temporary => 307,
            Self::Permanent => 308,
        }
    }

    /// 307 and 308 preserve the method, so they answer every method; 301 and
    /// 302 historically turn POST into GET, so they answer only GET and HEAD.
    pub fn preserves_method(self) -> bool {
        matches!(self, Self::Temporary | Self::Permanent)
    }
}

/// A stored short link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    pub id: i64,
    pub slug: Slug,
    pub url: TargetUrl,
    pub redirect_status: RedirectStatus,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
    /// Visits allowed in total; `None` is unlimited.
    pub max_visits: Option<i64>,
    pub visit_count: i64,
    pub tags: Tags,
}

/// Whether a link redirects right now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Availability {
    Active,
    Expired,
    Exhausted,
}

impl Availability {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Expired => "expired",
            Self::Exhausted => "exhausted",
        }
    }
}

impl Link {
    pub fn availability(&self, now: DateTime<Utc>) -> Availability {
        if self.expires_at.is_some_and(|at| at <= now) {
            Availability::Expired
        } else if self.max_visits.is_some_and(|max| self.visit_count >= max) {
            Availability::Exhausted
        } else {
            Availability::Active
        }
    }
}

/// A link to create. `slug` is `None` when the server must generate one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewLink {
    pub slug: Option<Slug>,
    pub url: TargetUrl,
    pub redirect_status: RedirectStatus,
    pub expires_at: Option<DateTime<Utc>>,
    pub max_visits: Option<i64>,
    pub tags: Tags,
}

/// A partial update; `None` leaves a field as it is, `Some(None)` clears a
/// nullable one.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LinkPatch {
    pub url: Option<TargetUrl>,
    pub redirect_status: Option<RedirectStatus>,
    pub expires_at: Option<Option<DateTime<Utc>>>,
    pub max_visits: Option<Option<i64>>,
    pub tags: Option<Tags>,
}

impl LinkPatch {
    pub fn is_empty(&self) -> bool {
        self == &Self::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Duration;

    fn link(expires_at: Option<DateTime<Utc>>, max_visits: Option<i64>, visit_count: i64) -> Link {
        let now = Utc::now();
        Link {
            id: 1,
            slug: Slug::parse("abc").expect("valid"),
            url: TargetUrl::parse("https://example.com").expect("valid"),
            redirect_status: RedirectStatus::default(),
            created_at: now,
            updated_at: now,
            expires_at,
            max_visits,
            visit_count,
            tags: Tags::default(),
        }
    }

    #[test]
    fn availability_follows_expiry_then_visits() {
        let now = Utc::now();
        assert_eq!(link(None, None, 10).availability(now), Availability::Active);
        assert_eq!(
            link(Some(now), None, 0).availability(now),
            Availability::Expired
        );
        assert_eq!(
            link(Some(now + Duration::seconds(1)), Some(2), 1).availability(now),
            Availability::Active
        );
        assert_eq!(
            link(None, Some(2), 2).availability(now),
            Availability::Exhausted
        );
    }

    #[test]
    fn redirect_codes_round_trip() {
        for code in [301, 302, 307, 308] {
            assert_eq!(
                RedirectStatus::from_code(code).map(RedirectStatus::code),
                Some(code)
            );
        }
        assert_eq!(RedirectStatus::from_code(200), None);
        assert_eq!(RedirectStatus::from_code(303), None);
    }
}
