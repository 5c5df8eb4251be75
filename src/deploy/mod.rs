//! Carrying out promote, rollback and stop-first replacement on a host.
//!
//! `plan` decides, `deploy` does. A [`Deployer`] holds one command's view of
//! one host (its engine, paths and proxy) and the container specs; each
//! concern lives in its own file: `release` (the release command), `portal`
//! (start, health, flip and verify), `workers` (cron and djobs stop-first),
//! `record` (history and pruning), `oncall` (the restart/stop/start verbs).
//! Generic over [`Engine`], so the order of operations is unit-tested with a
//! recording fake (`fake.rs`, `tests.rs`) and the same code runs against
//! Docker. The order is the guarantee:
//! - nothing visible changes before the flip: the release command and the
//!   idle portal run beside the live one; any failure there removes what it
//!   started and leaves traffic where it was;
//! - the live link moves only to a color that just passed health checks for
//!   the tag it is promoted to (invariant 1);
//! - cron and djobs are replaced stop-first under a per-role lock: stopped,
//!   removed, and only then created, under a fixed name the engine refuses
//!   to duplicate (invariant 2).
//!
//! Every step boundary is a named kill point for the crash tests.

mod backup;
mod fleet;
mod interrupt;
mod oncall;
mod portal;
mod record;
mod release;
mod steps;
mod workers;

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::Instant;

use anyhow::{anyhow, bail};
use serde_json::json;

use crate::config::Config;
use crate::engine::{ContainerSpec, Engine};
use crate::history::{self, Intent};
use crate::host::Host;
use crate::lock::{Holder, Lock};
use crate::names::Tag;
use crate::out::Out;
use crate::plan::{self, PromotePlan, RollbackTarget};
use crate::roles::{Color, Role, Specs, LABEL_DJOBS, LABEL_TAG};
use crate::Usage;

pub use fleet::{helper_image, Fleet, FleetChange, FleetOnCall};
pub use oncall::WorkerChange;
pub use record::Moved;
pub use steps::{killpoint, Step, RELEASE_WAIT};
pub use workers::Replaced;

/// One command's deploy work on one host.
pub struct Deployer<'a, E: Engine> {
    pub cfg: &'a Config,
    pub host: &'a Host<E>,
    pub specs: Specs<'a>,
    pub out: Out,
    /// The digest this release runs (`promote` with a registry), for history
    /// and for `check_image`: the image must still carry it under the lock.
    pub digest: Option<String>,
    /// Tag → the image id `check_image` last accepted for it. Containers
    /// are created from that id, not from the mutable `<image>:TAG`, which
    /// a concurrent `build`, `pull` or delivery may retag at any moment.
    checked: Mutex<HashMap<String, String>>,
    steps: steps::StepLog,
    /// The backup taken (or found) before this command's release command,
    /// for its history line.
    backup: std::sync::Mutex<Option<String>>,
}

/// Takes the project's deploy lock or fails at once naming its holder.
pub fn take_deploy_lock(cfg: &Config, command: &str, tag: Option<&str>) -> anyhow::Result<Lock> {
    Ok(Lock::try_acquire(
        &cfg.layout().deploy_lock(),
        &format!("project {}", cfg.project),
        &Holder::me(command, tag),
    )?)
}

impl<'a, E: Engine> Deployer<'a, E> {
    /// Reads the env file: bad input is refused before anything changes.
    pub fn new(cfg: &'a Config, host: &'a Host<E>, out: Out) -> anyhow::Result<Self> {
        Ok(Deployer {
            cfg,
            host,
            specs: Specs::new(cfg)?.on(&host.layout).named(&host.name),
            out,
            digest: None,
            checked: Default::default(),
            steps: steps::StepLog::new(out, host.fleet_name()),
            backup: Default::default(),
        })
    }

    fn engine(&self) -> &E {
        &self.host.engine
    }

    /// The image for `tag` exists, is labelled for it, knows every djob and
    /// (with a pinned digest) still carries that digest; returns its id,
    /// from which this deployer then creates the tag's containers.
    pub async fn check_image(&self, tag: &Tag) -> anyhow::Result<String> {
        let reference = self.cfg.image_ref(tag);
        let Some(img) = self.engine().inspect_image(&reference).await? else {
            bail!(Usage(format!(
                "image {reference} not found\nhint: webdock build {tag}"
            )));
        };
        if let Some(d) = &self.digest {
            let carries = img
                .repo_digests
                .iter()
                .any(|rd| rd.rsplit_once('@').is_some_and(|(_, x)| x == d));
            if !carries {
                bail!(
                    "image {reference} no longer carries {d} (its id is now {}): it was retagged after its delivery, by a concurrent build, pull or promote\nhint: webdock promote {tag} again",
                    img.id
                );
            }
        }
        match img.labels.get(LABEL_TAG) {
            Some(t) if t == tag.as_str() => {}
            other => bail!(Usage(format!(
                "image {reference} is labelled webdock.tag={}, not {tag}: refusing a mislabelled image\nhint: rebuild it with webdock build {tag}",
                other.map(String::as_str).unwrap_or("(none)")
            ))),
        }
        let known: HashSet<&str> = img
            .labels
            .get(LABEL_DJOBS)
            .map(|s| s.split(',').collect())
            .unwrap_or_default();
        if let Some(d) = self
            .cfg
            .djobs
            .iter()
            .find(|d| !known.contains(d.name.as_str()))
        {
            bail!(Usage(format!(
                "image {reference} has no djob {:?} (it has: {})\nhint: the djobs are built into the image: webdock build {tag}",
                d.name,
                img.labels.get(LABEL_DJOBS).map(String::as_str).unwrap_or("none")
            )));
        }
        self.checked
            .lock()
            .unwrap()
            .insert(tag.to_string(), img.id.clone());
        Ok(img.id)
    }

