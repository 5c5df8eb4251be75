//! The release phase's decision: given the project's release containers
//! (any tag, in any state), what may a promote of `tag` do? At most one
//! release command of a project ever runs, and webdock never kills one, so
//! a running one of the same tag is waited for, one of another tag is a
//! refusal, and only when none runs is a new one (after its backup) started.

use crate::engine::ContainerInfo;
use crate::roles::{LABEL_ROLE, LABEL_TAG};

/// What to do about this tag's release command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReleaseAction {
    /// None runs: back up, then start one.
    Start,
    /// This tag's release command still runs (an earlier webdock was
    /// killed, interrupted or stopped waiting): wait for it, start nothing.
    Wait { name: String },
    /// This tag's release command ended while nobody waited: its exit
    /// code is the result.
    Ended { name: String },
    /// Another tag's release command runs: one migration at a time.
    Refuse {
        name: String,
        tag: String,
        started_at: Option<String>,
    },
}

/// A release container to clear away before acting: its exit code and
/// output are reported first when it ran (`ran`), then it is removed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reap {
    pub name: String,
    pub tag: String,
    pub ran: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReleasePlan {
    pub action: ReleaseAction,
    pub reap: Vec<Reap>,
}

/// Running, paused or restarting: a process of it may still write.
pub fn is_active(c: &ContainerInfo) -> bool {
    c.running || matches!(c.state.as_str(), "running" | "paused" | "restarting")
}

/// Created but never started: no command of it ever ran.
fn never_started(c: &ContainerInfo) -> bool {
    c.state == "created"
}

/// `containers` are the project's; only release containers count.
pub fn release_plan(containers: &[ContainerInfo], tag: &str) -> ReleasePlan {
    let releases: Vec<&ContainerInfo> = containers
        .iter()
        .filter(|c| c.label(LABEL_ROLE) == Some("release"))
        .collect();
    let tag_of = |c: &ContainerInfo| c.label(LABEL_TAG).unwrap_or_default().to_string();
    if let Some(other) = releases
        .iter()
        .find(|c| is_active(c) && c.label(LABEL_TAG) != Some(tag))
    {
        return ReleasePlan {
            action: ReleaseAction::Refuse {
                name: other.name.clone(),
                tag: tag_of(other),
                started_at: other.started_at.clone(),
            },
            reap: vec![],
        };
    }
    let mut action = ReleaseAction::Start;
    let mut reap = vec![];
    for c in releases {
        let mine = c.label(LABEL_TAG) == Some(tag);
        if mine && is_active(c) {
            action = ReleaseAction::Wait {
                name: c.name.clone(),
            };
        } else if mine && !never_started(c) {
            action = ReleaseAction::Ended {
                name: c.name.clone(),
            };
        } else {
            reap.push(Reap {
                name: c.name.clone(),
                tag: tag_of(c),
                ran: !never_started(c),
            });
        }
    }
    ReleasePlan { action, reap }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::testing::c;

    fn rel(tag: &str, state: &str) -> ContainerInfo {
        let mut r = c(
            &format!("p-release-{tag}"),
            &[(LABEL_ROLE, "release"), (LABEL_TAG, tag)],
            state == "running",
        );
        r.state = state.into();
        r
    }

    #[test]
    fn at_most_one_release_command_and_never_a_kill() {
        let portal = c(
            "p-portal-blue",
            &[(LABEL_ROLE, "portal"), (LABEL_TAG, "1")],
            true,
        );
        let reap = |tag: &str, ran| Reap {
            name: format!("p-release-{tag}"),
            tag: tag.into(),
            ran,
        };
        let wait = ReleaseAction::Wait {
            name: "p-release-2".into(),
        };
        let ended = ReleaseAction::Ended {
            name: "p-release-2".into(),
        };
        let cases: Vec<(Vec<ContainerInfo>, ReleaseAction, Vec<Reap>)> = vec![
            (vec![portal.clone()], ReleaseAction::Start, vec![]),
            (vec![rel("2", "running")], wait.clone(), vec![]),
            (vec![rel("2", "paused")], wait.clone(), vec![]),
            (vec![rel("2", "exited")], ended.clone(), vec![]),
            (vec![rel("2", "dead")], ended, vec![]),
            // killed between create and start: nothing ran, start afresh
            (
                vec![rel("2", "created")],
                ReleaseAction::Start,
                vec![reap("2", false)],
            ),
            // an old tag's ended command is read and cleared away
            (
                vec![rel("1", "exited"), rel("2", "running")],
                wait,
                vec![reap("1", true)],
            ),
            (
                vec![rel("1", "exited")],
                ReleaseAction::Start,
                vec![reap("1", true)],
            ),
            (
                vec![rel("1", "running"), rel("2", "exited")],
                ReleaseAction::Refuse {
                    name: "p-release-1".into(),
                    tag: "1".into(),
                    started_at: None,
                },
                vec![],
            ),
        ];
        for (containers, action, reaps) in cases {
            let p = release_plan(&containers, "2");
            assert_eq!(p.action, action, "{containers:?}");
            assert_eq!(p.reap, reaps, "{containers:?}");
        }
    }
}
