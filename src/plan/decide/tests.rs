//! The decision tables of promote and rollback (the worker swap's are in plan/workers.rs).

use super::*;
use crate::engine::ContainerInfo;
use crate::history::Outcome;
use crate::plan::testing::c;
use crate::roles::{LABEL_COLOR, LABEL_ROLE};

fn portal(color: &str, tag: &str, running: bool) -> ContainerInfo {
    c(
        &format!("p-portal-{color}"),
        &[
            (LABEL_ROLE, "portal"),
            (LABEL_COLOR, color),
            (LABEL_TAG, tag),
        ],
        running,
    )
}

fn entry(action: Intent, tag: &str, from: Option<&str>, ok: bool) -> Entry {
    Entry {
        action,
        who: "t".into(),
        when: "2026-12-04T00:00:00Z".into(),
        tag: tag.into(),
        from_tag: from.map(str::to_owned),
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
        backup: None,
        digest: None,
    }
}

#[test]
fn promote_plans() {
    use PromotePlan::*;
    let blue2 = || vec![portal("blue", "2", true)];
    let mut rebuilt = portal("blue", "2", true);
    rebuilt.image_id = "sha256:older".into();
    type Case = (
        Vec<ContainerInfo>,
        Option<Color>,
        &'static str,
        Intent,
        PromotePlan,
    );
    let cases: Vec<Case> = vec![
        // first release ever
        (
            vec![],
            None,
            "1",
            Intent::Promote,
            Switch {
                idle: Color::Blue,
                release: true,
            },
        ),
        // a new tag
        (
            blue2(),
            Some(Color::Blue),
            "3",
            Intent::Promote,
            Switch {
                idle: Color::Green,
                release: true,
            },
        ),
        // the same image already live: only the workers remain
        (
            blue2(),
            Some(Color::Blue),
            "2",
            Intent::Promote,
            AlreadyLive { color: Color::Blue },
        ),
        // the same tag, rebuilt: another image, a full release
        (
            vec![rebuilt],
            Some(Color::Blue),
            "2",
            Intent::Promote,
            Switch {
                idle: Color::Green,
                release: true,
            },
        ),
        // the live portal is stopped: start it afresh
        (
            vec![portal("blue", "2", false)],
            Some(Color::Blue),
            "2",
            Intent::Promote,
            Switch {
                idle: Color::Green,
                release: true,
            },
        ),
        // a portal restart always starts the idle color, without release
        (
            blue2(),
            Some(Color::Blue),
            "2",
            Intent::RestartPortal,
            Switch {
                idle: Color::Green,
                release: false,
            },
        ),
    ];
    for (containers, live, tag, intent, want) in cases {
        let obs = Observed::new(containers, live);
        let id = format!("sha256:{tag}");
        assert_eq!(
            promote_steps(&obs, tag, &id, intent),
            want,
            "{tag} {intent} {obs:?}"
        );
    }
}

#[test]
fn rollback_goes_only_to_the_release_that_was_live_before() {
    use RollbackTarget::*;
    let h = vec![
        entry(Intent::Promote, "a1", None, true),
        entry(Intent::Promote, "a2", Some("a1"), true),
    ];
    // a promote of a3 died after its color started: green runs a3,
    // never verified, never in history as ok
    let mut h_failed = h.clone();
    h_failed.push(entry(Intent::Promote, "a3", Some("a2"), false));
    let mut h_restart = h.clone();
    h_restart.push(entry(Intent::RestartPortal, "a2", Some("a2"), true));
    type Case = (Vec<ContainerInfo>, Vec<Entry>, Result<RollbackTarget, ()>);
    let cases: Vec<Case> = vec![
        (
            vec![portal("blue", "a2", true), portal("green", "a1", true)],
            h.clone(),
            Ok(Warm {
                color: Color::Green,
                tag: "a1".into(),
            }),
        ),
        // the other color runs the unreleased a3: go cold to a1
        (
            vec![portal("blue", "a2", true), portal("green", "a3", true)],
            h_failed,
            Ok(Cold { tag: "a1".into() }),
        ),
        // a portal restart put a2 in green: still a1, cold
        (
            vec![portal("blue", "a2", true), portal("green", "a2", true)],
            h_restart,
            Ok(Cold { tag: "a1".into() }),
        ),
        // the previous color is stopped
        (
            vec![portal("blue", "a2", true), portal("green", "a1", false)],
            h.clone(),
            Ok(Cold { tag: "a1".into() }),
        ),
        // only one release ever
        (
            vec![portal("blue", "a2", true)],
            vec![entry(Intent::Promote, "a2", None, true)],
            Err(()),
        ),
    ];
    for (containers, hist, want) in cases {
        let obs = Observed::new(containers, Some(Color::Blue));
        assert_eq!(
            rollback_target(&obs, &hist, None).map_err(|_| ()),
            want,
            "{hist:?}"
        );
    }
    assert!(rollback_target(&Observed::default(), &h, None).is_err());
}

