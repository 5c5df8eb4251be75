//! `webdock promote TAG` and `webdock rollback`.

use std::process::ExitCode;
use std::time::Instant;

use serde_json::json;

use crate::config::Config;
use crate::deploy::{take_deploy_lock, Ctx};
use crate::names::Tag;
use crate::out::Out;

pub async fn promote(cfg: &Config, tag: &Tag, out: Out) -> anyhow::Result<ExitCode> {
    let engine = super::engine().await?;
    // Bad input (env file, image, its labels) is refused before anything
    // is created; promote checks the image again under the lock.
    let mut cx = Ctx::new(cfg, &engine, out)?;
    cx.check_image(tag).await?;
    crate::proxy::ensure_dirs(cfg)?;
    crate::proxy::preflight(cfg)?;
    let _lock = take_deploy_lock(cfg, "promote", Some(tag.as_str()))?;
    let t = Instant::now();
    cx.promote(tag, "promote", false).await?;
    done(out, "promote", tag, t);
    Ok(ExitCode::SUCCESS)
}

pub async fn rollback(cfg: &Config, out: Out) -> anyhow::Result<ExitCode> {
    let engine = super::engine().await?;
    let mut cx = Ctx::new(cfg, &engine, out)?; // the env file, before any change
    crate::proxy::ensure_dirs(cfg)?;
    crate::proxy::preflight(cfg)?;
    let _lock = take_deploy_lock(cfg, "rollback", None)?;
    let t = Instant::now();
    let tag = cx.rollback().await?;
    done(out, "rollback", &tag, t);
    Ok(ExitCode::SUCCESS)
}

fn done(out: Out, action: &str, tag: &Tag, t: Instant) {
    let secs = t.elapsed().as_secs_f64();
    if out.json {
        out.event(
            "done",
            json!({ "action": action, "tag": tag, "seconds": secs }),
        );
    } else {
        eprintln!("{action}: {tag} is live ({secs:.2} s)");
    }
}
