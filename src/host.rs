//! A host as the orchestration sees it: one engine connection, that host's
//! paths, and its proxy (the live link, the portal sockets, the check
//! through its nginx).
//!
//! A fleet is a list of `Host`s; a config without `[hosts]` is a fleet of
//! one, the local engine with the paths of `webdock.toml`, whose link is
//! flipped with local syscalls. A host of `[hosts]` is reached only through
//! its engine ([`Reach::Engine`]): a small helper container of the
//! project's image, `<project>-proxy`, bind-mounts the host's links and
//! socket directories and runs nothing but `sleep`; webdock reads the link,
//! probes the sockets and flips the link by running short commands in it
//! (a TLS-only engine needs no shell on the host). The flip is made ready
//! before the flip phase (`flip.rs`), so the flip itself is one round trip.
//! The plan and the deploy code never ask how a host is reached.

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use crate::config::{Config, Health};
use crate::engine::{ContainerSpec, Engine, EngineError};
use crate::health::{self, Answer};
use crate::layout::Layout;
use crate::plan::Observed;
use crate::proxy::{self, ProxyError};
use crate::roles::{Color, LABEL_PROJECT, LABEL_ROLE, LABEL_TAG, SOCKET_FILE};

mod flip;
pub use flip::{maybe_flipped, PreparedFlip};

/// How a host's link and sockets are reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reach {
    /// The controller's own filesystem (the fleet of one).
    Local,
    /// Commands in the `<project>-proxy` helper container, through the engine.
    Engine,
}

pub struct Host<E> {
    /// How errors and reports name it (`local` for the fleet of one).
    pub name: String,
    pub engine: E,
    pub layout: Layout,
    /// The URL checked through this host's nginx after a flip.
    pub public_url: Option<String>,
    pub reach: Reach,
    pub project: String,
    /// `portal` and/or `worker`; the fleet of one runs both.
    pub roles: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum HostError {
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error(transparent)]
    Proxy(#[from] ProxyError),
    #[error("{host}: {what}")]
    Remote { host: String, what: String },
    /// A remote flip that failed; `maybe`: the link may have moved.
    #[error("{host}: {what}")]
    Flip {
        host: String,
        maybe: bool,
        what: String,
    },
}

/// Where the helper sees the host's directories.
pub(crate) const IN_LINKS: &str = "/webdock/live.d";
pub(crate) const IN_SOCKETS: &str = "/webdock/sock";

impl<E: Engine> Host<E> {
    /// The fleet of one: the local engine and the config's paths.
    pub fn local(cfg: &Config, engine: E) -> Host<E> {
        Host {
            name: "local".into(),
            engine,
            layout: cfg.layout(),
            public_url: cfg.portal.public_url.clone(),
            reach: Reach::Local,
            project: cfg.project.clone(),
            roles: vec!["portal".into(), "worker".into()],
        }
    }

    /// A host of `[hosts]`, reached through `engine`.
    pub fn remote(cfg: &Config, h: &crate::config::HostConfig, engine: E) -> Host<E> {
        Host {
            name: h.name.clone(),
            engine,
            layout: cfg.host_layout(h),
            public_url: h.public_url.clone(),
            reach: Reach::Engine,
            project: cfg.project.clone(),
            roles: h.roles.clone(),
        }
    }

    pub fn runs(&self, role: &str) -> bool {
        self.roles.iter().any(|r| r == role)
    }

    pub fn fleet_name(&self) -> Option<String> {
        (self.reach == Reach::Engine).then(|| self.name.clone())
    }

    fn remote_err(&self, what: impl Into<String>) -> HostError {
        HostError::Remote {
            host: self.name.clone(),
            what: what.into(),
        }
    }

    pub fn helper_name(&self) -> String {
        format!("{}-proxy", self.project)
    }

    /// What runs for the project and where the live link points.
    pub async fn observe(&self, project: &str) -> Result<Observed, HostError> {
        let containers = self.engine.list_containers(project).await?;
        let live = self.live().await?;
        Ok(Observed::new(containers, live))
    }

