//! The app layer: the app's files, its compiled assets, and what one
//! container run makes of them (`collectstatic`, the `.gz` twins of text
//! statics, byte code), written as a normalised layer.
//!
//! The container gets the app through the archive endpoint, runs once with
//! no network, and the engine hands `/app` back as a tar; nothing is
//! committed. Byte code is hash-checked (`--invalidation-mode
//! checked-hash`), so it stays valid with the layer's normalised file times.
//! The finished layer is cached on the build host by a hash of everything
//! that went into it, so a rebuild of unchanged code runs no container.

use std::collections::BTreeMap;
use std::path::Path;

use super::layer::{self, Layer, Node};
use super::{cache_dir, run_build_container, sha_hex, BuildError, Source};
use crate::config::Config;
use crate::engine::{Docker, Engine};

/// What the app container runs. Text statics get a `.gz` twin for nginx's
/// gzip_static (`-n`: no name or time inside, so the same bytes each time).
/// `PYTHONHASHSEED=0`: set and dict order (the byte code's frozensets,
/// collectstatic's manifest) the same on every machine.
const SCRIPT: &str = r#"set -eu
export PYTHONHASHSEED=0
cd /app
WEBDOCK_BUILD=1 python manage.py collectstatic --noinput -v 0
if [ -d /app/staticfiles ]; then
    find /app/staticfiles -type f \( -name '*.css' -o -name '*.js' -o -name '*.mjs' \
        -o -name '*.map' -o -name '*.svg' -o -name '*.json' -o -name '*.txt' \
        -o -name '*.html' -o -name '*.xml' -o -name '*.ico' -o -name '*.ttf' \
        -o -name '*.eot' -o -name '*.otf' \) -exec gzip -k -9 -n {} +
fi
python -m compileall -q --invalidation-mode checked-hash /app
"#;

pub const CREATED_BY: &str =
    "webdock: /app (app files, compiled assets, collectstatic, gzip, compileall)";

/// The app's files and asset output as layer nodes under `app/`.
pub fn inputs(
    cfg: &Config,
    assets: Option<(&Path, &Path)>,
) -> Result<BTreeMap<String, Node>, BuildError> {
    let mut nodes = BTreeMap::new();
    for e in super::context::app_files(cfg)? {
        let Source::Disk(p) = &e.source else { continue };
        let data = fs_err::read(p).map_err(|err| BuildError::Io {
            path: p.clone(),
            cause: err,
        })?;
        nodes.insert(e.path.clone(), Node::File { mode: e.mode, data });
    }
    if let Some((output, dir)) = assets {
        for e in ignore::WalkBuilder::new(dir)
            .standard_filters(false)
            .hidden(false)
            .build()
            .filter_map(Result::ok)
            .filter(|e| e.file_type().is_some_and(|t| t.is_file()))
        {
            let rel = e.path().strip_prefix(dir).expect("under the output");
            let data = fs_err::read(e.path()).map_err(|err| BuildError::Io {
                path: e.path().into(),
                cause: err,
            })?;
            let path = format!("app/{}/{}", output.display(), rel.display());
            nodes.insert(path, Node::File { mode: 0o644, data });
        }
    }
    Ok(nodes)
}

/// The cache key of the layer: the dependency image it runs on, the script,
/// the file time, and every input's path, mode and content.
pub fn key(deps_id: &str, mtime: u64, nodes: &BTreeMap<String, Node>) -> String {
    let mut parts: Vec<Vec<u8>> = vec![
        deps_id.as_bytes().to_vec(),
        SCRIPT.as_bytes().to_vec(),
        mtime.to_le_bytes().to_vec(),
    ];
    for (path, node) in nodes {
        parts.push(path.as_bytes().to_vec());
        if let Node::File { mode, data } = node {
            parts.push(mode.to_le_bytes().to_vec());
            parts.push(layer::sha256_hex(data).into_bytes());
        }
    }
    let refs: Vec<&[u8]> = parts.iter().map(Vec::as_slice).collect();
    sha_hex(&refs)[..24].to_string()
}

/// The app layer for these inputs: from the cache, or made by one run of a
/// container of the dependency image. Returns the layer and whether it was
/// cached.
pub async fn layer(
    engine: &Docker,
    deps: &str,
    key: &str,
    nodes: BTreeMap<String, Node>,
    mtime: u64,
    force: bool,
    say: &dyn Fn(&str),
) -> anyhow::Result<(Layer, bool)> {
    let root = cache_dir().join("layers");
    let cached = root.join(format!("{key}.tar"));
    if !force {
        if let Ok(tar) = fs_err::read(&cached) {
            // used now: the pruning below keeps the most recently used
            let _ = std::fs::File::options()
                .write(true)
                .open(&cached)
                .and_then(|f| f.set_modified(std::time::SystemTime::now()));
            let diff_id = format!("sha256:{}", layer::sha256_hex(&tar));
            return Ok((Layer { tar, diff_id }, true));
        }
    }
    say(&format!(
        "app: collectstatic and compileall over {} files in a container of {deps}",
        nodes.len()
    ));
    let upload = layer::write(nodes, mtime)?.tar;
    let mut env: Vec<String> = super::deps::ENV.iter().map(|s| s.to_string()).collect();
    env.push("WEBDOCK_BUILD=1".into());
    let cmd = vec!["/bin/sh".into(), "-c".into(), SCRIPT.into()];
    let name = run_build_container(engine, deps, cmd, env, "/", upload).await?;
    let got = engine.download(&name, "/app").await;
    engine.remove_container(&name).await?;
    let made = layer::read(&got?, "")?;
    let made = layer::write(made, mtime)?;
    save(&root, &cached, &made.tar)?;
    Ok((made, false))
}

/// Keeps the layer for the next build (atomically), and only the newest 16.
fn save(root: &Path, path: &Path, tar: &[u8]) -> Result<(), BuildError> {
    let io = |p: &Path| {
        let p = p.to_path_buf();
        move |cause| BuildError::Io { path: p, cause }
    };
    fs_err::create_dir_all(root).map_err(io(root))?;
    let tmp = tempfile::NamedTempFile::new_in(root).map_err(io(root))?;
    fs_err::write(tmp.path(), tar).map_err(io(tmp.path()))?;
    tmp.persist(path).map_err(|e| BuildError::Io {
        path: path.into(),
        cause: e.error,
    })?;
    let mut all: Vec<_> = fs_err::read_dir(root)
        .map_err(io(root))?
        .filter_map(Result::ok)
        .filter(|e| e.path().extension().is_some_and(|x| x == "tar"))
        .filter_map(|e| Some((e.metadata().ok()?.modified().ok()?, e.path())))
        .collect();
    all.sort();
    let excess = all.len().saturating_sub(16);
    for (_, p) in all.into_iter().take(excess) {
        let _ = std::fs::remove_file(p);
    }
    Ok(())
}
