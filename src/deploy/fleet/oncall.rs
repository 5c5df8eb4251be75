//! The on-call verbs on cron or a djob across a fleet (`restart`, `stop`,
//! `start`) and `failover ... --to HOST`: which tag it runs on, where it
//! runs now, and the move (`Fleet::place`). The caller holds the fleet
//! lock. A host that does not answer is never guessed dead: a worker that
//! may run there is refused, unless the lease store says nobody holds its
//! lease.

use std::time::{Duration, Instant};

use anyhow::bail;
use futures_util::future::join_all;

use super::workers::Placed;
use super::Fleet;
use crate::deploy::parse_label;
use crate::engine::{ContainerInfo, Engine};
use crate::host::Host;
use crate::names::Tag;
use crate::roles::{Role, LABEL_TAG};
use crate::Usage;

/// What is asked of the worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FleetOnCall<'a> {
    Restart,
    Stop,
    Start,
    /// `failover ... --to HOST`.
    MoveTo(&'a str),
}

impl FleetOnCall<'_> {
    /// The command named in the fleet lock's holder.
    pub fn as_str(&self) -> &'static str {
        match self {
            FleetOnCall::Restart => "restart",
            FleetOnCall::Stop => "stop",
            FleetOnCall::Start => "start",
            FleetOnCall::MoveTo(_) => "failover",
        }
    }
}

/// What an on-call verb did across the fleet.
#[derive(Debug, Clone)]
pub enum FleetChange {
    /// `start` of a worker already running on these hosts: nothing done.
    AlreadyRunning {
        running_on: Vec<String>,
    },
    Stopped {
        stopped_on: Vec<String>,
        took: Duration,
    },
    Placed {
        tag: Tag,
        placed: Placed,
    },
}

/// The image to run the lock host's helper from (it holds the fleet lock):
/// its live tag, else the tag of any container of the project on it.
pub async fn helper_image<E: Engine>(
    cfg: &crate::config::Config,
    host: &Host<E>,
) -> anyhow::Result<String> {
    let obs = host.observe(&cfg.project).await?;
    obs.live_tag()
        .or_else(|| obs.containers.first().and_then(|c| c.label(LABEL_TAG)))
        .map(|t| format!("{}:{t}", cfg.image))
        .ok_or_else(|| {
            Usage(format!(
                "nothing runs on {} yet\nhint: webdock promote TAG",
                host.name
            ))
            .into()
        })
}

type Now = Vec<(String, crate::engine::Result<Option<ContainerInfo>>)>;

impl<E: Engine> Fleet<'_, E> {
    /// `restart`, `stop`, `start` or `failover --to` of one worker. A
    /// restart or start keeps the tag it runs on (the live tag when it runs
    /// nowhere).
    pub async fn oncall(&self, role: &Role, verb: FleetOnCall<'_>) -> anyhow::Result<FleetChange> {
        let t = Instant::now();
        let name = role.container_name(&self.cfg.project);
        // Where it is now, and on which tag.
        let now: Now = join_all(self.hosts.iter().map(|d| {
            let name = &name;
            async move {
                (
                    d.host.name.clone(),
                    d.host.engine.inspect_container(name).await,
                )
            }
        }))
        .await;
        let mut tag = None;
        let mut running_on = Vec::new();
        for (h, r) in &now {
            if let Ok(Some(c)) = r {
                if c.running {
                    running_on.push(h.clone());
                }
                if tag.is_none() {
                    tag = c.label(LABEL_TAG).map(parse_label).transpose()?;
                }
            }
        }
        if verb == FleetOnCall::Start && !running_on.is_empty() {
            return Ok(FleetChange::AlreadyRunning { running_on });
        }
        if verb == FleetOnCall::Stop {
            return self.stop(role, &now, t).await;
        }
        let tag = match tag {
            Some(t) => t,
            None => self.live_tag().await?,
        };
        let to = match verb {
            FleetOnCall::MoveTo(to) => Some(to),
            _ => None,
        };
        // The lease matters only when a host that may run it does not answer.
        let lease_free = match to {
            Some(_) if !self.unreachable.is_empty() => {
                crate::lease_store::free_for(self.cfg, role, self.out).await?
            }
            _ => false,
        };
        let placed = self.place(role, &tag, to, lease_free).await?;
        Ok(FleetChange::Placed { tag, placed })
    }

    /// The live tag from the first portal host that has one.
    async fn live_tag(&self) -> anyhow::Result<Tag> {
        for d in &self.hosts {
            if let Ok(obs) = d.host.observe(&self.cfg.project).await {
                if let Some(t) = obs.live_tag() {
                    return parse_label(t);
                }
            }
        }
        bail!(Usage(
            "no release is live yet\nhint: webdock promote TAG".into()
        ))
    }

    /// `stop`: on every host that has it (it stays stopped until `start` or
    /// the next promote); refused when a host of its placement does not
    /// answer.
    async fn stop(&self, role: &Role, now: &Now, t: Instant) -> anyhow::Result<FleetChange> {
        let (placement, _) = self.cfg.placement(role);
        if let Some((h, why)) = self.unreachable.iter().find(|(h, _)| placement.contains(h)) {
            bail!(
                "{} may run on {h}, which does not answer ({why}); nothing was stopped",
                role.describe()
            );
        }
        let name = role.container_name(&self.cfg.project);
        let mut stopped = Vec::new();
        for (d, (h, r)) in self.hosts.iter().zip(now) {
            let c = match r {
                Ok(Some(c)) => c,
                Ok(None) => continue,
                Err(e) => bail!("{h}: {e}"),
            };
            let grace = c.stop_timeout.unwrap_or(self.cfg.portal.stop_grace);
            d.host.engine.set_restart(&name, false).await?;
            d.host.engine.stop_container(&name, grace).await?;
            stopped.push(h.clone());
        }
        if stopped.is_empty() {
            bail!("{} has no container on any host", role.describe());
        }
        Ok(FleetChange::Stopped {
            stopped_on: stopped,
            took: t.elapsed(),
        })
    }
}