    /// Runs a short command in the helper; a non-zero exit is an error.
    async fn run(&self, cmd: &[&str]) -> Result<String, HostError> {
        let cmd: Vec<String> = cmd.iter().map(|s| s.to_string()).collect();
        let o = self.engine.exec(&self.helper_name(), &cmd).await?;
        if o.code != 0 {
            return Err(self.remote_err(format!(
                "`{}` exited with {}: {}",
                cmd.join(" "),
                o.code,
                o.output.trim()
            )));
        }
        Ok(o.output)
    }

    /// Creates the directories (and, on a remote host, the helper running
    /// `image`, which must be on the host).
    pub async fn ensure_dirs(&self, image: &str) -> Result<(), HostError> {
        if self.reach == Reach::Local {
            return Ok(proxy::ensure_dirs(&self.layout)?);
        }
        let name = self.helper_name();
        match self.engine.inspect_container(&name).await? {
            Some(c) if c.running => {}
            other => {
                if other.is_some() {
                    self.engine.remove_container(&name).await?;
                }
                let tag = image.rsplit_once(':').map(|x| x.1).unwrap_or_default();
                let spec = ContainerSpec {
                    name: name.clone(),
                    image: image.to_string(),
                    labels: HashMap::from([
                        (LABEL_PROJECT.to_string(), self.project.clone()),
                        (LABEL_ROLE.to_string(), "proxy".to_string()),
                        (LABEL_TAG.to_string(), tag.to_string()),
                    ]),
                    binds: vec![
                        format!("{}:{IN_LINKS}", self.layout.links_dir().display()),
                        format!("{}:{IN_SOCKETS}", self.layout.socket_dir().display()),
                    ],
                    entrypoint: Some(vec!["sleep".into(), "infinity".into()]),
                    user: Some("root".into()),
                    stop_timeout: Duration::from_secs(1),
                    restart_always: true,
                    // bounded like every container of the project (doctor)
                    log: Some(crate::logging::resolve(None, None)),
                    ..Default::default()
                };
                self.engine.create_container(&spec).await?;
                self.engine.start_container(&name).await?;
            }
        }
        let blue = format!("{IN_SOCKETS}/blue");
        let green = format!("{IN_SOCKETS}/green");
        self.run(&["mkdir", "-p", &blue, &green, IN_LINKS]).await?;
        self.run(&["chmod", "755", IN_SOCKETS, &blue, &green, IN_LINKS])
            .await?;
        Ok(())
    }

    /// Proves a write and a link are possible before anything changes (the
    /// local disk; a remote host's helper proved it in `ensure_dirs`).
    pub fn preflight(&self) -> Result<(), HostError> {
        match self.reach {
            Reach::Local => Ok(proxy::preflight(&self.layout)?),
            Reach::Engine => Ok(()),
        }
    }

    /// The color the live link points at. On a remote host without its
    /// helper (nothing was ever promoted there) that is nothing.
    pub async fn live(&self) -> Result<Option<Color>, HostError> {
        if self.reach == Reach::Local {
            return Ok(proxy::live(&self.layout)?);
        }
        match self.engine.inspect_container(&self.helper_name()).await? {
            Some(c) if c.running => {}
            _ => return Ok(None),
        }
        let link = format!("{IN_LINKS}/{}", self.project);
        let o = self
            .engine
            .exec(&self.helper_name(), &["readlink".to_string(), link.clone()])
            .await?;
        if o.code != 0 {
            return Ok(None); // no link yet
        }
        let target = o.output.trim();
        [Color::Blue, Color::Green]
            .into_iter()
            .find(|c| Path::new(target) == self.layout.color_dir(*c))
            .map(Some)
            .ok_or_else(|| {
                self.remote_err(format!(
                    "live link {} points at {target:?}, expected a color directory",
                    self.layout.live_link().display()
                ))
            })
    }