/// A failure after the flip (the workers step) still moved traffic; in a
/// fleet, only the hosts whose record names a new color.
fn flipped(mut e: Entry, hosts: &[(&str, bool)]) -> Entry {
    if hosts.is_empty() {
        e.to_color = Some("green".into());
    }
    e.hosts = hosts
        .iter()
        .map(|(h, flipped)| crate::history::HostRecord {
            host: h.to_string(),
            from_color: Some("blue".into()),
            to_color: flipped.then(|| "green".into()),
            steps: vec![],
            error: None,
        })
        .collect();
    e
}

#[test]
fn previous_release_counts_releases_that_went_live_even_if_they_failed() {
    let p = |tag, from, ok| entry(Intent::Promote, tag, from, ok);
    let a1 = || p("a1", None, true);
    let a2 = || p("a2", Some("a1"), true);
    type Case = (
        Vec<Entry>,
        &'static str,
        Option<&'static str>,
        Option<&'static str>,
    );
    let cases: Vec<Case> = vec![
        // the workers step of a2 failed after its flip: a2 is live
        (
            vec![a1(), flipped(p("a2", Some("a1"), false), &[])],
            "a2",
            None,
            Some("a1"),
        ),
        // ... and `promote a2` again recorded from_tag a2
        (
            vec![
                a1(),
                flipped(p("a2", Some("a1"), false), &[]),
                p("a2", Some("a2"), true),
            ],
            "a2",
            None,
            Some("a1"),
        ),
        // a2 killed after its flip: no line at all
        (vec![a1()], "a2", None, Some("a1")),
        (vec![a1(), a2()], "a3", None, Some("a2")),
        (
            vec![a1(), a2(), entry(Intent::Rollback, "a1", Some("a2"), true)],
            "a3",
            None,
            Some("a1"),
        ),
        // a3 failed before its flip: never a target
        (
            vec![a1(), a2(), p("a3", Some("a2"), false)],
            "a2",
            None,
            Some("a1"),
        ),
        (vec![a1(), p("a2", Some("a1"), false)], "a1", None, None),
        // a restart of a2 is not a release
        (
            vec![a1(), entry(Intent::RestartPortal, "a2", Some("a1"), true)],
            "a1",
            None,
            None,
        ),
        // a fleet where h1 flipped to a2 and h2 could not be: h2 still
        // serves a1, and a2 is not "back" for it
        (
            vec![
                a1(),
                flipped(p("a2", Some("a1"), false), &[("h1", true), ("h2", false)]),
            ],
            "a1",
            Some("h2"),
            None,
        ),
        (
            vec![
                a1(),
                flipped(p("a2", Some("a1"), false), &[("h1", true), ("h2", false)]),
            ],
            "a2",
            Some("h1"),
            Some("a1"),
        ),
    ];
    for (hist, live, host, want) in cases {
        assert_eq!(
            previous_release(&hist, live, host),
            want,
            "{live} {host:?} {hist:?}"
        );
    }
}

#[test]
fn restart_portal_names_the_previous_release_not_a_leftover() {
    let m = |idle_tag, prev| restart_gives_up("p-portal-green", idle_tag, "a2", prev);
    assert_eq!(m("a2", Some("a1")), None, "nothing given up");
    let warm = m("a1", Some("a1")).unwrap();
    assert!(warm.contains("previous release a1 ran warm"), "{warm}");
    // Regression (issue 16 item 3): an unreleased a3 left in the idle
    // color was named as where rollback goes; rollback goes to a1.
    let leftover = m("a3", Some("a1")).unwrap();
    assert!(
        leftover.contains("`webdock rollback` goes to a1"),
        "{leftover}"
    );
    assert!(!leftover.contains("start a3"), "{leftover}");
    let none = m("a3", None).unwrap();
    assert!(none.contains("no previous release"), "{none}");
}
