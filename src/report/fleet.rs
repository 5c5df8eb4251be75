//! What `status` shows with `[hosts]`: every host's [`StatusReport`] side
//! by side, where each worker runs across the fleet, and what is wrong.
//! Gathered once by [`fleet_status`] and rendered twice (the table and
//! `--json`, shape in docs/json.md). A host that cannot be reached is shown
//! as such, never guessed down or up.

use futures_util::future::join_all;
use serde::Serialize;

use super::StatusReport;
use crate::config::placement::Failover;
use crate::config::Config;
use crate::history::{self, Entry};
use crate::lease_store::LeaseView;
use crate::roles::Role;

#[derive(Debug, Serialize)]
pub struct FleetStatus {
    pub project: String,
    pub hosts: Vec<HostView>,
    pub workers: Vec<WorkerView>,
    /// The 5 newest entries, newest first.
    pub history: Vec<Entry>,
    pub warnings: Vec<String>,
}

/// One host: its report, or why it could not be read.
#[derive(Debug, Serialize)]
pub struct HostView {
    pub host: String,
    pub reachable: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<StatusReport>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Where one worker runs across the fleet.
#[derive(Debug, Serialize)]
pub struct WorkerView {
    /// `cron` or `djob NAME`.
    pub role: String,
    /// Its placement: the first runs it, the rest stand by.
    pub hosts: Vec<String>,
    pub failover: &'static str,
    pub running_on: Vec<String>,
    /// Hosts of its placement that did not answer.
    pub unreachable: Vec<String>,
    /// `None` without `[lease]`, or when the store could not be read.
    pub lease: Option<LeaseView>,
}

impl WorkerView {
    pub fn auto(&self) -> bool {
        self.failover == "auto"
    }
}

/// The workers of the config: cron when enabled, then every djob.
pub fn worker_roles(cfg: &Config) -> Vec<Role> {
    let mut roles: Vec<Role> = Vec::new();
    if cfg.cron.enabled {
        roles.push(Role::Cron);
    }
    roles.extend(cfg.djobs.iter().map(|d| Role::Djob(d.name.clone())));
    roles
}

/// Every host's report (read concurrently), the workers across them, the
/// lease store and the fleet's history, with the warnings they raise.
pub async fn fleet_status(cfg: &Config) -> FleetStatus {
    let hosts = join_all(cfg.hosts.iter().map(|h| async move {
        let r: anyhow::Result<StatusReport> = async {
            let d = crate::fleet::connect_one(h).await?;
            let host = crate::host::Host::remote(cfg, h, d);
            super::status(cfg, &host).await
        }
        .await;
        match r {
            Ok(r) => HostView {
                host: h.name.clone(),
                reachable: true,
                status: Some(r),
                error: None,
            },
            Err(e) => HostView {
                host: h.name.clone(),
                reachable: false,
                status: None,
                error: Some(format!("{e:#}")),
            },
        }
    }))
    .await;
    let (entries, _) = history::read(&cfg.layout().history()).unwrap_or_default();
    let last = entries
        .iter()
        .rev()
        .find(|e| e.action.is_release() && e.outcome.is_ok());
    let mut warnings = Vec::new();
    let mut tags = std::collections::BTreeMap::new();
    for h in &hosts {
        match (&h.status, &h.error) {
            (Some(r), _) => {
                let t = r
                    .live
                    .as_ref()
                    .and_then(|l| l.tag.clone())
                    .unwrap_or_else(|| "-".into());
                tags.entry(t).or_insert_with(Vec::new).push(h.host.clone());
            }
            (None, e) => warnings.push(format!(
                "{} cannot be reached ({}): its state is unknown, not assumed",
                h.host,
                e.as_deref()
                    .unwrap_or_default()
                    .lines()
                    .next()
                    .unwrap_or_default()
            )),
        }
    }
    if tags.len() > 1 {
        let parts: Vec<String> = tags
            .iter()
            .map(|(t, h)| format!("{t} on {}", h.join(", ")))
            .collect();
        warnings.push(format!(
            "hosts serve different releases: {}",
            parts.join("; ")
        ));
    }
    if let Some(e) = last.filter(|e| !e.skipped.is_empty()) {
        warnings.push(format!(
            "{} skipped by the last release ({}): behind until the next promote reaches it",
            e.skipped.join(", "),
            e.tag
        ));
    }
    let leases = match crate::lease_store::views(cfg, &worker_roles(cfg)).await {
        Ok(l) => l,
        Err(e) => {
            warnings.push(format!(
                "the lease store cannot be read ({}): who holds each worker's lease is unknown",
                format!("{e:#}").lines().next().unwrap_or_default()
            ));
            None
        }
    };
    let workers = workers_view(cfg, &hosts, leases.as_deref(), &mut warnings);
    FleetStatus {
        project: cfg.project.clone(),
        hosts,
        workers,
        history: entries.into_iter().rev().take(5).collect(),
        warnings,
    }
}

/// Where each worker runs across the fleet, from every host's report, and
/// what is wrong with it: a host of its placement that cannot be reached
/// (never guessed dead), two copies of a manual one, or none at all.
fn workers_view(
    cfg: &Config,
    hosts: &[HostView],
    leases: Option<&[LeaseView]>,
    warnings: &mut Vec<String>,
) -> Vec<WorkerView> {
    worker_roles(cfg)
        .iter()
        .map(|role| {
            let lease = crate::lease_store::lease_name(cfg, role)
                .and_then(|n| leases?.iter().find(|l| l.name == n));
            let (placed, failover) = cfg.placement(role);
            let mut running = Vec::new();
            let mut unknown = Vec::new();
            for h in hosts {
                match &h.status {
                    Some(r) => {
                        let row = match role {
                            Role::Cron => r.cron.as_ref(),
                            Role::Djob(n) => r.djobs.iter().find(|d| &d.name == n).map(|d| &d.row),
                            _ => None,
                        };
                        if row.is_some_and(|x| x.running) {
                            running.push(h.host.clone());
                        }
                    }
                    None if placed.contains(&h.host) => unknown.push(h.host.clone()),
                    None => {}
                }
            }
            let who = role.describe();
            let auto = failover == Failover::Auto;
            if !unknown.is_empty() {
                warnings.push(format!(
                    "{who} may run on {}, which cannot be reached: it is not started anywhere else\nhint: webdock failover {} --to HOST, once its lease is free (with [lease])",
                    unknown.join(", "),
                    who
                ));
            } else if running.is_empty() {
                warnings.push(format!("{who} runs on no host\nhint: webdock start {who}"));
            } else if running.len() > 1 && !auto {
                warnings.push(format!("{who} has running containers on {}", running.join(", ")));
            }
            WorkerView {
                role: who,
                hosts: placed,
                failover: if auto { "auto" } else { "manual" },
                running_on: running,
                unreachable: unknown,
                lease: lease.cloned(),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// The shape docs/json.md promises for `status --json` with `[hosts]`.
    #[test]
    fn fleet_status_json_shape() {
        let r = FleetStatus {
            project: "shop".into(),
            hosts: vec![HostView {
                host: "web2".into(),
                reachable: false,
                status: None,
                error: Some("tcp://10.0.0.12:2376 unreachable".into()),
            }],
            workers: vec![WorkerView {
                role: "djob billing".into(),
                hosts: vec!["web2".into(), "web3".into()],
                failover: "manual",
                running_on: vec!["web3".into()],
                unreachable: vec!["web2".into()],
                lease: None,
            }],
            history: vec![],
            warnings: vec!["web2 cannot be reached".into()],
        };
        assert_eq!(
            serde_json::to_value(&r).unwrap(),
            json!({
                "project": "shop",
                "hosts": [{"host": "web2", "reachable": false, "error": "tcp://10.0.0.12:2376 unreachable"}],
                "workers": [{"role": "djob billing", "hosts": ["web2", "web3"], "failover": "manual",
                             "running_on": ["web3"], "unreachable": ["web2"], "lease": null}],
                "history": [],
                "warnings": ["web2 cannot be reached"],
            })
        );
    }
}