    /// A stale socket from an earlier container would look ready. One in a
    /// directory we may not write (root's, after a reboot) is left to the
    /// new container's nginx, which removes it before it listens.
    pub async fn clear_socket(&self, color: Color) -> Result<(), HostError> {
        match self.reach {
            Reach::Local => {
                let sock = self.layout.socket(color);
                match std::fs::remove_file(&sock) {
                    Err(e)
                        if !matches!(
                            e.kind(),
                            std::io::ErrorKind::NotFound | std::io::ErrorKind::PermissionDenied
                        ) =>
                    {
                        Err(ProxyError::Io {
                            op: "remove stale socket",
                            path: sock,
                            cause: e,
                        }
                        .into())
                    }
                    _ => Ok(()),
                }
            }
            Reach::Engine => {
                let sock = format!("{IN_SOCKETS}/{color}/{SOCKET_FILE}");
                self.run(&["rm", "-f", &sock]).await.map(|_| ())
            }
        }
    }

    /// Waits for a color's socket to appear (inotify, locally); a remote
    /// host's probes simply fail until it does.
    pub async fn wait_socket(&self, color: Color, deadline: Duration) -> Result<(), String> {
        match self.reach {
            Reach::Local => health::wait_socket(&self.layout.socket(color), deadline)
                .await
                .map_err(|e| e.to_string()),
            Reach::Engine => Ok(()),
        }
    }

    /// One health request to a color's socket.
    pub async fn probe(
        &self,
        color: Color,
        h: &Health,
        timeout: Duration,
    ) -> Result<Answer, String> {
        match self.reach {
            Reach::Local => {
                health::probe_unix(&self.layout.socket(color), &h.host, &h.path, timeout).await
            }
            Reach::Engine => {
                let secs = format!("{:.3}", timeout.as_secs_f64());
                let sock = format!("{IN_SOCKETS}/{color}/{SOCKET_FILE}");
                let host = format!("Host: {}", h.host);
                let url = format!("http://localhost{}", h.path);
                let cmd: Vec<String> = [
                    "curl",
                    "-sS",
                    "-o",
                    "/dev/null",
                    "-D",
                    "-",
                    "--max-time",
                    &secs,
                    "--unix-socket",
                    &sock,
                    "-H",
                    &host,
                    "-A",
                    "webdock-health",
                    &url,
                ]
                .iter()
                .map(|s| s.to_string())
                .collect();
                let o = tokio::time::timeout(
                    timeout + Duration::from_secs(5),
                    self.engine.exec(&self.helper_name(), &cmd),
                )
                .await
                .map_err(|_| format!("{}: no answer from the engine", self.name))?
                .map_err(|e| e.to_string())?;
                health::parse_curl_head(&o.output)
            }
        }
    }

    /// Probes a color until `h.consecutive` answers in a row name `tag`.
    pub async fn wait_healthy(
        &self,
        color: Color,
        h: &Health,
        tag: &str,
    ) -> Result<health::Healthy, health::HealthError> {
        let what = format!("{} {}", self.name, self.layout.socket(color).display());
        health::wait_healthy_with(&what, h, tag, || self.probe(color, h, h.timeout)).await
    }

    /// Asks this host's nginx, a few times, whether `tag` answers there.
    /// `Ok(None)` when no public URL is configured.
    pub async fn verify(&self, tag: &str, timeout: Duration) -> Result<Option<String>, String> {
        let Some(url) = self.public_url.clone() else {
            return Ok(None);
        };
        let mut last = String::new();
        for attempt in 0..5 {
            if attempt > 0 {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            match health::probe_url(&url, timeout).await {
                Ok(a) if a.names(tag) => return Ok(Some(url)),
                Ok(a) => last = a.describe(),
                Err(e) => last = e,
            }
        }
        Err(format!(
            "the host nginx at {url} does not answer with {tag} after the flip (last: {last})"
        ))
    }
}
