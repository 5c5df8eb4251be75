//! `webdock build TAG` from start to end, phase by phase, each phase either
//! reused (cached) or run, and timed.
//!
//! Phases: `base` (the Debian image), `wheels` (the wheelhouse), `deps` (user
//! and virtualenv), `assets` (bundlers on the host), `files` (webdock's own
//! files as a layer), `app` (the app layer) and `image` (config and load).
//! Every input is read and checked before the first slow phase.

use std::collections::BTreeMap;
use std::time::Instant;

use super::layer::{self, Node};
use super::{app, assets, deps, BuildError};
use crate::config::Config;
use crate::engine::{Docker, Engine};
use crate::names::Tag;

/// The file time of webdock's own files: a constant, so that layer is the
/// same for every build of the same webdock and config.
const FILES_MTIME: u64 = 946_684_800; // 2000-01-01

/// One phase as it ended.
#[derive(Debug, Clone)]
pub struct Phase {
    pub name: &'static str,
    pub cached: bool,
    pub seconds: f64,
    pub detail: String,
}

#[derive(Debug, Clone)]
pub struct Built {
    pub reference: String,
    pub id: String,
    pub revision: String,
    pub phases: Vec<Phase>,
}

struct Timer<'a> {
    started: Instant,
    phases: Vec<Phase>,
    on_phase: &'a dyn Fn(&Phase),
}

impl Timer<'_> {
    fn done(&mut self, name: &'static str, cached: bool, detail: String) {
        let now = Instant::now();
        let p = Phase {
            name,
            cached,
            seconds: (now - self.started).as_secs_f64(),
            detail,
        };
        (self.on_phase)(&p);
        self.phases.push(p);
        self.started = now;
    }
}

/// The newest modification time among the app's files, as RFC 3339: the
/// creation time of a build from a tree that is not a clean commit.
fn newest_mtime(cfg: &Config) -> String {
    let newest = super::context::app_files(cfg)
        .unwrap_or_default()
        .iter()
        .filter_map(|e| match &e.source {
            super::Source::Disk(p) => std::fs::metadata(p).ok()?.modified().ok(),
            super::Source::Inline(_) => None,
        })
        .max()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    time::OffsetDateTime::from_unix_timestamp(newest)
        .map(crate::clock::rfc3339)
        .unwrap_or_default()
}

fn unix(rfc3339: &str) -> u64 {
    time::OffsetDateTime::parse(rfc3339, &time::format_description::well_known::Rfc3339)
        .map(|t| t.unix_timestamp().max(0) as u64)
        .unwrap_or(0)
}

