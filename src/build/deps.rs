//! The dependency image: the base, the `app` user and the app's virtualenv,
//! in one container run and one commit.
//!
//! Under the classic builder a requirements change paid for nine steps, each
//! a container and a layer commit (seconds apiece on fuse-overlayfs). Here
//! the wheels go into a stopped container by the engine's archive endpoint,
//! one shell script makes the user and installs the wheelhouse offline, and
//! one commit keeps the result as `webdock-deps:<hash>`. The hash covers the
//! base, this script, the requirements and the wheels, so the image is made
//! once per dependency set on a machine and every build of it reuses it.

use std::path::Path;

use super::{cache_dir, layer, run_build_container, sha_hex, BuildError};
use crate::engine::{Docker, Engine};
use crate::lock::Lock;

pub const DEPS_REPO: &str = "webdock-deps";

/// What the dependency container runs. The image's settings (ENV, user,
/// entrypoint) are written into the final image's config, not here. The
/// virtualenv gets no pip of its own: `ensurepip` cost more than the whole
/// install (16 s of 25 s, measured here), so Debian's pip wheel runs from
/// its zip with the venv's interpreter and installs into it.
const SCRIPT: &str = r#"set -eu
groupadd --gid 10001 app
useradd --uid 10001 --gid app --home-dir /app --no-create-home --shell /usr/sbin/nologin app
mkdir -p /app /data /run/webdock/sock
chown app:app /data
rm -f /etc/cron.d/* /etc/cron.hourly/* /etc/cron.daily/* /etc/cron.weekly/* /etc/cron.monthly/* /etc/nginx/sites-enabled/*
python3 -m venv --without-pip /opt/venv
set -- /usr/share/python-wheels/pip-*.whl
/opt/venv/bin/python "$1/pip" install --no-index --no-cache-dir --disable-pip-version-check --quiet --find-links /tmp/webdock-wheels -r /tmp/webdock-wheels/requirements.txt
rm -rf /tmp/webdock-wheels
"#;

/// The environment every app process and build step sees.
pub const ENV: [&str; 3] = [
    "PATH=/opt/venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "LANG=C.UTF-8",
    "PYTHONUNBUFFERED=1",
];

/// The wheel files of a wheelhouse, sorted by name.
fn wheel_files(wheels: &Path) -> Result<Vec<std::path::PathBuf>, BuildError> {
    let mut files: Vec<_> = fs_err::read_dir(wheels)
        .map_err(|e| BuildError::Io {
            path: wheels.into(),
            cause: e,
        })?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    Ok(files)
}

/// `webdock-deps:<hash>`, named by everything that goes into it.
pub fn reference(base: &str, requirements: &[u8], wheels: &Path) -> Result<String, BuildError> {
    let mut names = Vec::new();
    for w in wheel_files(wheels)? {
        let len = fs_err::metadata(&w).map(|m| m.len()).unwrap_or(0);
        let name = w.file_name().expect("a file").to_string_lossy();
        names.push(format!("{name}:{len}"));
    }
    let key = sha_hex(&[
        base.as_bytes(),
        SCRIPT.as_bytes(),
        requirements,
        names.join("\n").as_bytes(),
    ]);
    Ok(format!("{DEPS_REPO}:{}", &key[..16]))
}

/// Makes the dependency image unless it exists (or `force`). Returns its
/// reference and whether it was made now.
pub async fn ensure(
    engine: &Docker,
    base: &str,
    requirements: &[u8],
    wheels: &Path,
    force: bool,
    say: &dyn Fn(&str),
) -> anyhow::Result<(String, bool)> {
    let reference = reference(base, requirements, wheels)?;
    if !force && engine.inspect_image(&reference).await?.is_some() {
        return Ok((reference, false));
    }
    // One maker per dependency set on the machine: parallel builds of the
    // same requirements wait for it instead of racing to commit the tag.
    let locks = cache_dir().join("deps");
    fs_err::create_dir_all(&locks)?;
    let _lock =
        Lock::acquire_blocking(&locks.join(format!("{}.lock", &reference[DEPS_REPO.len() + 1..])))?;
    if !force && engine.inspect_image(&reference).await?.is_some() {
        return Ok((reference, false));
    }
    let files = wheel_files(wheels)?;
    say(&format!(
        "dependencies: installing {} wheels into a fresh virtualenv ({reference})",
        files.len()
    ));
    let mut nodes = std::collections::BTreeMap::new();
    nodes.insert(
        "webdock-wheels/requirements.txt".to_string(),
        layer::Node::File {
            mode: 0o644,
            data: requirements.to_vec(),
        },
    );
    for w in &files {
        let name = w.file_name().expect("a file").to_string_lossy();
        let data = fs_err::read(w).map_err(|e| BuildError::Io {
            path: w.clone(),
            cause: e,
        })?;
        nodes.insert(
            format!("webdock-wheels/{name}"),
            layer::Node::File { mode: 0o644, data },
        );
    }
    let tar = layer::write(nodes, 0)?.tar;
    let (repo, tag) = reference.split_once(':').expect("reference has a tag");
    let comment = format!(
        "webdock: user app (10001), /opt/venv from {} wheels, offline",
        files.len()
    );
    let cmd = vec!["/bin/sh".into(), "-c".into(), SCRIPT.into()];
    let env = ENV.iter().map(|s| s.to_string()).collect();
    let name = run_build_container(engine, base, cmd, env, "/tmp", tar).await?;
    let made = engine.commit(&name, repo, tag, &comment).await;
    engine.remove_container(&name).await?;
    made?;
    Ok((reference, true))
}
