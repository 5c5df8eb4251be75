//! Carrying out promote, rollback and stop-first replacement.
//!
//! Generic over [`Engine`], so the order of operations is unit-tested with a
//! recording fake (see `tests` below) and the same code runs against Docker.
//! The order is the guarantee:
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

use std::collections::HashSet;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};
use serde_json::json;

use crate::config::Config;
use crate::engine::{ContainerInfo, Engine};
use crate::health;
use crate::history;
use crate::lock::{Holder, Lock, LockError};
use crate::names::Tag;
use crate::out::Out;
use crate::plan;
use crate::proxy;
use crate::roles::{Color, Role, Specs, LABEL_COLOR, LABEL_DJOBS, LABEL_ROLE, LABEL_TAG};
use crate::Usage;

/// Test builds stop dead (SIGKILL, no cleanup) at the step named by
/// `WEBDOCK_KILL_AT`, to prove that every crash point is recoverable, and
/// wait at the step named by `WEBDOCK_HOLD_AT=<step>=<file>` until the file
/// exists, so a test can break something at that exact moment. Release
/// builds ignore both.
pub fn killpoint(name: &str) {
    if !cfg!(debug_assertions) {
        return;
    }
    if std::env::var("WEBDOCK_KILL_AT").is_ok_and(|v| v == name) {
        eprintln!("webdock: killed at {name} (WEBDOCK_KILL_AT)");
        // SAFETY: sending a signal to ourselves.
        unsafe { libc::kill(libc::getpid(), libc::SIGKILL) };
    }
    if let Some((step, file)) = std::env::var("WEBDOCK_HOLD_AT")
        .ok()
        .as_deref()
        .and_then(|v| v.split_once('='))
    {
        if step == name {
            eprintln!("webdock: held at {name} until {file} exists (WEBDOCK_HOLD_AT)");
            while !std::path::Path::new(file).exists() {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
}

pub struct Ctx<'a, E: Engine> {
    pub cfg: &'a Config,
    pub engine: &'a E,
    pub specs: Specs<'a>,
    pub out: Out,
    steps: Vec<(String, f64)>,
}

/// What a stop-first replacement did.
#[derive(Debug, Clone)]
pub struct Replaced {
    pub role: String,
    pub old: Option<String>,
    pub new: String,
    pub down: Duration,
}

pub fn deploy_lock_path(cfg: &Config) -> PathBuf {
    cfg.state_dir().join("deploy.lock")
}

pub fn role_lock_path(cfg: &Config, role: &Role) -> PathBuf {
    match role {
        Role::Djob(n) => cfg.state_dir().join(format!("djob-{n}.lock")),
        _ => cfg.state_dir().join(format!("{}.lock", role.kind())),
    }
}

pub fn take_deploy_lock(cfg: &Config, command: &str, tag: Option<&str>) -> anyhow::Result<Lock> {
    Ok(Lock::try_acquire(
        &deploy_lock_path(cfg),
        &format!("project {}", cfg.project),
        &Holder::me(command, tag),
    )?)
}

impl<'a, E: Engine> Ctx<'a, E> {
    pub fn new(cfg: &'a Config, engine: &'a E, out: Out) -> anyhow::Result<Self> {
        Ok(Ctx {
            cfg,
            engine,
            specs: Specs::new(cfg)?,
            out,
            steps: Vec::new(),
        })
    }

    fn begin(&self, step: &str) -> Instant {
        self.out.step(step, "start", json!({}));
        Instant::now()
    }

    fn end(&mut self, step: &str, t: Instant, extra: serde_json::Value) {
        let secs = t.elapsed().as_secs_f64();
        self.steps.push((step.to_string(), secs));
        let mut extra = extra;
        if let Some(m) = extra.as_object_mut() {
            m.insert("seconds".into(), json!((secs * 1000.0).round() / 1000.0));
        }
        self.out.step(step, "done", extra);
        killpoint(step);
    }

    fn fail(&self, step: &str, e: &anyhow::Error) {
        self.out
            .step(step, "failed", json!({ "error": format!("{e:#}") }));
    }

    /// The image for `tag` exists, is labelled for it and knows every djob.
    pub async fn check_image(&self, tag: &Tag) -> anyhow::Result<()> {
        let reference = self.cfg.image_ref(tag);
        let Some(img) = self.engine.inspect_image(&reference).await? else {
            bail!(Usage(format!(
                "image {reference} not found\nhint: webdock build {tag}"
            )));
        };
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
        Ok(())
    }

    async fn containers(&self) -> anyhow::Result<Vec<ContainerInfo>> {
        Ok(self.engine.list_containers(&self.cfg.project).await?)
    }

    /// Stops (with the role's grace) and removes a container; absent is fine.
    /// The restart policy goes off first, so an engine restart between the
    /// stop and the remove cannot bring it back.
    async fn remove(&self, name: &str, grace: Duration) -> anyhow::Result<()> {
        self.engine.set_restart(name, false).await?;
        self.engine.stop_container(name, grace).await?;
        self.engine.remove_container(name).await?;
        Ok(())
    }

    /// Runs the release command in a one-off container; its failure aborts
    /// with its output and leaves everything else as it was.
    async fn release(&mut self, tag: &Tag) -> anyhow::Result<()> {
        if self.cfg.release.command.is_empty() {
            return Ok(());
        }
        let t = self.begin("release");
        let role = Role::Release(tag.clone());
        let spec = self.specs.spec(&role, tag);
        let name = spec.name.clone();
        let r: anyhow::Result<i64> = async {
            self.engine.remove_container(&name).await?;
            self.engine.create_container(&spec).await?;
            self.engine.start_container(&name).await?;
            Ok(self
                .engine
                .wait_container(&name, self.cfg.release.timeout)
                .await?)
        }
        .await;
        let logs = self.engine.logs_tail(&name, 40).await.unwrap_or_default();
        let _ = self.engine.remove_container(&name).await;
        match r {
            Ok(0) => {
                self.end(
                    "release",
                    t,
                    json!({ "command": self.cfg.release.command.join(" ") }),
                );
                Ok(())
            }
            Ok(code) => {
                let e = anyhow!(
                    "release command `{}` exited with {code} in {name}; nothing was changed\n--- its last output ---\n{}",
                    self.cfg.release.command.join(" "),
                    logs.trim_end()
                );
                self.fail("release", &e);
                Err(e)
            }
            Err(e) => {
                self.fail("release", &e);
                Err(e)
            }
        }
    }

    /// Starts `color`'s portal on `tag` and waits until it is healthy. On
    /// failure the container is removed and its last logs returned.
    async fn start_portal(&mut self, color: Color, tag: &Tag) -> anyhow::Result<()> {
        let t = self.begin("start-portal");
        let role = Role::Portal(color);
        let spec = self.specs.spec(&role, tag);
        let name = spec.name.clone();
        let sock = proxy::socket_path(self.cfg, color);
        self.remove(&name, self.cfg.portal.stop_grace).await?;
        // A stale socket from an earlier container would look ready.
        match std::fs::remove_file(&sock) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(e).with_context(|| format!("removing stale socket {}", sock.display()))
            }
            _ => {}
        }
        let started: anyhow::Result<()> = async {
            self.engine.create_container(&spec).await?;
            Ok(self.engine.start_container(&name).await?)
        }
        .await;
        if let Err(e) = started {
            // Leave nothing behind that a later command must clean up.
            let _ = self.engine.remove_container(&name).await;
            self.fail("start-portal", &e);
            return Err(e);
        }
        self.end(
            "start-portal",
            t,
            json!({ "container": name, "color": color }),
        );

        let t = self.begin("health");
        let h = &self.cfg.health;
        // One deadline for socket and probes together.
        let until = Instant::now() + h.deadline;
        let r: anyhow::Result<health::Healthy> = async {
            tokio::select! {
                r = health::wait_socket(&sock, h.deadline) => r?,
                code = self.engine.wait_container(&name, h.deadline) => {
                    bail!("{name} exited with {} before its socket appeared", code.map(|c| c.to_string()).unwrap_or_else(|e| e.to_string()))
                }
            }
            let left = crate::config::Health {
                deadline: until.saturating_duration_since(Instant::now()),
                ..h.clone()
            };
            Ok(health::wait_healthy(&sock, &left, tag.as_str()).await?)
        }
        .await;
        match r {
            Ok(hy) => {
                self.end("health", t, json!({ "probes": hy.probes, "color": color }));
                Ok(())
            }
            Err(e) => {
                let logs = self.engine.logs_tail(&name, 30).await.unwrap_or_default();
                let _ = self.remove(&name, Duration::from_secs(2)).await;
                let e = anyhow!(
                    "{} on {tag} failed its health check: {e:#}; traffic stays where it was and {name} was removed\n--- last log lines of {name} ---\n{}",
                    role.describe(),
                    logs.trim_end()
                );
                self.fail("health", &e);
                Err(e)
            }
        }
    }

    /// Flips to `to`, then asks the host nginx; flips back to `back` if the
    /// answer does not name `tag`.
    async fn flip_and_verify(
        &mut self,
        to: Color,
        back: Option<Color>,
        tag: &Tag,
    ) -> anyhow::Result<()> {
        // One last probe right before the flip: a container that died just
        // after its health checks must not get a single request.
        let t = self.begin("flip");
        let sock = proxy::socket_path(self.cfg, to);
        let h = &self.cfg.health;
        match health::probe_unix(&sock, &h.host, &h.path, h.timeout).await {
            Ok(a) if a.names(tag.as_str()) => {}
            other => {
                let last = other.map(|a| a.describe()).unwrap_or_else(|e| e);
                let name = Role::Portal(to).container_name(&self.cfg.project);
                let logs = self.engine.logs_tail(&name, 20).await.unwrap_or_default();
                let _ = self.remove(&name, Duration::from_secs(2)).await;
                let e = anyhow!(
                    "{name} stopped answering right after its health checks ({last}); traffic stays where it was and {name} was removed\n--- last log lines of {name} ---\n{}",
                    logs.trim_end()
                );
                self.fail("flip", &e);
                return Err(e);
            }
        }
        proxy::flip(self.cfg, to)?;
        self.end("flip", t, json!({ "live": to }));
        let Some(url) = self.cfg.portal.public_url.clone() else {
            return Ok(());
        };
        let t = self.begin("verify");
        let mut last = String::new();
        for attempt in 0..5 {
            if attempt > 0 {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            match health::probe_url(&url, self.cfg.health.timeout).await {
                Ok(a) if a.names(tag.as_str()) => {
                    self.end("verify", t, json!({ "url": url }));
                    return Ok(());
                }
                Ok(a) => last = a.describe(),
                Err(e) => last = e,
            }
        }
        let restored = match back {
            Some(b) => {
                proxy::flip(self.cfg, b)?;
                // Not live and never verified: it must not look like a warm
                // previous release to a later rollback. The graceful stop
                // lets requests that reached it in the meantime finish.
                let name = Role::Portal(to).container_name(&self.cfg.project);
                self.remove(&name, self.cfg.portal.stop_grace).await?;
                format!("flipped back to {b} and removed {name}")
            }
            None => "no earlier color to flip back to".into(),
        };
        let e = anyhow!("the host nginx at {url} does not answer with {tag} after the flip (last: {last}); {restored}\nhint: webdock doctor checks the host nginx config");
        self.fail("verify", &e);
        Err(e)
    }

    /// Stop-first replacement of one cron or djob container.
    pub async fn replace(&self, role: &Role, tag: &Tag) -> anyhow::Result<Replaced> {
        let spec = self.specs.spec(role, tag);
        let grace = spec.stop_timeout;
        let old = self.engine.inspect_container(&spec.name).await?;
        let t0 = Instant::now();
        self.remove(&spec.name, grace).await?;
        killpoint(&format!("replace-removed:{}", role.describe()));
        let new = self.engine.create_container(&spec).await?;
        self.engine.start_container(&spec.name).await?;
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
        let info = self.engine.inspect_container(name).await?;
        let failed = match &info {
            None => true,
            Some(c) => !c.running || c.restart_count > 0,
        };
        if failed {
            let logs = self.engine.logs_tail(name, 20).await.unwrap_or_default();
            bail!(
                "{} did not stay up after its start ({}); last log lines:\n{}",
                role.describe(),
                info.map(|c| format!("{}, {} restarts", c.state, c.restart_count))
                    .unwrap_or_else(|| "gone".into()),
                logs.trim_end()
            );
        }
        Ok(())
    }

    /// Replace under the role's lock, waiting for a concurrent on-call
    /// restart of the same role to finish rather than failing the deploy.
    async fn replace_locked(
        &self,
        role: &Role,
        tag: &Tag,
        command: &str,
    ) -> anyhow::Result<Replaced> {
        let path = role_lock_path(self.cfg, role);
        let me = Holder::me(command, Some(tag.as_str()));
        let deadline = Instant::now() + Duration::from_secs(120);
        let _lock = loop {
            match Lock::try_acquire(&path, &role.describe(), &me) {
                Ok(l) => break l,
                Err(LockError::Held { .. } | LockError::HeldUnknown { .. })
                    if Instant::now() < deadline =>
                {
                    tokio::time::sleep(Duration::from_millis(100)).await
                }
                Err(e) => return Err(e.into()),
            }
        };
        self.replace(role, tag).await
    }

    /// Cron or djob containers the config no longer names (a djob removed
    /// from webdock.toml, cron disabled) are stopped and removed: otherwise
    /// they would run on an old tag for ever, unseen by status.
    async fn remove_unconfigured(&self, wanted: &[Role]) -> anyhow::Result<()> {
        let names: HashSet<String> = wanted
            .iter()
            .map(|r| r.container_name(&self.cfg.project))
            .collect();
        for c in self.containers().await? {
            let worker = matches!(c.label(LABEL_ROLE), Some("djob" | "cron"));
            if worker && !names.contains(&c.name) {
                self.out.progress(&format!(
                    "removing {}: no longer in {}",
                    c.name,
                    self.cfg.path.display()
                ));
                // Its own grace when known (cron), else the djob default.
                let grace = if c.label(LABEL_ROLE) == Some("cron") {
                    self.cfg.cron.stop_grace
                } else {
                    Duration::from_secs(10)
                };
                self.remove(&c.name, grace + Duration::from_secs(5)).await?;
            }
        }
        Ok(())
    }

    /// cron and every djob onto `tag`, stop-first; djobs in parallel.
    async fn replace_workers(&mut self, tag: &Tag, command: &str) -> anyhow::Result<Vec<Replaced>> {
        let t = self.begin("workers");
        let mut roles: Vec<Role> = Vec::new();
        if self.cfg.cron.enabled {
            roles.push(Role::Cron);
        }
        roles.extend(self.cfg.djobs.iter().map(|d| Role::Djob(d.name.clone())));
        self.remove_unconfigured(&roles).await?;
        let this = &*self;
        let results = futures_util::future::join_all(
            roles.iter().map(|r| this.replace_locked(r, tag, command)),
        )
        .await;
        let mut done = Vec::new();
        let mut errors = Vec::new();
        for (r, res) in roles.iter().zip(results) {
            match res {
                Ok(x) => done.push(x),
                Err(e) => errors.push(format!("{}: {e:#}", r.describe())),
            }
        }
        if !errors.is_empty() {
            let e = anyhow!(
                "{} failed to start on {tag}; the portal already serves {tag}\n{}",
                errors.len(),
                errors.join("\n")
            );
            self.fail("workers", &e);
            return Err(e);
        }
        let roles_json: Vec<_> = done
            .iter()
            .map(|r| json!({"role": r.role, "down_ms": r.down.as_millis()}))
            .collect();
        self.end("workers", t, json!({ "replaced": roles_json }));
        Ok(done)
    }

    /// Removes images beyond the newest `keep_images`, never the live or
    /// previous tag or one a container uses. Failure here is only a warning.
    async fn prune(&mut self, protect: HashSet<String>) {
        let t = self.begin("prune");
        let r: anyhow::Result<usize> = async {
            let images = self.engine.list_images(&self.cfg.image).await?;
            let mut protect = protect;
            for c in self.containers().await? {
                if let Some(tag) = c.label(LABEL_TAG) {
                    protect.insert(tag.to_string());
                }
            }
            let doomed =
                plan::images_to_prune(&self.cfg.image, &images, self.cfg.keep_images, &protect);
            for d in &doomed {
                self.engine.remove_image(d).await?;
            }
            Ok(doomed.len())
        }
        .await;
        match r {
            Ok(n) => self.end("prune", t, json!({ "removed": n })),
            Err(e) => tracing::warn!("pruning old images failed: {e:#}"),
        }
    }

    fn record(
        &self,
        action: &str,
        tag: &Tag,
        from: Option<(Color, Option<String>)>,
        to: Option<Color>,
        started: Instant,
        outcome: &str,
    ) {
        let e = history::Entry {
            action: action.into(),
            who: history::who(),
            when: crate::clock::now_rfc3339(),
            tag: tag.to_string(),
            from_tag: from.as_ref().and_then(|f| f.1.clone()),
            from_color: from.map(|f| f.0.to_string()),
            to_color: to.map(|c| c.to_string()),
            steps: self.steps.clone(),
            seconds: started.elapsed().as_secs_f64(),
            outcome: outcome.into(),
        };
        if let Err(err) = history::append(&history::path(&self.cfg.state_dir()), &e) {
            tracing::warn!("could not append to history: {err}");
        }
    }

    /// The tag the live color's portal runs, if it runs.
    fn live_portal<'c>(
        &self,
        containers: &'c [ContainerInfo],
        color: Option<Color>,
    ) -> Option<&'c ContainerInfo> {
        let color = color?;
        containers.iter().find(|c| {
            c.label(LABEL_ROLE) == Some("portal") && c.label(LABEL_COLOR) == Some(color.as_str())
        })
    }

    /// `promote TAG`, and the fallback of `rollback`. With `portal_only`
    /// (`restart portal`) the portal is started afresh in the idle color even
    /// on the live tag, and cron and djobs are left alone. The caller holds
    /// the deploy lock.
    pub async fn promote(
        &mut self,
        tag: &Tag,
        action: &str,
        portal_only: bool,
    ) -> anyhow::Result<()> {
        let started = Instant::now();
        let t = self.begin("check");
        self.check_image(tag).await?;
        proxy::ensure_dirs(self.cfg)?;
        let live = proxy::live(self.cfg)?;
        let containers = self.containers().await?;
        let live_c = self.live_portal(&containers, live).cloned();
        let live_tag = live_c
            .as_ref()
            .filter(|c| c.running)
            .and_then(|c| c.label(LABEL_TAG).map(str::to_owned));
        self.end("check", t, json!({ "live": live, "live_tag": live_tag }));
        let from = live.map(|c| (c, live_tag.clone()));

        let res: anyhow::Result<Color> = async {
            // Re-running a promote that crashed after its flip converges:
            // the portal is already there, only the workers remain.
            if live_tag.as_deref() == Some(tag.as_str()) && !portal_only {
                let color = live.expect("a live tag implies a live color");
                self.out
                    .progress(&format!("portal {color} already serves {tag}"));
                return Ok(color);
            }
            let idle = plan::idle_color(live);
            // A portal restart runs the live tag again: its release command
            // has already run.
            if !portal_only {
                self.release(tag).await?;
            }
            self.start_portal(idle, tag).await?;
            self.flip_and_verify(idle, live, tag).await?;
            Ok(idle)
        }
        .await;
        let to = match res {
            Ok(c) => c,
            Err(e) => {
                self.record(
                    action,
                    tag,
                    from,
                    None,
                    started,
                    &format!("failed: {}", first_line(&e)),
                );
                return Err(e);
            }
        };
        if !portal_only {
            if let Err(e) = self.replace_workers(tag, action).await {
                self.record(
                    action,
                    tag,
                    from,
                    Some(to),
                    started,
                    &format!("failed: {}", first_line(&e)),
                );
                return Err(e);
            }
        }
        self.record(action, tag, from.clone(), Some(to), started, "ok");
        let mut protect: HashSet<String> = [tag.to_string()].into();
        if let Some(Some(prev)) = from.map(|f| f.1) {
            protect.insert(prev);
        }
        self.prune(protect).await;
        Ok(())
    }

    /// Back to the previous color if it is still warm and healthy, else a
    /// promote of the previous tag. The caller holds the deploy lock.
    pub async fn rollback(&mut self) -> anyhow::Result<Tag> {
        let started = Instant::now();
        let Some(live) = proxy::live(self.cfg)? else {
            bail!(Usage(
                "nothing to roll back: no release is live yet\nhint: webdock promote TAG".into()
            ));
        };
        let containers = self.containers().await?;
        let live_tag = self
            .live_portal(&containers, Some(live))
            .and_then(|c| c.label(LABEL_TAG).map(str::to_owned));
        let prev = live.other();
        let warm = self
            .live_portal(&containers, Some(prev))
            .filter(|c| c.running)
            .cloned();
        if let Some(w) = warm {
            let tag = Tag::parse(w.label(LABEL_TAG).unwrap_or_default())
                .map_err(|e| anyhow!("{} has a bad tag label: {e}", w.name))?;
            // The config may have gained a djob since that release.
            self.check_image(&tag).await?;
            let t = self.begin("health");
            let h = health::wait_healthy(
                &proxy::socket_path(self.cfg, prev),
                &self.cfg.health,
                tag.as_str(),
            )
            .await;
            match h {
                Ok(hy) => self.end("health", t, json!({ "probes": hy.probes, "color": prev })),
                Err(e) => {
                    let e = anyhow!("the previous color {prev} ({tag}) is not healthy: {e}; traffic stays on {live}\nhint: webdock promote {tag} starts it afresh");
                    self.fail("health", &e);
                    self.record(
                        "rollback",
                        &tag,
                        Some((live, live_tag)),
                        None,
                        started,
                        &format!("failed: {}", first_line(&e)),
                    );
                    return Err(e);
                }
            }
            let from = Some((live, live_tag));
            if let Err(e) = self.flip_and_verify(prev, Some(live), &tag).await {
                self.record(
                    "rollback",
                    &tag,
                    from,
                    None,
                    started,
                    &format!("failed: {}", first_line(&e)),
                );
                return Err(e);
            }
            if let Err(e) = self.replace_workers(&tag, "rollback").await {
                self.record(
                    "rollback",
                    &tag,
                    from,
                    Some(prev),
                    started,
                    &format!("failed: {}", first_line(&e)),
                );
                return Err(e);
            }
            self.record("rollback", &tag, from, Some(prev), started, "ok");
            return Ok(tag);
        }
        // The warm color is gone: promote the tag that came before the live one.
        let (entries, _) = history::read(&history::path(&self.cfg.state_dir()))?;
        let prev_tag = entries
            .iter()
            .rev()
            .filter(|e| e.outcome == "ok" && Some(&e.tag) == live_tag.as_ref())
            .find_map(|e| e.from_tag.clone())
            .ok_or_else(|| {
                Usage(format!(
                    "no previous release to roll back to from {}",
                    live_tag.as_deref().unwrap_or("?")
                ))
            })?;
        let tag = Tag::parse(&prev_tag)
            .map_err(|e| anyhow!("history names a bad tag {prev_tag:?}: {e}"))?;
        self.out.progress(&format!(
            "previous color {prev} is gone; promoting {tag} again"
        ));
        self.promote(&tag, "rollback", false).await?;
        Ok(tag)
    }
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
