//! `promote`'s delivery step: resolve TAG to a digest once, refuse a moved
//! tag, and put that digest on every host that lacks it (a pull by digest
//! from the registry, or without one a `ship` from this machine's engine),
//! in parallel, before the deploy lock and before any container changes.
//! The decisions are `crate::pin`'s; this file talks to the engines.

use futures_util::future::join_all;
use serde_json::json;

use crate::config::destination;
use crate::config::Config;
use crate::engine::{Access, Docker};
use crate::history;
use crate::host::Host;
use crate::names::Tag;
use crate::out::Out;
use crate::pin::{self, Recorded};
use crate::roles::LABEL_TAG;
use crate::Usage;

use super::meter::{mb, Meter, ShipMeter};

/// `promote --from` and `--allow-moved-tag`.
#[derive(Debug, Clone, Copy, Default)]
pub struct PinArgs<'a> {
    pub from: Option<&'a str>,
    pub allow_moved_tag: bool,
}

/// The digest a release runs and the name it is pulled by.
pub struct Pin {
    pub digest: String,
    /// `<registry>/<image>@sha256:…`
    pub reference: String,
}

/// What this destination and every other one last released for `tag`.
fn recorded(cfg: &Config, tag: &Tag) -> Vec<Recorded> {
    let mut dests: Vec<Option<String>> = vec![None];
    dests.extend(destination::siblings(&cfg.path).into_iter().map(Some));
    let mut out = Vec::new();
    for d in dests {
        let c = match destination::load(&cfg.path, d.as_deref()) {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!("not comparing with destination {d:?}: {e}");
                continue;
            }
        };
        let (entries, _) = history::read(&c.layout().history()).unwrap_or_default();
        if let Some((when, digest)) = pin::last_release(&entries, tag.as_str()) {
            out.push(Recorded {
                destination: d.clone().unwrap_or_else(|| "-".into()),
                digest,
                when,
            });
        }
    }
    out
}

/// Resolves the digest this promote runs: None without a registry, or
/// when the registry has no such tag (the hosts' own images then).
pub async fn resolve(
    cfg: &Config,
    engine: &Docker,
    tag: &Tag,
    args: PinArgs<'_>,
    out: Out,
) -> anyhow::Result<Option<Pin>> {
    let Some(reg) = &cfg.registry else {
        if let Some(f) = args.from {
            anyhow::bail!(Usage(format!(
                "--from {f} releases a digest, and {} has no registry to pull it from\nhint: add registry = \"HOST:PORT\"",
                cfg.path.display()
            )));
        }
        return Ok(None);
    };
    let auth = reg.credentials(&cfg.path)?;
    let access = Access {
        registry: &reg.host,
        auth: auth.as_ref(),
        stall: reg.stall_timeout,
    };
    let staged = match args.from {
        None => None,
        Some(f) => {
            let c = destination::load(&cfg.path, Some(f))?;
            let (entries, _) = history::read(&c.layout().history())?;
            Some(pin::last_healthy(&entries, tag.as_str()).ok_or_else(|| {
                Usage(format!(
                    "destination {f} never released {tag} healthy (history {}): nothing to promote from it\nhint: webdock -d {f} promote {tag}",
                    c.layout().history().display()
                ))
            })?)
        }
    };
    let tagged = reg.tagged(&cfg.image, tag);
    // Asked once: from here on only the digest counts.
    let now = engine.registry_digest(&tagged, access).await?;
    let digest = match (staged, now) {
        (Some(s), now) => {
            if now.as_ref().is_some_and(|n| *n != s) {
                out.progress(&format!(
                    "note: {tagged} now names {}; releasing {s}, which {} ran",
                    now.unwrap_or_default(),
                    args.from.unwrap_or_default()
                ));
            }
            s
        }
        (None, None) => {
            out.progress(&format!(
                "{tagged} is not in the registry; using the hosts' {}",
                cfg.image_ref(tag)
            ));
            return Ok(None);
        }
        (None, Some(now)) => {
            let rec = recorded(cfg, tag);
            if let Some(r) = pin::moved(&now, &rec) {
                let msg = pin::moved_message(tag.as_str(), &reg.host, &now, r);
                if !args.allow_moved_tag {
                    anyhow::bail!(msg);
                }
                out.progress(&format!(
                    "warning (--allow-moved-tag): {}",
                    msg.lines().next().unwrap_or_default()
                ));
            }
            now
        }
    };
    out.progress(&format!("{tagged} is {digest}"));
    Ok(Some(Pin {
        reference: reg.pinned(&cfg.image, &digest),
        digest,
    }))
}

