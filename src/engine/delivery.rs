//! Moving images between engines: push to and pull from a registry (by
//! digest), ask a registry what a tag names now, and stream an image from
//! one engine straight into another (`ship`) without the layers the target
//! already has.
//!
//! A part of `engine` because it speaks bollard; kept in its own file so
//! that the single-host engine code stays small. Every call that waits on a
//! registry has a stall deadline: a pull or push that moves nothing for
//! that long fails naming the registry and the layer it was on, instead of
//! hanging a release forever.

use super::ImageLayers;
use std::collections::HashSet;
use std::time::Duration;

use bollard::auth::DockerCredentials;
use bollard::query_parameters as q;
use futures_util::StreamExt;

use super::{not_found, BollardError, Docker};

pub use super::ship::ShipReport;
use crate::config::registry::Credentials;
use crate::delivery;

#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    #[error("registry {registry}: {op} {reference}: {cause}")]
    Registry {
        registry: String,
        op: &'static str,
        reference: String,
        cause: String,
    },
    #[error(
        "registry {registry}: {op} {reference} stalled: nothing moved for {secs} s (layer {layer})"
    )]
    Stalled {
        registry: String,
        op: &'static str,
        reference: String,
        layer: String,
        secs: u64,
    },
    #[error("docker {op} {target}: {cause}")]
    Engine {
        op: &'static str,
        target: String,
        cause: BollardError,
    },
    #[error("cannot reach the Docker engine {host}: {cause}")]
    Connect { host: String, cause: BollardError },
    #[error("image {0} not found on the source engine\nhint: build it first: webdock build TAG")]
    Missing(String),
    #[error("ship {reference}: {why}")]
    Ship { reference: String, why: String },
}

pub type Result<T> = std::result::Result<T, DeliveryError>;

fn engine<'a>(
    op: &'static str,
    target: &'a str,
) -> impl FnOnce(BollardError) -> DeliveryError + 'a {
    move |cause| DeliveryError::Engine {
        op,
        target: target.to_owned(),
        cause,
    }
}

/// One progress line of a push or pull, as the engine reports it.
#[derive(Debug, Clone, Default)]
pub struct Progress {
    /// The layer's short id (empty for whole-image lines).
    pub layer: String,
    /// `Pushing`, `Downloading`, `Pull complete`, `Layer already exists`, ...
    pub status: String,
    pub current: Option<u64>,
    pub total: Option<u64>,
}

/// How to reach a registry: its `HOST:PORT`, credentials, stall deadline.
#[derive(Debug, Clone, Copy)]
pub struct Access<'a> {
    pub registry: &'a str,
    pub auth: Option<&'a Credentials>,
    pub stall: Duration,
}

/// What an engine knows of an image, for delivery.
fn creds(c: Option<&Credentials>, registry: &str) -> Option<DockerCredentials> {
    c.map(|c| DockerCredentials {
        username: Some(c.user.clone()),
        password: Some(c.password.clone()),
        serveraddress: Some(registry.to_owned()),
        ..Default::default()
    })
}

pub(super) fn cause_text(e: BollardError) -> String {
    match e {
        BollardError::DockerStreamError { error } => error,
        BollardError::DockerResponseServerError { message, .. } => message,
        e => e.to_string(),
    }
}

impl Docker {
    /// Connects to the engine at `host` (`unix://...` or `tcp://...`),
    /// negotiating the API version like [`Docker::connect`].
    pub async fn connect_host(host: &str) -> Result<Docker> {
        let err = |cause| DeliveryError::Connect {
            host: host.to_owned(),
            cause,
        };
        let d = bollard::Docker::connect_with_host(host).map_err(err)?;
        let d = d.with_timeout(Duration::from_secs(super::CLIENT_TIMEOUT));
        let d = d.negotiate_version().await.map_err(err)?;
        Ok(Docker { inner: d })
    }

    /// An image's id, layers, labels and digests, without its history.
    pub async fn image_brief(&self, reference: &str) -> Result<Option<ImageLayers>> {
        match self.inner.inspect_image(reference).await {
            Ok(i) => Ok(Some(ImageLayers {
                id: i.id.unwrap_or_default(),
                diff_ids: i.root_fs.and_then(|r| r.layers).unwrap_or_default(),
                labels: i.config.and_then(|c| c.labels).unwrap_or_default(),
                repo_digests: i.repo_digests.unwrap_or_default(),
                history: vec![],
            })),
            Err(e) if not_found(&e) => Ok(None),
            Err(e) => Err(engine("inspect image", reference)(e)),
        }
    }

    /// Every layer chain this engine holds (from all of its images).
    pub async fn layer_chains(&self) -> Result<HashSet<String>> {
        let list = self
            .inner
            .list_images(Some(q::ListImagesOptions {
                all: true,
                ..Default::default()
            }))
            .await
            .map_err(engine("list images", "all"))?;
        let mut images = Vec::new();
        for i in list {
            if let Some(l) = self.image_brief(&i.id).await? {
                images.push(l.diff_ids);
            }
        }
        Ok(delivery::known_chains(images.iter().map(Vec::as_slice)))
    }

