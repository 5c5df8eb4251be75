//! The release command (migrations) in a one-off container of the new
//! image, before anything visible changes, and never two at once, never
//! killed halfway.
//!
//! Migrations change shared state, and on MySQL a schema change killed
//! halfway leaves a half-changed schema. So the release container outlives
//! webdock on purpose: at most one release container of a project runs at
//! any time (found by label, any tag); a promote of the same tag waits for
//! a running one (a killed or interrupted webdock's) instead of starting a
//! second, a promote of another tag is refused, and neither a timeout nor a
//! Ctrl-C of webdock kills it: webdock stops waiting and says where it goes
//! on. Only `webdock release kill` kills one, when a person decides to.

use std::time::Duration;

use anyhow::anyhow;
use serde_json::json;

use super::interrupt::Interrupts;
use super::{killpoint, Deployer, Step};
use crate::backups;
use crate::clock;
use crate::engine::{Engine, EngineError};
use crate::names::Tag;
use crate::plan::{self, Reap, ReleaseAction};
use crate::roles::Role;

/// How a wait for a release container ended without an exit code.
enum Stopped {
    Signal(&'static str),
    Timeout,
    Engine(EngineError),
}

impl<E: Engine> Deployer<'_, E> {
    /// Runs `tag`'s release command, or waits for the one already running;
    /// remembers the backup taken before it for history. `live`: the tag
    /// live when the promote began (what a failure says was not touched).
    pub(super) async fn release(&self, tag: &Tag, live: Option<&str>) -> anyhow::Result<()> {
        if self.cfg.release.command.is_empty() {
            return Ok(());
        }
        let engine = self.engine();
        let containers = engine.list_containers(&self.cfg.project).await?;
        let plan = plan::release_plan(&containers, tag.as_str());
        let age_of = |name: &str| {
            containers
                .iter()
                .find(|c| c.name == name)
                .and_then(|c| c.started_at.as_deref())
                .and_then(clock::age_secs)
        };
        if let ReleaseAction::Refuse {
            name, tag: other, ..
        } = &plan.action
        {
            let age = age_of(name)
                .map(|s| format!(", running for {}", clock::human_secs(s)))
                .unwrap_or_default();
            let e = anyhow!(
                "the release command of {other} runs in container {name}{age}: one release command at a time, and webdock never kills one; nothing was changed\nhint: follow it with `webdock logs release`; finish that release with `webdock promote {other}`, then promote {tag}"
            );
            // a step that starts and fails at once: the same events as any
            return self.steps.run(Step::Release, async { Err(e) }).await;
        }
        for r in &plan.reap {
            self.reap(r).await?;
        }
        let timeout = self.cfg.release.timeout;
        let (existing, remaining) = match plan.action {
            ReleaseAction::Start => {
                let b = self.backup(tag).await?;
                self.note_backup(b);
                (None, timeout)
            }
            ReleaseAction::Wait { name } => {
                let age = age_of(&name).unwrap_or(0).max(0) as u64;
                self.out.progress(&format!(
                    "the release command of {tag} already runs in {name} (for {}), started by an earlier webdock: waiting for it instead of starting another",
                    clock::human_secs(age as i64)
                ));
                (Some(name), timeout.saturating_sub(Duration::from_secs(age)))
            }
            ReleaseAction::Ended { name } => {
                self.out.progress(&format!(
                    "the release command of {tag} in {name} ended while no webdock waited for it: its exit code is the result"
                ));
                (Some(name), Duration::from_secs(30))
            }
            ReleaseAction::Refuse { .. } => unreachable!("refused above"),
        };
        if existing.is_some() {
            let records = backups::read(&self.backups_path())?;
            self.note_backup(backups::newest_for(&records, tag.as_str()).map(|r| r.name.clone()));
        }
        let command = self.cfg.release.command.join(" ");
        let backup = self.backup_taken();
        self.steps
            .run(Step::Release, async {
                // From here a Ctrl-C or SIGTERM only stops the waiting.
                let interrupts = Interrupts::catch();
                let name = match existing {
                    Some(n) => n,
                    None => {
                        let spec = self.spec(&Role::Release(tag.clone()), tag);
                        engine.create_container(&spec).await?;
                        if let Err(e) = engine.start_container(&spec.name).await {
                            // it never ran: nothing to keep
                            let _ = engine.remove_container(&spec.name).await;
                            return Err(e.into());
                        }
                        spec.name
                    }
                };
                killpoint(super::steps::RELEASE_WAIT);
                let code = match self.wait_streaming(&name, remaining, &interrupts).await {
                    Ok(code) => code,
                    Err(stopped) => return Err(still_running(stopped, tag, &name, timeout)),
                };
                if code == 0 {
                    engine.remove_container(&name).await?;
                    return Ok(((), json!({ "command": command, "container": name })));
                }
                let output = engine.logs_tail(&name, 60).await.unwrap_or_default();
                engine.remove_container(&name).await?;
                let killed = match code {
                    137 | 143 => " (killed by a signal)",
                    _ => "",
                };
                let backup = backup
                    .map(|b| format!("; the backup taken before it is {b}"))
                    .unwrap_or_default();
                let untouched = match live {
                    Some(t) => format!("the live release ({t}) was not touched"),
                    None => "no release was live and none went live".to_string(),
                };
                Err(anyhow!(
                    "release command `{command}` exited with {code}{killed} in {name}: {untouched}, but the migration may have changed the database partly{backup}\nhint: read its output below; to restore a backup see docs/operations.md and `webdock backups`\n--- its output ---\n{}",
                    output.trim_end()
                ))
            })
            .await
    }

