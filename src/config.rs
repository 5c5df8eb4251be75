//! `webdock.toml`: what a project is and how it is deployed.
//!
//! The file is parsed and validated completely before any command touches
//! Docker, the socket directories or the state directory, so a typo can never
//! leave a half-done deploy. Every error names the file, the line and the key.
//! Relative paths are resolved against the directory holding the file, so a
//! command means the same thing from any working directory.

mod hosts;
mod lease;
pub mod placement;

pub use hosts::{parse_engine, EngineUrl, HostConfig, Tls};
pub use lease::{LeaseConfig, MIN_WINDOW as MIN_LEASE_WINDOW};

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::logging::LogSettings;
use crate::names::{self, Tag};

pub mod destination;
pub mod registry;
pub use registry::Registry;
mod backup;
pub use backup::{fill, Backup};

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config {path}: {cause}\nhint: pass --config PATH or run from the directory holding webdock.toml")]
    Read {
        path: PathBuf,
        cause: std::io::Error,
    },
    #[error("config {path}:{line}: {message}")]
    Parse {
        path: PathBuf,
        line: usize,
        message: String,
    },
    #[error("config {path}: {message}")]
    Invalid { path: PathBuf, message: String },
}

mod raw;
mod sections;
mod validate;

use raw::*;
pub use sections::*;
use validate::*;

/// A validated configuration with absolute paths.
#[derive(Debug, Clone)]
pub struct Config {
    pub path: PathBuf,
    pub project: String,
    pub image: String,
    pub app_dir: PathBuf,
    pub requirements: PathBuf,
    pub crontab: Option<PathBuf>,
    pub env_file: Option<PathBuf>,
    pub socket_root: PathBuf,
    pub state_root: PathBuf,
    pub volumes: Vec<String>,
    pub keep_images: usize,
    pub env: BTreeMap<String, String>,
    pub release: Release,
    pub backup: Backup,
    pub portal: Portal,
    pub health: Health,
    pub cron: Cron,
    pub djobs: Vec<Djob>,
    pub check: Check,
    /// The fleet, by name; empty for the fleet of one (the local engine).
    pub hosts: Vec<HostConfig>,
    pub proxy: Proxy,
    /// `[logging]` as written; `logging::resolve` merges it with a role's own
    /// `logging` table (`roles::Specs::spec` does, for every container).
    pub logging: Option<LogSettings>,
    /// `[build]`: the front-end asset step (`build::assets`).
    pub build: crate::build::assets::BuildSection,
    pub registry: Option<Registry>,
    /// `-d NAME`: the overlay `webdock.NAME.toml` merged over this file;
    /// its state (history, locks, live link) is apart from the others'.
    pub destination: Option<String>,
    pub require_destination: bool,
    /// `[lease]`: every djob and cron container holds a PostgreSQL session
    /// lease beside its daemon (`crate::lease`). None: no lease.
    pub lease: Option<LeaseConfig>,
}

