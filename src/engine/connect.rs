//! Connecting to a fleet host's engine: a unix socket, plain or mutual-TLS
//! TCP, or ssh (`docker system dial-stdio` on the host through the system's
//! ssh and the user's ssh config, one connection per host: see `ssh.rs`). The API version is
//! negotiated, as for the local engine.

use std::path::Path;
use std::time::Duration;

use super::{Docker, EngineError, Result, CLIENT_TIMEOUT};

/// How to reach one engine (a `[hosts.NAME]` entry's `engine` and `tls`).
pub enum Target<'a> {
    Unix(&'a Path),
    Tcp {
        addr: &'a str,
        tls: Option<(&'a Path, &'a Path, &'a Path)>,
    },
    Ssh(&'a str),
}

impl Docker {
    /// Connects and negotiates within `within`: an unreachable host is an
    /// error naming it, never a hang.
    pub async fn connect_to(target: Target<'_>, within: Duration) -> Result<Docker> {
        let v = bollard::API_DEFAULT_VERSION;
        let d = match target {
            Target::Unix(p) => {
                bollard::Docker::connect_with_unix(&p.display().to_string(), CLIENT_TIMEOUT, v)
            }
            Target::Tcp { addr, tls: None } => {
                bollard::Docker::connect_with_http(&format!("http://{addr}"), CLIENT_TIMEOUT, v)
            }
            Target::Tcp {
                addr,
                tls: Some((ca, cert, key)),
            } => bollard::Docker::connect_with_ssl(addr, key, cert, ca, CLIENT_TIMEOUT, v),
            Target::Ssh(a) => super::ssh::connect(a, CLIENT_TIMEOUT),
        }
        .map_err(EngineError::Connect)?;
        let d = tokio::time::timeout(within, d.negotiate_version())
            .await
            .map_err(|_| EngineError::Timeout {
                op: "connect",
                target: "engine".into(),
                secs: within.as_secs(),
            })?
            .map_err(EngineError::Connect)?;
        Ok(Docker { inner: d })
    }
}