pub async fn build(
    engine: &Docker,
    cfg: &Config,
    tag: &Tag,
    no_cache: bool,
    say: &dyn Fn(&str),
    on_phase: &dyn Fn(&Phase),
) -> anyhow::Result<Built> {
    // Inputs first: a missing file is reported before anything slow runs.
    let req_path = cfg.app_dir.join(&cfg.requirements);
    let requirements =
        fs_err::read(&req_path).map_err(|_| BuildError::NoRequirements(req_path.clone()))?;
    let files = super::context::webdock_files(cfg)?;
    super::context::app_files(cfg)?;
    if let Some(a) = &cfg.build.assets {
        if let Some(missing) = a
            .inputs
            .iter()
            .map(|p| cfg.app_dir.join(p))
            .find(|p| !p.exists())
        {
            return Err(crate::Usage(BuildError::NoAssetInput(missing).to_string()).into());
        }
    }
    let mut t = Timer {
        started: Instant::now(),
        phases: Vec::new(),
        on_phase,
    };

    let had_base = engine
        .inspect_image(&super::base_image_ref())
        .await?
        .is_some();
    let base = super::ensure_base(engine, say).await?;
    t.done("base", had_base, base.clone());

    let (wheels, had_wheels) = super::wheelhouse(&req_path, say)?;
    t.done("wheels", had_wheels, wheels.display().to_string());

    let (deps_ref, made) =
        deps::ensure(engine, &base, &requirements, &wheels, no_cache, say).await?;
    let parent = engine
        .image_layers(&deps_ref)
        .await?
        .ok_or_else(|| BuildError::Step {
            image: deps_ref.clone(),
            code: -1,
            logs: "the dependency image vanished after it was made".into(),
        })?;
    t.done("deps", !made, deps_ref.clone());

    let asset_out = match &cfg.build.assets {
        Some(a) => {
            let (dir, cached) = assets::build(&cfg.app_dir, a, no_cache, say)?;
            t.done("assets", cached, dir.display().to_string());
            Some((a.output.clone(), dir))
        }
        None => {
            t.done("assets", true, "none configured".into());
            None
        }
    };

    let mut nodes: BTreeMap<String, Node> = files
        .into_iter()
        .map(|(path, mode, data)| (path, Node::File { mode, data }))
        .collect();
    nodes.insert("etc/webdock/djobs".into(), Node::Dir { mode: 0o755 });
    let files_layer = layer::write(nodes, FILES_MTIME)?;
    t.done("files", !no_cache, files_layer.diff_id.clone());

    let inputs = app::inputs(
        cfg,
        asset_out.as_ref().map(|(o, d)| (o.as_path(), d.as_path())),
    )?;
    let prov = super::provenance(&cfg.app_dir, || newest_mtime(cfg));
    let mtime = unix(&prov.created);
    let key = app::key(&parent.id, mtime, &inputs);
    let (app_layer, cached) =
        app::layer(engine, &deps_ref, &key, inputs, mtime, no_cache, say).await?;
    t.done("app", cached, app_layer.diff_id.clone());

    let mut labels: BTreeMap<String, String> = parent.labels.clone().into_iter().collect();
    labels.extend(super::labels(cfg, tag, &prov));
    let mut env: Vec<String> = deps::ENV.iter().map(|s| s.to_string()).collect();
    env.push(format!("WEBDOCK_RELEASE={tag}"));
    let new = [
        layer::NewLayer {
            layer: &files_layer,
            created_by:
                "webdock: /init, s6 services, nginx and uwsgi config, djob services, crontab".into(),
            comment: format!("{} djobs", cfg.djobs.len()),
        },
        layer::NewLayer {
            layer: &app_layer,
            created_by: app::CREATED_BY.into(),
            comment: format!("app {}", prov.revision),
        },
    ];
    let last = format!("webdock: ENV WEBDOCK_RELEASE={tag}; LABEL webdock.tag, webdock.djobs, org.opencontainers.image.*");
    let config = layer::config(&parent, &new, &env, &labels, &prov.created, &last);
    let id = format!("sha256:{}", layer::sha256_hex(&config));
    let reference = cfg.image_ref(tag);
    let current = engine.inspect_image(&reference).await?.map(|i| i.id);
    let same = current.as_deref() == Some(id.as_str());
    if !same || no_cache {
        let mut ids = parent.diff_ids.clone();
        ids.extend([files_layer.diff_id.clone(), app_layer.diff_id.clone()]);
        let archive = layer::archive(&config, &reference, &ids, &[&files_layer, &app_layer])?;
        engine.load_image(archive.into()).await?;
    }
    t.done("image", same && !no_cache, id.clone());
    Ok(Built {
        reference,
        id,
        revision: prov.revision,
        phases: t.phases,
    })
}

/// `webdock build TAG --emit-context DIR`: the classic build context that
/// gives `docker build DIR` the same work (the same base, wheels, webdock
/// files, app and compiled assets, and the release as literal `ENV` and
/// `LABEL` lines), written to an empty or new directory. For the benchmark.
pub async fn emit_context(
    engine: &Docker,
    cfg: &Config,
    tag: &Tag,
    dir: &std::path::Path,
    say: &dyn Fn(&str),
) -> anyhow::Result<usize> {
    use std::os::unix::fs::PermissionsExt;
    if dir.exists() && fs_err::read_dir(dir)?.next().is_some() {
        return Err(crate::Usage(format!(
            "--emit-context {}: the directory is not empty\nhint: name a new or empty directory",
            dir.display()
        ))
        .into());
    }
    let base = super::ensure_base(engine, say).await?;
    let (wheels, _) = super::wheelhouse(&cfg.app_dir.join(&cfg.requirements), say)?;
    let prov = super::provenance(&cfg.app_dir, || newest_mtime(cfg));
    let dockerfile = super::dockerfile_with_labels(tag, &super::labels(cfg, tag, &prov)).replace(
        "ARG BASE_IMAGE=webdock-base:dev",
        &format!("ARG BASE_IMAGE={base}"),
    );
    let mut entries = super::context_entries(cfg, &wheels, dockerfile)?;
    if let Some(a) = &cfg.build.assets {
        let (out, _) = assets::build(&cfg.app_dir, a, false, say)?;
        for (path, node) in app::inputs(cfg, Some((&a.output, &out)))? {
            let prefix = format!("app/{}/", a.output.display());
            if let (true, Node::File { mode, data }) = (path.starts_with(&prefix), node) {
                entries.push(super::Entry {
                    path,
                    mode,
                    source: super::Source::Inline(data),
                });
            }
        }
    }
    for e in &entries {
        let p = dir.join(&e.path);
        fs_err::create_dir_all(p.parent().expect("a parent"))?;
        match &e.source {
            super::Source::Inline(d) => fs_err::write(&p, d)?,
            super::Source::Disk(from) => {
                fs_err::copy(from, &p)?;
            }
        }
        fs_err::set_permissions(&p, std::fs::Permissions::from_mode(e.mode))?;
    }
    Ok(entries.len())
}
