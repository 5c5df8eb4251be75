//! `webdock.toml`: what a project is and how it is deployed.
//!
//! The file is parsed and validated completely before any command touches
//! Docker, the socket directories or the state directory, so a typo can never
//! leave a half-done deploy. Every error names the file, the line and the key.
//! Relative paths are resolved against the directory holding the file, so a
//! command means the same thing from any working directory.

mod hosts;

pub use hosts::{EngineUrl, HostConfig, Tls};

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::logging::LogSettings;
use crate::names::{self, Tag};

pub mod destination;
pub mod registry;
pub use registry::Registry;

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

/// The file as written. `deny_unknown_fields` everywhere: an unknown key is a
/// typo until proven otherwise.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    project: SimpleName,
    image: Option<String>,
    #[serde(default = "d_app")]
    app: PathBuf,
    #[serde(default = "d_requirements")]
    requirements: PathBuf,
    crontab: Option<PathBuf>,
    env_file: Option<PathBuf>,
    #[serde(default = "d_socket_root")]
    socket_root: PathBuf,
    #[serde(default = "d_state_root")]
    state_root: PathBuf,
    #[serde(default)]
    volumes: Vec<String>,
    #[serde(default = "d_keep_images")]
    keep_images: usize,
    #[serde(default)]
    env: BTreeMap<String, String>,
    #[serde(default)]
    release: Release,
    #[serde(default)]
    portal: Portal,
    #[serde(default)]
    health: Health,
    #[serde(default)]
    cron: Cron,
    #[serde(default)]
    djobs: BTreeMap<SimpleName, RawDjob>,
    #[serde(default)]
    check: Check,
    #[serde(default)]
    hosts: BTreeMap<SimpleName, hosts::RawHost>,
    #[serde(default)]
    proxy: Proxy,
    logging: Option<LogSettings>,
    #[serde(default)]
    build: crate::build::assets::BuildSection,
    /// `HOST:PORT` of the registry images are pushed to and pulled from.
    registry: Option<String>,
    registry_auth_file: Option<PathBuf>,
    #[serde(default = "registry::d_stall_timeout", with = "humantime_serde")]
    registry_stall_timeout: Duration,
    /// Refuse to run without `-d NAME` (see `config::destination`).
    #[serde(default)]
    require_destination: bool,
}

fn d_app() -> PathBuf {
    ".".into()
}
fn d_requirements() -> PathBuf {
    "requirements.txt".into()
}
fn d_socket_root() -> PathBuf {
    "/run/webdock".into()
}
fn d_state_root() -> PathBuf {
    "/var/lib/webdock".into()
}
fn d_keep_images() -> usize {
    5
}

/// A project or djob name, checked while parsing so the error carries a line.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct SimpleName(pub String);