    /// Waits for `name` to exit, printing its output as it comes.
    async fn wait_streaming(
        &self,
        name: &str,
        deadline: Duration,
        interrupts: &Interrupts,
    ) -> Result<i64, Stopped> {
        let engine = self.engine();
        let out = self.out;
        let mut print = |l: &str| out.progress(&format!("  release | {l}"));
        let follow = engine.follow_output(name, &mut print);
        let wait = engine.wait_container(name, deadline);
        tokio::pin!(follow, wait);
        let mut following = true;
        let r = loop {
            tokio::select! {
                sig = interrupts.caught() => break Err(Stopped::Signal(sig)),
                r = &mut wait => break r.map_err(|e| match e {
                    EngineError::Timeout { .. } => Stopped::Timeout,
                    e => Stopped::Engine(e),
                }),
                _ = &mut follow, if following => following = false,
            }
        };
        if following && r.is_ok() {
            // the last lines, once it has ended
            let _ = tokio::time::timeout(Duration::from_secs(2), &mut follow).await;
        }
        r
    }

    /// Clears away a release container that is not this promote's: reads
    /// its exit code and output if it ran, then removes it.
    async fn reap(&self, r: &Reap) -> anyhow::Result<()> {
        let engine = self.engine();
        if r.ran {
            let code = engine
                .wait_container(&r.name, Duration::from_secs(30))
                .await?;
            let output = engine.logs_tail(&r.name, 20).await.unwrap_or_default();
            self.out.progress(&format!(
                "the release command of {} in {} had ended with exit code {code} while no webdock waited for it; removing it. Its last output:\n{}",
                r.tag,
                r.name,
                output.trim_end()
            ));
        } else {
            self.out.progress(&format!(
                "removing {}: created but never started, so it ran nothing",
                r.name
            ));
        }
        engine.remove_container(&r.name).await?;
        Ok(())
    }
}

fn still_running(stopped: Stopped, tag: &Tag, name: &str, timeout: Duration) -> anyhow::Error {
    let why = match stopped {
        Stopped::Signal(sig) => format!("webdock got {sig} while waiting for it"),
        Stopped::Timeout => format!(
            "it did not end within release.timeout ({})",
            humantime::format_duration(timeout)
        ),
        Stopped::Engine(e) => format!("waiting for it failed: {e}"),
    };
    anyhow!(
        "the release command of {tag} goes on in container {name}: {why}; webdock never kills a migration, and nothing else was changed\nhint: follow it with `webdock logs release`; `webdock promote {tag}` again waits for it and carries on; `webdock release kill {tag}` stops it"
    )
}
