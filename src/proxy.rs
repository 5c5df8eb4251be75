//! The live link and the host nginx.
//!
//! The host nginx proxies to `<socket_dir>/live/nginx.sock`, where `live` is
//! a symlink to `blue` or `green`. A flip is `symlink(color, live.tmp)`,
//! `rename(live.tmp, live)` and an fsync of the directory: one atomic
//! syscall, no nginx reload. The kernel resolves the path on every
//! `connect()`, so new upstream connections reach the new color at once and
//! requests in flight finish on the old one. The snippet turns upstream
//! keep-alive off (HTTP/1.0 + `Connection: close` to the upstream), so no
//! cached connection to the old color outlives a flip on any nginx version.

use std::fs::File;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::layout::Layout;
use crate::roles::Color;

#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    #[error("cannot {op} {path}: {cause}")]
    Io {
        op: &'static str,
        path: PathBuf,
        cause: std::io::Error,
    },
    #[error("live link {path} points at {target:?}, expected blue or green\nhint: webdock promote TAG rewrites it")]
    BadLink { path: PathBuf, target: String },
}

fn io<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> ProxyError + 'a {
    move |cause| ProxyError::Io {
        op,
        path: path.into(),
        cause,
    }
}

/// Creates the socket directories and the state directory. Every directory
/// on the way to a socket gets its mode set explicitly (0755: the host nginx
/// must traverse them; nginx makes the socket itself 0666), whatever the
/// umask: under umask 077 `create_dir_all` would make them 0700. The state
/// directory is 0700. A live link lost with a tmpfs socket root (a reboot)
/// is put back from the live record.
pub fn ensure_dirs(l: &Layout) -> Result<(), ProxyError> {
    let sock = l.socket_dir();
    if let Some(root) = sock.parent() {
        make_dir(root, 0o755, false)?;
    }
    make_dir(sock, 0o755, true)?;
    for c in [Color::Blue, Color::Green] {
        make_dir(&l.color_dir(c), 0o755, true)?;
    }
    make_dir(l.state_dir(), 0o700, true)?;
    restore_live(l)?;
    Ok(())
}

/// Creates `dir` (and its parents) and sets `mode` on it when it is ours to
/// set: always when `own` (a project directory), else only if we created it
/// or it is ours and not traversable (a shared root such as /run/webdock).
fn make_dir(dir: &Path, mode: u32, own: bool) -> Result<(), ProxyError> {
    use std::os::unix::fs::MetadataExt;
    let existed = dir.is_dir();
    std::fs::create_dir_all(dir).map_err(io("create", dir))?;
    let m = std::fs::metadata(dir).map_err(io("stat", dir))?;
    let current = m.permissions().mode() & 0o777;
    let mine = m.uid() == unsafe { libc::geteuid() };
    let fix = own || !existed || (mine && current & 0o005 != 0o005);
    if fix && current != mode {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(mode))
            .map_err(io("chmod", dir))?;
    }
    Ok(())
}

/// Proves that the state directory takes a write (a lock holder, a history
/// line) and the socket directory a new link, before a promote changes
/// anything: a read-only or full disk is refused up front, not half-way.
pub fn preflight(l: &Layout) -> Result<(), ProxyError> {
    use std::io::Write;
    let probe = l.write_check();
    let r = (|| {
        let mut f = File::create(&probe)?;
        f.write_all(&[0u8; 64 * 1024])?;
        f.sync_all()
    })();
    let _ = std::fs::remove_file(&probe);
    r.map_err(io("write to", l.state_dir()))?;
    let link = l.link_check();
    let _ = std::fs::remove_file(&link);
    let r = symlink("blue", &link);
    let _ = std::fs::remove_file(&link);
    r.map_err(io("make a link in", l.socket_dir()))?;
    Ok(())
}

/// The color the live link points at, if there is a link.
pub fn live(l: &Layout) -> Result<Option<Color>, ProxyError> {
    let link = l.live_link();
    match std::fs::read_link(&link) {
        Ok(t) => {
            let t = t.to_string_lossy().into_owned();
            Color::parse(&t).map(Some).ok_or(ProxyError::BadLink {
                path: link,
                target: t,
            })
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io("read link", &link)(e)),
    }
}

/// The color last flipped to, from the record in the state directory.
pub fn recorded_live(l: &Layout) -> Option<Color> {
    let text = std::fs::read_to_string(l.live_record()).ok()?;
    Color::parse(text.trim())
}

