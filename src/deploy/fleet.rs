//! A release across several hosts: all of them flip, or none does.
//!
//! Capistrano's "update all, then publish all", with webdock's warm
//! previous color on every host:
//! check all → the release command once → prepare all in parallel (start
//! the idle color and health on every host, then a last probe and the flip
//! command made ready on each; any failure removes the new colors on every
//! host that was to switch: `prepare.rs`) → flip all in parallel (one round
//! trip each) → verify each through its own nginx → any failure flips every
//! flipped host back and removes the new colors. Each phase runs on every host concurrently and keeps every
//! host's outcome (`join_all`, not `try_join_all`): the next phase needs all
//! of them. The decisions between phases are `plan::fleet`'s.

use std::time::Instant;

use anyhow::{anyhow, bail};
use futures_util::future::join_all;

use super::{first_line, Deployer};
use crate::config::Config;
use crate::engine::Engine;
use crate::history::{self, Entry, HostRecord, Intent, Outcome};
use crate::host::PreparedFlip;
use crate::names::Tag;
use crate::out::Out;
use crate::plan::fleet::{self as decide, AfterFlip, AfterPrepare, FlipOutcome};
use crate::plan::Observed;

mod oncall;
mod prepare;
mod rollback;
mod workers;
use crate::roles::Role;
pub use oncall::{helper_image, FleetChange, FleetOnCall};

/// One fleet command: a deployer per reachable host.
pub struct Fleet<'a, E: Engine> {
    pub cfg: &'a Config,
    pub hosts: Vec<Deployer<'a, E>>,
    /// Left out with `--skip-host` (recorded; `status` warns they are behind).
    pub skipped: Vec<String>,
    /// Hosts that did not answer (the on-call verbs go on without them, but
    /// never guess what runs there): name and why.
    pub unreachable: Vec<(String, String)>,
    pub out: Out,
    /// The digest this release runs (`promote` with a registry).
    pub digest: Option<String>,
}

/// What one host looked like when the release began.
struct Seen {
    obs: Observed,
    image_id: String,
}

fn host_errors(results: Vec<(String, anyhow::Result<()>)>) -> Vec<String> {
    results
        .into_iter()
        .filter_map(|(h, r)| r.err().map(|e| format!("{h}: {e:#}")))
        .collect()
}

