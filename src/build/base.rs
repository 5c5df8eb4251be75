//! The base image, made without a registry: mmdebstrap builds a Debian
//! rootfs from the mirror and the engine loads it, named by the hash of its
//! package list and of this recipe so it is made once per machine.
//!
//! Reproducible across machines for the same mirror content: mmdebstrap
//! runs with `SOURCE_DATE_EPOCH` set to the date of the suite's `Release`
//! file (so every file time is clamped to a time the mirror, not the
//! machine, decides, and later than any packaged file, which keeps the
//! stdlib's byte code fresh), the two files it copies from the host
//! (`/etc/resolv.conf`, `/etc/hostname`) are removed, and the image config is
//! written here with that same time as `created`, then loaded: `docker
//! import` would stamp the time of the import.

use std::collections::BTreeMap;

use bytes::Bytes;
use futures_util::Stream;
use serde_json::json;

use super::layer::{self, NewLayer};
use super::{cache_dir, sha_hex, BuildError};
use crate::engine::{Docker, Engine, ImageLayers};
use crate::lock::Lock;
use crate::proc;

const BASE_PACKAGES: &str = include_str!("../../images/base/packages.txt");
const BASE_SUITE: &str = "bookworm";
pub const BASE_REPO: &str = "webdock-base";

/// How the base is made, beyond the suite and the packages; part of its
/// tag, so a base made another way is never taken for this one.
const RECIPE: &str = "mmdebstrap --variant=apt; apt lists and cache, resolv.conf, hostname removed; SOURCE_DATE_EPOCH = Release date; loaded with a written config";

/// The environment of the base image.
const PATH: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// The packages of the base image, comments and blanks dropped.
pub fn base_packages() -> Vec<&'static str> {
    BASE_PACKAGES
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect()
}

/// The repository of the base: `webdock-base`, or `WEBDOCK_BASE_REPO` (a
/// benchmark's cold build makes a base of its own under another name
/// instead of untagging the one every build on the machine shares).
fn base_repo() -> String {
    std::env::var("WEBDOCK_BASE_REPO")
        .ok()
        .filter(|r| !r.is_empty())
        .unwrap_or_else(|| BASE_REPO.to_string())
}

/// `webdock-base:<hash>`: a new package list is a new base.
pub fn base_image_ref() -> String {
    let pkgs = base_packages().join(",");
    format!(
        "{}:{}",
        base_repo(),
        &sha_hex(&[BASE_SUITE.as_bytes(), pkgs.as_bytes(), RECIPE.as_bytes()])[..12]
    )
}

/// The `Date:` of the suite's Release file on the mirror, as Unix seconds:
/// the newest time anything in that mirror state can carry.
fn release_epoch(mirror: &str) -> Result<i64, BuildError> {
    let url = format!(
        "{}/dists/{BASE_SUITE}/Release",
        mirror.trim_end_matches('/')
    );
    let text = proc::run(
        "curl",
        ["-fsSL", "--max-time", "60", url.as_str()],
        None,
        Some("apt-get install curl"),
    )
    .map_err(BuildError::Base)?;
    parse_release_date(&text).ok_or_else(|| {
        BuildError::Base(proc::ProcError::Failed {
            command: format!("curl {url}"),
            code: "0".into(),
            stderr: "no readable `Date:` line".into(),
        })
    })
}

