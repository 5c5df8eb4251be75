//! The on-call verbs on one role: `stop`, `start` and `restart` of cron or
//! a djob (stop-first, under the role's lock, refused at once when another
//! restart or a promote holds it), and `restart portal` (the live tag into
//! the idle color, then the flip: no failed request).

use std::time::{Duration, Instant};

use anyhow::{anyhow, bail};

use super::{parse_label, Deployer, Replaced};
use crate::engine::Engine;
use crate::history::{self, Intent};
use crate::lock::{Holder, Lock};
use crate::names::Tag;
use crate::plan;
use crate::roles::{Role, LABEL_TAG};
use crate::Usage;

/// What an on-call verb did to a worker.
#[derive(Debug, Clone)]
pub enum WorkerChange {
    Stopped { old: String, took: Duration },
    AlreadyRunning { id: String },
    Replaced(Replaced),
}

impl<E: Engine> Deployer<'_, E> {
    fn try_role_lock(&self, role: &Role, verb: &str) -> anyhow::Result<Lock> {
        Ok(Lock::try_acquire(
            &self.cfg.layout().role_lock(role),
            &role.describe(),
            &Holder::me(verb, None),
        )?)
    }

    /// `webdock stop djob NAME` / `stop cron`: it stays stopped, also across
    /// an engine restart, until `start` or the next promote.
    pub async fn stop_worker(&self, role: &Role) -> anyhow::Result<WorkerChange> {
        let _lock = self.try_role_lock(role, "stop")?;
        let name = role.container_name(&self.cfg.project);
        let Some(c) = self.engine().inspect_container(&name).await? else {
            bail!("{} has no container {name} to stop", role.describe());
        };
        let grace = c
            .stop_timeout
            .unwrap_or_else(|| self.specs.spec(role, &placeholder_tag()).stop_timeout);
        let t = Instant::now();
        // Stopped on purpose: it must stay stopped across an engine restart.
        self.engine().set_restart(&name, false).await?;
        self.engine().stop_container(&name, grace).await?;
        Ok(WorkerChange::Stopped {
            old: c.id,
            took: t.elapsed(),
        })
    }

    /// `start` (a no-op when running) or `restart`: the same tag again, or
    /// the live tag when there is no container.
    pub async fn start_worker(&self, role: &Role, restart: bool) -> anyhow::Result<WorkerChange> {
        let _lock = self.try_role_lock(role, if restart { "restart" } else { "start" })?;
        let name = role.container_name(&self.cfg.project);
        let current = self.engine().inspect_container(&name).await?;
        if let (false, Some(c)) = (restart, current.as_ref().filter(|c| c.running)) {
            return Ok(WorkerChange::AlreadyRunning { id: c.id.clone() });
        }
        let tag = match current.as_ref().and_then(|c| c.label(LABEL_TAG)) {
            Some(t) => parse_label(t)?,
            None => self.live_tag().await?,
        };
        Ok(WorkerChange::Replaced(self.replace(role, &tag).await?))
    }

    async fn live_tag(&self) -> anyhow::Result<Tag> {
        let obs = self.host.observe(&self.cfg.project).await?;
        let Some(color) = obs.live else {
            bail!(Usage(
                "no release is live yet\nhint: webdock promote TAG".into()
            ));
        };
        let tag = obs.live_tag().ok_or_else(|| {
            anyhow!("the live color {color} has no portal container\nhint: webdock status")
        })?;
        parse_label(tag)
    }

    /// `restart portal`: the live tag, decided under the deploy lock the
    /// caller holds (a promote finishing just before must not be undone),
    /// started in the idle color and flipped to.
    pub async fn restart_portal(&self) -> anyhow::Result<Tag> {
        let tag = self.live_tag().await?;
        // Test builds: the tests hold here to prove the decision is made
        // under the lock (a promote in this window is refused).
        super::killpoint("restart-decided");
        self.host.preflight()?;
        // The idle color is where the previous release runs warm: say what
        // this restart gives up. `rollback` still goes to the previous
        // release (from history), starting it afresh.
        let obs = self.host.observe(&self.cfg.project).await?;
        if let Some(idle) = obs.live.and_then(|l| obs.portal(l.other())) {
            let (entries, _) = history::read(&self.host.layout.history())?;
            let previous = plan::previous_release(&entries, tag.as_str(), None);
            let idle_tag = idle.label(LABEL_TAG).unwrap_or("(no tag)");
            if let Some(m) = plan::restart_gives_up(&idle.name, idle_tag, tag.as_str(), previous) {
                self.out.progress(&m);
            }
        }
        self.promote(&tag, Intent::RestartPortal).await?;
        Ok(tag)
    }
}

/// Any valid tag: the grace of a role does not depend on it.
fn placeholder_tag() -> Tag {
    Tag::parse("x").expect("a valid tag")
}
