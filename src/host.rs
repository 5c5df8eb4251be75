//! A host as the orchestration sees it: one engine connection, that host's
//! paths, and its proxy (the live link and the check through its nginx).
//!
//! A fleet is a list of `Host`s; a config without hosts is a fleet of one,
//! the local engine with the paths of `webdock.toml`. The plan and the
//! deploy code never ask how a host is reached.

use std::time::Duration;

use crate::config::Config;
use crate::engine::{Engine, EngineError};
use crate::health;
use crate::layout::Layout;
use crate::plan::Observed;
use crate::proxy::{self, ProxyError};
use crate::roles::Color;

pub struct Host<E> {
    /// How errors and reports name it (`local` for the fleet of one).
    pub name: String,
    pub engine: E,
    pub layout: Layout,
    /// The URL checked through this host's nginx after a flip.
    pub public_url: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ObserveError {
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error(transparent)]
    Proxy(#[from] ProxyError),
}

impl<E: Engine> Host<E> {
    /// The fleet of one: the local engine and the config's paths.
    pub fn local(cfg: &Config, engine: E) -> Host<E> {
        Host {
            name: "local".into(),
            engine,
            layout: cfg.layout(),
            public_url: cfg.portal.public_url.clone(),
        }
    }

    /// What runs for `project` and where the live link points.
    pub async fn observe(&self, project: &str) -> Result<Observed, ObserveError> {
        let containers = self.engine.list_containers(project).await?;
        let live = proxy::live(&self.layout)?;
        Ok(Observed::new(containers, live))
    }

    pub fn live(&self) -> Result<Option<Color>, ProxyError> {
        proxy::live(&self.layout)
    }

    pub fn flip(&self, to: Color) -> Result<(), ProxyError> {
        proxy::flip(&self.layout, to)
    }

    /// Asks this host's nginx, a few times, whether `tag` answers there.
    /// `Ok(None)` when no public URL is configured.
    pub async fn verify(&self, tag: &str, timeout: Duration) -> Result<Option<String>, String> {
        let Some(url) = self.public_url.clone() else {
            return Ok(None);
        };
        let mut last = String::new();
        for attempt in 0..5 {
            if attempt > 0 {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            match health::probe_url(&url, timeout).await {
                Ok(a) if a.names(tag) => return Ok(Some(url)),
                Ok(a) => last = a.describe(),
                Err(e) => last = e,
            }
        }
        Err(format!(
            "the host nginx at {url} does not answer with {tag} after the flip (last: {last})"
        ))
    }
}
