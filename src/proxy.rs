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

use crate::config::Config;
use crate::roles::{Color, SOCKET_FILE};

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

pub fn live_link(cfg: &Config) -> PathBuf {
    cfg.socket_dir().join("live")
}

pub fn color_dir(cfg: &Config, c: Color) -> PathBuf {
    cfg.socket_dir().join(c.as_str())
}

pub fn socket_path(cfg: &Config, c: Color) -> PathBuf {
    color_dir(cfg, c).join(SOCKET_FILE)
}

/// Creates the socket directories (0755: the host nginx must traverse them;
/// nginx makes the socket itself 0666) and the state directory (0700).
pub fn ensure_dirs(cfg: &Config) -> Result<(), ProxyError> {
    for c in [Color::Blue, Color::Green] {
        let d = color_dir(cfg, c);
        std::fs::create_dir_all(&d).map_err(io("create", &d))?;
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o755))
            .map_err(io("chmod", &d))?;
    }
    let s = cfg.state_dir();
    std::fs::create_dir_all(&s).map_err(io("create", &s))?;
    std::fs::set_permissions(&s, std::fs::Permissions::from_mode(0o700))
        .map_err(io("chmod", &s))?;
    Ok(())
}

/// Proves that the state directory takes a write (a lock holder, a history
/// line) and the socket directory a new link, before a promote changes
/// anything: a read-only or full disk is refused up front, not half-way.
pub fn preflight(cfg: &Config) -> Result<(), ProxyError> {
    use std::io::Write;
    let probe = cfg.state_dir().join(".webdock-write-check");
    let r = (|| {
        let mut f = File::create(&probe)?;
        f.write_all(&[0u8; 64 * 1024])?;
        f.sync_all()
    })();
    let _ = std::fs::remove_file(&probe);
    r.map_err(io("write to", &cfg.state_dir()))?;
    let link = cfg.socket_dir().join(".webdock-link-check");
    let _ = std::fs::remove_file(&link);
    let r = symlink("blue", &link);
    let _ = std::fs::remove_file(&link);
    r.map_err(io("make a link in", &cfg.socket_dir()))?;
    Ok(())
}

/// The color the live link points at, if there is a link.
pub fn live(cfg: &Config) -> Result<Option<Color>, ProxyError> {
    let link = live_link(cfg);
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

/// Points the live link at `to`, atomically and durably.
pub fn flip(cfg: &Config, to: Color) -> Result<(), ProxyError> {
    let dir = cfg.socket_dir();
    let tmp = dir.join("live.tmp");
    match std::fs::remove_file(&tmp) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io("remove", &tmp)(e)),
    }
    symlink(to.as_str(), &tmp).map_err(io("symlink", &tmp))?;
    let link = live_link(cfg);
    std::fs::rename(&tmp, &link).map_err(io("rename onto", &link))?;
    File::open(&dir)
        .and_then(|d| d.sync_all())
        .map_err(io("fsync", &dir))?;
    Ok(())
}

/// The block the host nginx includes inside its `server { }`.
pub fn nginx_snippet(cfg: &Config) -> String {
    let sock = live_link(cfg).join(SOCKET_FILE);
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
        project = cfg.project,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(root: &Path) -> Config {
        let text = format!(
            "project = \"t\"\nsocket_root = \"{}\"\nstate_root = \"{}\"\n",
            root.join("run").display(),
            root.join("state").display()
        );
        Config::parse(&root.join("webdock.toml"), &text).unwrap()
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
        symlink("junk", c.socket_dir().join("live.tmp")).unwrap();
        flip(&c, Color::Green).unwrap();
        assert_eq!(live(&c).unwrap(), Some(Color::Green));
        assert_eq!(
            std::fs::read_link(live_link(&c)).unwrap(),
            PathBuf::from("green")
        );
        assert!(!c.socket_dir().join("live.tmp").exists());
    }

    #[test]
    fn a_foreign_link_is_reported() {
        let d = tempfile::tempdir().unwrap();
        let c = cfg(d.path());
        ensure_dirs(&c).unwrap();
        symlink("/etc", live_link(&c)).unwrap();
        assert!(matches!(live(&c), Err(ProxyError::BadLink { .. })));
    }

    #[test]
    fn snippet_disables_upstream_keepalive() {
        let d = tempfile::tempdir().unwrap();
        let s = nginx_snippet(&cfg(d.path()));
        assert!(s.contains("proxy_http_version 1.0;"));
        assert!(s.contains("/run/t/live/nginx.sock:;"));
        assert!(!s.contains("keepalive "));
    }
}
