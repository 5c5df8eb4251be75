//! `webdock build TAG`: one image per release tag.

use std::path::Path;
use std::process::ExitCode;
use std::time::Instant;

use serde_json::json;

use crate::build;
use crate::config::Config;
use crate::engine::Engine;
use crate::names::Tag;
use crate::out::Out;

pub async fn run(
    cfg: &Config,
    tag: &Tag,
    no_cache: bool,
    force: bool,
    emit_context: Option<&Path>,
    out: Out,
) -> anyhow::Result<ExitCode> {
    let started = Instant::now();
    let engine = super::engine().await?;
    let say = |m: &str| out.progress(m);
    if let Some(dir) = emit_context {
        let n = build::pipeline::emit_context(&engine, cfg, tag, dir, &say).await?;
        out.progress(&format!(
            "wrote the build context ({n} files) to {}",
            dir.display()
        ));
        return Ok(ExitCode::SUCCESS);
    }
    out.progress(&format!(
        "building {} from {}",
        cfg.image_ref(tag),
        cfg.app_dir.display()
    ));
    let on_phase = |p: &build::Phase| {
        let how = if p.cached { "cached" } else { "ran" };
        if out.json {
            out.event(
                "build",
                json!({ "step": format!("{}: {how}", p.name), "phase": p.name, "cached": p.cached, "seconds": p.seconds, "detail": p.detail }),
            );
        } else {
            out.progress(&format!(
                "{:<7} {how:<6} {:>6.2} s  {}",
                p.name, p.seconds, p.detail
            ));
        }
    };
    // A tag that is live (or the release a rollback goes to) must keep
    // meaning the code it runs: a rebuild that changes the image is undone
    // (the tag goes back to the running image) unless --force.
    let in_use = if force {
        None
    } else {
        in_use(cfg, &engine, tag).await?
    };
    let before = engine
        .inspect_image(&cfg.image_ref(tag))
        .await?
        .map(|i| i.id);
    let built = build::build(&engine, cfg, tag, no_cache, &say, &on_phase).await?;
    if let (Some(why), Some(old)) = (in_use, before) {
        if old != built.id {
            engine.tag(&old, &cfg.image, tag.as_str()).await?;
            let _ = engine.remove_image(&built.id).await;
            anyhow::bail!(crate::Usage(format!(
                "tag {tag} is {why}, and this build of it is other code ({} ≠ {}): the tag keeps the image that runs\nhint: build a new tag; or webdock build {tag} --force, then webdock promote {tag} to release it",
                short(&built.id),
                short(&old)
            )));
        }
    }
    let secs = started.elapsed().as_secs_f64();
    let steps = built.phases.len();
    let cached = built.phases.iter().filter(|p| p.cached).count();
    if out.json {
        let phases: serde_json::Map<String, serde_json::Value> = built
            .phases
            .iter()
            .map(|p| (p.name.to_string(), json!(p.seconds)))
            .collect();
        out.event(
            "built",
            json!({ "image": built.reference, "id": built.id, "tag": tag, "revision": built.revision, "steps": steps, "cached_steps": cached, "seconds": secs, "phases": phases }),
        );
    } else {
        out.progress(&format!(
            "built {} in {secs:.1} s ({cached} of {steps} phases from cache)",
            built.reference
        ));
        out.data(&built.id);
    }
    Ok(ExitCode::SUCCESS)
}

fn short(id: &str) -> &str {
    let id = id.strip_prefix("sha256:").unwrap_or(id);
    &id[..id.len().min(12)]
}

/// Why `tag` must not change under the project on this host: it is live,
/// or the release before the live one (what `rollback` goes to).
async fn in_use(
    cfg: &Config,
    engine: &crate::engine::Docker,
    tag: &Tag,
) -> anyhow::Result<Option<&'static str>> {
    let layout = cfg.layout();
    let live = crate::proxy::live(&layout).unwrap_or(None);
    let obs = crate::plan::Observed::new(engine.list_containers(&cfg.project).await?, live);
    let Some(live_tag) = obs.live_tag() else {
        return Ok(None);
    };
    if live_tag == tag.as_str() {
        return Ok(Some("live"));
    }
    let (history, _) = crate::history::read(&layout.history()).unwrap_or_default();
    Ok(
        (crate::plan::previous_release(&history, live_tag, None) == Some(tag.as_str()))
            .then_some("the previous release (where rollback goes)"),
    )
}

pub async fn base(out: Out) -> anyhow::Result<ExitCode> {
    let engine = super::engine().await?;
    let reference = build::ensure_base(&engine, &|m| out.progress(m)).await?;
    if out.json {
        out.event("base", json!({ "image": reference }));
    } else {
        out.data(&reference);
    }
    Ok(ExitCode::SUCCESS)
}
