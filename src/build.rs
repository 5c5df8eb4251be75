//! Turning an app directory into `<image>:<tag>`.
//!
//! The build context is assembled here rather than on disk: the Dockerfile
//! and the image's rootfs overlay (both compiled into the binary, so the
//! binary alone can build), the generated djob services, the app's crontab,
//! a wheelhouse of its pinned Python dependencies (downloaded on the host and
//! cached by the hash of the requirements, so nothing inside the build needs
//! network), and the app itself minus `.dockerignore`. It is streamed as a
//! gzipped tar straight into the engine's build endpoint.
//!
//! The base image is made here too, without a registry: mmdebstrap builds a
//! Debian rootfs from the mirror and the engine imports it, named by the hash
//! of its package list so it is made once per machine.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use futures_util::Stream;
use include_dir::{include_dir, Dir};
use sha2::{Digest, Sha256};

use crate::config::{Config, Djob};
use crate::engine::{Docker, Engine};
use crate::lock::Lock;
use crate::names::Tag;
use crate::proc;

static ROOTFS: Dir<'static> = include_dir!("$CARGO_MANIFEST_DIR/images/rootfs");
const DOCKERFILE: &str = include_str!("../dockerfiles/webdocker.Dockerfile");
const BASE_PACKAGES: &str = include_str!("../images/base/packages.txt");
const BASE_SUITE: &str = "bookworm";
pub const BASE_REPO: &str = "webdock-base";

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

/// The packages of the base image, comments and blanks dropped.
pub fn base_packages() -> Vec<&'static str> {
    BASE_PACKAGES
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect()
}

/// `webdock-base:<hash>`: a new package list is a new base.
pub fn base_image_ref() -> String {
    let pkgs = base_packages().join(",");
    format!(
        "{BASE_REPO}:{}",
        &sha_hex(&[BASE_SUITE.as_bytes(), pkgs.as_bytes()])[..12]
    )
}

/// Makes the base image unless it exists. Serialized machine-wide, so
/// parallel builds wait for one mmdebstrap instead of running several.
pub async fn ensure_base(engine: &Docker, say: &dyn Fn(&str)) -> anyhow::Result<String> {
    let reference = base_image_ref();
    if engine.inspect_image(&reference).await?.is_some() {
        return Ok(reference);
    }
    let cache = cache_dir();
    fs_err::create_dir_all(&cache)?;
    let _lock = Lock::acquire_blocking(&cache.join("base.lock"))?;
    if engine.inspect_image(&reference).await?.is_some() {
        return Ok(reference);
    }
    let mirror = std::env::var("WEBDOCK_DEBIAN_MIRROR")
        .unwrap_or_else(|_| "http://deb.debian.org/debian".into());
    say(&format!(
        "making base image {reference} with mmdebstrap from {mirror} (once per machine)"
    ));
    let tmp = tempfile::Builder::new()
        .prefix("webdock-base-")
        .tempdir_in(&cache)?;
    let tarball = tmp.path().join("rootfs.tar");
    let include = format!("--include={}", base_packages().join(","));
    let started = std::time::Instant::now();
    proc::run(
        "mmdebstrap",
        [
            "--variant=apt",
            "--quiet",
            include.as_str(),
            "--customize-hook=chroot \"$1\" apt-get clean",
            "--customize-hook=rm -rf \"$1\"/var/lib/apt/lists/*",
            BASE_SUITE,
        ]
        .iter()
        .map(|s| s.to_string())
        .chain([tarball.display().to_string(), mirror]),
        None,
        Some("apt-get install mmdebstrap"),
    )
    .map_err(BuildError::Base)?;
    say(&format!(
        "rootfs made in {:.0} s; importing",
        started.elapsed().as_secs_f64()
    ));
    let file = tokio::fs::File::open(&tarball).await?;
    let stream = tokio_util_read(file);
    let (repo, tag) = reference.split_once(':').expect("reference has a tag");
    let changes = vec![
        format!("LABEL webdock.base=\"{tag}\""),
        "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".to_string(),
    ];
    engine.import_rootfs(stream, repo, tag, changes).await?;
    Ok(reference)
}