impl<'de> Deserialize<'de> for SimpleName {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        names::check_simple_name(&s)
            .map_err(|e| serde::de::Error::custom(format!("name {s:?} {e}")))?;
        Ok(SimpleName(s))
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Release {
    /// Run once in a one-off container of the new image before any traffic
    /// moves; empty means no release step.
    #[serde(default = "d_release_cmd")]
    pub command: Vec<String>,
    #[serde(default = "d_release_timeout", with = "humantime_serde")]
    pub timeout: Duration,
    /// The host of `[hosts]` that runs the release command (default: the
    /// first by name).
    #[serde(default)]
    pub host: Option<String>,
}
fn d_release_cmd() -> Vec<String> {
    ["python", "manage.py", "migrate", "--noinput"]
        .map(String::from)
        .to_vec()
}
fn d_release_timeout() -> Duration {
    Duration::from_secs(600)
}
impl Default for Release {
    fn default() -> Self {
        Release {
            command: d_release_cmd(),
            timeout: d_release_timeout(),
            host: None,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Portal {
    #[serde(default = "d_wsgi")]
    pub wsgi: String,
    #[serde(default = "d_processes")]
    pub processes: u32,
    #[serde(default = "d_portal_grace", with = "humantime_serde")]
    pub stop_grace: Duration,
    /// Where the host nginx answers; after the flip webdock asks it for the
    /// health path and expects the new tag. None skips that check.
    pub public_url: Option<String>,
    /// Overrides `[logging]` for the portal containers.
    pub logging: Option<LogSettings>,
}
fn d_wsgi() -> String {
    "portal.wsgi:application".into()
}
fn d_processes() -> u32 {
    4
}
fn d_portal_grace() -> Duration {
    Duration::from_secs(30)
}
impl Default for Portal {
    fn default() -> Self {
        Portal {
            wsgi: d_wsgi(),
            processes: d_processes(),
            stop_grace: d_portal_grace(),
            public_url: None,
            logging: None,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Health {
    #[serde(default = "d_health_path")]
    pub path: String,
    /// Sent as the `Host` header so Django's ALLOWED_HOSTS accepts the probe.
    #[serde(default = "d_health_host")]
    pub host: String,
    #[serde(default = "d_consecutive")]
    pub consecutive: u32,
    #[serde(default = "d_interval", with = "humantime_serde")]
    pub interval: Duration,
    #[serde(default = "d_timeout", with = "humantime_serde")]
    pub timeout: Duration,
    #[serde(default = "d_deadline", with = "humantime_serde")]
    pub deadline: Duration,
}
fn d_health_path() -> String {
    "/health/".into()
}
fn d_health_host() -> String {
    "localhost".into()
}
fn d_consecutive() -> u32 {
    3
}
fn d_interval() -> Duration {
    Duration::from_millis(100)
}
fn d_timeout() -> Duration {
    Duration::from_secs(2)
}
fn d_deadline() -> Duration {
    Duration::from_secs(60)
}
impl Default for Health {
    fn default() -> Self {
        Health {
            path: d_health_path(),
            host: d_health_host(),
            consecutive: d_consecutive(),
            interval: d_interval(),
            timeout: d_timeout(),
            deadline: d_deadline(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Cron {
    #[serde(default = "d_true")]
    pub enabled: bool,
    /// How long a stop waits for cron jobs in progress.
    #[serde(default = "d_cron_grace", with = "humantime_serde")]
    pub stop_grace: Duration,
    /// How long cron must stay up after its start to count as started.
    #[serde(default = "d_cron_settle", with = "humantime_serde")]
    pub settle: Duration,
    /// The zone cron reads the crontab in (`Europe/Amsterdam`); None: the
    /// host's zone, resolved at load (`Config::cron_timezone`).
    pub timezone: Option<String>,
    /// Overrides `[logging]` for the cron container.
    pub logging: Option<LogSettings>,
}
fn d_cron_settle() -> Duration {
    Duration::from_secs(1)
}
fn d_true() -> bool {
    true
}
fn d_cron_grace() -> Duration {
    Duration::from_secs(60)
}
impl Default for Cron {
    fn default() -> Self {
        Cron {
            enabled: true,
            stop_grace: d_cron_grace(),
            settle: d_cron_settle(),
            timezone: None,
            logging: None,
        }
    }
}

/// Thresholds of `webdock check`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Check {
    /// WARNING when a portal of another tag than live has run beside the
    /// live one for longer (the warm previous release, left too long).
    #[serde(default = "d_idle_portal_warn", with = "humantime_serde")]
    pub idle_portal_warn: Duration,
    /// WARNING when the state or socket directory's disk is fuller (percent).
    #[serde(default = "d_disk_warn")]
    pub disk_warn: f64,
}
fn d_idle_portal_warn() -> Duration {
    Duration::from_secs(7 * 24 * 3600)
}
fn d_disk_warn() -> f64 {
    90.0
}
impl Default for Check {
    fn default() -> Self {
        Check {
            idle_portal_warn: d_idle_portal_warn(),
            disk_warn: d_disk_warn(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDjob {
    command: Vec<String>,
    #[serde(default = "d_djob_grace", with = "humantime_serde")]
    stop_grace: Duration,
    #[serde(default)]
    env: BTreeMap<String, String>,
    #[serde(default = "d_settle", with = "humantime_serde")]
    settle: Duration,
    #[serde(default, with = "humantime_serde")]
    heartbeat: Option<Duration>,
    logging: Option<LogSettings>,
}
fn d_settle() -> Duration {
    Duration::from_secs(2)
}
fn d_djob_grace() -> Duration {
    Duration::from_secs(10)
}

#[derive(Debug, Clone)]
pub struct Djob {
    pub name: String,
    pub command: Vec<String>,
    pub stop_grace: Duration,
    pub env: BTreeMap<String, String>,
    /// How long a djob must stay up after its start to count as started.
    pub settle: Duration,
    /// The daemon must touch `$WEBDOCK_HEARTBEAT_FILE` at least this often,
    /// or the container's watchdog kills it (see `heartbeat`). None: off.
    pub heartbeat: Option<Duration>,
    /// Overrides `[logging]` for this djob's container.
    pub logging: Option<LogSettings>,
}

/// `[proxy]`: the host nginx side.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Proxy {
    /// The config file the serving host nginx loaded, for `doctor`; None:
    /// whatever the running nginx masters were started with.
    pub nginx_conf: Option<PathBuf>,
}

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
    pub portal: Portal,
    pub health: Health,
    pub cron: Cron,
    pub djobs: Vec<Djob>,
    pub check: Check,
    /// The fleet, by name; empty for the fleet of one (the local engine).
    pub hosts: Vec<HostConfig>,
    pub proxy: Proxy,
    /// `[logging]` as written; `logging::for_role` resolves a role's.
    pub logging: Option<LogSettings>,
    /// `[build]`: the front-end asset step (`build::assets`).
    pub build: crate::build::assets::BuildSection,
    pub registry: Option<Registry>,
    /// `-d NAME`: the overlay `webdock.NAME.toml` merged over this file;
    /// its state (history, locks, live link) is apart from the others'.
    pub destination: Option<String>,
    pub require_destination: bool,
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
            });
        }
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

/// `http://HOST[:PORT]/...`: checked at load, not after a flip.
fn check_public_url(u: &str) -> Result<(), String> {
    let url = u.parse::<hyper::Uri>().ok();
    if !u.starts_with("http://") || url.is_none_or(|url| url.host().is_none()) {
        return Err(format!("{u:?} must be an http:// URL"));
    }
    Ok(())
}

/// An error message as one short, printable line. The parser's messages echo
/// the offending key or value as written, so a control character in it would
/// reach the terminal raw (an escape sequence, a fake second line), and a
/// 5 MB value would make a 5 MB error: control characters are escaped and the
/// middle of a long message is cut, keeping what (the start) and why (the end).
pub(crate) fn one_line(message: &str) -> String {
    const KEEP: usize = 150;
    let chars: Vec<char> = message
        .chars()
        .flat_map(|c| match c {
            '\n' => vec![' '],
            c if c.is_control() => c.escape_default().collect(),
            c => vec![c],
        })
        .collect();
    if chars.len() <= 2 * KEEP + 5 {
        return chars.into_iter().collect();
    }
    let head: String = chars[..KEEP].iter().collect();
    let tail: String = chars[chars.len() - KEEP..].iter().collect();
    format!("{head} ... {tail}")
}

/// A path inside the app directory: relative, no `..`.
fn inside(p: &Path, key: &str) -> Result<PathBuf, String> {
    if p.is_absolute()
        || p.components()
            .any(|c| matches!(c, std::path::Component::ParentDir))
    {
        return Err(format!(
            "{key} {p:?} must be a relative path inside the app directory (no '..')"
        ));
    }
    Ok(p.to_path_buf())
}

fn check_command(key: &str, cmd: &[String], may_be_empty: bool) -> Result<(), String> {
    if cmd.is_empty() && !may_be_empty {
        return Err(format!(
            "{key} is empty: give the program and its arguments as a list"
        ));
    }
    if cmd.iter().any(|a| a.contains('\0')) {
        return Err(format!("{key} holds a NUL byte"));
    }
    if cmd.first().is_some_and(|p| p.is_empty()) {
        return Err(format!("{key} starts with an empty program name"));
    }
    Ok(())
}

/// `SOURCE:/container/path[:ro|:rw]` where SOURCE is an absolute host path or
/// a named volume.
fn check_volume(v: &str) -> Result<(), String> {
    if v.contains('\0') {
        return Err("holds a NUL byte".into());
    }
    let parts: Vec<&str> = v.split(':').collect();
    let (src, dst) = match parts.as_slice() {
        [s, d] | [s, d, "ro" | "rw"] => (*s, *d),
        _ => return Err("must be SOURCE:/path or SOURCE:/path:ro".into()),
    };
    if !dst.starts_with('/') || dst.split('/').any(|c| c == "..") {
        return Err(format!(
            "target {dst:?} must be an absolute path without '..'"
        ));
    }
    if src.starts_with('/') {
        if src.split('/').any(|c| c == "..") {
            return Err(format!("source {src:?} must not hold '..'"));
        }
    } else if src.is_empty()
        || !src
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
    {
        return Err(format!(
            "source {src:?} must be an absolute host path or a volume name"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(t: &str) -> Result<Config, ConfigError> {
        Config::parse(Path::new("/srv/app/webdock.toml"), t)
    }

    #[test]
    fn minimal_config_gets_defaults() {
        let c = parse("project = \"demo\"\n").unwrap();
        assert_eq!(c.image, "webdock-demo");
        assert_eq!(c.app_dir, PathBuf::from("/srv/app/."));
        assert_eq!(c.health.consecutive, 3);
        assert_eq!(c.release.command[0], "python");
        assert_eq!(c.layout().socket_dir(), Path::new("/run/webdock/demo"));
    }

    #[test]
    fn unknown_key_names_key_and_line() {
        let e = parse("project = \"demo\"\n\n[health]\nconsecutve = 3\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains(":4:"), "{e}");
        assert!(e.contains("consecutve"), "{e}");
        assert!(!e.contains('\n'), "one line: {e}");
    }

    #[test]
    fn bad_values_are_refused_with_their_name() {
        let cases = [
            ("project = \"Demo\"", "\"Demo\""),
            ("project = 3", "invalid type"),
            ("project = \"d\"\n[health]\ntimeout = \"soon\"", "soon"),
            (
                "project = \"d\"\n[djobs.\"bad name\"]\ncommand=[\"x\"]",
                "bad name",
            ),
            ("project = \"d\"\n[djobs.a]\ncommand=[]", "djobs.a.command"),
            ("project = \"d\"\nrequirements = \"../etc/passwd\"", "'..'"),
            ("project = \"d\"\nvolumes = [\"x;rm:/data\"]", "x;rm"),
            ("project = \"d\"\n[env]\nWEBDOCK_ROLE = \"x\"", "reserved"),
            ("project = \"d\"\nimage = \"UP\"", "\"UP\""),
            (
                "project = \"d\"\n[env]\nA = \"a\\u0000b\"",
                "env A holds a NUL",
            ),
            (
                "project = \"d\"\n[portal]\npublic_url = \"http://a b/\"",
                "public_url",
            ),
            (
                "project = \"d\"\n[djobs.a]\ncommand=[\"x\"]\nenv = { WEBDOCK_ROLE = \"cron\" }",
                "reserved",
            ),
            (
                "project = \"d\"\n[portal]\nprocesses = 0",
                "portal.processes",
            ),
            ("", "missing field `project`"),
        ];
        for (text, needle) in cases {
            let e = parse(text).unwrap_err().to_string();
            assert!(e.contains(needle), "{text:?} gave {e:?}, wanted {needle:?}");
        }
    }

    #[test]
    fn errors_stay_one_short_printable_line() {
        let huge = format!("project = \"{}\"\n", "a".repeat(5 << 20));
        let e = parse(&huge).unwrap_err().to_string();
        assert!(e.len() < 400, "{} bytes", e.len());
        assert!(e.ends_with("characters long (at most 32)"), "{e}");
        let e = parse("project = \"d\"\n\"\\u001b[2J\" = 1\n")
            .unwrap_err()
            .to_string();
        assert!(!e.contains('\u{1b}') && e.contains("\\u{1b}[2J"), "{e}");
    }

    #[test]
    fn djobs_keep_their_settings() {
        let c = parse(
            "project = \"d\"\n[djobs.billing]\ncommand = [\"python\", \"manage.py\", \"djob\", \"billing\"]\nstop_grace = \"3s\"\nenv = { MODE = \"live\" }\n",
        )
        .unwrap();
        let d = c.djob("billing").unwrap();
        assert_eq!(d.stop_grace, Duration::from_secs(3));
        assert_eq!(d.env["MODE"], "live");
        assert!(c.djob("fax").is_none());
    }
}
