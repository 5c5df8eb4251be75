//! The registry keys of `webdock.toml`: where images are pushed and pulled,
//! with which credentials, and how long a stalled pull may hang.
//!
//! Kept apart from the rest of the config because it is the one part that
//! reads a secret: the credentials come from the environment (CI secrets)
//! or from a file that only its owner may read, never from `webdock.toml`
//! itself and never from the `env_file`, whose values go into every
//! container. webdock never talks to the registry itself: the engine does
//! (push, pull, `GET /distribution`), so TLS or plain HTTP is the engine's
//! rule: Docker speaks plain HTTP only to 127.0.0.0/8 registries and to
//! those listed in its `insecure-registries`, and TLS to every other.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::ConfigError;
use crate::names::Tag;

/// Environment variables holding the registry credentials (both or neither).
pub const USER_VAR: &str = "WEBDOCK_REGISTRY_USER";
pub const PASSWORD_VAR: &str = "WEBDOCK_REGISTRY_PASSWORD";

pub fn d_stall_timeout() -> Duration {
    Duration::from_secs(60)
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registry {
    /// `HOST:PORT` (or `HOST`), no scheme, no path.
    pub host: String,
    /// A file of mode 0600 (or stricter) holding `user:password` on one line.
    pub auth_file: Option<PathBuf>,
    /// A pull or push that moves no byte for this long fails, naming the
    /// registry and the layer.
    pub stall_timeout: Duration,
}

#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub user: String,
    pub password: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Credentials {{ user: {:?}, password: <hidden> }}",
            self.user
        )
    }
}

/// Checks `registry = "HOST:PORT"`: what the engine will put in front of the
/// image name, so it must be a host name or address with an optional port.
pub fn check_host(s: &str) -> Result<(), String> {
    let bad = |why: &str| {
        Err(format!(
            "registry {s:?} {why} (write HOST:PORT, e.g. \"registry.example.com:5000\")"
        ))
    };
    if s.is_empty() {
        return bad("is empty");
    }
    if s.contains("://") {
        return bad("must not have a scheme (the engine picks TLS or plain HTTP)");
    }
    let (host, port) = match s.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(']') || s.starts_with('[') => (h, Some(p)),
        _ => (s, None),
    };
    if let Some(p) = port {
        if p.parse::<u16>().map_or(true, |p| p == 0) {
            return bad("has a bad port");
        }
    }
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let ok = !host.is_empty()
        && host.len() <= 253
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':'))
        && !host.starts_with(['-', '.']);
    if !ok {
        return bad("is not a host name or address");
    }
    Ok(())
}

impl Registry {
    /// `<registry>/<image>:TAG`, the name pushed and resolved.
    pub fn tagged(&self, image: &str, tag: &Tag) -> String {
        format!("{}/{image}:{tag}", self.host)
    }

    /// `<registry>/<image>` (a repository, no tag).
    pub fn repository(&self, image: &str) -> String {
        format!("{}/{image}", self.host)
    }

    /// `<registry>/<image>@sha256:...`, the name pulled and run.
    pub fn pinned(&self, image: &str, digest: &str) -> String {
        format!("{}/{image}@{digest}", self.host)
    }

    /// The credentials, from `WEBDOCK_REGISTRY_USER`/`_PASSWORD` or else the
    /// auth file; none means anonymous. A loose file mode, a malformed file
    /// or only one of the two variables is bad config (exit 2).
    pub fn credentials(&self, config: &Path) -> Result<Option<Credentials>, ConfigError> {
        let invalid = |message: String| ConfigError::Invalid {
            path: config.into(),
            message,
        };
        let user = std::env::var(USER_VAR).ok();
        let password = std::env::var(PASSWORD_VAR).ok();
        match (user, password) {
            (Some(user), Some(password)) => return Ok(Some(Credentials { user, password })),
            (None, None) => {}
            _ => {
                return Err(invalid(format!(
                    "set both {USER_VAR} and {PASSWORD_VAR}, or neither"
                )))
            }
        }
        let Some(file) = &self.auth_file else {
            return Ok(None);
        };
        let meta = std::fs::metadata(file)
            .map_err(|e| invalid(format!("registry_auth_file {}: {e}", file.display())))?;
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(invalid(format!(
                "registry_auth_file {} has mode {mode:04o}: it holds a password, so group and others must have no access\nhint: chmod 600 {}",
                file.display(),
                file.display()
            )));
        }
        let text = std::fs::read_to_string(file)
            .map_err(|e| invalid(format!("registry_auth_file {}: {e}", file.display())))?;
        parse_auth(text.trim_end_matches(['\n', '\r']))
            .ok_or_else(|| {
                invalid(format!(
                    "registry_auth_file {} must hold one line USER:PASSWORD",
                    file.display()
                ))
            })
            .map(Some)
    }
}

