//! Cron and djobs: replaced stop-first, each under its role lock, all of
//! them side by side (they are independent), and dropped ones removed with
//! their own grace.

use std::time::{Duration, Instant};

use anyhow::{anyhow, bail};
use serde_json::json;

use super::{killpoint, Deployer, Step};
use crate::engine::Engine;
use crate::history::Intent;
use crate::lock::{Holder, Lock, LockError};
use crate::names::Tag;
use crate::plan;
use crate::roles::Role;

/// What a stop-first replacement did.
#[derive(Debug, Clone)]
pub struct Replaced {
    pub role: String,
    pub old: Option<String>,
    pub new: String,
    pub down: Duration,
}

/// How long a promote waits for an on-call restart of the same role.
const ROLE_LOCK_WAIT: Duration = Duration::from_secs(120);

impl<E: Engine> Deployer<'_, E> {
    /// The roles the config wants running: cron (if enabled) and every djob.
    pub fn wanted_workers(&self) -> Vec<Role> {
        let mut roles: Vec<Role> = Vec::new();
        if self.cfg.cron.enabled {
            roles.push(Role::Cron);
        }
        roles.extend(self.cfg.djobs.iter().map(|d| Role::Djob(d.name.clone())));
        roles
    }

    /// Stop-first replacement of one cron or djob container. The caller
    /// holds the role's lock.
    pub async fn replace(&self, role: &Role, tag: &Tag) -> anyhow::Result<Replaced> {
        let spec = self.spec(role, tag);
        let grace = spec.stop_timeout;
        let old = self.engine().inspect_container(&spec.name).await?;
        let t0 = Instant::now();
        self.remove(&spec.name, grace).await?;
        killpoint(&format!("replace-removed:{}", role.describe()));
        let new = self.engine().create_container(&spec).await?;
        self.engine().start_container(&spec.name).await?;
        let down = t0.elapsed();
        if matches!(role, Role::Djob(_) | Role::Cron) {
            self.settle(&spec.name, role).await?;
        }
        Ok(Replaced {
            role: role.describe(),
            old: old.map(|o| o.id),
            new,
            down,
        })
    }

    /// A daemon that dies right after its start is a failed start: wait a
    /// moment and look, and report its last lines.
    async fn settle(&self, name: &str, role: &Role) -> anyhow::Result<()> {
        let wait = match role {
            Role::Djob(n) => self
                .cfg
                .djob(n)
                .map(|d| d.settle)
                .unwrap_or(Duration::from_secs(2)),
            _ => self.cfg.cron.settle,
        };
        tokio::time::sleep(wait).await;
        let info = self.engine().inspect_container(name).await?;
        if let Err(why) = plan::settle_verdict(info.as_ref()) {
            let logs = self.engine().logs_tail(name, 20).await.unwrap_or_default();
            bail!(
                "{} did not stay up after its start ({why}); last log lines:\n{}",
                role.describe(),
                logs.trim_end()
            );
        }
        Ok(())
    }

    /// Takes `role`'s lock, waiting for a concurrent on-call restart of the
    /// same role to finish rather than failing the deploy.
    pub(super) async fn role_lock(
        &self,
        role: &Role,
        command: &str,
        tag: Option<&str>,
    ) -> anyhow::Result<Lock> {
        // On the controller: the fleet of one is its own controller; a remote
        // host's workers are replaced only under the fleet-wide deploy lock.
        let path = self.cfg.layout().role_lock(role);
        let me = Holder::me(command, tag);
        let deadline = Instant::now() + ROLE_LOCK_WAIT;
        loop {
            match Lock::try_acquire(&path, &role.describe(), &me) {
                Ok(l) => return Ok(l),
                Err(LockError::Held { .. } | LockError::HeldUnknown { .. })
                    if Instant::now() < deadline =>
                {
                    tokio::time::sleep(Duration::from_millis(100)).await
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    async fn replace_locked(
        &self,
        role: &Role,
        tag: &Tag,
        intent: Intent,
    ) -> anyhow::Result<Replaced> {
        let _lock = self
            .role_lock(role, intent.as_str(), Some(tag.as_str()))
            .await?;
        self.replace(role, tag).await
    }

    /// cron and every djob onto `tag`, stop-first, all side by side; the
    /// ones the config no longer names are stopped and removed, with their
    /// own grace and under their own lock.
    pub(super) async fn replace_workers(
        &self,
        tag: &Tag,
        intent: Intent,
    ) -> anyhow::Result<Vec<Replaced>> {
        self.steps
            .run(Step::Workers, async {
                let obs = self.host.observe(&self.cfg.project).await?;
                let plan =
                    plan::workers_to_replace(&obs, &self.wanted_workers(), &self.cfg.project);
                for u in &plan.drop {
                    self.out.progress(&format!(
                        "removing {}: no longer in {}",
                        u.name,
                        self.cfg.path.display()
                    ));
                    let _lock = self.role_lock(&u.role, intent.as_str(), None).await?;
                    self.remove(&u.name, u.grace).await?;
                }
                let results = futures_util::future::join_all(
                    plan.replace
                        .iter()
                        .map(|r| self.replace_locked(r, tag, intent)),
                )
                .await;
                let mut done = Vec::new();
                let mut errors = Vec::new();
                for (r, res) in plan.replace.iter().zip(results) {
                    match res {
                        Ok(x) => done.push(x),
                        Err(e) => errors.push(format!("{}: {e:#}", r.describe())),
                    }
                }
                if !errors.is_empty() {
                    return Err(anyhow!(
                        "{} failed to start on {tag}; the portal already serves {tag}\n{}",
                        errors.len(),
                        errors.join("\n")
                    ));
                }
                let roles_json: Vec<_> = done
                    .iter()
                    .map(|r| json!({"role": r.role, "down_ms": r.down.as_millis()}))
                    .collect();
                Ok((done, json!({ "replaced": roles_json })))
            })
            .await
    }
}
