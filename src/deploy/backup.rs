//! The backup before a release command, and the one-off containers that
//! make, prune and check backups.
//!
//! Migrations are the one step that changes shared state, and on MySQL a
//! schema change is not transactional: before a new release command runs,
//! `[backup] command` makes a copy of the database in a one-off container
//! of the new image, named by tag and time, onto the data volume. Its
//! failure aborts the promote before the release command, with nothing
//! changed. A backup container only reads the database, so unlike a
//! release command it may be removed (killed) on a timeout or when a killed
//! webdock left one behind.

use std::time::{Duration, Instant};

use anyhow::{anyhow, Context};
use serde_json::json;

use super::{Deployer, Step};
use crate::backups::{self, Record};
use crate::config::fill;
use crate::engine::Engine;
use crate::names::Tag;
use crate::roles::{Role, LABEL_ROLE};

/// How a one-off container ended.
pub struct OneOff {
    pub container: String,
    pub code: i64,
    pub output: String,
}

impl<E: Engine> Deployer<'_, E> {
    /// The backup taken (or found) before this command's release command.
    pub(super) fn backup_taken(&self) -> Option<String> {
        self.backup
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub(super) fn note_backup(&self, name: Option<String>) {
        *self.backup.lock().unwrap_or_else(|e| e.into_inner()) = name;
    }

    /// Where the backup records live: beside the history, so on the host
    /// for the fleet of one and on the controller for a fleet, where
    /// `webdock backups` and `backup --verify` read them.
    pub fn backups_path(&self) -> std::path::PathBuf {
        match self.host.reach {
            crate::host::Reach::Local => self.host.layout.backups(),
            crate::host::Reach::Engine => self.cfg.layout().backups(),
        }
    }

    /// Backs up before `tag`'s release command; returns the backup's name
    /// (None when no backup is configured).
    pub(super) async fn backup(&self, tag: &Tag) -> anyhow::Result<Option<String>> {
        if !self.cfg.backup.enabled() {
            return Ok(None);
        }
        self.steps
            .run(Step::Backup, async {
                let r = self.take_backup(tag).await?;
                let extra = json!({ "backup": r.name, "file": r.file });
                Ok((Some(r.name), extra))
            })
            .await
    }

    /// Runs the backup command, records the backup, removes those beyond
    /// `keep`. Used by promote and by `webdock backup`.
    pub async fn take_backup(&self, tag: &Tag) -> anyhow::Result<Record> {
        let b = &self.cfg.backup;
        let t = Instant::now();
        let now = time::OffsetDateTime::now_utc();
        let name = backups::name_for(tag.as_str(), now);
        let file = format!("{}/{name}{}", b.dir.trim_end_matches('/'), b.suffix);
        let cmd = fill(&b.command, &[("file", &file), ("tag", tag.as_str())]);
        let env = vec![format!("WEBDOCK_BACKUP_FILE={file}")];
        let run = self.one_off("backup", tag, cmd, env, b.timeout).await?;
        if run.code != 0 {
            return Err(anyhow!(
                "backup command `{}` exited with {} in {}: no release command ran and nothing was changed\n--- its output ---\n{}",
                b.command.join(" "),
                run.code,
                run.container,
                run.output.trim_end()
            ));
        }
        let record = Record {
            name,
            file,
            tag: tag.to_string(),
            when: crate::clock::rfc3339(now),
            seconds: (t.elapsed().as_secs_f64() * 1000.0).round() / 1000.0,
        };
        let path = self.backups_path();
        let mut all = backups::read(&path)?;
        all.push(record.clone());
        backups::write(&path, &all)?;
        self.prune_backups(tag, all).await;
        Ok(record)
    }

    /// Removes the backups beyond `keep` (in a container: they live on the
    /// data volume). A failure is a warning; the record keeps them listed.
    async fn prune_backups(&self, tag: &Tag, all: Vec<Record>) {
        let doomed = backups::beyond_keep(&all, self.cfg.backup.keep);
        if doomed.is_empty() {
            return;
        }
        let mut cmd: Vec<String> = ["rm", "-f", "--"].map(String::from).to_vec();
        cmd.extend(doomed.iter().map(|r| r.file.clone()));
        let r = self
            .one_off("backup", tag, cmd, vec![], Duration::from_secs(60))
            .await;
        match r {
            Ok(run) if run.code == 0 => {
                let keep: Vec<Record> = all.into_iter().filter(|r| !doomed.contains(r)).collect();
                if let Err(e) = backups::write(&self.backups_path(), &keep) {
                    tracing::warn!("removed old backups but could not record it: {e}");
                }
            }
            Ok(run) => tracing::warn!(
                "removing old backups exited with {}: {}",
                run.code,
                run.output.trim_end()
            ),
            Err(e) => tracing::warn!("removing old backups failed: {e:#}"),
        }
    }

    /// Runs `cmd` once in a container of `tag`'s image (as the release
    /// command runs: user `app` in /app, the project's env and volumes),
    /// waits up to `timeout`, reads its output and removes it, whatever
    /// happened. Only for commands that are safe to kill.
    pub async fn one_off(
        &self,
        kind: &str,
        tag: &Tag,
        cmd: Vec<String>,
        env: Vec<String>,
        timeout: Duration,
    ) -> anyhow::Result<OneOff> {
        let mut spec = self.spec(&Role::Release(tag.clone()), tag);
        spec.name = format!("{}-{kind}-{tag}", self.cfg.project);
        spec.labels.insert(LABEL_ROLE.into(), kind.into());
        spec.cmd = Some(cmd);
        spec.env.extend(env);
        let name = spec.name.clone();
        let engine = self.engine();
        // left by a killed webdock; it only read, so it may go
        engine.remove_container(&name).await?;
        let r: anyhow::Result<i64> = async {
            engine.create_container(&spec).await?;
            engine.start_container(&name).await?;
            Ok(engine.wait_container(&name, timeout).await?)
        }
        .await;
        let output = engine.logs_tail(&name, 40).await.unwrap_or_default();
        let _ = engine.remove_container(&name).await;
        let code = r.with_context(|| format!("{kind} container {name} (removed)"))?;
        Ok(OneOff {
            container: name,
            code,
            output,
        })
    }
}