/// A file read as a stream of chunks, without holding it in memory.
fn tokio_util_read(
    file: tokio::fs::File,
) -> impl Stream<Item = std::io::Result<Bytes>> + Send + 'static {
    use tokio::io::AsyncReadExt;
    futures_util::stream::unfold(file, |mut f| async move {
        let mut buf = vec![0u8; 1 << 20];
        match f.read(&mut buf).await {
            Ok(0) => None,
            Ok(n) => {
                buf.truncate(n);
                Some((Ok(Bytes::from(buf)), f))
            }
            Err(e) => Some((Err(e), f)),
        }
    })
}

/// Downloads the wheels for `requirements` into a cache directory named by
/// its hash, once; returns the directory.
pub fn wheelhouse(requirements: &Path, say: &dyn Fn(&str)) -> Result<PathBuf, BuildError> {
    let text =
        fs_err::read(requirements).map_err(|_| BuildError::NoRequirements(requirements.into()))?;
    let python = std::env::var("WEBDOCK_PYTHON").unwrap_or_else(|_| "python3".into());
    let key = &sha_hex(&[&text, b"cp311-manylinux-x86_64"])[..16];
    let root = cache_dir().join("wheels");
    let dir = root.join(key);
    if dir.is_dir() {
        return Ok(dir);
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
        return Ok(dir);
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
    Ok(dir)
}

/// One file of the build context.
#[derive(Debug, Clone)]
pub enum Source {
    Disk(PathBuf),
    Inline(Vec<u8>),
}

#[derive(Debug, Clone)]
pub struct Entry {
    pub path: String,
    pub mode: u32,
    pub source: Source,
}

fn inline(path: impl Into<String>, mode: u32, data: impl Into<Vec<u8>>) -> Entry {
    Entry {
        path: path.into(),
        mode,
        source: Source::Inline(data.into()),
    }
}

/// Quotes one argument for an execline script: inside double quotes only
/// `\` and `"` are special, and no shell ever sees it.
fn execline_quote(arg: &str) -> String {
    let mut s = String::with_capacity(arg.len() + 2);
    s.push('"');
    for c in arg.chars() {
        match c {
            '\\' => s.push_str("\\\\"),
            '"' => s.push_str("\\\""),
            '\n' => s.push_str("\\n"),
            '\t' => s.push_str("\\t"),
            '\r' => s.push_str("\\r"),
            c => s.push(c),
        }
    }
    s.push('"');
    s
}

/// The s6 `run` script of a djob: drop to the app user in /app and exec the
/// configured argv. Generated, so the argv needs no shell.
pub fn djob_run_script(d: &Djob) -> String {
    let argv: Vec<String> = d.command.iter().map(|a| execline_quote(a)).collect();
    format!(
        "#!/usr/bin/execlineb -P\n# djob {name}: generated by webdock from webdock.toml\nfdmove -c 2 1\ncd /app\ns6-setuidgid app\n{}\n",
        argv.join(" "),
        name = d.name
    )
}

/// Files of the image's rootfs overlay, with the mode they need: scripts
/// (`#!`) are executable, everything else is read-only data.
fn rootfs_entries(dir: &Dir<'static>, out: &mut Vec<Entry>) {
    for f in dir.files() {
        let data = f.contents();
        let mode = if data.starts_with(b"#!") {
            0o755
        } else {
            0o644
        };
        out.push(inline(
            format!(".webdock/rootfs/{}", f.path().display()),
            mode,
            data,
        ));
    }
    for d in dir.dirs() {
        rootfs_entries(d, out);
    }
}

/// The app directory, minus what `.dockerignore` excludes. Docker's patterns
/// are anchored at the context root, so each is anchored before handing it
/// to the gitignore matcher.
///
/// Some files never go into an image whatever `.dockerignore` says: the
/// `never` paths (webdock.toml and the env file, which holds secrets) and
/// the app's `.git`.
fn app_entries(app: &Path, never: &[PathBuf], out: &mut Vec<Entry>) -> Result<(), BuildError> {
    let never: Vec<PathBuf> = never
        .iter()
        .map(|p| std::path::absolute(p).unwrap_or_else(|_| p.clone()))
        .collect();
    let app_abs = std::path::absolute(app).unwrap_or_else(|_| app.to_path_buf());
    let app_owned = app.to_path_buf();
    let mut ib = ignore::gitignore::GitignoreBuilder::new(app);
    let di = app.join(".dockerignore");
    if di.is_file() {
        let text = fs_err::read_to_string(&di).map_err(|e| BuildError::Io {
            path: di.clone(),
            cause: e,
        })?;
        for line in text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
        {
            let (neg, pat) = line
                .strip_prefix('!')
                .map(|p| (true, p))
                .unwrap_or((false, line));
            let pat = pat.trim_start_matches("./");
            let anchored = if pat.starts_with('/') || pat.starts_with("**") {
                pat.to_string()
            } else {
                format!("/{pat}")
            };
            let pat = if neg {
                format!("!{anchored}")
            } else {
                anchored
            };
            ib.add_line(None, &pat).map_err(|e| BuildError::Ignore {
                path: di.clone(),
                message: e.to_string(),
            })?;
        }
    }
    let matcher = ib.build().map_err(|e| BuildError::Ignore {
        path: di.clone(),
        message: e.to_string(),
    })?;
    let walker = ignore::WalkBuilder::new(app)
        .standard_filters(false)
        .hidden(false)
        .follow_links(false)
        .sort_by_file_name(|a, b| a.cmp(b))
        .filter_entry(move |e| {
            let is_dir = e.file_type().is_some_and(|t| t.is_dir());
            let abs = app_abs.join(e.path().strip_prefix(&app_owned).unwrap_or(e.path()));
            if never.contains(&abs) || (is_dir && e.depth() == 1 && e.file_name() == ".git") {
                return false;
            }
            !matcher
                .matched_path_or_any_parents(e.path(), is_dir)
                .is_ignore()
        })
        .build();
    for e in walker {
        let e = e.map_err(|e| BuildError::Io {
            path: app.into(),
            cause: std::io::Error::other(e.to_string()),
        })?;
        let ft = e.file_type();
        if !ft.is_some_and(|t| t.is_file()) {
            continue;
        }
        let rel = e
            .path()
            .strip_prefix(app)
            .expect("walk stays inside the app");
        let meta = e.metadata().map_err(|err| BuildError::Io {
            path: e.path().into(),
            cause: std::io::Error::other(err.to_string()),
        })?;
        use std::os::unix::fs::PermissionsExt;
        let mode = if meta.permissions().mode() & 0o111 != 0 {
            0o755
        } else {
            0o644
        };
        out.push(Entry {
            path: format!("app/{}", rel.display()),
            mode,
            source: Source::Disk(e.path().into()),
        });
    }
    Ok(())
}

/// Everything that goes into the build context, in a stable order.
pub fn context_entries(
    cfg: &Config,
    wheels: &Path,
    dockerfile: String,
) -> Result<Vec<Entry>, BuildError> {
    if !cfg.app_dir.is_dir() {
        return Err(BuildError::NoApp(cfg.app_dir.clone()));
    }
    let req = cfg.app_dir.join(&cfg.requirements);
    let mut out = vec![inline("Dockerfile", 0o644, dockerfile)];
    rootfs_entries(&ROOTFS, &mut out);
    out.push(inline(".webdock/djobs/.keep", 0o644, ""));
    for d in &cfg.djobs {
        out.push(inline(
            format!(".webdock/djobs/{}/run", d.name),
            0o755,
            djob_run_script(d),
        ));
    }
    let crontab = match &cfg.crontab {
        Some(c) => {
            let p = cfg.app_dir.join(c);
            fs_err::read(&p).map_err(|_| BuildError::NoCrontab(p.clone()))?
        }
        None => Vec::new(),
    };
    out.push(inline(".webdock/crontab", 0o644, crontab));
    out.push(inline(
        ".webdock/requirements.txt",
        0o644,
        fs_err::read(&req).map_err(|_| BuildError::NoRequirements(req.clone()))?,
    ));
    out.push(inline(".webdock/wheels/.keep", 0o644, ""));
    let mut wheel_files: Vec<PathBuf> = fs_err::read_dir(wheels)
        .map_err(|e| BuildError::Io {
            path: wheels.into(),
            cause: e,
        })?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file())
        .collect();
    wheel_files.sort();
    for w in wheel_files {
        let name = w
            .file_name()
            .expect("file has a name")
            .to_string_lossy()
            .into_owned();
        out.push(Entry {
            path: format!(".webdock/wheels/{name}"),
            mode: 0o644,
            source: Source::Disk(w),
        });
    }
    let never: Vec<PathBuf> = std::iter::once(cfg.path.clone())
        .chain(cfg.env_file.clone())
        .collect();
    app_entries(&cfg.app_dir, &never, &mut out)?;
    Ok(out)
}

