//! The shortener's domain types, each parsed once at the edge.
//!
//! A value of one of these types is valid by construction: handlers parse
//! request fields into them (with the field name in the error), storage and
//! redirect code never re-check.

mod link;
mod slug;
mod tags;
mod target_policy;
mod target_url;
mod visit;

pub use link::{Availability, Link, LinkPatch, NewLink, RedirectStatus};
pub use slug::{Slug, SlugError};
pub use tags::{Tag, TagError, Tags, MAX_TAGS};
pub use target_policy::{BaseUrlError, TargetPolicy, TargetRefusal};
pub use target_url::{TargetUrl, TargetUrlError, MAX_URL_BYTES};
pub use visit::{
    anonymize_ip, is_bot, referrer_host, DayCount, ReferrerCount, Visit, VisitSummary,
    MAX_USER_AGENT,
};