impl Config {
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read(path).map_err(|cause| ConfigError::Read {
            path: path.into(),
            cause,
        })?;
        let text = String::from_utf8(text).map_err(|e| ConfigError::Invalid {
            path: path.into(),
            message: format!("is not UTF-8 text (byte {})", e.utf8_error().valid_up_to()),
        })?;
        Config::parse(path, &text)
    }

    pub fn parse(path: &Path, text: &str) -> Result<Config, ConfigError> {
        let raw: Raw = toml::from_str(text).map_err(|e| {
            let line = e
                .span()
                .map(|s| text[..s.start.min(text.len())].matches('\n').count() + 1)
                .unwrap_or(1);
            ConfigError::Parse {
                path: path.into(),
                line,
                message: one_line(e.message()),
            }
        })?;
        let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
        let base = if base.as_os_str().is_empty() {
            PathBuf::from(".")
        } else {
            base
        };
        let base = std::path::absolute(&base).unwrap_or(base);
        let invalid = |message: String| ConfigError::Invalid {
            path: path.into(),
            message: one_line(&message),
        };

        let project = raw.project.0;
        let image = raw.image.unwrap_or_else(|| format!("webdock-{project}"));
        names::check_repository(&image).map_err(|e| invalid(format!("image {image:?} {e}")))?;

        let app_dir = base.join(&raw.app);
        let requirements = inside(&raw.requirements, "requirements").map_err(&invalid)?;
        let crontab = raw
            .crontab
            .as_deref()
            .map(|c| inside(c, "crontab"))
            .transpose()
            .map_err(&invalid)?;
        for (key, p) in [
            ("socket_root", &raw.socket_root),
            ("state_root", &raw.state_root),
        ] {
            if !p.is_absolute() {
                return Err(invalid(format!("{key} {p:?} must be an absolute path")));
            }
        }
        let env = raw.env;
        for (k, v) in &env {
            names::check_env_name(k).map_err(|e| invalid(format!("env key {k:?} {e}")))?;
            if v.contains('\0') {
                return Err(invalid(format!("env {k} holds a NUL byte")));
            }
            if k.starts_with("WEBDOCK_") {
                return Err(invalid(format!(
                    "env key {k:?} is reserved: WEBDOCK_* variables are set by webdock"
                )));
            }
        }
        for v in &raw.volumes {
            check_volume(v).map_err(|m| invalid(format!("volume {v:?} {m}")))?;
        }
        if raw.keep_images < 2 {
            return Err(invalid(
                "keep_images must be at least 2 (the live and the previous tag)".into(),
            ));
        }
        check_command("release.command", &raw.release.command, true).map_err(&invalid)?;
        raw.backup.check().map_err(&invalid)?;
        let h = &raw.health;
        if !h.path.starts_with('/') || h.path.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(invalid(format!(
                "health.path {:?} must start with '/' and hold no spaces",
                h.path
            )));
        }
        if h.host.is_empty()
            || h.host
                .chars()
                .any(|c| c.is_whitespace() || c.is_control() || c == '/')
        {
            return Err(invalid(format!(
                "health.host {:?} is not a host name",
                h.host
            )));
        }
        if raw.portal.processes == 0 {
            return Err(invalid("portal.processes must be at least 1".into()));
        }
        if !(0.0..=100.0).contains(&raw.check.disk_warn) {
            return Err(invalid(format!(
                "check.disk_warn {} is not a percentage (0-100)",
                raw.check.disk_warn
            )));
        }
        if h.interval.is_zero() {
            return Err(invalid("health.interval must not be 0".into()));
        }
        if h.consecutive == 0 {
            return Err(invalid("health.consecutive must be at least 1".into()));
        }
        if h.timeout.is_zero() || h.deadline < h.timeout {
            return Err(invalid(
                "health.deadline must be at least health.timeout, which must not be 0".into(),
            ));
        }
        if raw.portal.wsgi.contains('\0') {
            return Err(invalid("portal.wsgi holds a NUL byte".into()));
        }
        if let Some(u) = &raw.portal.public_url {
            // Checked here, not at verify time: that comes after the flip.
            check_public_url(u).map_err(|e| {
                invalid(format!(
                    "portal.public_url {e} (the host nginx on this machine)"
                ))
            })?;
        }
        let mut hosts = Vec::new();
        for (name, h) in raw.hosts {
            hosts.push(hosts::host(&name.0, h, &base).map_err(&invalid)?);
        }
        if let Some(r) = &raw.release.host {
            if !hosts.iter().any(|h| &h.name == r) {
                return Err(invalid(format!("release.host {r:?} is not one of [hosts]")));
            }
        }
        let mut logs = vec![
            ("portal.logging".to_string(), raw.portal.logging.as_ref()),
            ("cron.logging".to_string(), raw.cron.logging.as_ref()),
        ];
        for (n, d) in &raw.djobs {
            logs.push((format!("djobs.{}.logging", n.0), d.logging.as_ref()));
        }
        for (key, role) in logs {
            let key = if role.is_some() {
                key
            } else {
                "logging".into()
            };
            crate::logging::check(&key, &crate::logging::resolve(raw.logging.as_ref(), role))
                .map_err(&invalid)?;
        }
        placement::check("cron.hosts", &raw.cron.hosts, &hosts).map_err(&invalid)?;
        if let Some(z) = &raw.cron.timezone {
            crate::timezone::check(z).map_err(|e| invalid(format!("cron.timezone {z:?} {e}")))?;
        }
        let proxy = Proxy {
            nginx_conf: raw.proxy.nginx_conf.map(|p| base.join(p)),
        };
        raw.build.check().map_err(&invalid)?;
        let registry = match raw.registry {
            Some(host) => {
                registry::check_host(&host).map_err(&invalid)?;
                if raw.registry_stall_timeout.is_zero() {
                    return Err(invalid("registry_stall_timeout must not be 0".into()));
                }
                Some(Registry {
                    host,
                    auth_file: raw.registry_auth_file.map(|p| base.join(p)),
                    stall_timeout: raw.registry_stall_timeout,
                })
            }
            None if raw.registry_auth_file.is_some() => {
                return Err(invalid(
                    "registry_auth_file is set but registry is not".into(),
                ))
            }
            None => None,
        };
        let lease = raw
            .lease
            .map(|l| lease::check(l, raw.env_file.is_some()))
            .transpose()
            .map_err(&invalid)?;
        let mut djobs = Vec::new();
        for (name, d) in raw.djobs {
            check_command(&format!("djobs.{}.command", name.0), &d.command, false)
                .map_err(&invalid)?;
            for (k, v) in &d.env {
                names::check_env_name(k)
                    .map_err(|e| invalid(format!("djobs.{}.env key {k:?} {e}", name.0)))?;
                if v.contains('\0') {
                    return Err(invalid(format!(
                        "djobs.{}.env {k} holds a NUL byte",
                        name.0
                    )));
                }
                if k.starts_with("WEBDOCK_") {
                    return Err(invalid(format!(
                        "djobs.{}.env key {k:?} is reserved: WEBDOCK_* variables are set by webdock",
                        name.0
                    )));
                }
            }
            placement::check(&format!("djobs.{}.hosts", name.0), &d.hosts, &hosts)
                .map_err(&invalid)?;
            if d.heartbeat.is_some_and(|h| h < Duration::from_secs(1)) {
                return Err(invalid(format!(
                    "djobs.{}.heartbeat must be at least 1s",
                    name.0
                )));
            }
            djobs.push(Djob {
                name: name.0,
                command: d.command,
                stop_grace: d.stop_grace,
                env: d.env,
                settle: d.settle,
                heartbeat: d.heartbeat,
                logging: d.logging,
                hosts: d.hosts,
                failover: d.failover,
            });
        }
        placement::needs_lease(
            &placement::raw_failovers(&raw.cron, &djobs),
            lease.is_some(),
        )
        .map_err(&invalid)?;
        Ok(Config {
            path: path.into(),
            project,
            image,
            requirements,
            crontab,
            env_file: raw.env_file.map(|p| base.join(p)),
            app_dir,
            socket_root: raw.socket_root,
            state_root: raw.state_root,
            volumes: raw.volumes,
            keep_images: raw.keep_images,
            env,
            release: raw.release,
            backup: raw.backup,
            portal: raw.portal,
            health: raw.health,
            cron: raw.cron,
            check: raw.check,
            hosts,
            djobs,
            proxy,
            logging: raw.logging,
            build: raw.build,
            registry,
            destination: None,
            require_destination: raw.require_destination,
            lease,
        })
    }

    /// The zone cron runs in: `[cron] timezone`, else the host's.
    pub fn cron_timezone(&self) -> String {
        self.cron
            .timezone
            .clone()
            .unwrap_or_else(crate::timezone::host_zone)
    }

    pub fn djob(&self, name: &str) -> Option<&Djob> {
        self.djobs.iter().find(|d| d.name == name)
    }

    pub fn image_ref(&self, tag: &Tag) -> String {
        format!("{}:{}", self.image, tag)
    }

    /// Every path of this project on the local host.
    pub fn layout(&self) -> crate::layout::Layout {
        crate::layout::Layout::new(&self.socket_root, &self.state_root, &self.state_name())
    }

    /// The name of this project's directories and live link: the project,
    /// or `<project>.<destination>` (`.` is in no project name, so a
    /// destination's state never meets another project's).
    pub fn state_name(&self) -> String {
        match &self.destination {
            Some(d) => format!("{}.{d}", self.project),
            None => self.project.clone(),
        }
    }

    /// Every path of this project on a host of `[hosts]` (its overrides,
    /// else the top-level roots).
    pub fn host_layout(&self, h: &HostConfig) -> crate::layout::Layout {
        crate::layout::Layout::new(
            h.socket_root.as_deref().unwrap_or(&self.socket_root),
            h.state_root.as_deref().unwrap_or(&self.state_root),
            &self.state_name(),
        )
    }
}

#[cfg(test)]
mod tests;
