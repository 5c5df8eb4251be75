//! The on-call verbs on cron or a djob across a fleet (`restart`, `stop`,
//! `start`), and `webdock failover ... --to HOST`. All of them run under
//! the fleet lock, go on when a host does not answer, and never guess that
//! host dead: a worker that may run there is refused, unless the lease
//! store says nobody holds its lease.

use std::process::ExitCode;
use std::time::Instant;

use anyhow::{anyhow, bail};
use futures_util::future::join_all;
use serde_json::json;

use super::restart::{role_of, Verb};
use crate::cli::Target;
use crate::config::Config;
use crate::deploy::{parse_label, Deployer, Fleet};
use crate::engine::Engine;
use crate::out::Out;
use crate::roles::{Role, LABEL_TAG};
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
    run(cfg, &role, Some(to), None, out).await
}

pub async fn oncall(cfg: &Config, verb: Verb, role: &Role, out: Out) -> anyhow::Result<ExitCode> {
    run(cfg, role, None, Some(verb), out).await
}

async fn run(
    cfg: &Config,
    role: &Role,
    to: Option<&str>,
    verb: Option<Verb>,
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
    let what = match verb {
        Some(Verb::Restart) => "restart",
        Some(Verb::Stop) => "stop",
        Some(Verb::Start) => "start",
        None => "failover",
    };
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
    let obs = lock_host.observe(&cfg.project).await?;
    let image = obs
        .live_tag()
        .or_else(|| obs.containers.first().and_then(|c| c.label(LABEL_TAG)))
        .map(|t| format!("{}:{t}", cfg.image))
        .ok_or_else(|| {
            Usage(format!(
                "nothing runs on {} yet\nhint: webdock promote TAG",
                lock_host.name
            ))
        })?;
    lock_host.ensure_dirs(&image).await?;
    let _lock =
        crate::fleet::FleetLock::take(lock_host, &format!("{what} {}", role.describe()), None)
            .await?;
    let t = Instant::now();
    let name = role.container_name(&cfg.project);
    // Where it is now, and on which tag.
    let now = join_all(f.hosts.iter().map(|d| {
        let name = &name;
        async move {
            (
                d.host.name.clone(),
                d.host.engine.inspect_container(name).await,
            )
        }
    }))
    .await;
    let mut tag = None;
    let mut running_on = Vec::new();
    for (h, r) in &now {
        if let Ok(Some(c)) = r {
            if c.running {
                running_on.push(h.clone());
            }
            if tag.is_none() {
                tag = c.label(LABEL_TAG).map(parse_label).transpose()?;
            }
        }
    }
    if verb == Some(Verb::Start) && !running_on.is_empty() {
        if out.json {
            out.data_json(&json!({ "role": role.describe(), "action": "already running", "running_on": running_on }));
        } else {
            out.data(&format!(
                "{}: already running on {}",
                role.describe(),
                running_on.join(", ")
            ));
        }
        return Ok(ExitCode::SUCCESS);
    }
    if verb == Some(Verb::Stop) {
        return stop(&f, role, &now, out, t).await;
    }
    let tag = match tag {
        Some(t) => t,
        None => live_tag(&f).await?,
    };
    // The lease matters only when a host that may run it does not answer.
    let lease_free = match to {
        Some(_) if !f.unreachable.is_empty() => {
            crate::lease_store::free_for(cfg, role, out).await?
        }
        _ => false,
    };
    let placed = f.place(role, &tag, to, lease_free).await?;
    let hosts: Vec<&str> = placed.started.iter().map(|(h, _)| h.as_str()).collect();
    let secs = placed.down.as_secs_f64();
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
            "{}: {from} → {} on {tag}, down {secs:.2} s",
            placed.role,
            hosts.join(", ")
        ));
    }
    Ok(ExitCode::SUCCESS)
}

/// The live tag from the first portal host that has one.
async fn live_tag<E: Engine>(f: &Fleet<'_, E>) -> anyhow::Result<crate::names::Tag> {
    for d in &f.hosts {
        if let Ok(obs) = d.host.observe(&f.cfg.project).await {
            if let Some(t) = obs.live_tag() {
                return parse_label(t);
            }
        }
    }
    bail!(Usage(
        "no release is live yet\nhint: webdock promote TAG".into()
    ))
}

/// `stop`: on every host that has it (it stays stopped until `start` or the
/// next promote); refused when a host of its placement does not answer.
async fn stop<E: Engine>(
    f: &Fleet<'_, E>,
    role: &Role,
    now: &[(
        String,
        crate::engine::Result<Option<crate::engine::ContainerInfo>>,
    )],
    out: Out,
    t: Instant,
) -> anyhow::Result<ExitCode> {
    let (placement, _) = f.cfg.placement(role);
    if let Some((h, why)) = f.unreachable.iter().find(|(h, _)| placement.contains(h)) {
        bail!(
            "{} may run on {h}, which does not answer ({why}); nothing was stopped",
            role.describe()
        );
    }
    let name = role.container_name(&f.cfg.project);
    let mut stopped = Vec::new();
    for (d, (h, r)) in f.hosts.iter().zip(now) {
        let c = match r {
            Ok(Some(c)) => c,
            Ok(None) => continue,
            Err(e) => bail!("{h}: {e}"),
        };
        let grace = c.stop_timeout.unwrap_or(f.cfg.portal.stop_grace);
        d.host.engine.set_restart(&name, false).await?;
        d.host.engine.stop_container(&name, grace).await?;
        stopped.push(h.clone());
    }
    if stopped.is_empty() {
        bail!("{} has no container on any host", role.describe());
    }
    if out.json {
        out.data_json(&json!({
            "role": role.describe(),
            "action": "stopped",
            "stopped_on": stopped,
            "down_ms": t.elapsed().as_millis(),
        }));
    } else {
        out.data(&format!(
            "{}: stopped on {} in {:.2} s",
            role.describe(),
            stopped.join(", "),
            t.elapsed().as_secs_f64()
        ));
    }
    Ok(ExitCode::SUCCESS)
}
