//! The roles one image runs, and what a container of each looks like:
//! its fixed name, labels, environment and mounts.
//!
//! Names are fixed and colorless for cron and djobs: the engine refuses a
//! second container with the same name, which makes "at most one" an
//! engine-enforced fact on one host rather than a hope.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::Path;

use crate::config::Config;
use crate::engine::ContainerSpec;
use crate::names::Tag;

pub const LABEL_PROJECT: &str = "webdock.project";
pub const LABEL_ROLE: &str = "webdock.role";
pub const LABEL_COLOR: &str = "webdock.color";
pub const LABEL_DJOB: &str = "webdock.djob";
pub const LABEL_TAG: &str = "webdock.tag";
pub const LABEL_DJOBS: &str = "webdock.djobs";

/// Where the container's nginx listens; the host bind-mounts the color's
/// socket *directory* here (a file mount would pin a stale inode).
pub const SOCKET_MOUNT: &str = "/run/webdock/sock";
pub const SOCKET_FILE: &str = "nginx.sock";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Color {
    Blue,
    Green,
}

impl Color {
    pub fn other(self) -> Color {
        match self {
            Color::Blue => Color::Green,
            Color::Green => Color::Blue,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Color::Blue => "blue",
            Color::Green => "green",
        }
    }
    pub fn parse(s: &str) -> Option<Color> {
        match s {
            "blue" => Some(Color::Blue),
            "green" => Some(Color::Green),
            _ => None,
        }
    }
}

impl fmt::Display for Color {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Role {
    Portal(Color),
    Cron,
    Djob(String),
    Release(Tag),
}

impl Role {
    pub fn container_name(&self, project: &str) -> String {
        match self {
            Role::Portal(c) => format!("{project}-portal-{c}"),
            Role::Cron => format!("{project}-cron"),
            Role::Djob(n) => format!("{project}-djob-{n}"),
            Role::Release(t) => format!("{project}-release-{t}"),
        }
    }
    pub fn kind(&self) -> &'static str {
        match self {
            Role::Portal(_) => "portal",
            Role::Cron => "cron",
            Role::Djob(_) => "djob",
            Role::Release(_) => "release",
        }
    }
    /// A human name: `portal blue`, `djob billing`, `cron`.
    pub fn describe(&self) -> String {
        match self {
            Role::Portal(c) => format!("portal {c}"),
            Role::Cron => "cron".into(),
            Role::Djob(n) => format!("djob {n}"),
            Role::Release(t) => format!("release {t}"),
        }
    }
}

/// Reads `KEY=value` lines (blank lines and `#` comments skipped). The file
/// holds secrets, so it must not be readable by group or others.
pub fn read_env_file(path: &Path) -> anyhow::Result<BTreeMap<String, String>> {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(path).map_err(|e| {
        crate::Usage(format!(
            "env_file {}: {e}\nhint: create it with KEY=value lines and chmod 600",
            path.display()
        ))
    })?;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        anyhow::bail!(crate::Usage(format!(
            "env_file {} has mode {mode:o}: secrets must not be readable by others\nhint: chmod 600 {}",
            path.display(),
            path.display()
        )));
    }
    // A bad env file is bad config (exit 2), however it is bad.
    let text = std::fs::read(path)
        .map_err(|e| crate::Usage(format!("env_file {}: {e}", path.display())))?;
    let text = String::from_utf8(text).map_err(|e| {
        crate::Usage(format!(
            "env_file {} is not UTF-8 text (byte {})",
            path.display(),
            e.utf8_error().valid_up_to()
        ))
    })?;
    let mut out = BTreeMap::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((k, v)) = line.split_once('=') else {
            anyhow::bail!(crate::Usage(format!(
                "env_file {}:{}: expected KEY=value",
                path.display(),
                i + 1
            )));
        };
        let k = k.trim();
        crate::names::check_env_name(k).map_err(|e| {
            crate::Usage(format!(
                "env_file {}:{}: key {k:?} {e}",
                path.display(),
                i + 1
            ))
        })?;
        if k.starts_with("WEBDOCK_") {
            anyhow::bail!(crate::Usage(format!(
                "env_file {}:{}: key {k:?} is reserved: WEBDOCK_* variables are set by webdock",
                path.display(),
                i + 1
            )));
        }
        if v.contains('\0') {
            anyhow::bail!(crate::Usage(format!(
                "env_file {}:{}: the value of {k} holds a NUL byte",
                path.display(),
                i + 1
            )));
        }
        out.insert(k.to_string(), v.to_string());
    }
    Ok(out)
}

/// Builds container specs; holds the env file's contents once per command.
pub struct Specs<'a> {
    pub cfg: &'a Config,
    secrets: BTreeMap<String, String>,
    /// The paths of the host the containers run on (sockets, heartbeats).
    layout: crate::layout::Layout,
    /// The host's name as errors and the lease holder name it (`local`
    /// for the fleet of one).
    host: String,
    /// `[lease]`'s URL, read from the env file once.
    lease_dsn: Option<String>,
}

