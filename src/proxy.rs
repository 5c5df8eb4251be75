//! The live link and the host nginx.
//!
//! The host nginx proxies to `<state_root>/live.d/<project>/nginx.sock`,
//! where the link `<project>` points at the color directory
//! `<socket_root>/<project>/blue` or `green`. A flip is `symlink` to a temp
//! name, `rename` over the link and an fsync of the directory: one atomic
//! syscall, no nginx reload. The link sits beside the state, not in the
//! socket root, so a reboot that empties a tmpfs `/run` cannot lose it. The kernel resolves the path on every
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

/// Creates the socket directories, the links directory and the state
/// directory. Every directory on the way to a socket or the live link gets
/// its mode set explicitly (0755: the host nginx must traverse them; nginx
/// makes the socket itself 0666), whatever the umask: under umask 077
/// `create_dir_all` would make them 0700. The state directory is 0700.
pub fn ensure_dirs(l: &Layout) -> Result<(), ProxyError> {
    let sock = l.socket_dir();
    if let Some(root) = sock.parent() {
        make_dir(root, 0o755, false)?;
    }
    make_dir(sock, 0o755, true)?;
    for c in [Color::Blue, Color::Green] {
        make_dir(&l.color_dir(c), 0o755, true)?;
    }
    if let Some(root) = l.links_dir().parent() {
        make_dir(root, 0o755, false)?;
    }
    make_dir(l.links_dir(), 0o755, true)?;
    make_dir(l.state_dir(), 0o700, true)?;
    Ok(())
}

/// Creates `dir` (and its parents) and sets `mode` on it when it is ours to
/// set: a project directory (`own`) or a shared root we just made or own
/// but that others cannot traverse. A directory that already lets the host
/// nginx through is left alone whoever owns it: after a reboot dockerd
/// recreates the socket directories as root, and a non-root webdock must
/// still work.
fn make_dir(dir: &Path, mode: u32, own: bool) -> Result<(), ProxyError> {
    use std::os::unix::fs::MetadataExt;
    let existed = dir.is_dir();
    make_ancestors(dir)?;
    std::fs::create_dir_all(dir).map_err(io("create", dir))?;
    let m = std::fs::metadata(dir).map_err(io("stat", dir))?;
    let current = m.permissions().mode() & 0o777;
    if current == mode {
        return Ok(());
    }
    let mine = m.uid() == unsafe { libc::geteuid() } || unsafe { libc::geteuid() } == 0;
    let traversable = current & 0o005 == 0o005;
    let fix = !existed || (mine && (own || !traversable));
    if fix {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(mode))
            .map_err(io("chmod", dir))?;
    }
    Ok(())
}

/// Creates the missing ancestors of `dir`, each 0755 whatever the umask: a
/// custom `socket_root` or `state_root` several levels deep must be
/// traversable by the host nginx all the way down. Directories that
/// already exist are left alone.
fn make_ancestors(dir: &Path) -> Result<(), ProxyError> {
    let missing: Vec<&Path> = dir
        .ancestors()
        .skip(1)
        .take_while(|a| !a.as_os_str().is_empty() && !a.is_dir())
        .collect();
    for a in missing.into_iter().rev() {
        match std::fs::create_dir(a) {
            Ok(()) => std::fs::set_permissions(a, std::fs::Permissions::from_mode(0o755))
                .map_err(io("chmod", a))?,
            // another webdock made it first: its business
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(io("create", a)(e)),
        }
    }
    Ok(())
}

/// Proves that the state directory takes a write (a lock holder, a history
/// line) and the links directory a new link, before a promote changes
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
    r.map_err(io("make a link in", l.links_dir()))?;
    Ok(())
}

/// The color the live link points at, if there is a link: an absolute
/// link to one of this project's color directories (or, from an older
/// version, a relative `blue`/`green`).
pub fn live(l: &Layout) -> Result<Option<Color>, ProxyError> {
    let link = l.live_link();
    match std::fs::read_link(&link) {
        Ok(t) => {
            let color = [Color::Blue, Color::Green]
                .into_iter()
                .find(|c| t == l.color_dir(*c) || t == Path::new(c.as_str()));
            color.map(Some).ok_or(ProxyError::BadLink {
                path: link,
                target: t.to_string_lossy().into_owned(),
            })
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io("read link", &link)(e)),
    }
}

/// Points the live link at `to`, atomically and durably: `symlink` to a
/// temp name, `rename` over the link, fsync of the directory.
pub fn flip(l: &Layout, to: Color) -> Result<(), ProxyError> {
    swap_link(&l.live_tmp(), &l.live_link(), &l.color_dir(to))?;
    let legacy = l.legacy_live_link();
    if legacy.symlink_metadata().is_ok() {
        let tmp = l.socket_dir().join("live.tmp");
        swap_link(&tmp, &legacy, Path::new(to.as_str()))?;
    }
    Ok(())
}

fn swap_link(tmp: &Path, link: &Path, target: &Path) -> Result<(), ProxyError> {
    match std::fs::remove_file(tmp) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io("remove", tmp)(e)),
    }
    symlink(target, tmp).map_err(io("symlink", tmp))?;
    std::fs::rename(tmp, link).map_err(io("rename onto", link))?;
    let dir = link.parent().unwrap_or(Path::new("/"));
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io("fsync", dir))?;
    Ok(())
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

