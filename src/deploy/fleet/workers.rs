//! Cron and the djobs across the fleet: each on its placement
//! (`plan::placement`), replaced stop-first ACROSS hosts: the old container
//! is confirmed stopped and removed on every host that has it before the
//! new one is created anywhere. A host that does not answer is never
//! guessed dead: a worker that may run there is refused, naming both.

use std::time::{Duration, Instant};

use anyhow::{anyhow, bail};
use futures_util::future::join_all;
use serde_json::json;

use super::{host_errors, Fleet};
use crate::deploy::{killpoint, Replaced, Step};
use crate::engine::Engine;
use crate::names::Tag;
use crate::plan;
use crate::plan::placement::{self, Move, Placement, Seen};
use crate::roles::Role;

/// What a move across hosts did.
#[derive(Debug, Clone)]
pub struct Placed {
    pub role: String,
    /// Hosts it was stopped and removed on.
    pub removed: Vec<String>,
    /// Hosts it was started on, with what each start did.
    pub started: Vec<(String, Replaced)>,
    /// From the first stop to the last start.
    pub down: Duration,
}

impl<E: Engine> Fleet<'_, E> {
    /// The worker's container on every fleet host, or why a host did not
    /// answer.
    async fn seen(&self, role: &Role) -> Vec<(String, Seen)> {
        let name = role.container_name(&self.cfg.project);
        let name = &name;
        let mut seen: Vec<(String, Seen)> = join_all(self.hosts.iter().map(|d| async move {
            let s = match d.engine().inspect_container(name).await {
                Ok(Some(c)) => Seen::Present {
                    running: c.running,
                    started: c.started_at.clone().unwrap_or_default(),
                },
                Ok(None) => Seen::Absent,
                Err(e) => Seen::Unreachable(format!("{e}")),
            };
            (d.host.name.clone(), s)
        }))
        .await;
        for h in &self.skipped {
            seen.push((
                h.clone(),
                Seen::Unreachable("left out with --skip-host".into()),
            ));
        }
        for (h, why) in &self.unreachable {
            seen.push((h.clone(), Seen::Unreachable(why.clone())));
        }
        seen
    }

    /// Moves or replaces one worker: stop-first across hosts, then onto
    /// `tag` where its placement says (or on `to`). `lease_free`: the lease
    /// store says nobody holds its lease (see `placement::place`).
    pub async fn place(
        &self,
        role: &Role,
        tag: &Tag,
        to: Option<&str>,
        lease_free: bool,
    ) -> anyhow::Result<Placed> {
        let (hosts, failover) = self.cfg.placement(role);
        let who = role.describe();
        let p = Placement {
            who: &who,
            hosts: &hosts,
            auto: failover == crate::config::placement::Failover::Auto,
        };
        let seen = self.seen(role).await;
        let (remove, start) = match placement::place(p, &seen, to, lease_free) {
            Move::Refuse(why) => bail!(why),
            Move::Go { remove, start } => (remove, start),
        };
        let name = role.container_name(&self.cfg.project);
        let t0 = Instant::now();
        let removed = join_all(remove.iter().map(|h| {
            let name = &name;
            async move {
                let r: anyhow::Result<()> = async {
                    let d = self.deployer(h)?;
                    let grace = d.specs.spec(role, tag).stop_timeout;
                    d.remove(name, grace).await?;
                    // Confirmed: the engine no longer has it.
                    match d.engine().inspect_container(name).await? {
                        None => Ok(()),
                        Some(c) => bail!("{name} is still there ({})", c.state),
                    }
                }
                .await;
                (h.clone(), r)
            }
        }))
        .await;
        let errors = host_errors(removed);
        if !errors.is_empty() {
            bail!(
                "{who} could not be stopped everywhere; it was started nowhere\n{}",
                errors.join("\n")
            );
        }
        killpoint(&format!("fleet-worker-removed:{who}"));
        let start_on = |h: &String| {
            let h = h.clone();
            async move {
                let r = match self.deployer(&h) {
                    Ok(d) => d.replace(role, tag).await,
                    Err(e) => Err(e),
                };
                (h, r)
            }
        };
        // A host named by `--to` first (with auto, it takes the lease
        // before the standbys start), then the rest side by side.
        let mut started = Vec::new();
        let rest = match (to, start.split_first()) {
            (Some(_), Some((first, rest))) => {
                started.push(start_on(first).await);
                rest
            }
            _ => &start[..],
        };
        started.extend(join_all(rest.iter().map(start_on)).await);
        let mut ok = Vec::new();
        let mut errors = Vec::new();
        for (h, r) in started {
            match r {
                Ok(x) => ok.push((h, x)),
                Err(e) => errors.push(format!("{h}: {e:#}")),
            }
        }
        if !errors.is_empty() {
            bail!("{who} failed to start\n{}", errors.join("\n"));
        }
        Ok(Placed {
            role: who,
            removed: remove,
            started: ok,
            down: t0.elapsed(),
        })
    }

    fn deployer(&self, host: &str) -> anyhow::Result<&crate::deploy::Deployer<'_, E>> {
        self.hosts
            .iter()
            .find(|d| d.host.name == host)
            .ok_or_else(|| anyhow!("host {host} is not connected"))
    }

    /// The worker step of a fleet promote or rollback: every wanted worker
    /// placed onto `tag` side by side; those the config no longer names are
    /// removed on every host.
    pub(super) async fn place_workers(&self, tag: &Tag) -> anyhow::Result<()> {
        let d0 = self.release_host();
        let wanted = d0.wanted_workers();
        d0.steps
            .run(Step::Workers, async {
                let dropped = join_all(self.hosts.iter().map(|d| {
                    let wanted = &wanted;
                    async move {
                        let r: anyhow::Result<()> = async {
                            // The containers only: the live link (an exec
                            // in the helper) says nothing about workers.
                            let list = d.engine().list_containers(&self.cfg.project).await?;
                            let obs = plan::Observed::new(list, None);
                            let plan = plan::workers_to_replace(&obs, wanted, &self.cfg.project);
                            for u in &plan.drop {
                                d.remove(&u.name, u.grace).await?;
                            }
                            Ok(())
                        }
                        .await;
                        (d.host.name.clone(), r)
                    }
                }))
                .await;
                let mut errors = host_errors(dropped);
                let placed = join_all(wanted.iter().map(|r| self.place(r, tag, None, false))).await;
                let mut done = Vec::new();
                for (r, res) in wanted.iter().zip(placed) {
                    match res {
                        Ok(p) => done.push(p),
                        Err(e) => errors.push(format!("{}: {e:#}", r.describe())),
                    }
                }
                if !errors.is_empty() {
                    bail!(
                        "{} worker(s) failed on {tag}\n{}",
                        errors.len(),
                        errors.join("\n")
                    );
                }
                let roles: Vec<_> = done
                    .iter()
                    .map(|p| {
                        json!({
                            "role": p.role,
                            "hosts": p.started.iter().map(|(h, _)| h).collect::<Vec<_>>(),
                            "down_ms": p.down.as_millis(),
                        })
                    })
                    .collect();
                Ok(((), json!({ "replaced": roles })))
            })
            .await
    }
}
