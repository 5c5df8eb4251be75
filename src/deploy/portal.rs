//! A portal color: started and health-checked beside the live one, then
//! the flip, the check through the host nginx, and the flip back.

use std::time::{Duration, Instant};

use anyhow::{anyhow, bail};
use serde_json::json;

use super::{Deployer, Step};
use crate::engine::Engine;
use crate::names::Tag;
use crate::roles::{Color, Role};

impl<E: Engine> Deployer<'_, E> {
    fn portal_name(&self, color: Color) -> String {
        Role::Portal(color).container_name(&self.cfg.project)
    }

    /// Stops (with the role's grace) and removes a container; absent is
    /// fine. The restart policy goes off first, so an engine restart
    /// between the stop and the remove cannot bring it back.
    pub(super) async fn remove(&self, name: &str, grace: Duration) -> anyhow::Result<()> {
        let engine = self.engine();
        engine.set_restart(name, false).await?;
        engine.stop_container(name, grace).await?;
        engine.remove_container(name).await?;
        Ok(())
    }

    /// Starts `color`'s portal on `tag` and waits until it is healthy. On
    /// failure the container is removed and its last logs returned.
    pub(super) async fn start_portal(&self, color: Color, tag: &Tag) -> anyhow::Result<()> {
        let role = Role::Portal(color);
        let spec = self.spec(&role, tag);
        let name = spec.name.clone();
        self.steps
            .run(Step::StartPortal, async {
                self.remove(&name, self.cfg.portal.stop_grace).await?;
                // A stale socket from an earlier container would look ready.
                self.host.clear_socket(color).await?;
                let started: anyhow::Result<()> = async {
                    self.engine().create_container(&spec).await?;
                    Ok(self.engine().start_container(&name).await?)
                }
                .await;
                if let Err(e) = started {
                    // Leave nothing behind that a later command must clean up.
                    let _ = self.engine().remove_container(&name).await;
                    return Err(e);
                }
                Ok(((), json!({ "container": name, "color": color })))
            })
            .await?;
        self.steps
            .run(Step::Health, async {
                let h = &self.cfg.health;
                // One deadline for socket and probes together.
                let until = Instant::now() + h.deadline;
                let r: anyhow::Result<crate::health::Healthy> = async {
                    tokio::select! {
                        r = self.host.wait_socket(color, h.deadline) => r.map_err(|e| anyhow!(e))?,
                        code = self.engine().wait_container(&name, h.deadline) => {
                            bail!("{name} exited with {} before its socket appeared", code.map(|c| c.to_string()).unwrap_or_else(|e| e.to_string()))
                        }
                    }
                    let left = crate::config::Health {
                        deadline: until.saturating_duration_since(Instant::now()),
                        ..h.clone()
                    };
                    Ok(self.host.wait_healthy(color, &left, tag.as_str()).await?)
                }
                .await;
                match r {
                    Ok(hy) => Ok(((), json!({ "probes": hy.probes, "color": color }))),
                    Err(e) => {
                        let logs = self.engine().logs_tail(&name, 30).await.unwrap_or_default();
                        let _ = self.remove(&name, Duration::from_secs(2)).await;
                        Err(anyhow!(
                            "{} on {tag} failed its health check: {e:#}; traffic stays where it was and {name} was removed\n--- last log lines of {name} ---\n{}",
                            role.describe(),
                            logs.trim_end()
                        ))
                    }
                }
            })
            .await
    }

    /// The warm previous color of a rollback answers for its tag.
    pub(super) async fn health_of_warm(
        &self,
        color: Color,
        live: Option<Color>,
        tag: &Tag,
    ) -> anyhow::Result<()> {
        self.steps
            .run(Step::Health, async {
                match self.host.wait_healthy(color, &self.cfg.health, tag.as_str()).await {
                    Ok(hy) => Ok(((), json!({ "probes": hy.probes, "color": color }))),
                    Err(e) => Err(anyhow!(
                        "the previous color {color} ({tag}) is not healthy: {e}; traffic stays on {}\nhint: webdock promote {tag} starts it afresh",
                        live.map(|c| c.as_str()).unwrap_or("-")
                    )),
                }
            })
            .await
    }

    /// Flips to `to`, then asks the host nginx; flips back to `back` if the
    /// answer does not name `tag`.
    pub(super) async fn flip_and_verify(
        &self,
        to: Color,
        back: Option<Color>,
        tag: &Tag,
    ) -> anyhow::Result<()> {
        let name = self.portal_name(to);
        self.steps
            .run(Step::Flip, async {
                // One last probe right before the flip: a container that died
                // just after its health checks must not get a single request.
                let h = &self.cfg.health;
                match self.host.probe(to, h, h.timeout).await {
                    Ok(a) if a.names(tag.as_str()) => {}
                    other => {
                        let last = other.map(|a| a.describe()).unwrap_or_else(|e| e);
                        let logs = self.engine().logs_tail(&name, 20).await.unwrap_or_default();
                        let _ = self.remove(&name, Duration::from_secs(2)).await;
                        bail!(
                            "{name} stopped answering right after its health checks ({last}); traffic stays where it was and {name} was removed\n--- last log lines of {name} ---\n{}",
                            logs.trim_end()
                        );
                    }
                }
                self.host.flip_now(to).await?;
                Ok(((), json!({ "live": to })))
            })
            .await?;
        if self.host.public_url.is_none() {
            return Ok(());
        }
        self.steps
            .run(Step::Verify, async {
                match self
                    .host
                    .verify(tag.as_str(), self.cfg.health.timeout)
                    .await
                {
                    Ok(url) => Ok(((), json!({ "url": url }))),
                    Err(why) => {
                        let restored = match back {
                            Some(b) => {
                                self.host.flip_now(b).await?;
                                // Not live and never verified: it must not look
                                // like a warm previous release to a later
                                // rollback. The graceful stop lets requests that
                                // reached it in the meantime finish.
                                self.remove(&name, self.cfg.portal.stop_grace).await?;
                                format!("flipped back to {b} and removed {name}")
                            }
                            None => "no earlier color to flip back to".into(),
                        };
                        bail!(
                            "{why}; {restored}\nhint: webdock doctor checks the host nginx config"
                        )
                    }
                }
            })
            .await
    }
}
