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

pub async fn promote(cfg: &Config, tag: &Tag, out: Out) -> anyhow::Result<ExitCode> {
    let host = super::local_host(cfg).await?;
    // Bad input (env file, image, its labels) is refused before anything
    // is created; promote checks the image again under the lock.
    let d = Deployer::new(cfg, &host, out)?;
    d.check_image(tag).await?;
    proxy::ensure_dirs(&host.layout)?;
    proxy::preflight(&host.layout)?;
    let _lock = take_deploy_lock(cfg, "promote", Some(tag.as_str()))?;
    let t = Instant::now();
    d.promote(tag, Intent::Promote).await?;
    done(out, Intent::Promote, tag, t);
    Ok(ExitCode::SUCCESS)
}

pub async fn rollback(cfg: &Config, out: Out) -> anyhow::Result<ExitCode> {
    let host = super::local_host(cfg).await?;
    let d = Deployer::new(cfg, &host, out)?; // the env file, before any change
    proxy::ensure_dirs(&host.layout)?;
    proxy::preflight(&host.layout)?;
    let _lock = take_deploy_lock(cfg, "rollback", None)?;
    let t = Instant::now();
    let tag = d.rollback().await?;
    done(out, Intent::Rollback, &tag, t);
    Ok(ExitCode::SUCCESS)
}

fn done(out: Out, intent: Intent, tag: &Tag, t: Instant) {
    let secs = t.elapsed().as_secs_f64();
    if out.json {
        out.event(
            "done",
            json!({ "action": intent.as_str(), "tag": tag, "seconds": secs }),
        );
    } else {
        out.note(&format!("{intent}: {tag} is live ({secs:.2} s)"));
    }
}