impl<'a> Specs<'a> {
    pub fn new(cfg: &'a Config) -> anyhow::Result<Specs<'a>> {
        let secrets = match &cfg.env_file {
            Some(p) => read_env_file(p)?,
            None => BTreeMap::new(),
        };
        let lease_dsn = cfg.lease_dsn()?;
        Ok(Specs {
            cfg,
            secrets,
            layout: cfg.layout(),
            host: "local".into(),
            lease_dsn,
        })
    }

    /// Specs for containers on the host named `name` (`WEBDOCK_HOST`).
    pub fn named(mut self, name: &str) -> Specs<'a> {
        self.host = name.to_string();
        self
    }

    /// The lease variables of a djob (`Some(name)`) or cron container.
    fn lease_env(&self, env: &mut BTreeMap<String, String>, djob: Option<&str>) {
        let (Some(l), Some(dsn)) = (&self.cfg.lease, &self.lease_dsn) else {
            return;
        };
        env.insert("WEBDOCK_LEASE_DSN".into(), dsn.clone());
        env.insert(
            "WEBDOCK_LEASE_NAME".into(),
            crate::lease::name(&self.cfg.project, djob),
        );
        env.insert(
            "WEBDOCK_LEASE_WINDOW".into(),
            crate::lease::window_secs(l.window).to_string(),
        );
        env.insert("WEBDOCK_HOST".into(), self.host.clone());
    }

    /// Specs for containers on a host with paths of its own.
    pub fn on(mut self, layout: &crate::layout::Layout) -> Specs<'a> {
        self.layout = layout.clone();
        self
    }

    pub fn spec(&self, role: &Role, tag: &Tag) -> ContainerSpec {
        let cfg = self.cfg;
        let mut env: BTreeMap<String, String> = cfg.env.clone();
        env.extend(self.secrets.clone());
        env.insert("WEBDOCK_ROLE".into(), role.kind().into());
        env.insert("WEBDOCK_PROJECT".into(), cfg.project.clone());
        let mut labels = HashMap::from([
            (LABEL_PROJECT.to_string(), cfg.project.clone()),
            (LABEL_ROLE.to_string(), role.kind().to_string()),
            (LABEL_TAG.to_string(), tag.to_string()),
        ]);
        let mut binds = cfg.volumes.clone();
        let mut cmd = None;
        let mut grace = cfg.portal.stop_grace;
        let mut restart = true;
        let mut role_log = None;
        match role {
            Role::Portal(c) => {
                labels.insert(LABEL_COLOR.into(), c.to_string());
                env.insert("WEBDOCK_WSGI".into(), cfg.portal.wsgi.clone());
                env.insert(
                    "WEBDOCK_UWSGI_PROCESSES".into(),
                    cfg.portal.processes.to_string(),
                );
                binds.push(format!(
                    "{}:{SOCKET_MOUNT}",
                    self.layout.color_dir(*c).display()
                ));
                role_log = cfg.portal.logging.as_ref();
            }
            Role::Cron => {
                grace = cfg.cron.stop_grace;
                env.insert("WEBDOCK_STOP_GRACE".into(), grace.as_secs().to_string());
                env.insert("WEBDOCK_TIMEZONE".into(), cfg.cron_timezone());
                self.lease_env(&mut env, None);
                role_log = cfg.cron.logging.as_ref();
            }
            Role::Djob(n) => {
                labels.insert(LABEL_DJOB.into(), n.clone());
                env.insert("WEBDOCK_DJOB".into(), n.clone());
                self.lease_env(&mut env, Some(n));
                if let Some(d) = cfg.djob(n) {
                    grace = d.stop_grace;
                    env.extend(d.env.clone());
                    if let Some(limit) = d.heartbeat {
                        let hb = crate::heartbeat::MOUNT;
                        env.insert(
                            "WEBDOCK_HEARTBEAT_FILE".into(),
                            format!("{hb}/{}", crate::heartbeat::BEAT),
                        );
                        env.insert(
                            "WEBDOCK_HEARTBEAT_SECONDS".into(),
                            limit.as_secs().to_string(),
                        );
                        env.insert("WEBDOCK_STOP_GRACE".into(), grace.as_secs().to_string());
                        // A directory, created by the engine if missing; the
                        // container's /init hands it to the app user.
                        binds.push(format!("{}:{hb}", self.layout.heartbeat_dir(n).display()));
                    }
                    role_log = d.logging.as_ref();
                }
            }
            Role::Release(_) => {
                cmd = Some(cfg.release.command.clone());
                restart = false;
            }
        }
        ContainerSpec {
            name: role.container_name(&cfg.project),
            image: cfg.image_ref(tag),
            env: env.into_iter().map(|(k, v)| format!("{k}={v}")).collect(),
            labels,
            binds,
            cmd,
            entrypoint: None,
            user: None,
            // s6 needs a moment beyond the service's own grace to exit
            stop_timeout: grace + std::time::Duration::from_secs(5),
            restart_always: restart,
            log: Some(crate::logging::resolve(cfg.logging.as_ref(), role_log)),
        }
    }
}

#[cfg(test)]
mod tests;