    /// Tags `local` as `<repository>:<tag>` and pushes it; returns the
    /// manifest digest the registry now serves for that tag.
    pub async fn push_to_registry(
        &self,
        local: &str,
        repository: &str,
        tag: &str,
        a: Access<'_>,
        mut on: impl FnMut(Progress),
    ) -> Result<String> {
        let (registry, stall) = (a.registry, a.stall);
        let reference = format!("{repository}:{tag}");
        let opts = q::TagImageOptions {
            repo: Some(repository.into()),
            tag: Some(tag.into()),
        };
        self.inner
            .tag_image(local, Some(opts))
            .await
            .map_err(engine("tag", &reference))?;
        let opts = q::PushImageOptions {
            tag: Some(tag.into()),
            ..Default::default()
        };
        let mut s = self
            .inner
            .push_image(repository, Some(opts), creds(a.auth, registry));
        let mut digest = None;
        let mut layer = String::from("-");
        let fail = |cause: String| DeliveryError::Registry {
            registry: registry.into(),
            op: "push",
            reference: reference.clone(),
            cause,
        };
        loop {
            let item = match tokio::time::timeout(stall, s.next()).await {
                Err(_) => {
                    return Err(DeliveryError::Stalled {
                        registry: registry.into(),
                        op: "push",
                        reference: reference.clone(),
                        layer,
                        secs: stall.as_secs(),
                    })
                }
                Ok(None) => break,
                Ok(Some(item)) => item.map_err(|e| fail(cause_text(e)))?,
            };
            let status = item.status.unwrap_or_default();
            // "<tag>: digest: sha256:<hex> size: <n>"
            if let Some(rest) = status.split("digest: ").nth(1) {
                digest = rest.split_whitespace().next().map(str::to_owned);
            }
            let p = item.progress_detail.unwrap_or_default();
            let id = status_layer(&status);
            if !id.is_empty() {
                layer = id.clone();
            }
            on(Progress {
                layer: id,
                status,
                current: p.current.map(|c| c as u64),
                total: p.total.map(|t| t as u64),
            });
        }
        digest.ok_or_else(|| fail("the engine reported no digest".into()))
    }

    /// The digest `reference` (`<registry>/<image>:TAG`) names in the
    /// registry now, asked through the engine; None when the tag is not
    /// there. An unreachable registry is an error naming it.
    pub async fn registry_digest(&self, reference: &str, a: Access<'_>) -> Result<Option<String>> {
        let registry = a.registry;
        match self
            .inner
            .inspect_registry_image(reference, creds(a.auth, registry))
            .await
        {
            Ok(d) => Ok(d.descriptor.digest),
            Err(BollardError::DockerResponseServerError {
                status_code: 404, ..
            }) => Ok(None),
            Err(BollardError::DockerResponseServerError { message, .. })
                if message.contains("manifest unknown") || message.contains("not found") =>
            {
                Ok(None)
            }
            Err(e) => Err(DeliveryError::Registry {
                registry: registry.into(),
                op: "resolve",
                reference: reference.into(),
                cause: cause_text(e),
            }),
        }
    }

    /// Pulls `reference` (by digest: `<registry>/<image>@sha256:...`); a
    /// pull that moves nothing for `stall` fails naming the layer.
    pub async fn pull_from_registry(
        &self,
        reference: &str,
        a: Access<'_>,
        mut on: impl FnMut(Progress),
    ) -> Result<()> {
        let (registry, stall) = (a.registry, a.stall);
        let opts = q::CreateImageOptions {
            from_image: Some(reference.into()),
            ..Default::default()
        };
        let mut s = self
            .inner
            .create_image(Some(opts), None, creds(a.auth, registry));
        let mut layer = String::from("-");
        loop {
            let item = match tokio::time::timeout(stall, s.next()).await {
                Err(_) => {
                    return Err(DeliveryError::Stalled {
                        registry: registry.into(),
                        op: "pull",
                        reference: reference.into(),
                        layer,
                        secs: stall.as_secs(),
                    })
                }
                Ok(None) => return Ok(()),
                Ok(Some(item)) => item.map_err(|e| DeliveryError::Registry {
                    registry: registry.into(),
                    op: "pull",
                    reference: reference.into(),
                    cause: cause_text(e),
                })?,
            };
            let status = item.status.unwrap_or_default();
            let id = item.id.unwrap_or_default();
            if !id.is_empty() && id.len() == 12 {
                layer = id.clone();
            }
            let p = item.progress_detail.unwrap_or_default();
            on(Progress {
                layer: id,
                status,
                current: p.current.map(|c| c as u64),
                total: p.total.map(|t| t as u64),
            });
        }
    }
}

/// Push lines carry the layer id only in `id`, which bollard's
/// `PushImageInfo` lacks; the status then names it or is whole-image.
fn status_layer(status: &str) -> String {
    let w = status.split_whitespace().next().unwrap_or("");
    if w.len() == 12 && w.chars().all(|c| c.is_ascii_hexdigit()) {
        w.to_owned()
    } else {
        String::new()
    }
}

impl Docker {
    /// `docker tag SOURCE REPOSITORY:TAG` on this engine.
    pub async fn tag_as(&self, source: &str, repository: &str, tag: &str) -> Result<()> {
        let opts = q::TagImageOptions {
            repo: Some(repository.into()),
            tag: Some(tag.into()),
        };
        self.inner
            .tag_image(source, Some(opts))
            .await
            .map_err(engine("tag", source))
    }
}
