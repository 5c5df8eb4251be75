//! The decisions of the worker step of a promote or rollback: which
//! workers are replaced and which dropped (with which grace), and whether a
//! started worker settled. Pure, with a table of cases below.

use std::time::Duration;

use super::Observed;
use crate::engine::ContainerInfo;
use crate::roles::{Role, LABEL_DJOB, LABEL_ROLE};

/// A worker container the config no longer names, and how long it may take
/// to stop: its own stop timeout as created, else a default.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unwanted {
    pub name: String,
    pub role: Role,
    pub grace: Duration,
}

/// The grace for a dropped worker whose container does not say its own.
pub const DEFAULT_DROP_GRACE: Duration = Duration::from_secs(15);

/// What the worker step of a promote or rollback does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkerPlan {
    /// Replaced stop-first, each independently of the others.
    pub replace: Vec<Role>,
    /// Stopped and removed: cron disabled, a djob dropped from the config.
    pub drop: Vec<Unwanted>,
}

pub fn workers_to_replace(obs: &Observed, wanted: &[Role], project: &str) -> WorkerPlan {
    let names: Vec<String> = wanted.iter().map(|r| r.container_name(project)).collect();
    let drop = obs
        .workers()
        .filter(|c| !names.contains(&c.name))
        .filter_map(|c| {
            let role = match c.label(LABEL_ROLE) {
                Some("cron") => Role::Cron,
                Some("djob") => Role::Djob(c.label(LABEL_DJOB)?.to_string()),
                _ => return None,
            };
            Some(Unwanted {
                name: c.name.clone(),
                role,
                grace: c.stop_timeout.unwrap_or(DEFAULT_DROP_GRACE),
            })
        })
        .collect();
    WorkerPlan {
        replace: wanted.to_vec(),
        drop,
    }
}

/// After a worker's start and its settle time: did it stay up?
pub fn settle_verdict(info: Option<&ContainerInfo>) -> Result<(), String> {
    match info {
        None => Err("gone".into()),
        Some(c) if !c.running || c.restart_count > 0 => {
            Err(format!("{}, {} restarts", c.state, c.restart_count))
        }
        Some(_) => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::c;
    use super::*;
    use crate::roles::{Color, LABEL_TAG};

    fn portal(color: &str) -> ContainerInfo {
        c(
            &format!("p-portal-{color}"),
            &[(LABEL_ROLE, "portal")],
            true,
        )
    }

    #[test]
    fn dropped_workers_keep_their_own_grace() {
        let djob = |name: &str, grace: Option<u64>| ContainerInfo {
            stop_timeout: grace.map(Duration::from_secs),
            ..c(
                &format!("p-djob-{name}"),
                &[(LABEL_ROLE, "djob"), (LABEL_DJOB, name)],
                true,
            )
        };
        let cron = c("p-cron", &[(LABEL_ROLE, "cron"), (LABEL_TAG, "1")], true);
        let release = c("p-release-2", &[(LABEL_ROLE, "release")], true);
        let gone = |name: &str, role: Role, grace: Option<u64>| Unwanted {
            name: name.into(),
            role,
            grace: grace.map_or(DEFAULT_DROP_GRACE, Duration::from_secs),
        };
        let (billing, fax) = (Role::Djob("billing".into()), Role::Djob("fax".into()));
        // (what runs besides the live portal, what the config wants, what is dropped)
        let cases = [
            // fax dropped from the config, cron disabled: each with its own grace
            (
                vec![djob("fax", Some(65)), cron.clone(), djob("billing", None)],
                vec![billing.clone()],
                vec![
                    gone("p-djob-fax", fax, Some(65)),
                    gone("p-cron", Role::Cron, None),
                ],
            ),
            // every worker still wanted: nothing dropped
            (
                vec![cron.clone(), djob("billing", Some(10))],
                vec![Role::Cron, billing.clone()],
                vec![],
            ),
            // the other color's portal and a release container are no workers
            (
                vec![portal("green"), release, djob("billing", None)],
                vec![billing.clone()],
                vec![],
            ),
        ];
        for (running, wanted, dropped) in cases {
            let obs = Observed::new([vec![portal("blue")], running].concat(), Some(Color::Blue));
            let plan = workers_to_replace(&obs, &wanted, "p");
            assert_eq!(plan.replace, wanted);
            assert_eq!(plan.drop, dropped, "wanted {wanted:?}");
        }
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
}
