//! `webdock.toml` as written, before validation.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::*;
use crate::logging::LogSettings;

/// The file as written. `deny_unknown_fields` everywhere: an unknown key is a
/// typo until proven otherwise.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Raw {
    pub(super) project: SimpleName,
    pub(super) image: Option<String>,
    #[serde(default = "d_app")]
    pub(super) app: PathBuf,
    #[serde(default = "d_requirements")]
    pub(super) requirements: PathBuf,
    pub(super) crontab: Option<PathBuf>,
    pub(super) env_file: Option<PathBuf>,
    #[serde(default = "d_socket_root")]
    pub(super) socket_root: PathBuf,
    #[serde(default = "d_state_root")]
    pub(super) state_root: PathBuf,
    #[serde(default)]
    pub(super) volumes: Vec<String>,
    #[serde(default = "d_keep_images")]
    pub(super) keep_images: usize,
    #[serde(default)]
    pub(super) env: BTreeMap<String, String>,
    #[serde(default)]
    pub(super) release: Release,
    #[serde(default)]
    pub(super) backup: Backup,
    #[serde(default)]
    pub(super) portal: Portal,
    #[serde(default)]
    pub(super) health: Health,
    #[serde(default)]
    pub(super) cron: Cron,
    #[serde(default)]
    pub(super) djobs: BTreeMap<SimpleName, RawDjob>,
    #[serde(default)]
    pub(super) check: Check,
    #[serde(default)]
    pub(super) hosts: BTreeMap<SimpleName, hosts::RawHost>,
    #[serde(default)]
    pub(super) proxy: Proxy,
    pub(super) logging: Option<LogSettings>,
    #[serde(default)]
    pub(super) build: crate::build::assets::BuildSection,
    /// `HOST:PORT` of the registry images are pushed to and pulled from.
    pub(super) registry: Option<String>,
    pub(super) registry_auth_file: Option<PathBuf>,
    #[serde(default = "registry::d_stall_timeout", with = "humantime_serde")]
    pub(super) registry_stall_timeout: Duration,
    /// Refuse to run without `-d NAME` (see `config::destination`).
    #[serde(default)]
    pub(super) require_destination: bool,
    pub(super) lease: Option<lease::RawLease>,
}

pub(super) fn d_app() -> PathBuf {
    ".".into()
}
pub(super) fn d_requirements() -> PathBuf {
    "requirements.txt".into()
}
pub(super) fn d_socket_root() -> PathBuf {
    "/run/webdock".into()
}
pub(super) fn d_state_root() -> PathBuf {
    "/var/lib/webdock".into()
}
pub(super) fn d_keep_images() -> usize {
    5
}
