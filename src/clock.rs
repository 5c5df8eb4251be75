//! Wall-clock helpers: timestamps in history, lock files and events are
//! RFC 3339 UTC strings so that people and `jq` read them alike.

use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

pub fn now_rfc3339() -> String {
    OffsetDateTime::now_utc()
        .format(&Rfc3339)
        .unwrap_or_default()
}

pub fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap_or_default()
}

/// Seconds since an RFC 3339 instant (as Docker reports `StartedAt`).
pub fn age_secs(s: &str) -> Option<i64> {
    let t = OffsetDateTime::parse(s, &Rfc3339).ok()?;
    if t.year() < 2000 {
        return None; // Docker's zero time for "never started"
    }
    Some((OffsetDateTime::now_utc() - t).whole_seconds())
}

/// `3d4h`, `5m12s`, `42s`: short and readable in a status table.
pub fn human_secs(s: i64) -> String {
    let (d, h, m, sec) = (s / 86400, (s % 86400) / 3600, (s % 3600) / 60, s % 60);
    if d > 0 {
        format!("{d}d{h}h")
    } else if h > 0 {
        format!("{h}h{m}m")
    } else if m > 0 {
        format!("{m}m{sec}s")
    } else {
        format!("{sec}s")
    }
}
