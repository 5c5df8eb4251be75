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
//!
//! Not a commit: a committed layer carries the time each file was written
//! and the engine's order, and the image the time of the commit, so two
//! machines never made the same dependency image. The container's changes
//! (`docker diff`) are read back through the archive endpoint and written as
//! a normalised layer (sorted, one file time, owners kept, whiteouts for
//! what the script removed), under a config written here, and loaded. Inside
//! the container `SOURCE_DATE_EPOCH` (the base's own time) makes pip
//! compile hash-checked byte code and `useradd` date the account by it, and
//! `PYTHONHASHSEED=0` keeps set and dict order out of the byte code.

use std::collections::BTreeMap;
use std::path::Path;

use super::layer::{self, Layer, Node, Owner};
use super::{cache_dir, run_build_container, sha_hex, BuildError};
use crate::engine::{Docker, Engine};
use crate::lock::Lock;

pub const DEPS_REPO: &str = "webdock-deps";

/// What the dependency container runs. The image's settings (ENV, user,
/// entrypoint) are written into the final image's config, not here. The
/// virtualenv gets no pip of its own: `ensurepip` cost more than the whole
/// install (16 s of 25 s, measured here), so Debian's pip wheel runs from
/// its zip with the venv's interpreter and installs into it.
const SCRIPT: &str = r#"set -eu
export PYTHONHASHSEED=0
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
    let comment = format!(
        "webdock: user app (10001), /opt/venv from {} wheels, offline",
        files.len()
    );
    let parent = engine
        .image_layers(base)
        .await?
        .ok_or_else(|| BuildError::Step {
            image: base.into(),
            code: -1,
            logs: "the base image is missing".into(),
        })?;
    // The base's own time: the deps layer's file times, its byte code's
    // and its account's dates, and the image's `created`.
    let epoch = parent
        .history
        .iter()
        .map(|h| h.created)
        .max()
        .unwrap_or(0)
        .max(0);
    let cmd = vec!["/bin/sh".into(), "-c".into(), SCRIPT.into()];
    let mut env: Vec<String> = ENV.iter().map(|s| s.to_string()).collect();
    env.push(format!("SOURCE_DATE_EPOCH={epoch}"));
    let name = run_build_container(engine, base, cmd, env, "/tmp", tar).await?;
    let made = diff_layer(engine, &name, epoch as u64).await;
    engine.remove_container(&name).await?;
    let made = made?;
    let created = time::OffsetDateTime::from_unix_timestamp(epoch)
        .map(crate::clock::rfc3339)
        .unwrap_or_default();
    let runtime = serde_json::json!({
        "Env": ENV,
        "Labels": parent.labels.iter().collect::<BTreeMap<_, _>>(),
    });
    let new = [layer::NewLayer {
        layer: &made,
        created_by: format!("/bin/sh -c {SCRIPT}"),
        comment,
    }];
    let config = layer::config_with(&parent, &new, runtime, &created, None);
    let mut ids = parent.diff_ids.clone();
    ids.push(made.diff_id.clone());
    let archive = layer::archive(&config, &reference, &ids, &[&made])?;
    engine.load_image(archive.into()).await?;
    Ok((reference, true))
}

/// What a stopped container changed, as a normalised layer: added trees
/// and changed files as they are now, a whiteout (`.wh.<name>`) for each
/// removed path, and every directory above them with its owner and mode.
///
/// Directories the engine reports as changed are not taken as such: which
/// ones it reports depends on its storage driver (overlay2 reports every
/// directory copied up, `/tmp` after the wheels left it; fuse-overlayfs's
/// naive diff compares times), and a layer that listed them would differ
/// from one engine to the next. The parents of what changed are listed
/// instead, whatever the driver said; a directory whose own mode or owner
/// the script changed, with nothing below it changed, would be lost (the
/// script changes none).
async fn diff_layer(engine: &Docker, container: &str, mtime: u64) -> anyhow::Result<Layer> {
    let mut changes = engine.changes(container).await?;
    changes.sort();
    let mut nodes: BTreeMap<String, (Node, Owner)> = BTreeMap::new();
    let mut covered: Vec<String> = Vec::new();
    for (path, kind) in changes {
        let rel = path.trim_start_matches('/').to_string();
        if rel.is_empty() || covered.iter().any(|c| rel.starts_with(&format!("{c}/"))) {
            continue;
        }
        let (dir, base) = match rel.rsplit_once('/') {
            Some((d, b)) => (format!("{d}/"), b.to_string()),
            None => (String::new(), rel.clone()),
        };
        match kind {
            2 => {
                covered.push(rel.clone());
                let whiteout = Node::File {
                    mode: 0,
                    data: Vec::new(),
                };
                nodes.insert(format!("{dir}.wh.{base}"), (whiteout, (0, 0)));
            }
            1 => {
                covered.push(rel.clone());
                let tar = engine.download(container, &path).await?;
                nodes.extend(layer::read_owned(&tar, &dir)?);
            }
            _ => {
                let (head, whole) = engine.download_head(container, &path, 64 << 10).await?;
                match layer::first_entry(&head)? {
                    Some((tar::EntryType::Directory, _, _)) | None => {}
                    Some(_) if whole => nodes.extend(layer::read_owned(&head, &dir)?),
                    Some(_) => {
                        let tar = engine.download(container, &path).await?;
                        nodes.extend(layer::read_owned(&tar, &dir)?);
                    }
                }
            }
        }
    }
    let parents: std::collections::BTreeSet<String> = nodes
        .keys()
        .flat_map(|p| {
            let parts: Vec<&str> = p.split('/').collect();
            (1..parts.len())
                .map(|i| parts[..i].join("/"))
                .collect::<Vec<_>>()
        })
        .filter(|p| !nodes.contains_key(p))
        .collect();
    for p in parents {
        let (head, _) = engine
            .download_head(container, &format!("/{p}"), 4 << 10)
            .await?;
        if let Some((tar::EntryType::Directory, mode, owner)) = layer::first_entry(&head)? {
            nodes.insert(p, (Node::Dir { mode }, owner));
        }
    }
    Ok(layer::write_owned(nodes, mtime)?)
}
