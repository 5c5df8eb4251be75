//! `hosts = [...]` and `failover` of cron and each djob: where a worker
//! runs across the fleet (the first host), its standbys (the rest), and
//! whether a standby takes over by itself (`failover = "auto"`, through
//! the lease) or only when a person says so (`webdock failover`).

use serde::Deserialize;

use super::{Config, HostConfig};
use crate::roles::Role;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Failover {
    /// One container, on one host; `webdock failover ... --to HOST` moves it.
    #[default]
    Manual,
    /// A container on every listed host; the lease lets one run the daemon.
    Auto,
}

/// Checks one worker's `hosts` against `[hosts]` (`key` is the TOML key,
/// for the message).
pub(super) fn check(key: &str, wanted: &[String], hosts: &[HostConfig]) -> Result<(), String> {
    if wanted.is_empty() {
        return Ok(());
    }
    if hosts.is_empty() {
        return Err(format!(
            "{key} names hosts, but this config has no [hosts] (a fleet of one runs every worker on its one host)"
        ));
    }
    for (i, w) in wanted.iter().enumerate() {
        if !hosts.iter().any(|h| &h.name == w) {
            return Err(format!(
                "{key}: {w:?} is not one of [hosts] ({})",
                hosts
                    .iter()
                    .map(|h| h.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        if wanted[..i].contains(w) {
            return Err(format!("{key}: {w:?} is listed twice"));
        }
    }
    Ok(())
}

/// Each worker's `failover` setting, named by its config key, for [`needs_lease`].
pub(super) fn raw_failovers(cron: &super::Cron, djobs: &[super::Djob]) -> Vec<(String, Failover)> {
    let mut v = vec![("cron.failover".to_string(), cron.failover)];
    v.extend(
        djobs
            .iter()
            .map(|d| (format!("djobs.{}.failover", d.name), d.failover)),
    );
    v
}

/// `failover = "auto"` runs a container on every listed host: only the
/// lease keeps their daemons to one.
pub(super) fn needs_lease(failovers: &[(String, Failover)], has_lease: bool) -> Result<(), String> {
    match failovers.iter().find(|(_, f)| *f == Failover::Auto) {
        Some((key, _)) if !has_lease => Err(format!(
            "{key} = \"auto\" needs [lease]: standbys wait on the lease, and without it they would all run"
        )),
        _ => Ok(()),
    }
}

impl Config {
    /// The hosts of a worker in order (the first runs it, the rest stand
    /// by): its `hosts`, else every host with the `worker` role, else the
    /// release host.
    pub fn placement(&self, role: &Role) -> (Vec<String>, Failover) {
        let (listed, failover) = match role {
            Role::Cron => (self.cron.hosts.clone(), self.cron.failover),
            Role::Djob(n) => match self.djob(n) {
                Some(d) => (d.hosts.clone(), d.failover),
                None => (vec![], Failover::Manual),
            },
            _ => (vec![], Failover::Manual),
        };
        if !listed.is_empty() {
            return (listed, failover);
        }
        let workers: Vec<String> = self
            .hosts
            .iter()
            .filter(|h| h.runs("worker"))
            .map(|h| h.name.clone())
            .collect();
        if !workers.is_empty() {
            return (workers, failover);
        }
        let release = self.release_host().map(|h| h.name.clone());
        (release.into_iter().collect(), failover)
    }

    /// The host of `[hosts]` that runs the release phase (the release
    /// command, backups, `logs release`, `release kill`): `release.host`,
    /// else the first host by name. None for the fleet of one.
    pub fn release_host(&self) -> Option<&crate::config::HostConfig> {
        let named = self.release.host.as_deref();
        self.hosts
            .iter()
            .find(|h| Some(h.name.as_str()) == named)
            .or(self.hosts.first())
    }
}
