//! The prepare phase of a fleet release, and its undoing when a host fails
//! it: the new colors are removed on every host that was to switch, not
//! only on those that got as far as a ready flip.

use std::time::Duration;

use anyhow::{anyhow, bail};
use futures_util::future::join_all;

use super::{host_errors, Fleet, Seen};
use crate::deploy::killpoint;
use crate::engine::Engine;
use crate::history::Intent;
use crate::host::PreparedFlip;
use crate::names::Tag;
use crate::plan::{self, PromotePlan};
use crate::roles::{Color, Role};

/// One host's prepare.
pub(super) struct Prepared {
    pub host: String,
    /// The color this release starts there (None: the host runs no portal,
    /// or already serves the tag). Whatever happened, a new container may
    /// stand there until the release flips.
    pub idle: Option<Color>,
    /// The flip made ready (None where there is nothing to flip), or why not.
    pub result: anyhow::Result<Option<PreparedFlip>>,
}

impl<E: Engine> Fleet<'_, E> {
    /// Starts the idle color on every portal host and waits for its health
    /// checks, all hosts in parallel; then, once every host is healthy (kill
    /// point `fleet-healthy`), one last probe and the flip made ready on
    /// each, as close to the flip as the phases allow.
    pub(super) async fn prepare(&self, tag: &Tag, intent: Intent, seen: &[Seen]) -> Vec<Prepared> {
        let idles: Vec<Option<Color>> = self
            .hosts
            .iter()
            .zip(seen)
            .map(|(d, s)| {
                if !d.host.runs("portal") {
                    return None;
                }
                match plan::promote_steps(&s.obs, tag.as_str(), &s.image_id, intent) {
                    PromotePlan::AlreadyLive { .. } => None,
                    PromotePlan::Switch { idle, .. } => Some(idle),
                }
            })
            .collect();
        let started = join_all(self.hosts.iter().zip(&idles).map(|(d, idle)| async move {
            match idle {
                Some(c) => d.start_portal(*c, tag).await,
                None => Ok(()),
            }
        }))
        .await;
        if started.iter().all(|r| r.is_ok()) {
            killpoint("fleet-healthy");
        }
        join_all(
            self.hosts
                .iter()
                .zip(&idles)
                .zip(started)
                .map(|((d, idle), st)| async move {
                    let result = match (idle, st) {
                        (_, Err(e)) => Err(e),
                        (None, Ok(())) => Ok(None),
                        (Some(c), Ok(())) => {
                            async {
                                let h = &self.cfg.health;
                                match d.host.probe(*c, h, h.timeout).await {
                                    Ok(a) if a.names(tag.as_str()) => {}
                                    other => bail!(
                                        "{} stopped answering right after its health checks ({})",
                                        Role::Portal(*c).container_name(&self.cfg.project),
                                        other.map(|a| a.describe()).unwrap_or_else(|e| e)
                                    ),
                                }
                                Ok(Some(d.host.prepare_flip(*c).await?))
                            }
                            .await
                        }
                    };
                    Prepared {
                        host: d.host.name.clone(),
                        idle: *idle,
                        result,
                    }
                }),
        )
        .await
    }

    /// A host failed its prepare: nothing was flipped; the new color goes
    /// on every host that was to switch (a color that passed its health
    /// checks, then failed the last probe or the flip's preparation, would
    /// otherwise stay running), each removal confirmed. The error names the
    /// hosts that failed with their reasons (a portal's last log lines),
    /// and any host where the removal could not be confirmed.
    pub(super) async fn abort_prepare(
        &self,
        tag: &Tag,
        prepared: Vec<Prepared>,
        failed: &[String],
    ) -> anyhow::Error {
        let removed = join_all(
            self.hosts
                .iter()
                .zip(&prepared)
                .filter_map(|(d, p)| p.idle.map(|c| (d, c)))
                .map(|(d, c)| async move {
                    let name = Role::Portal(c).container_name(&self.cfg.project);
                    let r = d
                        .remove(&name, Duration::from_secs(2))
                        .await
                        .map_err(|e| anyhow!("{name} may still be there: {e:#}"));
                    (d.host.name.clone(), r)
                }),
        )
        .await;
        let not_removed = host_errors(removed);
        let errors: Vec<String> = prepared
            .into_iter()
            .filter_map(|p| p.result.err().map(|e| format!("{}: {e:#}", p.host)))
            .collect();
        anyhow!(
            "{} of {} host(s) failed to prepare {tag} ({}); no host was flipped and {}\n{}",
            failed.len(),
            self.hosts.len(),
            failed.join(", "),
            if not_removed.is_empty() {
                "the new colors were removed".to_string()
            } else {
                format!(
                    "the new colors were removed except on: {}",
                    not_removed.join("; ")
                )
            },
            errors.join("\n")
        )
    }
}
