//! `webdock build TAG`: one image per release tag.

use std::path::Path;
use std::process::ExitCode;
use std::time::Instant;

use serde_json::json;

use crate::build;
use crate::config::Config;
use crate::names::Tag;
use crate::out::Out;

pub async fn run(
    cfg: &Config,
    tag: &Tag,
    no_cache: bool,
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
    let built = build::build(&engine, cfg, tag, no_cache, &say, &on_phase).await?;
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
        println!("{}", built.id);
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn base(out: Out) -> anyhow::Result<ExitCode> {
    let engine = super::engine().await?;
    let reference = build::ensure_base(&engine, &|m| out.progress(m)).await?;
    if out.json {
        out.event("base", json!({ "image": reference }));
    } else {
        println!("{reference}");
    }
    Ok(ExitCode::SUCCESS)
}
