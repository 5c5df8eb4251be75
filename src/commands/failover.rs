//! The on-call verbs on cron or a djob across a fleet (`restart`, `stop`,
//! `start`), and `webdock failover ... --to HOST`: each parses, connects,
//! takes the fleet lock, calls `deploy::Fleet::oncall` and prints. They go
//! on when a host does not answer (see `deploy/fleet/oncall.rs`).

use std::process::ExitCode;

use anyhow::{anyhow, bail};
use serde_json::json;

use super::restart::{role_of, Verb};
use crate::cli::Target;
use crate::config::Config;
use crate::deploy::{helper_image, Deployer, Fleet, FleetChange, FleetOnCall};
use crate::out::Out;
use crate::roles::Role;
use crate::Usage;

pub async fn failover(
    cfg: &Config,
    target: &Target,
    to: Option<&str>,
    out: Out,
) -> anyhow::Result<ExitCode> {
    let Some(to) = to else {
        bail!(Usage(
            "failover needs --to HOST\nhint: webdock failover djob NAME --to HOST".into()
        ));
    };
    let Some(role) = role_of(cfg, target)? else {
        bail!(Usage(
            "the portal runs on every portal host; failover moves cron or a djob".into()
        ));
    };
    if cfg.hosts.is_empty() {
        bail!(Usage(
            "failover moves a worker between hosts of [hosts]; this config is a fleet of one"
                .into()
        ));
    }
    run(cfg, &role, FleetOnCall::MoveTo(to), out).await
}

pub async fn oncall(cfg: &Config, verb: Verb, role: &Role, out: Out) -> anyhow::Result<ExitCode> {
    let verb = match verb {
        Verb::Restart => FleetOnCall::Restart,
        Verb::Stop => FleetOnCall::Stop,
        Verb::Start => FleetOnCall::Start,
    };
    run(cfg, role, verb, out).await
}

/// Connects, takes the fleet lock, hands the work to `Fleet::oncall`, and
/// prints what it did.
async fn run(
    cfg: &Config,
    role: &Role,
    verb: FleetOnCall<'_>,
    out: Out,
) -> anyhow::Result<ExitCode> {
    let (hosts, unreachable) = crate::fleet::connect_some(cfg).await?;
    let lock_name = &crate::fleet::lock_host(cfg).name;
    let lock_host = hosts.iter().find(|h| &h.name == lock_name).ok_or_else(|| {
        anyhow!("the fleet lock lives on {lock_name} (the first host), which does not answer; nothing was changed")
    })?;
    for (h, why) in &unreachable {
        out.progress(&format!("{h} does not answer ({why}); going on without it"));
    }
    let what = verb.as_str();
    let deployers = hosts
        .iter()
        .map(|h| Deployer::new(cfg, h, out))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let f = Fleet {
        cfg,
        hosts: deployers,
        skipped: vec![],
        unreachable,
        out,
        digest: None,
    };
    lock_host
        .ensure_dirs(&helper_image(cfg, lock_host).await?)
        .await?;
    let _lock =
        crate::fleet::FleetLock::take(lock_host, &format!("{what} {}", role.describe()), None)
            .await?;
    match f.oncall(role, verb).await? {
        FleetChange::AlreadyRunning { running_on } => {
            if out.json {
                out.data_json(&json!({ "role": role.describe(), "action": "already running", "running_on": running_on }));
            } else {
                out.data(&format!(
                    "{}: already running on {}",
                    role.describe(),
                    running_on.join(", ")
                ));
            }
        }
        FleetChange::Stopped { stopped_on, took } => {
            if out.json {
                out.data_json(&json!({
                    "role": role.describe(),
                    "action": "stopped",
                    "stopped_on": stopped_on,
                    "down_ms": took.as_millis(),
                }));
            } else {
                out.data(&format!(
                    "{}: stopped on {} in {:.2} s",
                    role.describe(),
                    stopped_on.join(", "),
                    took.as_secs_f64()
                ));
            }
        }
        FleetChange::Placed { tag, placed } => {
            let hosts: Vec<&str> = placed.started.iter().map(|(h, _)| h.as_str()).collect();
            if out.json {
                out.data_json(&json!({
                    "role": placed.role,
                    "action": what,
                    "tag": tag,
                    "stopped_on": placed.removed,
                    "started_on": hosts,
                    "down_ms": placed.down.as_millis(),
                }));
            } else {
                let from = if placed.removed.is_empty() {
                    "(not running)".to_string()
                } else {
                    placed.removed.join(", ")
                };
                out.data(&format!(
                    "{}: {from} → {} on {tag}, down {:.2} s",
                    placed.role,
                    hosts.join(", "),
                    placed.down.as_secs_f64()
                ));
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