/// Writes chunks into a channel: the tar is produced on a blocking thread
/// while the engine reads it, so memory stays flat for any context size.
struct ChannelWriter {
    tx: tokio::sync::mpsc::Sender<std::io::Result<Bytes>>,
    buf: Vec<u8>,
}

impl Write for ChannelWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= 256 * 1024 {
            self.flush()?;
        }
        Ok(data.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        if !self.buf.is_empty() {
            let chunk = Bytes::from(std::mem::take(&mut self.buf));
            self.tx
                .blocking_send(Ok(chunk))
                .map_err(|_| std::io::Error::other("build context reader went away"))?;
        }
        Ok(())
    }
}

/// Streams the entries as a gzipped tar. Errors reading a file end the
/// stream with that error, which aborts the build.
pub fn context_stream(
    entries: Vec<Entry>,
) -> impl Stream<Item = std::io::Result<Bytes>> + Send + 'static {
    let (tx, rx) = tokio::sync::mpsc::channel::<std::io::Result<Bytes>>(8);
    std::thread::spawn(move || {
        let err_tx = tx.clone();
        let result = (|| -> std::io::Result<()> {
            let w = ChannelWriter {
                tx,
                buf: Vec::with_capacity(256 * 1024),
            };
            let gz = flate2::write::GzEncoder::new(w, flate2::Compression::fast());
            let mut tar = tar::Builder::new(gz);
            for e in entries {
                let data = match e.source {
                    Source::Inline(d) => d,
                    Source::Disk(p) => fs_err::read(&p)?,
                };
                let mut h = tar::Header::new_gnu();
                h.set_size(data.len() as u64);
                h.set_mode(e.mode);
                h.set_uid(0);
                h.set_gid(0);
                h.set_mtime(0);
                h.set_entry_type(tar::EntryType::Regular);
                tar.append_data(&mut h, &e.path, data.as_slice())?;
            }
            let mut w = tar.into_inner()?.finish()?;
            w.flush()
        })();
        if let Err(e) = result {
            let _ = err_tx.blocking_send(Err(e));
        }
    });
    futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|x| (x, rx)) })
}