fn parse_release_date(release: &str) -> Option<i64> {
    let date = release
        .lines()
        .find_map(|l| l.strip_prefix("Date:"))?
        .trim()
        .replace(" UTC", " +0000")
        .replace(" GMT", " +0000");
    time::OffsetDateTime::parse(&date, &time::format_description::well_known::Rfc2822)
        .ok()
        .map(|t| t.unix_timestamp())
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
    let epoch = release_epoch(&mirror)?;
    let created = time::OffsetDateTime::from_unix_timestamp(epoch)
        .map(crate::clock::rfc3339)
        .unwrap_or_default();
    say(&format!(
        "making base image {reference} with mmdebstrap from {mirror} (Release of {created}; once per machine)"
    ));
    let tmp = tempfile::Builder::new()
        .prefix("webdock-base-")
        .tempdir_in(&cache)?;
    let tarball = tmp.path().join("rootfs.tar");
    let include = format!("--include={}", base_packages().join(","));
    let started = std::time::Instant::now();
    let epoch_s = epoch.to_string();
    proc::run_env(
        "mmdebstrap",
        [
            "--variant=apt",
            "--quiet",
            include.as_str(),
            "--customize-hook=chroot \"$1\" apt-get clean",
            "--customize-hook=rm -rf \"$1\"/var/lib/apt/lists/*",
            // copied from the host by mmdebstrap; the engine mounts its own
            "--customize-hook=rm -f \"$1\"/etc/resolv.conf \"$1\"/etc/hostname",
            BASE_SUITE,
        ]
        .iter()
        .map(|s| s.to_string())
        .chain([tarball.display().to_string(), mirror.clone()]),
        None,
        &[("SOURCE_DATE_EPOCH", epoch_s.as_str())],
        Some("apt-get install mmdebstrap"),
    )
    .map_err(BuildError::Base)?;
    say(&format!(
        "rootfs made in {:.0} s; loading",
        started.elapsed().as_secs_f64()
    ));
    let (_, tag) = reference.split_once(':').expect("reference has a tag");
    let archive = tmp.path().join("image.tar");
    write_archive(&tarball, &archive, &reference, tag, &created)?;
    fs_err::remove_file(&tarball)?;
    let file = tokio::fs::File::open(&archive).await?;
    engine.load_image_stream(tokio_util_read(file)).await?;
    Ok(reference)
}

/// The load archive of the base: its config (written here: `created` is
/// the Release date, not the time of the load) and the rootfs as its one
/// layer, whose diff id is the rootfs tarball's digest.
fn write_archive(
    rootfs: &std::path::Path,
    archive: &std::path::Path,
    reference: &str,
    tag: &str,
    created: &str,
) -> anyhow::Result<()> {
    use sha2::Digest;
    let mut h = sha2::Sha256::new();
    let mut f = fs_err::File::open(rootfs)?;
    std::io::copy(&mut f, &mut h)?;
    let hex: String = h.finalize().iter().map(|b| format!("{b:02x}")).collect();
    let l = layer::Layer {
        tar: Vec::new(),
        diff_id: format!("sha256:{hex}"),
    };
    let empty = ImageLayers {
        id: String::new(),
        diff_ids: vec![],
        labels: Default::default(),
        repo_digests: vec![],
        history: vec![],
    };
    let runtime = json!({
        "Env": [PATH],
        "Labels": BTreeMap::from([("webdock.base", tag)]),
    });
    let new = [NewLayer {
        layer: &l,
        created_by: format!(
            "webdock: Debian {BASE_SUITE} by mmdebstrap --variant=apt, {} packages (images/base/packages.txt)",
            base_packages().len()
        ),
        comment: format!("the mirror's Release of {created}"),
    }];
    let config = layer::config_with(&empty, &new, runtime, created, None);
    let id = layer::sha256_hex(&config);
    let manifest = json!([{
        "Config": format!("{id}.json"),
        "RepoTags": [reference],
        "Layers": [format!("{hex}/layer.tar")],
    }]);
    let mut tar = tar::Builder::new(fs_err::File::create(archive)?);
    let mut add = |path: &str, size: u64, data: &mut dyn std::io::Read| {
        let mut h = tar::Header::new_gnu();
        h.set_mode(0o644);
        h.set_size(size);
        h.set_mtime(0);
        h.set_entry_type(tar::EntryType::Regular);
        tar.append_data(&mut h, path, data)
    };
    let manifest = serde_json::to_vec(&manifest)?;
    add(
        "manifest.json",
        manifest.len() as u64,
        &mut manifest.as_slice(),
    )?;
    add(
        &format!("{id}.json"),
        config.len() as u64,
        &mut config.as_slice(),
    )?;
    let size = fs_err::metadata(rootfs)?.len();
    add(
        &format!("{hex}/layer.tar"),
        size,
        &mut fs_err::File::open(rootfs)?,
    )?;
    tar.into_inner()?;
    Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_reference_depends_on_the_package_list() {
        let r = base_image_ref();
        assert!(r.starts_with("webdock-base:"));
        assert_eq!(r.len(), "webdock-base:".len() + 12);
        assert!(base_packages().contains(&"s6"));
    }

    #[test]
    fn the_release_date_is_read_as_utc_seconds() {
        let r = "Origin: Debian\nCodename: bookworm\nDate: Sat, 11 Jul 2026 10:16:37 UTC\nAcquire-By-Hash: yes\n";
        assert_eq!(parse_release_date(r), Some(1_783_764_997));
        assert_eq!(parse_release_date("Origin: Debian\n"), None);
    }
}
