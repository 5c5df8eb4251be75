//! The app's pinned Python dependencies as a wheelhouse on the build host:
//! downloaded once per requirements file (cached by its hash), so nothing
//! inside the image build needs network.

use std::path::{Path, PathBuf};

use super::{cache_dir, sha_hex, BuildError};
use crate::lock::Lock;
use crate::proc;

/// Downloads the wheels for `requirements` into a cache directory named by
/// its hash, once; returns the directory and whether it was there already.
pub fn wheelhouse(requirements: &Path, say: &dyn Fn(&str)) -> Result<(PathBuf, bool), BuildError> {
    let text =
        fs_err::read(requirements).map_err(|_| BuildError::NoRequirements(requirements.into()))?;
    let python = std::env::var("WEBDOCK_PYTHON").unwrap_or_else(|_| "python3".into());
    let key = &sha_hex(&[&text, b"cp311-manylinux-x86_64"])[..16];
    let root = cache_dir().join("wheels");
    let dir = root.join(key);
    if dir.is_dir() {
        return Ok((dir, true));
    }
    fs_err::create_dir_all(&root).map_err(|e| BuildError::Io {
        path: root.clone(),
        cause: e,
    })?;
    let _lock =
        Lock::acquire_blocking(&root.join(format!("{key}.lock"))).map_err(|e| BuildError::Io {
            path: root.clone(),
            cause: std::io::Error::other(e.to_string()),
        })?;
    if dir.is_dir() {
        return Ok((dir, true));
    }
    say(&format!(
        "downloading wheels for {} into the cache",
        requirements.display()
    ));
    let tmp = root.join(format!("{key}.tmp"));
    let _ = std::fs::remove_dir_all(&tmp);
    proc::run(
        &python,
        [
            "-m".as_ref(),
            "pip".as_ref(),
            "download".as_ref(),
            "--quiet".as_ref(),
            "--disable-pip-version-check".as_ref(),
            "--only-binary=:all:".as_ref(),
            "--python-version".as_ref(),
            "3.11".as_ref(),
            "--platform".as_ref(),
            "manylinux2014_x86_64".as_ref(),
            "--platform".as_ref(),
            "any".as_ref(),
            "-r".as_ref(),
            requirements.as_os_str(),
            "-d".as_ref(),
            tmp.as_os_str(),
        ],
        None,
        Some("install python3 with pip"),
    )
    .map_err(|cause| BuildError::Wheels {
        requirements: requirements.into(),
        cause,
    })?;
    fs_err::rename(&tmp, &dir).map_err(|e| BuildError::Io {
        path: dir.clone(),
        cause: e,
    })?;
    Ok((dir, false))
}