/// What the image says about where it came from.
pub struct Provenance {
    pub revision: String,
    pub created: String,
}

/// git commit of the app (with `-dirty` when it has changes) and a creation
/// time that repeats for repeated builds of the same commit, so a rebuild
/// with no change is the same image: `SOURCE_DATE_EPOCH`, else the commit
/// time of a clean checkout, else now.
pub fn provenance(app: &Path) -> Provenance {
    let git = |args: &[&str]| {
        proc::run("git", args, Some(app), None)
            .ok()
            .map(|s| s.trim().to_string())
    };
    let commit = git(&["rev-parse", "HEAD"]).filter(|s| !s.is_empty());
    let dirty = git(&["status", "--porcelain", "--", "."]).is_some_and(|s| !s.is_empty());
    let revision = match &commit {
        Some(c) if dirty => format!("{c}-dirty"),
        Some(c) => c.clone(),
        None => "unknown".into(),
    };
    let from_epoch = std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .and_then(|s| s.parse::<i64>().ok())
        .and_then(|s| time::OffsetDateTime::from_unix_timestamp(s).ok())
        .map(crate::clock::rfc3339);
    let created = from_epoch
        .or_else(|| {
            if commit.is_some() && !dirty {
                git(&["log", "-1", "--format=%cI"])
            } else {
                None
            }
        })
        .unwrap_or_else(crate::clock::now_rfc3339);
    Provenance { revision, created }
}