fn parse_auth(line: &str) -> Option<Credentials> {
    let (user, password) = line.split_once(':')?;
    if user.is_empty() || password.is_empty() || line.contains('\n') {
        return None;
    }
    Some(Credentials {
        user: user.into(),
        password: password.into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_hosts() {
        for ok in [
            "127.0.0.1:5000",
            "registry.example.com",
            "r.example.com:443",
            "[::1]:5000",
            "localhost:5055",
        ] {
            assert!(check_host(ok).is_ok(), "{ok}");
        }
        for (bad, why) in [
            ("", "empty"),
            ("http://r:5000", "scheme"),
            ("r:0", "port"),
            ("r:99999", "port"),
            ("r/x", "host name"),
            ("-r", "host name"),
            ("r :5", "host name"),
        ] {
            let e = check_host(bad).unwrap_err();
            assert!(e.contains(why), "{bad}: {e}");
        }
    }

    #[test]
    fn config_keys_are_checked_with_the_file_named() {
        let parse = |t: &str| super::super::Config::parse(Path::new("/srv/a/webdock.toml"), t);
        let c = parse("project = \"d\"\nregistry = \"127.0.0.1:5055\"\nregistry_auth_file = \"auth\"\nregistry_stall_timeout = \"5s\"\n").unwrap();
        let r = c.registry.unwrap();
        assert_eq!(r.auth_file.as_deref(), Some(Path::new("/srv/a/auth")));
        assert_eq!(r.stall_timeout, Duration::from_secs(5));
        assert!(parse("project = \"d\"\n").unwrap().registry.is_none());
        for (text, needle) in [
            (
                "project = \"d\"\nregistry = \"http://x\"",
                "webdock.toml: registry \"http://x\"",
            ),
            (
                "project = \"d\"\nregistry_auth_file = \"a\"",
                "registry is not",
            ),
            (
                "project = \"d\"\nregistry = \"x\"\nregistry_stall_timeout = \"0s\"",
                "registry_stall_timeout",
            ),
            ("project = \"d\"\n\nregistri = \"x\"", "webdock.toml:3:"),
        ] {
            let e = parse(text).unwrap_err().to_string();
            assert!(e.contains(needle), "{text:?} gave {e:?}");
        }
    }

    #[test]
    fn references() {
        let r = Registry {
            host: "127.0.0.1:5055".into(),
            auth_file: None,
            stall_timeout: d_stall_timeout(),
        };
        let t = Tag::parse("1.2.3").unwrap();
        assert_eq!(r.tagged("shop", &t), "127.0.0.1:5055/shop:1.2.3");
        assert_eq!(
            r.pinned("shop", "sha256:ab"),
            "127.0.0.1:5055/shop@sha256:ab"
        );
    }

    #[test]
    fn auth_file_mode_and_shape() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("auth");
        std::fs::write(&f, "ci:s3cret:with:colons\n").unwrap();
        let r = Registry {
            host: "r:5000".into(),
            auth_file: Some(f.clone()),
            stall_timeout: d_stall_timeout(),
        };
        let cfg = d.path().join("webdock.toml");
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o644)).unwrap();
        if std::env::var_os(USER_VAR).is_none() {
            let e = r.credentials(&cfg).unwrap_err().to_string();
            assert!(e.contains("mode 0644") && e.contains("chmod 600"), "{e}");
            std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o600)).unwrap();
            let c = r.credentials(&cfg).unwrap().unwrap();
            assert_eq!(
                (c.user.as_str(), c.password.as_str()),
                ("ci", "s3cret:with:colons")
            );
            assert!(!format!("{c:?}").contains("s3cret"));
        }
        assert!(parse_auth("nocolon").is_none());
        assert!(parse_auth(":pw").is_none());
    }
}
