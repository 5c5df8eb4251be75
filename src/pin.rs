//! Which digest a release runs, decided once at its start.
//!
//! A tag is a name anyone with push rights can move; a digest names bytes.
//! `promote TAG` with a registry asks the registry once what TAG names,
//! and every host then runs that digest. Before it does, the digests this
//! project already released for TAG (in this destination's history and in
//! every other destination's) are compared with it: a tag re-pushed with
//! other content between staging and production is refused, naming both
//! digests, unless the user says `--allow-moved-tag`. `--from staging`
//! skips the registry's answer and releases exactly the digest staging last
//! released healthy. Pure functions over history entries: table-tested.

use crate::history::Entry;

/// What a destination's history says it released for a tag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recorded {
    /// The destination (`-` for the config without one).
    pub destination: String,
    pub digest: String,
}

/// The digests `entries` released successfully for `tag`, oldest first,
/// each once.
pub fn released(entries: &[Entry], tag: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for e in entries {
        if e.tag == tag && e.outcome.is_ok() && e.action.is_release() {
            if let Some(d) = &e.digest {
                if !out.contains(d) {
                    out.push(d.clone());
                }
            }
        }
    }
    out
}

/// The digest the newest healthy release of `tag` ran (`--from`).
pub fn last_healthy(entries: &[Entry], tag: &str) -> Option<String> {
    entries
        .iter()
        .rev()
        .find(|e| e.tag == tag && e.outcome.is_ok() && e.action.is_release() && e.digest.is_some())
        .and_then(|e| e.digest.clone())
}

/// The first record that disagrees with what the registry names now.
pub fn moved<'a>(now: &str, recorded: &'a [Recorded]) -> Option<&'a Recorded> {
    recorded.iter().find(|r| r.digest != now)
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
    fn released_and_last_healthy_skip_failures_and_other_tags() {
        let h = vec![
            e("1", Some("sha256:a"), true, Intent::Promote),
            e("2", Some("sha256:b"), true, Intent::Promote),
            e("1", Some("sha256:c"), false, Intent::Promote),
            e("1", Some("sha256:a"), true, Intent::Rollback),
            e("1", None, true, Intent::Promote),
            e("1", Some("sha256:d"), true, Intent::RestartPortal),
        ];
        assert_eq!(released(&h, "1"), vec!["sha256:a".to_string()]);
        assert_eq!(last_healthy(&h, "1").as_deref(), Some("sha256:a"));
        assert_eq!(last_healthy(&h, "2").as_deref(), Some("sha256:b"));
        assert_eq!(last_healthy(&h, "3"), None);
        assert_eq!(last_healthy(&h[2..3], "1"), None);
    }

    #[test]
    fn a_moved_tag_is_found_and_named() {
        let rec = |d: &str, g: &str| Recorded {
            destination: d.into(),
            digest: g.into(),
        };
        let r = vec![rec("-", "sha256:a"), rec("staging", "sha256:a")];
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
}
