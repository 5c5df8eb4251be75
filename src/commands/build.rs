//! `webdock build TAG`: one image per release tag.

use std::process::ExitCode;
use std::time::Instant;

use serde_json::json;

use crate::build;
use crate::config::Config;
use crate::engine::BuildEvent;
use crate::names::Tag;
use crate::out::Out;

pub async fn run(cfg: &Config, tag: &Tag, no_cache: bool, out: Out) -> anyhow::Result<ExitCode> {
    let started = Instant::now();
    let engine = super::engine().await?;
    let say = |m: &str| out.progress(m);
    // Check every input before the slow work.
    let req = cfg.app_dir.join(&cfg.requirements);
    let base = build::ensure_base(&engine, &say).await?;
    let wheels = build::wheelhouse(&req, &say)?;
    let prov = build::provenance(&cfg.app_dir);
    let args = build::build_args(&base);
    let dockerfile = build::dockerfile_with_labels(tag, &build::labels(cfg, tag, &prov));
    let entries = build::context_entries(cfg, &wheels, dockerfile)?;
    let reference = cfg.image_ref(tag);
    out.progress(&format!(
        "building {reference} from {} ({} files in the context)",
        cfg.app_dir.display(),
        entries.len()
    ));
    // Steps that can come from the cache: everything after FROM (an ARG
    // before FROM and FROM itself never print "Using cache").
    let (mut steps, mut cached, mut after_from) = (0u32, 0u32, false);
    let id = engine
        .build_image(
            build::context_stream(entries),
            &reference,
            args,
            no_cache,
            |ev| match ev {
                BuildEvent::Step(s) => {
                    let instr = s
                        .split(" : ")
                        .nth(1)
                        .and_then(|i| i.split_whitespace().next())
                        .unwrap_or("");
                    if instr.eq_ignore_ascii_case("FROM") {
                        after_from = true;
                    } else if after_from {
                        steps += 1;
                    }
                    if out.json {
                        out.event("build", json!({ "step": s }));
                    } else {
                        out.progress(&s);
                    }
                }
                BuildEvent::CacheHit => cached += 1,
                BuildEvent::Output(l) => {
                    tracing::debug!("{l}");
                    out.event("build-output", json!({ "line": l }));
                }
            },
        )
        .await?;
    let secs = started.elapsed().as_secs_f64();
    if out.json {
        out.event(
            "built",
            json!({ "image": reference, "id": id, "tag": tag, "revision": prov.revision, "steps": steps, "cached_steps": cached, "seconds": secs }),
        );
    } else {
        out.progress(&format!(
            "built {reference} in {secs:.1} s ({cached} of {steps} steps from cache)"
        ));
        println!("{id}");
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
