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

/// Did this release move traffic? A success did; so did a failure after
/// its flip (the workers step, or a fleet host that flipped). In a fleet,
/// `host` asks about that host alone.
pub fn went_live(e: &Entry, host: Option<&str>) -> bool {
    e.action.is_release()
        && (e.outcome.is_ok()
            || e.to_color.is_some()
            || e.hosts
                .iter()
                .any(|h| h.to_color.is_some() && host.is_none_or(|n| n == h.host)))
}

/// The release that was live before the live one, from history. Newest
/// first over the releases that went live (see [`went_live`]): one onto the
/// live tag gives its `from_tag` (a re-promote of the same tag is skipped);
/// one onto another tag first means the live tag went live without a line
/// (a promote killed after its flip), so that tag is the previous release.
/// Portal restarts and releases that never flipped do not count, so a color
/// that started but never went live is never a rollback target.
pub fn previous_release<'a>(
    history: &'a [Entry],
    live_tag: &str,
    host: Option<&str>,
) -> Option<&'a str> {
    history
        .iter()
        .rev()
        .filter(|e| went_live(e, host))
        .find_map(|e| match e.from_tag.as_deref() {
            _ if e.tag != live_tag => Some(e.tag.as_str()),
            Some(f) if f != live_tag => Some(f),
            _ => None,
        })
}

/// `host`: the fleet host this is about, `None` on a single host.
pub fn rollback_target(
    obs: &Observed,
    history: &[Entry],
    host: Option<&str>,
) -> Result<RollbackTarget, String> {
    let Some(live) = obs.live else {
        return Err("nothing to roll back: no release is live yet".into());
    };
    let Some(live_tag) = obs.live_tag() else {
        return Err(format!(
            "the live color {live} has no portal container, so its release is unknown"
        ));
    };
    let Some(prev) = previous_release(history, live_tag, host) else {
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

/// What `restart portal` says it gives up when the idle color runs
/// `idle_tag`: the warm previous release (rollback then starts it afresh),
/// or a leftover that is no release at all (rollback still goes to
/// `previous`, never to the leftover).
pub fn restart_gives_up(
    idle: &str,
    idle_tag: &str,
    live_tag: &str,
    previous: Option<&str>,
) -> Option<String> {
    if idle_tag == live_tag {
        return None;
    }
    Some(match previous {
        Some(prev) if prev == idle_tag => format!(
            "the previous release {prev} ran warm in {idle}; this restart replaces it, so `webdock rollback` will start {prev} again instead of flipping at once"
        ),
        Some(prev) => format!(
            "{idle} runs {idle_tag}, which is not the previous release; this restart replaces it (`webdock rollback` goes to {prev})"
        ),
        None => format!(
            "{idle} runs {idle_tag}, which is not the previous release; this restart replaces it (there is no previous release to roll back to)"
        ),
    })
}

#[cfg(test)]
mod tests;