/// Puts the pinned digest on every host as `<image>:TAG` (pulling where it
/// is missing), or without a pin ships `<image>:TAG` from this machine's
/// engine to the hosts that lack it. Every host's failure is named.
pub async fn deliver(
    cfg: &Config,
    hosts: &[&Host<Docker>],
    tag: &Tag,
    pin: Option<&Pin>,
    out: Out,
) -> anyhow::Result<()> {
    let results = join_all(hosts.iter().map(|h| async move {
        let r = match pin {
            Some(p) => pull(cfg, h, tag, p, out).await,
            None => ship(cfg, h, tag, out).await,
        };
        (h.name.clone(), r)
    }))
    .await;
    let errors: Vec<String> = results
        .into_iter()
        .filter_map(|(h, r)| r.err().map(|e| format!("{h}: {e:#}")))
        .collect();
    match errors.len() {
        0 => Ok(()),
        1 if hosts.len() == 1 => Err(anyhow::anyhow!("{}; nothing was changed", errors[0])),
        n => anyhow::bail!(
            "{n} host(s) could not get {tag}; nothing was changed\n{}",
            errors.join("\n")
        ),
    }
}

async fn pull(cfg: &Config, h: &Host<Docker>, tag: &Tag, p: &Pin, out: Out) -> anyhow::Result<()> {
    let local = cfg.image_ref(tag);
    let has = |i: Option<crate::engine::ImageLayers>| {
        i.is_some_and(|i| i.repo_digests.contains(&p.reference))
    };
    if has(h.engine.image_brief(&local).await?) {
        return Ok(());
    }
    let reg = cfg.registry.as_ref().expect("a pin comes from a registry");
    if h.engine.image_brief(&p.reference).await?.is_none() {
        let auth = reg.credentials(&cfg.path)?;
        let access = Access {
            registry: &reg.host,
            auth: auth.as_ref(),
            stall: reg.stall_timeout,
        };
        out.progress(&format!("{}: pulling {}", h.name, p.reference));
        let mut meter = Meter::new(out, "pull", Some(&h.name));
        h.engine
            .pull_from_registry(&p.reference, access, |g| meter.see(g))
            .await?;
    }
    let img = h
        .engine
        .image_brief(&p.reference)
        .await?
        .ok_or_else(|| anyhow::anyhow!("{} is missing after its pull", p.reference))?;
    let label = img.labels.get(LABEL_TAG).map(String::as_str);
    if label != Some(tag.as_str()) {
        anyhow::bail!(
            "{} carries webdock.tag {label:?}, not {tag:?}: it was not built by `webdock build {tag}`",
            p.reference
        );
    }
    h.engine
        .tag_as(&p.reference, &cfg.image, tag.as_str())
        .await?;
    Ok(())
}

async fn ship(cfg: &Config, h: &Host<Docker>, tag: &Tag, out: Out) -> anyhow::Result<()> {
    let local = cfg.image_ref(tag);
    if h.engine.image_brief(&local).await?.is_some() {
        return Ok(());
    }
    let source = super::engine().await.ok();
    let have = match &source {
        Some(s) => s.image_brief(&local).await.ok().flatten().is_some(),
        None => false,
    };
    let Some(source) = source.filter(|_| have) else {
        anyhow::bail!(
            "image {local} not found there, and neither this machine's engine nor a registry has it\nhint: webdock build {tag} --push (with registry = \"HOST:PORT\"), or build it here"
        );
    };
    out.progress(&format!("{}: shipping {local} from this machine", h.name));
    let started = std::time::Instant::now();
    let mut meter = ShipMeter::new(out, Some(&h.name));
    let r = source
        .ship_to(&h.engine, &local, |l, total| meter.layer(l, total))
        .await?;
    drop(meter);
    let skipped = r.layers.iter().filter(|l| !l.sent).count();
    if out.json {
        out.event(
            "shipped",
            json!({ "host": h.name, "image": local, "id": r.id, "bytes_sent": r.bytes_sent, "bytes_exported": r.bytes_exported, "layers": r.layers.len(), "layers_skipped": skipped, "seconds": started.elapsed().as_secs_f64() }),
        );
    } else {
        out.progress(&format!(
            "{}: shipped {local}: {} sent of {} ({skipped} of {} layers skipped)",
            h.name,
            mb(r.bytes_sent),
            mb(r.bytes_exported),
            r.layers.len()
        ));
    }
    Ok(())
}
