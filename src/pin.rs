//! Which digest a release runs, decided once at its start.
//!
//! A tag is a name anyone with push rights can move; a digest names bytes.
//! `promote TAG` with a registry asks the registry once what TAG names,
//! and every host then runs that digest. Before it does, the digest this
//! project released for TAG most recently (in this destination's history
//! or in any other destination's) is compared with it: a tag re-pushed with
//! other content between staging and production is refused, naming both
//! digests, unless the user says `--allow-moved-tag`. A move accepted once
//! is the new truth: the next promote of TAG compares with what that one
//! released, so the flag is needed once per re-push, not forever.
//! `--from staging` skips the registry's answer and releases exactly the
//! digest staging last released healthy. Pure functions over history
//! entries: table-tested.

use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::history::Entry;

/// What a destination's history says it last released for a tag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recorded {
    /// The destination (`-` for the config without one).
    pub destination: String,
    pub digest: String,
    /// When (RFC 3339, from the history entry).
    pub when: String,
}

/// The newest healthy release of `tag` that names its digest: `(when,
/// digest)`.
pub fn last_release(entries: &[Entry], tag: &str) -> Option<(String, String)> {
    entries
        .iter()
        .rev()
        .filter(|e| e.tag == tag && e.outcome.is_ok() && e.action.is_release())
        .find_map(|e| e.digest.clone().map(|d| (e.when.clone(), d)))
}

/// The digest the newest healthy release of `tag` ran (`--from`).
pub fn last_healthy(entries: &[Entry], tag: &str) -> Option<String> {
    last_release(entries, tag).map(|(_, d)| d)
}

/// The most recent release of all the destinations', when it disagrees
/// with what the registry names now. Times that do not parse sort first.
pub fn moved<'a>(now: &str, recorded: &'a [Recorded]) -> Option<&'a Recorded> {
    let at = |r: &Recorded| OffsetDateTime::parse(&r.when, &Rfc3339).ok();
    recorded
        .iter()
        .max_by_key(|r| at(r))
        .filter(|r| r.digest != now)
}

/// The refusal, both digests named.
pub fn moved_message(tag: &str, registry: &str, now: &str, r: &Recorded) -> String {
    let where_ = match r.destination.as_str() {
        "-" => "this project".to_string(),
        d => format!("destination {d}"),
    };
    format!(
        "tag {tag} moved: registry {registry} now names {now}, but {where_} released {} for it\nhint: push the new content under a new tag, or pass --allow-moved-tag to run {now}",
        r.digest
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::{Intent, Outcome};

    fn e(tag: &str, digest: Option<&str>, ok: bool, action: Intent) -> Entry {
        Entry {
            action,
            who: "t".into(),
            when: "2026-12-04T00:00:00Z".into(),
            tag: tag.into(),
            from_tag: None,
            from_color: None,
            to_color: None,
            steps: vec![],
            seconds: 1.0,
            outcome: if ok {
                Outcome::Ok
            } else {
                Outcome::Failed("x".into())
            },
            hosts: vec![],
            skipped: vec![],
            flip_window_ms: None,
            digest: digest.map(str::to_owned),
            backup: None,
        }
    }

    #[test]
    fn last_healthy_skips_failures_other_tags_and_other_actions() {
        let h = vec![
            e("1", Some("sha256:a"), true, Intent::Promote),
            e("2", Some("sha256:b"), true, Intent::Promote),
            e("1", Some("sha256:c"), false, Intent::Promote),
            e("1", None, true, Intent::Promote),
            e("1", Some("sha256:d"), true, Intent::RestartPortal),
        ];
        assert_eq!(last_healthy(&h, "1").as_deref(), Some("sha256:a"));
        assert_eq!(last_healthy(&h, "2").as_deref(), Some("sha256:b"));
        assert_eq!(last_healthy(&h, "3"), None);
        assert_eq!(last_healthy(&h[2..3], "1"), None);
    }

    fn rec(d: &str, g: &str, when: &str) -> Recorded {
        Recorded {
            destination: d.into(),
            digest: g.into(),
            when: when.into(),
        }
    }

    #[test]
    fn a_moved_tag_is_found_and_named() {
        let r = vec![
            rec("-", "sha256:a", "2026-12-04T10:00:00Z"),
            rec("staging", "sha256:a", "2026-12-04T11:00:00Z"),
        ];
        assert_eq!(moved("sha256:a", &r), None);
        let m = moved("sha256:b", &r).unwrap();
        let msg = moved_message("1.0", "127.0.0.1:5055", "sha256:b", m);
        assert!(
            msg.contains("sha256:a") && msg.contains("sha256:b"),
            "{msg}"
        );
        assert!(msg.contains("--allow-moved-tag"), "{msg}");
        assert_eq!(moved("sha256:b", &[]), None);
    }

    #[test]
    fn a_move_accepted_once_is_the_new_truth() {
        // staging released a, the tag was re-pushed as b, and one
        // `--allow-moved-tag` released b: b is what the tag names now
        let mut h = vec![
            e("1", Some("sha256:a"), true, Intent::Promote),
            e("1", Some("sha256:b"), true, Intent::Promote),
        ];
        h[0].when = "2026-12-04T10:00:00Z".into();
        h[1].when = "2026-12-04T12:00:00.5Z".into();
        let (when, digest) = last_release(&h, "1").unwrap();
        let staging = rec("staging", &digest, &when);
        // production released a before the re-push
        let production = rec("production", "sha256:a", "2026-12-04T11:00:00Z");
        let r = vec![production, staging];
        assert_eq!(moved("sha256:b", &r), None, "no flag needed again");
        // going back to a is a move too, named against b
        assert_eq!(moved("sha256:a", &r).unwrap().digest, "sha256:b");
        // fractional seconds order by time, not by text
        let r = vec![
            rec("x", "sha256:a", "2026-12-04T12:00:00Z"),
            rec("y", "sha256:b", "2026-12-04T12:00:00.25Z"),
        ];
        assert_eq!(moved("sha256:b", &r), None);
    }
}
