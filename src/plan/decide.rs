//! The decisions of promote and rollback, each a pure function with a
//! table of cases below (the worker step's are in `workers.rs`).

use super::{idle_color, Observed};
use crate::history::{Entry, Intent};
use crate::roles::{Color, LABEL_TAG};

/// What a promote (or a portal restart) has to do on a host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PromotePlan {
    /// The live portal already runs this very image: only the workers are
    /// left (a promote re-run after a crash past its flip converges here).
    AlreadyLive { color: Color },
    /// Start `idle` on the tag, health-check it, flip to it. `release`:
    /// run the release command first.
    Switch { idle: Color, release: bool },
}

/// `image_id` is the id the tag names now: "already live" means the same
/// image, not merely the same tag name (a rebuilt tag is another release).
pub fn promote_steps(obs: &Observed, tag: &str, image_id: &str, intent: Intent) -> PromotePlan {
    let live = obs.running_live_portal();
    let same = live.is_some_and(|c| c.label(LABEL_TAG) == Some(tag) && c.image_id == image_id);
    match (intent, obs.live) {
        (Intent::Promote | Intent::Rollback, Some(color)) if same => {
            PromotePlan::AlreadyLive { color }
        }
        _ => PromotePlan::Switch {
            idle: idle_color(obs.live),
            release: intent != Intent::RestartPortal,
        },
    }
}

/// Where a rollback goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RollbackTarget {
    /// The previous release still runs in the other color: health, flip.
    Warm { color: Color, tag: String },
    /// The previous release's container is gone (or the other color runs
    /// something else): promote that tag again.
    Cold { tag: String },
}

/// The release that was live before the live one, from history: the
/// `from_tag` of the newest successful release onto the live tag. Portal
/// restarts (the same tag again) and failed attempts do not count, so a
/// color that started but never went live is never a rollback target.
pub fn previous_release<'a>(history: &'a [Entry], live_tag: &str) -> Option<&'a str> {
    history
        .iter()
        .rev()
        .filter(|e| e.action.is_release() && e.outcome.is_ok())
        .filter(|e| e.tag == live_tag)
        .find_map(|e| e.from_tag.as_deref().filter(|f| *f != live_tag))
}

pub fn rollback_target(obs: &Observed, history: &[Entry]) -> Result<RollbackTarget, String> {
    let Some(live) = obs.live else {
        return Err("nothing to roll back: no release is live yet".into());
    };
    let Some(live_tag) = obs.live_tag() else {
        return Err(format!(
            "the live color {live} has no portal container, so its release is unknown"
        ));
    };
    let Some(prev) = previous_release(history, live_tag) else {
        return Err(format!(
            "no previous release to roll back to from {live_tag}"
        ));
    };
    let warm = obs
        .portal(live.other())
        .filter(|c| c.running && c.label(LABEL_TAG) == Some(prev));
    Ok(match warm {
        Some(_) => RollbackTarget::Warm {
            color: live.other(),
            tag: prev.to_string(),
        },
        None => RollbackTarget::Cold {
            tag: prev.to_string(),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::super::testing::c;
    use super::*;
    use crate::engine::ContainerInfo;
    use crate::history::Outcome;
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
                rollback_target(&obs, &hist).map_err(|_| ()),
                want,
                "{hist:?}"
            );
        }
        assert!(rollback_target(&Observed::default(), &h).is_err());
    }
}