    /// `role`'s container spec for `tag`, from the image id `check_image`
    /// accepted (the tag's name when nothing checked it).
    fn spec(&self, role: &Role, tag: &Tag) -> ContainerSpec {
        let mut spec = self.specs.spec(role, tag);
        if let Some(id) = self.checked.lock().unwrap().get(tag.as_str()) {
            spec.image = id.clone();
        }
        spec
    }

    /// `promote TAG` (and a cold rollback, and `restart portal`). The
    /// caller holds the deploy lock.
    pub async fn promote(&self, tag: &Tag, intent: Intent) -> anyhow::Result<()> {
        let started = Instant::now();
        let mut moved = Moved::default();
        let res = self.promote_steps(tag, intent, &mut moved).await;
        self.record(intent, tag, &moved, started, &res);
        res?;
        self.prune(tag, &moved).await;
        Ok(())
    }

    async fn promote_steps(
        &self,
        tag: &Tag,
        intent: Intent,
        moved: &mut Moved,
    ) -> anyhow::Result<()> {
        let (obs, image_id) = self
            .steps
            .run(Step::Check, async {
                let id = self.check_image(tag).await?;
                self.host.ensure_dirs(&self.cfg.image_ref(tag)).await?;
                let obs = self.host.observe(&self.cfg.project).await?;
                let extra = json!({ "live": obs.live, "live_tag": obs.live_tag() });
                Ok(((obs, id), extra))
            })
            .await?;
        moved.from_color = obs.live;
        moved.from_tag = obs.live_tag().map(str::to_owned);
        match plan::promote_steps(&obs, tag.as_str(), &image_id, intent) {
            PromotePlan::AlreadyLive { color } => {
                self.out
                    .progress(&format!("portal {color} already serves {tag}"));
                moved.to_color = Some(color);
            }
            PromotePlan::Switch { idle, release } => {
                if release {
                    self.release(tag, obs.live_tag()).await?;
                }
                self.start_portal(idle, tag).await?;
                self.flip_and_verify(idle, obs.live, tag).await?;
                moved.to_color = Some(idle);
            }
        }
        if intent.is_release() {
            self.replace_workers(tag, intent).await?;
        }
        Ok(())
    }

    /// Back to the release that was live before the live one: a health
    /// check and a flip when it still runs warm in the other color, else a
    /// promote of its tag. The caller holds the deploy lock.
    pub async fn rollback(&self) -> anyhow::Result<Tag> {
        let obs = self.host.observe(&self.cfg.project).await?;
        let (entries, _) = history::read(&self.host.layout.history())?;
        let target = plan::rollback_target(&obs, &entries, None)
            .map_err(|e| Usage(format!("{e}\nhint: webdock history; webdock promote TAG")))?;
        let (color, tag) = match target {
            RollbackTarget::Cold { tag } => {
                let tag = parse_label(&tag)?;
                self.out.progress(&format!(
                    "the previous release {tag} is not running warm; promoting it again"
                ));
                self.promote(&tag, Intent::Rollback).await?;
                return Ok(tag);
            }
            RollbackTarget::Warm { color, tag } => (color, parse_label(&tag)?),
        };
        let started = Instant::now();
        let mut moved = Moved {
            from_color: obs.live,
            from_tag: obs.live_tag().map(str::to_owned),
            to_color: None,
        };
        let res = self.rollback_warm(color, obs.live, &tag, &mut moved).await;
        self.record(Intent::Rollback, &tag, &moved, started, &res);
        res.map(|()| tag)
    }

    async fn rollback_warm(
        &self,
        color: Color,
        live: Option<Color>,
        tag: &Tag,
        moved: &mut Moved,
    ) -> anyhow::Result<()> {
        // The config may have gained a djob since that release.
        self.check_image(tag).await?;
        self.health_of_warm(color, live, tag).await?;
        self.flip_and_verify(color, live, tag).await?;
        moved.to_color = Some(color);
        self.replace_workers(tag, Intent::Rollback).await?;
        Ok(())
    }
}

pub fn parse_label(tag: &str) -> anyhow::Result<Tag> {
    Tag::parse(tag).map_err(|e| anyhow!("history or a label names a bad tag {tag:?}: {e}"))
}

fn first_line(e: &anyhow::Error) -> String {
    format!("{e:#}")
        .lines()
        .next()
        .unwrap_or_default()
        .to_string()
}

#[cfg(test)]
pub mod fake;

#[cfg(test)]
mod tests;

#[cfg(test)]
mod release_tests;

#[cfg(test)]
mod pin_tests;
