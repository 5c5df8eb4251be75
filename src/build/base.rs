//! The base image, made without a registry: mmdebstrap builds a Debian
//! rootfs from the mirror and the engine imports it, named by the hash of its
//! package list so it is made once per machine.

use bytes::Bytes;
use futures_util::Stream;

use super::{cache_dir, sha_hex, BuildError};
use crate::engine::{Docker, Engine};
use crate::lock::Lock;
use crate::proc;

const BASE_PACKAGES: &str = include_str!("../../images/base/packages.txt");
const BASE_SUITE: &str = "bookworm";
pub const BASE_REPO: &str = "webdock-base";

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
}
