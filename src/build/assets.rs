//! Front-end assets compiled at build time (`[build.assets]`): bundlers run on
//! the build host, in a scratch copy of their inputs, so neither they nor
//! Node ever land in the image; only their output does, placed in the app
//! before `collectstatic`, which hashes and pre-compresses it like every
//! other static file.
//!
//! The output is cached by a hash of the commands and of every input file,
//! so a change that touches only Python never runs a bundler again.

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};

use serde::Deserialize;

use super::{cache_dir, sha_hex, BuildError};
use crate::lock::Lock;
use crate::proc;

/// `[build]` in webdock.toml.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BuildSection {
    pub assets: Option<Assets>,
}

/// `[build.assets]`: commands run in order in a scratch directory holding a
/// copy of `inputs` (paths relative to the app); whatever they write under
/// `output` goes into the image at `/app/<output>`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Assets {
    pub inputs: Vec<PathBuf>,
    pub output: PathBuf,
    pub commands: Vec<Vec<String>>,
}

fn plain_relative(p: &Path) -> bool {
    !p.as_os_str().is_empty() && p.components().all(|c| matches!(c, Component::Normal(_)))
}

impl BuildSection {
    /// The config's own checks (existence is checked when building).
    pub fn check(&self) -> Result<(), String> {
        let Some(a) = &self.assets else {
            return Ok(());
        };
        if a.commands.is_empty() || a.commands.iter().any(|c| c.is_empty()) {
            return Err("build.assets.commands must hold at least one non-empty command".into());
        }
        if a.commands.iter().flatten().any(|arg| arg.contains('\0')) {
            return Err("build.assets.commands holds a NUL byte".into());
        }
        if a.inputs.is_empty() {
            return Err("build.assets.inputs must name at least one path".into());
        }
        for p in a.inputs.iter().chain([&a.output]) {
            if !plain_relative(p) {
                return Err(format!(
                    "build.assets path {:?} must be relative to the app, without `..`",
                    p.display().to_string()
                ));
            }
        }
        Ok(())
    }
}

/// Every file under the inputs, by path relative to the app.
fn input_files(app: &Path, a: &Assets) -> Result<BTreeMap<PathBuf, PathBuf>, BuildError> {
    let mut out = BTreeMap::new();
    for rel in &a.inputs {
        let p = app.join(rel);
        if !p.exists() {
            return Err(BuildError::NoAssetInput(p));
        }
        for e in ignore::WalkBuilder::new(&p)
            .standard_filters(false)
            .hidden(false)
            .follow_links(false)
            .build()
        {
            let e = e.map_err(|e| BuildError::Io {
                path: p.clone(),
                cause: std::io::Error::other(e.to_string()),
            })?;
            if e.file_type().is_some_and(|t| t.is_file()) {
                let r = e.path().strip_prefix(app).expect("under the app");
                out.insert(r.to_path_buf(), e.path().to_path_buf());
            }
        }
    }
    Ok(out)
}

/// Runs the asset commands unless their output for these inputs is cached.
/// Returns the output directory and whether it came from the cache.
pub fn build(
    app: &Path,
    a: &Assets,
    force: bool,
    say: &dyn Fn(&str),
) -> Result<(PathBuf, bool), BuildError> {
    let files = input_files(app, a)?;
    let mut parts: Vec<Vec<u8>> = vec![a.output.to_string_lossy().as_bytes().to_vec()];
    for c in &a.commands {
        parts.push(c.join("\0").into_bytes());
    }
    for (rel, p) in &files {
        parts.push(rel.to_string_lossy().as_bytes().to_vec());
        parts.push(fs_err::read(p).map_err(|e| BuildError::Io {
            path: p.clone(),
            cause: e,
        })?);
    }
    let refs: Vec<&[u8]> = parts.iter().map(Vec::as_slice).collect();
    let key = &sha_hex(&refs)[..16];
    let root = cache_dir().join("assets");
    let dir = root.join(key);
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |e: std::io::Error| BuildError::Io { path, cause: e }
    };
    if dir.is_dir() && !force {
        say(&format!("assets: cached ({key}), not run"));
        return Ok((dir, true));
    }
    fs_err::create_dir_all(&root).map_err(io(&root))?;
    let _lock =
        Lock::acquire_blocking(&root.join(format!("{key}.lock"))).map_err(|e| BuildError::Io {
            path: root.clone(),
            cause: std::io::Error::other(e.to_string()),
        })?;
    let scratch = tempfile::Builder::new()
        .prefix("assets-")
        .tempdir_in(&root)
        .map_err(io(&root))?;
    for (rel, p) in &files {
        let to = scratch.path().join(rel);
        fs_err::create_dir_all(to.parent().expect("a parent")).map_err(io(&to))?;
        fs_err::copy(p, &to).map_err(io(&to))?;
    }
    for c in &a.commands {
        say(&format!("assets: running {}", c.join(" ")));
        proc::run(
            &c[0],
            &c[1..],
            Some(scratch.path()),
            Some("scripts/setup installs esbuild and sassc"),
        )
        .map_err(BuildError::Assets)?;
    }
    let out = scratch.path().join(&a.output);
    if !out.is_dir() {
        return Err(BuildError::NoAssetOutput(a.output.clone()));
    }
    if dir.is_dir() {
        fs_err::remove_dir_all(&dir).map_err(io(&dir))?;
    }
    fs_err::rename(&out, &dir).map_err(io(&dir))?;
    Ok((dir, false))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn section(inputs: &[&str], output: &str, commands: Vec<Vec<String>>) -> BuildSection {
        BuildSection {
            assets: Some(Assets {
                inputs: inputs.iter().map(PathBuf::from).collect(),
                output: output.into(),
                commands,
            }),
        }
    }

    #[test]
    fn asset_paths_stay_inside_the_app_and_commands_are_not_empty() {
        let cmd = || vec![vec!["esbuild".to_string()]];
        assert!(section(&["frontend"], "dist", cmd()).check().is_ok());
        assert!(section(&["../x"], "dist", cmd()).check().is_err());
        assert!(section(&["/etc"], "dist", cmd()).check().is_err());
        assert!(section(&["frontend"], "a/../..", cmd()).check().is_err());
        assert!(section(&[], "dist", cmd()).check().is_err());
        assert!(section(&["f"], "dist", vec![vec![]]).check().is_err());
        assert!(section(&["f"], "dist", vec![]).check().is_err());
    }
}
