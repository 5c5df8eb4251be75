//! Turning an app directory into `<image>:<tag>`.
//!
//! The pieces, each in its own file: the base image made without a registry
//! (`base`: mmdebstrap, then `docker import`), the wheelhouse of the app's
//! pinned Python dependencies downloaded on the host and cached by the hash
//! of the requirements (`wheels`), the build context (`context`: the
//! Dockerfile, the image's rootfs overlay, generated djob services, the
//! crontab, the wheels, the app minus `.dockerignore`, streamed as a tar),
//! and what the image says about where it came from (`provenance`).

use std::path::PathBuf;

use sha2::{Digest, Sha256};

use crate::proc;

pub mod base;
pub mod context;
pub mod provenance;
pub mod wheels;

pub use base::{base_image_ref, base_packages, ensure_base, BASE_REPO};
pub use context::{context_entries, context_stream, djob_run_script, Entry, Source};
pub use provenance::{build_args, dockerfile_with_labels, labels, provenance, Provenance};
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
