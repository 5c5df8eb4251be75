//! `build --push`, `pull` and `ship`: getting the bytes of one tag from the
//! engine that built it to the engines that run it, by digest through a
//! registry or straight from engine to engine.

use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context;
use serde_json::json;

use crate::config::registry::{Credentials, Registry};
use crate::config::{Config, EngineUrl};
use crate::engine::{Access, Docker, Target};
use crate::names::Tag;
use crate::out::Out;
use crate::Usage;

use super::meter::{mb, Meter, ShipMeter};

/// Where a push goes, checked before the build starts (bad config: exit 2).
pub struct PushTarget {
    registry: Registry,
    auth: Option<Credentials>,
}

impl PushTarget {
    fn access(&self) -> Access<'_> {
        Access {
            registry: &self.registry.host,
            auth: self.auth.as_ref(),
            stall: self.registry.stall_timeout,
        }
    }
}

pub fn push_target(cfg: &Config, verb: &str) -> anyhow::Result<PushTarget> {
    let registry = cfg.registry.clone().ok_or_else(|| {
        Usage(format!(
            "{verb} needs a registry, and {} has none\nhint: add registry = \"HOST:PORT\" to it",
            cfg.path.display()
        ))
    })?;
    let auth = registry.credentials(&cfg.path)?;
    Ok(PushTarget { registry, auth })
}

pub async fn push(cfg: &Config, tag: &Tag, t: PushTarget, out: Out) -> anyhow::Result<ExitCode> {
    let engine = super::engine().await?;
    let started = Instant::now();
    let local = cfg.image_ref(tag);
    let repository = t.registry.repository(&cfg.image);
    let mut meter = Meter::new(out, "push", None);
    let digest = engine
        .push_to_registry(&local, &repository, tag.as_str(), t.access(), |p| {
            meter.see(p)
        })
        .await?;
    let secs = started.elapsed().as_secs_f64();
    let pinned = t.registry.pinned(&cfg.image, &digest);
    if out.json {
        out.event(
            "pushed",
            json!({ "image": t.registry.tagged(&cfg.image, tag), "digest": digest, "pinned": pinned, "seconds": secs }),
        );
    } else {
        out.progress(&format!("pushed {pinned} in {secs:.1} s"));
        out.data(&digest);
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn pull(cfg: &Config, tag: &Tag, out: Out) -> anyhow::Result<ExitCode> {
    let t = push_target(cfg, "pull")?;
    let engine = super::engine().await?;
    let started = Instant::now();
    let tagged = t.registry.tagged(&cfg.image, tag);
    let reg = &t.registry.host;
    // Resolved once: every later step uses the digest, never the tag.
    let digest = engine
        .registry_digest(&tagged, t.access())
        .await?
        .ok_or_else(|| anyhow::anyhow!("registry {reg}: no tag {tag} for {}\nhint: push it first: webdock build {tag} --push", cfg.image))?;
    let pinned = t.registry.pinned(&cfg.image, &digest);
    out.progress(&format!("{tagged} is {digest}"));
    let mut meter = Meter::new(out, "pull", None);
    engine
        .pull_from_registry(&pinned, t.access(), |p| meter.see(p))
        .await?;
    let img = engine
        .image_brief(&pinned)
        .await?
        .with_context(|| format!("{pinned} is missing after its pull"))?;
    let label = img.labels.get(crate::roles::LABEL_TAG).map(String::as_str);
    if label != Some(tag.as_str()) {
        anyhow::bail!(
            "{pinned} carries webdock.tag {label:?}, not {tag:?}: it was not built by `webdock build {tag}`"
        );
    }
    engine.tag_as(&pinned, &cfg.image, tag.as_str()).await?;
    let secs = started.elapsed().as_secs_f64();
    if out.json {
        out.event(
            "pulled",
            json!({ "image": cfg.image_ref(tag), "digest": digest, "pinned": pinned, "id": img.id, "seconds": secs }),
        );
    } else {
        out.progress(&format!(
            "pulled {pinned} as {} in {secs:.1} s",
            cfg.image_ref(tag)
        ));
        out.data(&digest);
    }
    Ok(ExitCode::SUCCESS)
}

/// The engine `--to` names: a `[hosts]` name (its engine and TLS), or a
/// `unix://`, `tcp://` (plain) or `ssh://[USER@]HOST` address.
async fn ship_target(cfg: &Config, to: &str) -> anyhow::Result<Docker> {
    if let Some(h) = cfg.hosts.iter().find(|h| h.name == to) {
        return crate::fleet::connect_one(h).await;
    }
    let url = crate::config::parse_engine(to).map_err(|e| {
        Usage(format!(
            "--to {e}, and not a [hosts] name\nhint: give unix:///path/to/docker.sock, tcp://HOST:PORT, ssh://[USER@]HOST or a host of [hosts]"
        ))
    })?;
    Ok(match url {
        EngineUrl::Ssh(a) => {
            Docker::connect_to(Target::Ssh(&a), crate::fleet::CONNECT_WITHIN).await?
        }
        _ => Docker::connect_host(to).await?,
    })
}

pub async fn ship(cfg: &Config, tag: &Tag, to: &str, out: Out) -> anyhow::Result<ExitCode> {
    let reference = cfg.image_ref(tag);
    let source = super::engine().await?;
    let target = ship_target(cfg, to).await?;
    let src = source.image_brief(&reference).await?.ok_or_else(|| {
        anyhow::anyhow!(
            "image {reference} not found on this engine\nhint: build it first: webdock build {tag}"
        )
    })?;
    let label = src.labels.get(crate::roles::LABEL_TAG).map(String::as_str);
    if label != Some(tag.as_str()) {
        anyhow::bail!("{reference} carries webdock.tag {label:?}, not {tag:?}: it was not built by `webdock build {tag}`");
    }
    let started = Instant::now();
    out.progress(&format!("shipping {reference} to {to}"));
    let mut meter = ShipMeter::new(out, None);
    let report = source
        .ship_to(&target, &reference, |l, total| meter.layer(l, total))
        .await?;
    drop(meter);
    let secs = started.elapsed().as_secs_f64();
    let skipped = report.layers.iter().filter(|l| !l.sent).count();
    if out.json {
        out.event(
            "shipped",
            json!({ "image": reference, "to": to, "id": report.id, "bytes_sent": report.bytes_sent, "bytes_exported": report.bytes_exported, "layers": report.layers.len(), "layers_skipped": skipped, "seconds": secs }),
        );
    } else {
        out.progress(&format!(
            "shipped {reference} to {to}: {} sent of {} ({skipped} of {} layers skipped) in {secs:.1} s",
            mb(report.bytes_sent),
            mb(report.bytes_exported),
            report.layers.len()
        ));
        out.data(&report.id);
    }
    Ok(ExitCode::SUCCESS)
}