/// Puts back a live link that vanished while its record survived: a reboot
/// empties a tmpfs socket root under containers that the engine restarts.
/// Returns the color restored, if any.
pub fn restore_live(l: &Layout) -> Result<Option<Color>, ProxyError> {
    if live(l)?.is_some() || l.live_link().symlink_metadata().is_ok() {
        return Ok(None);
    }
    let Some(c) = recorded_live(l) else {
        return Ok(None);
    };
    link_to(l, c)?;
    tracing::warn!(
        "the live link {} was missing (a reboot with the socket root on tmpfs?); restored it to {c} from {}",
        l.live_link().display(),
        l.live_record().display()
    );
    Ok(Some(c))
}

/// Points the live link at `to`, atomically and durably, and records it.
pub fn flip(l: &Layout, to: Color) -> Result<(), ProxyError> {
    link_to(l, to)?;
    record_live(l, to)
}

fn link_to(l: &Layout, to: Color) -> Result<(), ProxyError> {
    let dir = l.socket_dir();
    let tmp = l.live_tmp();
    match std::fs::remove_file(&tmp) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io("remove", &tmp)(e)),
    }
    symlink(to.as_str(), &tmp).map_err(io("symlink", &tmp))?;
    let link = l.live_link();
    std::fs::rename(&tmp, &link).map_err(io("rename onto", &link))?;
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io("fsync", dir))?;
    Ok(())
}

/// The record is written after the link: a crash in between leaves an older
/// record, which only matters if the link is then lost too.
fn record_live(l: &Layout, c: Color) -> Result<(), ProxyError> {
    use std::io::Write;
    let path = l.live_record();
    let tmp = path.with_extension("tmp");
    let r = (|| {
        let mut f = File::create(&tmp)?;
        f.write_all(c.as_str().as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, &path)?;
        File::open(l.state_dir())?.sync_all()
    })();
    r.map_err(io("record the live color in", &path))
}

/// The block the host nginx includes inside its `server { }`.
pub fn nginx_snippet(project: &str, l: &Layout) -> String {
    let sock = l.live_socket();
    let sock = sock.display();
    format!(
        r#"# webdock: project {project}. Include this inside a server {{ }} block of the host nginx.
# Traffic goes to whichever color the live link points at; `webdock promote`
# flips the link atomically, without an nginx reload.
location / {{
    proxy_pass http://unix:{sock}:;
    # One upstream connection per request: every connect() resolves the live
    # link, so a flip takes effect at once. Upstream keep-alive (the default
    # from nginx 1.29.7) would cache connections to the old color by path.
    proxy_http_version 1.0;
    proxy_set_header Connection "close";
    proxy_set_header Host $host;
    proxy_set_header X-Real-IP $remote_addr;
    proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
    proxy_set_header X-Forwarded-Proto $scheme;
    proxy_read_timeout 300s;
    client_max_body_size 64m;
}}
"#,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(root: &Path) -> Layout {
        Layout::new(&root.join("run"), &root.join("state"), "t")
    }

    #[test]
    fn flip_replaces_the_link_atomically() {
        let d = tempfile::tempdir().unwrap();
        let c = cfg(d.path());
        ensure_dirs(&c).unwrap();
        assert_eq!(live(&c).unwrap(), None);
        flip(&c, Color::Blue).unwrap();
        assert_eq!(live(&c).unwrap(), Some(Color::Blue));
        // a leftover temp link from a crash is no obstacle
        symlink("junk", c.live_tmp()).unwrap();
        flip(&c, Color::Green).unwrap();
        assert_eq!(live(&c).unwrap(), Some(Color::Green));
        assert_eq!(
            std::fs::read_link(c.live_link()).unwrap(),
            PathBuf::from("green")
        );
        assert!(!c.live_tmp().exists());
    }

    #[test]
    fn a_foreign_link_is_reported() {
        let d = tempfile::tempdir().unwrap();
        let c = cfg(d.path());
        ensure_dirs(&c).unwrap();
        symlink("/etc", c.live_link()).unwrap();
        assert!(matches!(live(&c), Err(ProxyError::BadLink { .. })));
    }

    #[test]
    fn snippet_disables_upstream_keepalive() {
        let l = Layout::new(
            Path::new("/run/webdock"),
            Path::new("/var/lib/webdock"),
            "t",
        );
        let s = nginx_snippet("t", &l);
        assert!(s.contains("proxy_http_version 1.0;"));
        assert!(s.contains("/run/webdock/t/live/nginx.sock:;"));
        assert!(!s.contains("keepalive "));
    }
}
