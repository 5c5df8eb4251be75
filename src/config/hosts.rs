//! `[hosts.NAME]`: the hosts of a fleet and how to reach each one's engine.
//! No `[hosts]` table means the fleet of one: the local engine with the
//! paths of the top-level config, exactly as before.

use std::path::{Path, PathBuf};

use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawHost {
    engine: String,
    tls: Option<RawTls>,
    #[serde(default = "d_roles")]
    roles: Vec<String>,
    public_url: Option<String>,
    socket_root: Option<PathBuf>,
    state_root: Option<PathBuf>,
}

fn d_roles() -> Vec<String> {
    vec!["portal".into()]
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTls {
    ca: PathBuf,
    cert: PathBuf,
    key: PathBuf,
}

/// Where a host's Docker engine listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EngineUrl {
    Unix(PathBuf),
    /// `host:port`, plain HTTP or mutual TLS.
    Tcp(String),
    /// `user@host` (the system's ssh and the user's ssh config; the host
    /// runs `docker system dial-stdio`).
    Ssh(String),
}

impl std::fmt::Display for EngineUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            EngineUrl::Unix(p) => write!(f, "unix://{}", p.display()),
            EngineUrl::Tcp(a) => write!(f, "tcp://{a}"),
            EngineUrl::Ssh(a) => write!(f, "ssh://{a}"),
        }
    }
}

/// Client certificates for a `tcp://` engine with `--tlsverify`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tls {
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

#[derive(Debug, Clone)]
pub struct HostConfig {
    pub name: String,
    pub engine: EngineUrl,
    pub tls: Option<Tls>,
    /// `portal` (a web host) and/or `worker` (cron and djobs).
    pub roles: Vec<String>,
    pub public_url: Option<String>,
    pub socket_root: Option<PathBuf>,
    pub state_root: Option<PathBuf>,
}

impl HostConfig {
    pub fn runs(&self, role: &str) -> bool {
        self.roles.iter().any(|r| r == role)
    }
}

pub fn parse_engine(s: &str) -> Result<EngineUrl, String> {
    if let Some(p) = s.strip_prefix("unix://") {
        let p = Path::new(p);
        if !p.is_absolute() {
            return Err(format!("{s:?}: a unix socket path must be absolute"));
        }
        return Ok(EngineUrl::Unix(p.to_path_buf()));
    }
    if let Some(a) = s.strip_prefix("tcp://") {
        let a = a.trim_end_matches('/');
        let ok = a
            .rsplit_once(':')
            .is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok());
        if !ok {
            return Err(format!("{s:?}: expected tcp://HOST:PORT"));
        }
        return Ok(EngineUrl::Tcp(a.to_string()));
    }
    if let Some(a) = s.strip_prefix("ssh://") {
        let a = a.trim_end_matches('/');
        if a.is_empty() || a.contains(char::is_whitespace) || a.contains('/') {
            return Err(format!("{s:?}: expected ssh://[USER@]HOST"));
        }
        return Ok(EngineUrl::Ssh(a.to_string()));
    }
    Err(format!(
        "{s:?}: expected unix:///PATH, tcp://HOST:PORT or ssh://[USER@]HOST"
    ))
}

/// Validates one `[hosts.NAME]` table; relative TLS paths are taken from
/// `base` (the config file's directory).
pub(super) fn host(name: &str, raw: RawHost, base: &Path) -> Result<HostConfig, String> {
    let key = |k: &str| format!("hosts.{name}.{k}");
    let engine = parse_engine(&raw.engine).map_err(|e| format!("{} {e}", key("engine")))?;
    let tls = match raw.tls {
        None => None,
        Some(_) if !matches!(engine, EngineUrl::Tcp(_)) => {
            return Err(format!("{} is only for a tcp:// engine", key("tls")))
        }
        Some(t) => {
            let t = Tls {
                ca: base.join(t.ca),
                cert: base.join(t.cert),
                key: base.join(t.key),
            };
            for (k, p) in [("ca", &t.ca), ("cert", &t.cert), ("key", &t.key)] {
                if !p.is_file() {
                    return Err(format!(
                        "{} {} is not a file",
                        key(&format!("tls.{k}")),
                        p.display()
                    ));
                }
            }
            Some(t)
        }
    };
    if raw.roles.is_empty() {
        return Err(format!(
            "{} is empty: name portal and/or worker",
            key("roles")
        ));
    }
    if let Some(r) = raw
        .roles
        .iter()
        .find(|r| !matches!(r.as_str(), "portal" | "worker"))
    {
        return Err(format!(
            "{} has {r:?}: a host runs portal and/or worker",
            key("roles")
        ));
    }
    if let Some(u) = &raw.public_url {
        super::check_public_url(u).map_err(|e| format!("{} {e}", key("public_url")))?;
    }
    for (k, p) in [
        ("socket_root", &raw.socket_root),
        ("state_root", &raw.state_root),
    ] {
        if let Some(p) = p.as_ref().filter(|p| !p.is_absolute()) {
            return Err(format!("{} {} must be absolute", key(k), p.display()));
        }
    }
    Ok(HostConfig {
        name: name.to_string(),
        engine,
        tls,
        roles: raw.roles,
        public_url: raw.public_url,
        socket_root: raw.socket_root,
        state_root: raw.state_root,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn engine_urls() {
        assert_eq!(
            parse_engine("tcp://10.0.0.2:2375").unwrap(),
            EngineUrl::Tcp("10.0.0.2:2375".into())
        );
        assert_eq!(
            parse_engine("unix:///run/docker.sock").unwrap(),
            EngineUrl::Unix("/run/docker.sock".into())
        );
        assert_eq!(
            parse_engine("ssh://root@web2").unwrap(),
            EngineUrl::Ssh("root@web2".into())
        );
        for bad in [
            "tcp://web1",
            "http://x:1",
            "unix://rel/sock",
            "ssh://",
            "web1:2375",
        ] {
            assert!(parse_engine(bad).is_err(), "{bad}");
        }
    }
}