impl<'a, E: Engine> Fleet<'a, E> {
    /// `Config::release_host`'s deployer (the lock host, first by name,
    /// cannot be skipped; the named one can, and then the first runs it).
    fn release_host(&self) -> &Deployer<'a, E> {
        let named = self.cfg.release_host().map(|h| h.name.as_str());
        self.hosts
            .iter()
            .find(|d| Some(d.host.name.as_str()) == named)
            .unwrap_or(&self.hosts[0])
    }

    async fn check(&self, tag: &Tag) -> anyhow::Result<Vec<Seen>> {
        let results = join_all(self.hosts.iter().map(|d| async move {
            let r: anyhow::Result<Seen> = async {
                let image_id = d.check_image(tag).await?;
                d.host.ensure_dirs(&self.cfg.image_ref(tag)).await?;
                let obs = d.host.observe(&self.cfg.project).await?;
                Ok(Seen { obs, image_id })
            }
            .await;
            (d.host.name.clone(), r)
        }))
        .await;
        let mut seen = Vec::new();
        let mut errors = Vec::new();
        for (h, r) in results {
            match r {
                Ok(s) => seen.push(s),
                Err(e) => errors.push(format!("{h}: {e:#}")),
            }
        }
        if !errors.is_empty() {
            bail!(
                "{} host(s) not ready for {tag}; nothing was changed\n{}",
                errors.len(),
                errors.join("\n")
            );
        }
        Ok(seen)
    }

    /// `promote TAG` across the fleet. The caller holds the fleet lock.
    pub async fn promote(&self, tag: &Tag, intent: Intent) -> anyhow::Result<()> {
        let started = Instant::now();
        let mut records = self.blank_records();
        let mut window = None;
        let res = self
            .promote_phases(tag, intent, &mut records, &mut window)
            .await;
        for (r, d) in records.iter_mut().zip(&self.hosts) {
            r.steps = d.steps.done();
        }
        self.record(intent, tag, records, window, started, &res);
        res
    }

    /// One history line for the whole release, on the controller.
    fn record(
        &self,
        intent: Intent,
        tag: &Tag,
        hosts: Vec<HostRecord>,
        flip_window_ms: Option<f64>,
        started: Instant,
        res: &anyhow::Result<()>,
    ) {
        let e = Entry {
            action: intent,
            who: history::who(),
            when: crate::clock::now_rfc3339(),
            tag: tag.to_string(),
            from_tag: self.previous_tag(),
            from_color: None,
            to_color: None,
            steps: vec![],
            seconds: started.elapsed().as_secs_f64(),
            outcome: match res {
                Ok(()) => Outcome::Ok,
                Err(e) => Outcome::Failed(first_line(e)),
            },
            hosts,
            skipped: self.skipped.clone(),
            flip_window_ms,
            backup: self
                .release_host()
                .backup
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .take(),
            digest: self.digest.clone(),
        };
        if let Err(err) = history::append(&self.cfg.layout().history(), &e) {
            tracing::warn!("could not append to history: {err}");
        }
    }

    fn blank_records(&self) -> Vec<HostRecord> {
        self.hosts
            .iter()
            .map(|d| HostRecord {
                host: d.host.name.clone(),
                from_color: None,
                to_color: None,
                steps: vec![],
                error: None,
            })
            .collect()
    }

    /// The tag live before this release, from the fleet's history: that of
    /// the newest release that moved traffic, even one that failed after.
    fn previous_tag(&self) -> Option<String> {
        let (entries, _) = history::read(&self.cfg.layout().history()).ok()?;
        entries
            .iter()
            .rev()
            .find(|e| crate::plan::went_live(e, None))
            .map(|e| e.tag.clone())
    }

    async fn promote_phases(
        &self,
        tag: &Tag,
        intent: Intent,
        records: &mut [HostRecord],
        window: &mut Option<f64>,
    ) -> anyhow::Result<()> {
        let seen = self.check(tag).await?;
        super::killpoint("fleet-checked");
        for (r, s) in records.iter_mut().zip(&seen) {
            r.from_color = s.obs.live.map(|c| c.to_string());
        }
        if intent == Intent::Promote {
            let live = seen.iter().find_map(|s| s.obs.live_tag());
            self.release_host().release(tag, live).await?;
        }
        // Prepare: the idle color on every portal host, healthy, its flip
        // made ready.
        let prepared = self.prepare(tag, intent, &seen).await;
        let outcomes: Vec<decide::HostResult> = prepared
            .iter()
            .map(|p| {
                (
                    p.host.clone(),
                    p.result.as_ref().map(|_| ()).map_err(|e| format!("{e:#}")),
                )
            })
            .collect();
        if let AfterPrepare::Abort { failed } = decide::after_prepare(&outcomes) {
            return Err(self.abort_prepare(tag, prepared, &failed).await);
        }
        super::killpoint("fleet-prepared");
        let flips: Vec<(&Deployer<'a, E>, &Seen, PreparedFlip)> = self
            .hosts
            .iter()
            .zip(&seen)
            .zip(prepared)
            .filter_map(|((d, s), p)| p.result.ok().flatten().map(|p| (d, s, p)))
            .collect();
        // Flip: one round trip per host, all at once.
        let t0 = Instant::now();
        let flipped = join_all(flips.iter().map(|(d, _, p)| async move {
            let r = d.host.flip(p).await;
            (r, t0.elapsed().as_secs_f64() * 1000.0)
        }))
        .await;
        let offsets: Vec<f64> = flipped
            .iter()
            .filter(|(r, _)| r.is_ok())
            .map(|(_, t)| *t)
            .collect();
        *window = decide::flip_window(&offsets);
        // Every link moved, none checked through its nginx yet.
        super::killpoint("fleet-flipped-unverified");
        let verified = join_all(
            flips
                .iter()
                .zip(&flipped)
                .map(|((d, _, _), (f, _))| async move {
                    match f {
                        Err(e) => Err(format!("{e}")),
                        Ok(()) => d
                            .host
                            .verify(tag.as_str(), self.cfg.health.timeout)
                            .await
                            .map(|_| ()),
                    }
                }),
        )
        .await;
        let outcomes: Vec<FlipOutcome> = flips
            .iter()
            .zip(&flipped)
            .zip(verified)
            .map(|(((d, _, _), (f, _)), v)| FlipOutcome {
                host: d.host.name.clone(),
                // no answer is a failed flip that may have happened
                flipped: crate::host::maybe_flipped(f),
                result: v,
            })
            .collect();
        if let AfterFlip::FlipBack { hosts, failed } = decide::after_flip(&outcomes) {
            let back = join_all(flips.iter().map(|(d, s, p)| {
                let hosts = &hosts;
                async move {
                    let name = Role::Portal(p.to).container_name(&self.cfg.project);
                    let mut r = Ok(());
                    if hosts.contains(&d.host.name) {
                        if let Some(prev) = s.obs.live {
                            r = d.host.flip_now(prev).await.map_err(|e| anyhow!(e));
                        }
                    }
                    // Never verified: it must not look like a warm release.
                    let _ = d.remove(&name, self.cfg.portal.stop_grace).await;
                    (d.host.name.clone(), r)
                }
            }))
            .await;
            let not_back = host_errors(back);
            let why: Vec<String> = outcomes
                .iter()
                .filter_map(|o| o.result.as_ref().err().map(|e| format!("{}: {e}", o.host)))
                .collect();
            bail!(
                "{} failed after the flip ({}); every flipped host was flipped back and the new colors removed{}\n{}",
                tag,
                failed.join(", "),
                if not_back.is_empty() {
                    String::new()
                } else {
                    format!("; NOT flipped back: {}", not_back.join("; "))
                },
                why.join("\n")
            );
        }
        for ((d, _, p), r) in flips.iter().zip(
            records
                .iter_mut()
                .filter(|r| flips.iter().any(|(d, _, _)| d.host.name == r.host)),
        ) {
            debug_assert_eq!(d.host.name, r.host);
            r.to_color = Some(p.to.to_string());
        }
        super::killpoint("fleet-flipped");
        if intent.is_release() {
            self.place_workers(tag).await.map_err(|e| {
                anyhow!("the portals serve {tag} on every host, but workers failed: {e:#}")
            })?;
        }
        Ok(())
    }
}
