//! The decision tables of promote, rollback and the worker swap.

use super::*;
use crate::history::Outcome;
use crate::plan::testing::c;
use crate::roles::LABEL_COLOR;

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
            rollback_target(&obs, &hist).map_err(|_| ()),
            want,
            "{hist:?}"
        );
    }
    assert!(rollback_target(&Observed::default(), &h).is_err());
}

#[test]
fn dropped_workers_keep_their_own_grace() {
    let mut old = c(
        "p-djob-fax",
        &[(LABEL_ROLE, "djob"), (LABEL_DJOB, "fax"), (LABEL_TAG, "1")],
        true,
    );
    old.stop_timeout = Some(Duration::from_secs(65));
    let cron = c("p-cron", &[(LABEL_ROLE, "cron"), (LABEL_TAG, "1")], true);
    let billing = c(
        "p-djob-billing",
        &[
            (LABEL_ROLE, "djob"),
            (LABEL_DJOB, "billing"),
            (LABEL_TAG, "1"),
        ],
        true,
    );
    let obs = Observed::new(
        vec![old, cron, billing, portal("blue", "1", true)],
        Some(Color::Blue),
    );
    let wanted = vec![Role::Djob("billing".into())];
    let plan = workers_to_replace(&obs, &wanted, "p");
    assert_eq!(plan.replace, wanted);
    assert_eq!(
        plan.drop,
        vec![
            Unwanted {
                name: "p-djob-fax".into(),
                role: Role::Djob("fax".into()),
                grace: Duration::from_secs(65)
            },
            Unwanted {
                name: "p-cron".into(),
                role: Role::Cron,
                grace: DEFAULT_DROP_GRACE
            },
        ]
    );
}

#[test]
fn settle_verdicts() {
    let up = c("w", &[], true);
    let mut looping = c("w", &[], true);
    looping.restart_count = 2;
    let down = c("w", &[], false);
    assert!(settle_verdict(Some(&up)).is_ok());
    assert_eq!(
        settle_verdict(Some(&looping)).unwrap_err(),
        "running, 2 restarts"
    );
    assert_eq!(
        settle_verdict(Some(&down)).unwrap_err(),
        "exited, 0 restarts"
    );
    assert_eq!(settle_verdict(None).unwrap_err(), "gone");
}