/// Build arguments the Dockerfile reads.
pub fn build_args(base: &str) -> HashMap<String, String> {
    HashMap::from([("BASE_IMAGE".into(), base.into())])
}

/// Labels of the image: who it is (`webdock.tag`, which promote checks, and
/// `webdock.djobs`, the djobs baked in) and the OCI provenance labels.
pub fn labels(cfg: &Config, tag: &Tag, p: &Provenance) -> Vec<(String, String)> {
    vec![
        (crate::roles::LABEL_TAG.into(), tag.to_string()),
        (
            crate::roles::LABEL_DJOBS.into(),
            cfg.djobs
                .iter()
                .map(|d| d.name.as_str())
                .collect::<Vec<_>>()
                .join(","),
        ),
        ("org.opencontainers.image.version".into(), tag.to_string()),
        (
            "org.opencontainers.image.revision".into(),
            p.revision.clone(),
        ),
        ("org.opencontainers.image.created".into(), p.created.clone()),
    ]
}

/// The Dockerfile sent to the engine: the project's, plus the release as an
/// `ENV` and one `LABEL` line, with literal values. No ARG steps to carry
/// them: every step costs a layer commit (seconds on a busy engine), and the
/// build API's own `labels` parameter adds one LABEL step per label.
pub fn dockerfile_with_labels(tag: &Tag, labels: &[(String, String)]) -> String {
    let quote = |v: &str| {
        format!(
            "\"{}\"",
            v.replace('\\', "\\\\")
                .replace('"', "\\\"")
                .replace('\n', " ")
        )
    };
    let parts: Vec<String> = labels
        .iter()
        .map(|(k, v)| format!("{k}={}", quote(v)))
        .collect();
    format!(
        "{}\nENV WEBDOCK_RELEASE={}\nLABEL {}\n",
        DOCKERFILE.trim_end(),
        quote(tag.as_str()),
        parts.join(" \\\n      ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn djob_script_quotes_every_argument_and_never_uses_a_shell() {
        let d = Djob {
            name: "billing".into(),
            command: vec![
                "python".into(),
                "a \"b\" \\c".into(),
                "$(rm -rf /); `x`".into(),
            ],
            stop_grace: Duration::from_secs(1),
            env: Default::default(),
            settle: Duration::from_secs(1),
            heartbeat: None,
            logging: None,
        };
        let s = djob_run_script(&d);
        assert!(s.starts_with("#!/usr/bin/execlineb -P\n"));
        assert!(
            s.contains(r#""python" "a \"b\" \\c" "$(rm -rf /); `x`""#),
            "{s}"
        );
        assert!(!s.contains("/bin/sh"));
    }

    #[test]
    fn labels_are_one_literal_step_with_quotes_escaped() {
        let tag = Tag::parse("1.0").unwrap();
        let labels = [("a.b".into(), "1.0".into()), ("c".into(), "x\"y\\z".into())];
        let d = dockerfile_with_labels(&tag, &labels);
        let tail: Vec<&str> = d.lines().rev().take(3).collect();
        assert_eq!(
            tail,
            [
                r#"      c="x\"y\\z""#,
                r#"LABEL a.b="1.0" \"#,
                r#"ENV WEBDOCK_RELEASE="1.0""#
            ]
        );
        assert_eq!(d.lines().filter(|l| l.starts_with("LABEL ")).count(), 1);
    }

    #[test]
    fn base_reference_depends_on_the_package_list() {
        let r = base_image_ref();
        assert!(r.starts_with("webdock-base:"));
        assert_eq!(r.len(), "webdock-base:".len() + 12);
        assert!(base_packages().contains(&"s6"));
    }
}
