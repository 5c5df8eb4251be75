//! Turning an app directory into `<image>:<tag>`, paying for what changed
//! rather than for a fixed list of Dockerfile steps.
//!
//! The image is four layers: the base (Debian made by mmdebstrap, once per
//! machine: `base`), the dependencies (the app user and the virtualenv
//! installed offline from a wheelhouse downloaded on the host: `wheels`,
//! `deps`; one container run and one commit per dependency set), webdock's
//! own files (the rootfs overlay, djob services, crontab) and the app
//! (`app`: its files, compiled front-end assets from `assets`, and one
//! container run for collectstatic and byte code). The last two layers and
//! the image config are written by webdock itself, normalised (`layer`), and
//! handed to the engine's load endpoint, so the same inputs give the same
//! image id and an unchanged rebuild runs nothing at all (`pipeline`).
//!
//! `context` still assembles the classic build context (the Dockerfile in
//! `dockerfiles/`), which `webdock build --emit-context DIR` writes out so the
//! benchmark can give `docker build` exactly the same work; `provenance` says
//! where an image came from.

use std::path::PathBuf;

use sha2::{Digest, Sha256};

use crate::engine::{Docker, Engine};
use crate::proc;

pub mod app;
pub mod assets;
pub mod base;
pub mod context;
pub mod deps;
pub mod layer;
pub mod pipeline;
pub mod provenance;
pub mod wheels;

pub use base::{base_image_ref, base_packages, ensure_base, BASE_REPO};
pub use context::{context_entries, djob_run_script, Entry, Source};
pub use pipeline::{build, Built, Phase};
pub use provenance::{dockerfile_with_labels, labels, provenance, Provenance};
pub use wheels::wheelhouse;

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error(
        "app directory {0} does not exist\nhint: set `app` in webdock.toml relative to the file"
    )]
    NoApp(PathBuf),
    #[error("requirements file {0} does not exist\nhint: pin the app's Python dependencies there (pip freeze > requirements.txt)")]
    NoRequirements(PathBuf),
    #[error("crontab {0} does not exist")]
    NoCrontab(PathBuf),
    #[error("cannot read {path}: {cause}")]
    Io {
        path: PathBuf,
        cause: std::io::Error,
    },
    #[error("bad .dockerignore in {path}: {message}")]
    Ignore { path: PathBuf, message: String },
    #[error("downloading wheels for {requirements} failed: {cause}\nhint: the host needs python3 with pip and access to the package index")]
    Wheels {
        requirements: PathBuf,
        cause: proc::ProcError,
    },
    #[error(
        "asset input {0} does not exist\nhint: build.assets.inputs names paths relative to the app"
    )]
    NoAssetInput(PathBuf),
    #[error("the asset commands wrote nothing to {0}\nhint: build.assets.output is the directory they write, relative to their working directory")]
    NoAssetOutput(PathBuf),
    #[error("asset step failed: {0}")]
    Assets(proc::ProcError),
    #[error("build step in a container of {image} exited with {code}:\n{logs}")]
    Step {
        image: String,
        code: i64,
        logs: String,
    },
    #[error("making the base image failed: {0}\nhint: the host needs mmdebstrap (apt-get install mmdebstrap) and access to a Debian mirror (WEBDOCK_DEBIAN_MIRROR)")]
    Base(proc::ProcError),
}

/// Where machine-wide caches live: `$WEBDOCK_CACHE`, else `$XDG_CACHE_HOME/webdock`, else `~/.cache/webdock`.
pub fn cache_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("WEBDOCK_CACHE") {
        return d.into();
    }
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(|| PathBuf::from("/var/cache"));
    base.join("webdock")
}

fn sha_hex(parts: &[&[u8]]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update((p.len() as u64).to_le_bytes());
        h.update(p);
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// Runs one build step: a container of `image` with `cmd` and no network,
/// `tar` unpacked at `at` before it starts. Returns the exited container's
/// name for the caller to commit or copy from, and then remove; a failed
/// step is removed here and reported with its output.
pub(crate) async fn run_build_container(
    engine: &Docker,
    image: &str,
    cmd: Vec<String>,
    env: Vec<String>,
    at: &str,
    tar: Vec<u8>,
) -> anyhow::Result<String> {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let name = format!("webdock-build-{}-{nanos:08x}", std::process::id());
    engine
        .create_build_container(&name, image, cmd, env, "/")
        .await?;
    let ran = async {
        engine.upload(&name, at, tar.into()).await?;
        engine.start_container(&name).await?;
        let code = engine
            .wait_container(&name, std::time::Duration::from_secs(1800))
            .await?;
        if code != 0 {
            let logs = engine.logs_tail(&name, 40).await.unwrap_or_default();
            return Err(BuildError::Step {
                image: image.into(),
                code,
                logs: logs.trim_end().to_string(),
            }
            .into());
        }
        anyhow::Ok(())
    }
    .await;
    if let Err(e) = ran {
        let _ = engine.remove_container(&name).await;
        return Err(e);
    }
    Ok(name)
}
