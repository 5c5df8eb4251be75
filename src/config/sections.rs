//! The sections of `webdock.toml`, with their defaults.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::*;
use crate::logging::LogSettings;
use placement::Failover;

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
pub(super) fn d_release_cmd() -> Vec<String> {
    ["python", "manage.py", "migrate", "--noinput"]
        .map(String::from)
        .to_vec()
}
pub(super) fn d_release_timeout() -> Duration {
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
pub(super) fn d_wsgi() -> String {
    "portal.wsgi:application".into()
}
pub(super) fn d_processes() -> u32 {
    4
}
pub(super) fn d_portal_grace() -> Duration {
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
pub(super) fn d_health_path() -> String {
    "/health/".into()
}
pub(super) fn d_health_host() -> String {
    "localhost".into()
}
pub(super) fn d_consecutive() -> u32 {
    3
}
pub(super) fn d_interval() -> Duration {
    Duration::from_millis(100)
}
pub(super) fn d_timeout() -> Duration {
    Duration::from_secs(2)
}
pub(super) fn d_deadline() -> Duration {
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
    /// Where cron runs across the fleet: the first host, then standbys.
    #[serde(default)]
    pub hosts: Vec<String>,
    #[serde(default)]
    pub failover: Failover,
}
pub(super) fn d_cron_settle() -> Duration {
    Duration::from_secs(1)
}
pub(super) fn d_true() -> bool {
    true
}
pub(super) fn d_cron_grace() -> Duration {
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
            hosts: vec![],
            failover: Failover::Manual,
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
pub(super) fn d_idle_portal_warn() -> Duration {
    Duration::from_secs(7 * 24 * 3600)
}
pub(super) fn d_disk_warn() -> f64 {
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
pub(super) struct RawDjob {
    pub(super) command: Vec<String>,
    #[serde(default = "d_djob_grace", with = "humantime_serde")]
    pub(super) stop_grace: Duration,
    #[serde(default)]
    pub(super) env: BTreeMap<String, String>,
    #[serde(default = "d_settle", with = "humantime_serde")]
    pub(super) settle: Duration,
    #[serde(default, with = "humantime_serde")]
    pub(super) heartbeat: Option<Duration>,
    pub(super) logging: Option<LogSettings>,
    #[serde(default)]
    pub(super) hosts: Vec<String>,
    #[serde(default)]
    pub(super) failover: Failover,
}
pub(super) fn d_settle() -> Duration {
    Duration::from_secs(2)
}
pub(super) fn d_djob_grace() -> Duration {
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
    /// Where it runs across the fleet: the first host, then standbys.
    pub hosts: Vec<String>,
    pub failover: Failover,
}

/// `[proxy]`: the host nginx side.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Proxy {
    /// The config file the serving host nginx loaded, for `doctor`; None:
    /// whatever the running nginx masters were started with.
    pub nginx_conf: Option<PathBuf>,
}
