//! Rollback across the fleet: back to the release before the live one on
//! every host, warm where it still runs, with the same flip-back rule.

use anyhow::{anyhow, bail};
use futures_util::future::join_all;
use std::time::Instant;

use super::{decide, host_errors, AfterFlip, Fleet, FlipOutcome};
use crate::engine::Engine;
use crate::history::{self, HostRecord, Intent};
use crate::names::Tag;
use crate::plan;
use crate::roles::Color;

impl<E: Engine> Fleet<'_, E> {
    /// Back to the release before the live one on every host: warm where
    /// the other color still runs it (health, then one flip round), else a
    /// fleet promote of that tag.
    pub async fn rollback(&self) -> anyhow::Result<Tag> {
        let (entries, _) = history::read(&self.cfg.layout().history())?;
        let mut warm = Vec::new();
        let mut target = None;
        for d in &self.hosts {
            let obs = d.host.observe(&self.cfg.project).await?;
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
        for (r, c) in records.iter_mut().zip(&warm) {
            r.from_color = Some(c.other().to_string());
        }
        let res = self.rollback_warm(&tag, &warm, &mut records).await;
        self.record(Intent::Rollback, &tag, records, None, started, &res);
        res.map(|()| tag)
    }

    /// Sets each host's `to_color` once its flip held: history must not
    /// say a rollback went live when it stopped at the health checks.
    async fn rollback_warm(
        &self,
        tag: &Tag,
        warm: &[Color],
        records: &mut [HostRecord],
    ) -> anyhow::Result<()> {
        let tag_ref = tag;
        let checks = join_all(self.hosts.iter().zip(warm).map(|(d, c)| async move {
            let tag = tag_ref;
            (
                d.host.name.clone(),
                d.host
                    .wait_healthy(*c, &self.cfg.health, tag.as_str())
                    .await
                    .map(|_| ())
                    .map_err(|e| anyhow!(e)),
            )
        }))
        .await;
        let errors = host_errors(checks);
        if !errors.is_empty() {
            bail!(
                "the previous release {tag} is not healthy everywhere; traffic stays\n{}",
                errors.join("\n")
            );
        }
        self.flip_all(tag, warm).await?;
        for (r, c) in records.iter_mut().zip(warm) {
            r.to_color = Some(c.to_string());
        }
        self.place_workers(tag_ref)
            .await
            .map_err(|e| anyhow!("traffic is on {tag}, but workers failed: {e:#}"))?;
        Ok(())
    }

    /// Flips every host to its `to` color at once, verifies, flips all back
    /// on any failure.
    async fn flip_all(&self, tag: &Tag, to: &[Color]) -> anyhow::Result<()> {
        let prepared = join_all(
            self.hosts
                .iter()
                .zip(to)
                .map(|(d, c)| d.host.prepare_flip(*c)),
        )
        .await;
        let mut flips = Vec::new();
        for (d, p) in self.hosts.iter().zip(prepared) {
            flips.push((d, p.map_err(|e| anyhow!("{}: {e}", d.host.name))?));
        }
        let results = join_all(flips.iter().map(|(d, p)| async move {
            let f = d.host.flip(p).await;
            let v = match &f {
                Ok(()) => d
                    .host
                    .verify(tag.as_str(), self.cfg.health.timeout)
                    .await
                    .map(|_| ()),
                Err(e) => Err(e.to_string()),
            };
            FlipOutcome {
                host: d.host.name.clone(),
                flipped: f.is_ok(),
                result: v,
            }
        }))
        .await;
        if let AfterFlip::FlipBack { hosts, failed } = decide::after_flip(&results) {
            for (d, p) in &flips {
                if hosts.contains(&d.host.name) {
                    let _ = d.host.flip_now(p.to.other()).await;
                }
            }
            bail!(
                "{tag} failed on {} after the flip; every flipped host was flipped back",
                failed.join(", ")
            );
        }
        Ok(())
    }
}
