//! `webdock promote TAG` and `webdock rollback`.

use std::process::ExitCode;
use std::time::Instant;

use serde_json::json;

use crate::config::Config;
use crate::deploy::{take_deploy_lock, Deployer};
use crate::history::Intent;
use crate::names::Tag;
use crate::out::Out;
use crate::proxy;

pub use super::pin::PinArgs;

pub async fn promote(
    cfg: &Config,
    tag: &Tag,
    skip: &[String],
    pin: PinArgs<'_>,
    out: Out,
) -> anyhow::Result<ExitCode> {
    if !cfg.hosts.is_empty() {
        return fleet(cfg, Some((tag, pin)), skip, out).await;
    }
    no_skip(skip)?;
    let host = super::local_host(cfg).await?;
    // The digest is resolved once and delivered before anything changes.
    let pinned = super::pin::resolve(cfg, &host.engine, tag, pin, out).await?;
    if let Some(p) = &pinned {
        super::pin::deliver(cfg, &[&host], tag, Some(p), out).await?;
    }
    // Bad input (env file, image, its labels) is refused before anything
    // is created; promote checks the image again under the lock.
    let mut d = Deployer::new(cfg, &host, out)?;
    d.digest = pinned.map(|p| p.digest);
    d.check_image(tag).await?;
    proxy::ensure_dirs(&host.layout)?;
    proxy::preflight(&host.layout)?;
    let _lock = take_deploy_lock(cfg, "promote", Some(tag.as_str()))?;
    let t = Instant::now();
    d.promote(tag, Intent::Promote).await?;
    done(out, Intent::Promote, tag, d.digest.as_deref(), t);
    Ok(ExitCode::SUCCESS)
}

pub async fn rollback(cfg: &Config, skip: &[String], out: Out) -> anyhow::Result<ExitCode> {
    if !cfg.hosts.is_empty() {
        return fleet(cfg, None, skip, out).await;
    }
    no_skip(skip)?;
    let host = super::local_host(cfg).await?;
    let d = Deployer::new(cfg, &host, out)?; // the env file, before any change
    proxy::ensure_dirs(&host.layout)?;
    proxy::preflight(&host.layout)?;
    let _lock = take_deploy_lock(cfg, "rollback", None)?;
    let t = Instant::now();
    let tag = d.rollback().await?;
    done(out, Intent::Rollback, &tag, None, t);
    Ok(ExitCode::SUCCESS)
}

fn no_skip(skip: &[String]) -> anyhow::Result<()> {
    if let Some(s) = skip.first() {
        anyhow::bail!(crate::Usage(format!(
            "--skip-host {s:?}: this config has no [hosts]; it is a fleet of one"
        )));
    }
    Ok(())
}

/// promote (with a tag) or rollback across `[hosts]`: connect all, take the
/// fleet lock on the lock host, then the phases of `deploy::Fleet`.
async fn fleet(
    cfg: &Config,
    tag: Option<(&Tag, PinArgs<'_>)>,
    skip: &[String],
    out: Out,
) -> anyhow::Result<ExitCode> {
    let lock_name = crate::fleet::lock_host(cfg).name.clone();
    if skip.contains(&lock_name) {
        anyhow::bail!(crate::Usage(format!(
            "--skip-host {lock_name}: the fleet lock lives on {lock_name} (the first host), which cannot be skipped"
        )));
    }
    let hosts = crate::fleet::connect(cfg, skip).await?;
    let mut digest = None;
    if let Some((t, pin)) = tag {
        let pinned = super::pin::resolve(cfg, &hosts[0].engine, t, pin, out).await?;
        let all: Vec<_> = hosts.iter().collect();
        super::pin::deliver(cfg, &all, t, pinned.as_ref(), out).await?;
        digest = pinned.map(|p| p.digest);
    }
    let tag = tag.map(|(t, _)| t);
    proxy::ensure_dirs(&cfg.layout())?; // the controller keeps the fleet's history
    let deployers = hosts
        .iter()
        .map(|h| {
            let mut d = Deployer::new(cfg, h, out)?;
            d.digest = digest.clone(); // checked on each host under the lock
            Ok(d)
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let lock_host = &hosts[0];
    let (intent, what) = match tag {
        Some(t) => (Intent::Promote, Some(t.clone())),
        None => (Intent::Rollback, None),
    };
    // The helper that holds the lock needs an image on the lock host: the
    // tag's (checked on every host again under the lock), else any the
    // project runs there.
    let image = match &what {
        Some(t) => {
            deployers[0].check_image(t).await?;
            cfg.image_ref(t)
        }
        None => {
            let obs = lock_host.observe(&cfg.project).await?;
            let t = obs.live_tag().ok_or_else(|| {
                crate::Usage(format!(
                    "nothing to roll back: no release is live on {}",
                    lock_host.name
                ))
            })?;
            format!("{}:{t}", cfg.image)
        }
    };
    lock_host.ensure_dirs(&image).await?;
    let _lock = crate::fleet::FleetLock::take(
        lock_host,
        intent.as_str(),
        what.as_ref().map(|t| t.as_str()),
    )
    .await?;
    let f = crate::deploy::Fleet {
        cfg,
        hosts: deployers,
        skipped: skip.to_vec(),
        unreachable: vec![],
        out,
        digest,
    };
    let t = Instant::now();
    let tag = match what {
        Some(t) => {
            f.promote(&t, Intent::Promote).await?;
            t
        }
        None => f.rollback().await?,
    };
    done(out, intent, &tag, f.digest.as_deref(), t);
    Ok(ExitCode::SUCCESS)
}

fn done(out: Out, intent: Intent, tag: &Tag, digest: Option<&str>, t: Instant) {
    let secs = t.elapsed().as_secs_f64();
    if out.json {
        let mut e = json!({ "action": intent.as_str(), "tag": tag, "seconds": secs });
        if let Some(d) = digest {
            e["digest"] = d.into();
        }
        out.event("done", e);
    } else {
        let at = digest.map(|d| format!(" at {d}")).unwrap_or_default();
        out.note(&format!("{intent}: {tag} is live{at} ({secs:.2} s)"));
    }
}
