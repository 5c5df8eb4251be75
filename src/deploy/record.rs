//! What a deploy leaves behind: one history line, written once whatever the
//! outcome, and the pruning of old images after a success.

use std::collections::HashSet;
use std::time::Instant;

use serde_json::json;

use super::{first_line, Deployer, Step};
use crate::engine::Engine;
use crate::history::{self, Intent, Outcome};
use crate::names::Tag;
use crate::plan;
use crate::roles::Color;

/// Where traffic was and where it went.
#[derive(Debug, Clone, Default)]
pub struct Moved {
    pub from_color: Option<Color>,
    pub from_tag: Option<String>,
    /// Set once the new color is live and verified.
    pub to_color: Option<Color>,
}

impl<E: Engine> Deployer<'_, E> {
    pub(super) fn record(
        &self,
        intent: Intent,
        tag: &Tag,
        moved: &Moved,
        started: Instant,
        res: &anyhow::Result<()>,
    ) {
        let e = history::Entry {
            action: intent,
            who: history::who(),
            when: crate::clock::now_rfc3339(),
            tag: tag.to_string(),
            from_tag: moved.from_tag.clone(),
            from_color: moved.from_color.map(|c| c.to_string()),
            to_color: moved.to_color.map(|c| c.to_string()),
            steps: self.steps.done(),
            seconds: started.elapsed().as_secs_f64(),
            outcome: match res {
                Ok(()) => Outcome::Ok,
                Err(e) => Outcome::Failed(first_line(e)),
            },
            hosts: vec![],
            skipped: vec![],
            flip_window_ms: None,
            // taken, not read: the next command of this Deployer starts clean
            backup: self.backup.lock().unwrap_or_else(|e| e.into_inner()).take(),
            digest: self.digest.clone(),
        };
        if let Err(err) = history::append(&self.host.layout.history(), &e) {
            tracing::warn!("could not append to history: {err}");
        }
    }

    /// Removes images beyond the newest `keep_images`, never the new or
    /// previous tag or one a container uses. Failure here is only a warning.
    pub(super) async fn prune(&self, tag: &Tag, moved: &Moved) {
        let t = self.steps.begin(Step::Prune);
        let r: anyhow::Result<usize> = async {
            let images = self.engine().list_images(&self.cfg.image).await?;
            let obs = self.host.observe(&self.cfg.project).await?;
            let mut protect: HashSet<String> = obs.tags_in_use();
            protect.insert(tag.to_string());
            protect.extend(moved.from_tag.clone());
            let doomed =
                plan::images_to_prune(&self.cfg.image, &images, self.cfg.keep_images, &protect);
            for d in &doomed {
                self.engine().remove_image(d).await?;
            }
            Ok(doomed.len())
        }
        .await;
        match r {
            Ok(n) => self.steps.end(Step::Prune, t, json!({ "removed": n })),
            Err(e) => tracing::warn!("pruning old images failed: {e:#}"),
        }
    }
}
