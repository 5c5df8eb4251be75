//! The release command (migrations) in a one-off container of the new
//! image, before anything visible changes.

use anyhow::anyhow;
use serde_json::json;

use super::{Deployer, Step};
use crate::engine::Engine;
use crate::names::Tag;
use crate::roles::Role;

impl<E: Engine> Deployer<'_, E> {
    /// Runs the release command; its failure aborts with its output and
    /// leaves everything else as it was.
    pub(super) async fn release(&self, tag: &Tag) -> anyhow::Result<()> {
        if self.cfg.release.command.is_empty() {
            return Ok(());
        }
        let command = self.cfg.release.command.join(" ");
        self.steps
            .run(Step::Release, async {
                let role = Role::Release(tag.clone());
                let spec = self.specs.spec(&role, tag);
                let name = spec.name.clone();
                let engine = self.engine();
                let r: anyhow::Result<i64> = async {
                    engine.remove_container(&name).await?;
                    engine.create_container(&spec).await?;
                    engine.start_container(&name).await?;
                    Ok(engine
                        .wait_container(&name, self.cfg.release.timeout)
                        .await?)
                }
                .await;
                let logs = engine.logs_tail(&name, 40).await.unwrap_or_default();
                let _ = engine.remove_container(&name).await;
                match r? {
                    0 => Ok(((), json!({ "command": command }))),
                    code => Err(anyhow!(
                        "release command `{command}` exited with {code} in {name}; nothing was changed\n--- its last output ---\n{}",
                        logs.trim_end()
                    )),
                }
            })
            .await
    }
}
