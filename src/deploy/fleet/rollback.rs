//! Rollback across the fleet: back to the release before the live one on
//! every host, warm where it still runs, with the same flip-back rule.

use anyhow::{anyhow, bail};
use futures_util::future::join_all;
use serde_json::json;
use std::time::Instant;

use super::{decide, host_errors, AfterFlip, Fleet, FlipOutcome};
use crate::deploy::{Deployer, Step};
use crate::engine::Engine;
use crate::history::{self, HostRecord, Intent};
use crate::host::{maybe_flipped, PreparedFlip};
use crate::names::Tag;
use crate::plan;
use crate::roles::Color;

impl<E: Engine> Fleet<'_, E> {
    /// Back to the release before the live one on every host: warm where
    /// the other color still runs it (health, then one flip round), else a
    /// fleet promote of that tag.
    pub async fn rollback(&self) -> anyhow::Result<Tag> {
        let (entries, _) = history::read(&self.cfg.layout().history())?;
        // Every host looked at once: each look is several engine calls.
        let seen = join_all(self.hosts.iter().map(|d| d.host.observe(&self.cfg.project))).await;
        let mut warm = Vec::new();
        let mut target = None;
        for (d, obs) in self.hosts.iter().zip(seen) {
            let obs = obs.map_err(|e| anyhow!("{}: {e}", d.host.name))?;
            match plan::rollback_target(&obs, &entries, Some(&d.host.name)) {
                Ok(plan::RollbackTarget::Warm { color, tag }) => {
                    warm.push(color);
                    target = Some(tag);
                }
                Ok(plan::RollbackTarget::Cold { tag }) => {
                    target = Some(tag);
                    warm.clear();
                    break;
                }
                Err(e) => bail!(crate::Usage(format!("{}: {e}", d.host.name))),
            }
        }
        let tag = Tag::parse(target.as_deref().unwrap_or_default())
            .map_err(|e| anyhow!("history names a bad tag: {e}"))?;
        if warm.len() != self.hosts.len() {
            self.out.progress(&format!(
                "the previous release {tag} is not warm on every host; promoting it again"
            ));
            self.promote(&tag, Intent::Rollback).await?;
            return Ok(tag);
        }
        // Warm everywhere: the promote path finds the idle colors already
        // running that tag only if we start them; health-check them instead.
        let started = Instant::now();
        let mut records = self.blank_records();
        let mut window = None;
        let res = self
            .rollback_warm(&tag, &warm, &mut records, &mut window)
            .await;
        for ((r, c), d) in records.iter_mut().zip(&warm).zip(&self.hosts) {
            r.from_color = Some(c.other().to_string());
            r.steps = d.steps.done();
        }
        self.record(Intent::Rollback, &tag, records, window, started, &res);
        res.map(|()| tag)
    }

    /// Health on every host's warm color and, meanwhile, its flip made
    /// ready; then one flip round and the workers. Sets each host's
    /// `to_color` once its flip held: history must not say a rollback went
    /// live when it stopped at the health checks.
    async fn rollback_warm(
        &self,
        tag: &Tag,
        warm: &[Color],
        records: &mut [HostRecord],
        window: &mut Option<f64>,
    ) -> anyhow::Result<()> {
        let h = &self.cfg.health;
        let ready = join_all(self.hosts.iter().zip(warm).map(|(d, c)| async move {
            let health = d.steps.run(Step::Health, async {
                let hy = d.host.wait_healthy(*c, h, tag.as_str()).await?;
                Ok(((), json!({ "probes": hy.probes, "color": c })))
            });
            let (health, flip) = tokio::join!(health, d.host.prepare_flip(*c));
            let r = health.and_then(|()| Ok(flip?));
            (d.host.name.clone(), r)
        }))
        .await;
        let mut flips = Vec::new();
        let mut errors = Vec::new();
        for (d, (name, r)) in self.hosts.iter().zip(ready) {
            match r {
                Ok(p) => flips.push((d, p)),
                Err(e) => errors.push(format!("{name}: {e:#}")),
            }
        }
        if !errors.is_empty() {
            bail!(
                "the previous release {tag} is not healthy everywhere; traffic stays\n{}",
                errors.join("\n")
            );
        }
        *window = self.flip_all(tag, &flips).await?;
        for (r, c) in records.iter_mut().zip(warm) {
            r.to_color = Some(c.to_string());
        }
        self.place_workers(tag)
            .await
            .map_err(|e| anyhow!("traffic is on {tag}, but workers failed: {e:#}"))?;
        Ok(())
    }

    /// Flips every host at once (one round trip each), verifies, flips all
    /// back on any failure. Returns the flip window, first to last host.
    async fn flip_all(
        &self,
        tag: &Tag,
        flips: &[(&Deployer<'_, E>, PreparedFlip)],
    ) -> anyhow::Result<Option<f64>> {
        let t0 = Instant::now();
        let results = join_all(flips.iter().map(|(d, p)| async move {
            let t = Instant::now();
            let f = d.host.flip(p).await;
            let at = t0.elapsed().as_secs_f64() * 1000.0;
            let v = match &f {
                Ok(()) => {
                    d.steps.end(Step::Flip, t, json!({ "color": p.to }));
                    d.steps
                        .run(Step::Verify, async {
                            let url = d
                                .host
                                .verify(tag.as_str(), self.cfg.health.timeout)
                                .await
                                .map_err(|e| anyhow!(e))?;
                            Ok(((), json!({ "url": url })))
                        })
                        .await
                        .map_err(|e| format!("{e:#}"))
                }
                Err(e) => Err(e.to_string()),
            };
            let o = FlipOutcome {
                host: d.host.name.clone(),
                flipped: maybe_flipped(&f),
                result: v,
            };
            (o, f.is_ok().then_some(at))
        }))
        .await;
        let offsets: Vec<f64> = results.iter().filter_map(|(_, at)| *at).collect();
        let outcomes: Vec<FlipOutcome> = results.into_iter().map(|(o, _)| o).collect();
        if let AfterFlip::FlipBack { hosts, failed } = decide::after_flip(&outcomes) {
            let back = join_all(
                flips
                    .iter()
                    .filter(|(d, _)| hosts.contains(&d.host.name))
                    .map(|(d, p)| async move {
                        let r = d.host.flip_now(p.to.other()).await.map_err(|e| anyhow!(e));
                        (d.host.name.clone(), r)
                    }),
            )
            .await;
            let not_back = host_errors(back);
            let why: Vec<String> = outcomes
                .iter()
                .filter_map(|o| o.result.as_ref().err().map(|e| format!("{}: {e}", o.host)))
                .collect();
            bail!(
                "{tag} failed on {} after the flip; every flipped host was flipped back{}\n{}",
                failed.join(", "),
                if not_back.is_empty() {
                    String::new()
                } else {
                    format!("; NOT flipped back: {}", not_back.join("; "))
                },
                why.join("\n")
            );
        }
        Ok(decide::flip_window(&offsets))
    }
}
