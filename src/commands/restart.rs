//! `webdock restart`, `stop` and `start` of one role: parse, lock, call
//! `deploy`'s on-call functions, print.

use std::process::ExitCode;

use anyhow::bail;
use serde_json::json;

use crate::cli::Target;
use crate::config::Config;
use crate::deploy::{take_deploy_lock, Deployer, WorkerChange};
use crate::out::Out;
use crate::roles::Role;
use crate::Usage;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verb {
    Restart,
    Stop,
    Start,
}

pub(super) fn role_of(cfg: &Config, t: &Target) -> anyhow::Result<Option<Role>> {
    Ok(Some(match t {
        Target::Djob { name } => {
            if cfg.djob(name).is_none() {
                let known: Vec<&str> = cfg.djobs.iter().map(|d| d.name.as_str()).collect();
                bail!(Usage(format!(
                    "unknown djob {name:?}\nhint: djobs in {}: {}",
                    cfg.path.display(),
                    if known.is_empty() {
                        "none".into()
                    } else {
                        known.join(", ")
                    }
                )));
            }
            Role::Djob(name.clone())
        }
        Target::Cron => {
            if !cfg.cron.enabled {
                bail!(Usage(format!("cron is disabled in {}", cfg.path.display())));
            }
            Role::Cron
        }
        Target::Portal => return Ok(None),
    }))
}

pub async fn run(cfg: &Config, verb: Verb, target: &Target, out: Out) -> anyhow::Result<ExitCode> {
    let role = role_of(cfg, target)?;
    if role.is_none() && verb != Verb::Restart {
        bail!(Usage("the portal is started and stopped by promote and rollback\nhint: webdock restart portal".into()));
    }
    match (cfg.hosts.is_empty(), &role) {
        (false, Some(role)) => return super::failover::oncall(cfg, verb, role, out).await,
        // It would act on the local engine alone, none of the fleet's.
        (false, None) => bail!(Usage(format!(
            "restart portal does not reach [hosts] (in {}): it would restart the local engine's portal only\nhint: not supported across hosts yet; `webdock promote` of a new tag starts fresh portals on every host",
            cfg.path.display()
        ))),
        (true, _) => {}
    }
    let host = super::local_host(cfg).await?;
    let d = Deployer::new(cfg, &host, out)?; // the env file, before any change
    crate::proxy::ensure_dirs(&host.layout)?;
    let Some(role) = role else {
        let _lock = take_deploy_lock(cfg, "restart portal", None)?;
        let tag = d.restart_portal().await?;
        out.note(&format!(
            "portal restarted on {tag} in the idle color, then flipped"
        ));
        return Ok(ExitCode::SUCCESS);
    };
    let change = match verb {
        Verb::Stop => d.stop_worker(&role).await?,
        Verb::Start => d.start_worker(&role, false).await?,
        Verb::Restart => d.start_worker(&role, true).await?,
    };
    report(out, &role, &change);
    Ok(ExitCode::SUCCESS)
}

fn short(id: &str) -> &str {
    &id[..id.len().min(12)]
}

fn report(out: Out, role: &Role, change: &WorkerChange) {
    let who = role.describe();
    let (action, old, new, down) = match change {
        WorkerChange::Stopped { old, took } => ("stopped", Some(old.as_str()), None, *took),
        WorkerChange::AlreadyRunning { id } => (
            "already running",
            Some(id.as_str()),
            None,
            Default::default(),
        ),
        WorkerChange::Replaced(r) => ("replaced", r.old.as_deref(), Some(r.new.as_str()), r.down),
    };
    if out.json {
        out.data_json(&json!({ "role": who, "action": action, "old": old, "new": new, "down_ms": down.as_millis() }));
        return;
    }
    let old = old.map(short).unwrap_or("(none)");
    let secs = down.as_secs_f64();
    out.data(&match change {
        WorkerChange::Replaced(r) => format!("{who}: {old} → {}, down {secs:.2} s", short(&r.new)),
        WorkerChange::Stopped { .. } => format!("{who}: {old} stopped in {secs:.2} s"),
        WorkerChange::AlreadyRunning { .. } => format!("{who}: {old} {action}"),
    });
}