/// The load balancer in front of a fleet: round robin over each host's
/// nginx, passive failure handling (a host that fails twice within 5 s is
/// left out for 5 s), retries of idempotent requests on the next host when
/// one fails to connect (within 2 s: a host cut off from the network must
/// not hold a request for nginx's default minute) or answers 502/503/504.
pub fn lb_snippet(project: &str, servers: &[String], listen: &str) -> String {
    let upstreams: String = servers
        .iter()
        .map(|s| format!("    server {s} max_fails=2 fail_timeout=5s;\n"))
        .collect();
    format!(
        r#"# webdock: load balancer for project {project}. Include this in the http {{ }} block.
upstream webdock_{name} {{
{upstreams}    keepalive 32;
}}
server {{
    listen {listen};
    location / {{
        proxy_pass http://webdock_{name};
        proxy_http_version 1.1;
        proxy_set_header Connection "";
        proxy_set_header Host $host;
        proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
        proxy_connect_timeout 2s;
        proxy_next_upstream error timeout http_502 http_503 http_504;
        proxy_next_upstream_tries 3;
    }}
}}
"#,
        name = project.replace('-', "_"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(root: &Path) -> Layout {
        Layout::new(&root.join("run"), &root.join("state"), "t")
    }

    /// Regression (issue 16 item 7): under umask 077 `create_dir_all` made
    /// the missing ancestors of a custom socket or state root 0700, and
    /// only the last directory was chmodded: the host nginx could not
    /// traverse them. Runs in a child process (the umask is per process).
    #[test]
    fn every_directory_webdock_creates_is_traversable_under_umask_077() {
        const NAME: &str =
            "proxy::tests::every_directory_webdock_creates_is_traversable_under_umask_077";
        if crate::own_process::is_child(NAME) {
            let root = PathBuf::from(std::env::var_os("WEBDOCK_TEST_ROOT").unwrap());
            let l = Layout::new(&root.join("a/b/run"), &root.join("c/d/state"), "t");
            ensure_dirs(&l).unwrap();
            return;
        }
        let d = tempfile::tempdir().unwrap();
        crate::own_process::run(NAME, "umask 077", &[("WEBDOCK_TEST_ROOT", d.path())]);
        let l = Layout::new(&d.path().join("a/b/run"), &d.path().join("c/d/state"), "t");
        let mut checked = 0;
        for top in [l.color_dir(Color::Blue), l.links_dir().to_path_buf()] {
            for dir in top
                .ancestors()
                .take_while(|a| a.starts_with(d.path()) && *a != d.path())
            {
                let mode = std::fs::metadata(dir).unwrap().permissions().mode() & 0o777;
                assert_eq!(mode, 0o755, "{}", dir.display());
                checked += 1;
            }
        }
        assert!(checked >= 7, "{checked}");
        let state = std::fs::metadata(l.state_dir())
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(state & 0o777, 0o700);
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
        assert_eq!(
            std::fs::read_link(c.live_link()).unwrap(),
            c.color_dir(Color::Blue)
        );
        flip(&c, Color::Green).unwrap();
        assert_eq!(live(&c).unwrap(), Some(Color::Green));
        assert_eq!(
            std::fs::read_link(c.live_link()).unwrap(),
            c.color_dir(Color::Green)
        );
        assert!(c.live_tmp().symlink_metadata().is_err());
    }

    #[test]
    fn a_link_from_an_older_version_is_read_and_kept_in_step() {
        let d = tempfile::tempdir().unwrap();
        let c = cfg(d.path());
        ensure_dirs(&c).unwrap();
        symlink("blue", c.legacy_live_link()).unwrap();
        symlink("blue", c.live_link()).unwrap();
        assert_eq!(live(&c).unwrap(), Some(Color::Blue));
        flip(&c, Color::Green).unwrap();
        assert_eq!(live(&c).unwrap(), Some(Color::Green));
        assert_eq!(
            std::fs::read_link(c.legacy_live_link()).unwrap(),
            Path::new("green")
        );
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
    fn the_balancer_has_an_upstream_per_host_and_handles_failures_passively() {
        let servers = ["10.0.0.11:80".to_string(), "10.0.0.12:8080".to_string()];
        let s = lb_snippet("my-shop", &servers, "127.0.0.1:8000");
        let lines: Vec<&str> = s.lines().map(str::trim).collect();
        let has = |l: &str| lines.contains(&l);
        // one upstream, named after the project (nginx names take no '-')
        assert!(has("upstream webdock_my_shop {"), "{s}");
        assert!(has("proxy_pass http://webdock_my_shop;"), "{s}");
        // every host's nginx, with passive failure handling
        for srv in &servers {
            assert!(
                has(&format!("server {srv} max_fails=2 fail_timeout=5s;")),
                "{s}"
            );
        }
        let upstreams = lines
            .iter()
            .filter(|l| l.starts_with("server ") && l.ends_with(';'))
            .count();
        assert_eq!(upstreams, 2, "{s}");
        assert!(has("listen 127.0.0.1:8000;"), "{s}");
        // a failed or unreachable host: the next one, quickly; POSTs are
        // not retried (nginx's default: non_idempotent is not listed)
        assert!(
            has("proxy_next_upstream error timeout http_502 http_503 http_504;"),
            "{s}"
        );
        assert!(has("proxy_next_upstream_tries 3;"), "{s}");
        assert!(has("proxy_connect_timeout 2s;"), "{s}");
        assert!(!s.contains("non_idempotent"), "{s}");
        // keep-alive to the hosts' nginx: HTTP/1.1 without Connection: close
        assert!(has("keepalive 32;"), "{s}");
        assert!(has("proxy_http_version 1.1;"), "{s}");
        assert!(has("proxy_set_header Connection \"\";"), "{s}");
        // balanced braces: it loads as a part of an http { } block
        assert_eq!(s.matches('{').count(), s.matches('}').count(), "{s}");
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
        assert!(s.contains("/var/lib/webdock/live.d/t/nginx.sock:;"));
        assert!(!s.contains("keepalive "));
    }
}
