//! On-call verbs: `restart`, `stop` and `start` of one role.
//!
//! Djob and cron changes are stop-first and serialized per role by a lock
//! that is refused at once (naming its holder) when another restart or a
//! promote holds it. The portal restart is a promote of the live tag into
//! the idle color, so it costs no failed request.

use std::process::ExitCode;

use anyhow::bail;
use serde_json::json;

use crate::cli::Target;
use crate::config::Config;
use crate::deploy::{role_lock_path, take_deploy_lock, Ctx};
use crate::engine::Engine;
use crate::lock::{Holder, Lock};
use crate::names::Tag;
use crate::out::Out;
use crate::roles::{Role, LABEL_TAG};
use crate::Usage;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verb {
    Restart,
    Stop,
    Start,
}

impl Verb {
    fn as_str(self) -> &'static str {
        match self {
            Verb::Restart => "restart",
            Verb::Stop => "stop",
            Verb::Start => "start",
        }
    }
}

fn role_of(cfg: &Config, t: &Target) -> anyhow::Result<Role> {
    Ok(match t {
        Target::Djob { name } => {
            if cfg.djob(name).is_none() {
                let known: Vec<&str> = cfg.djobs.iter().map(|d| d.name.as_str()).collect();
                bail!(Usage(format!(
                    "unknown djob {name:?}\nhint: djobs in {}: {}",
                    cfg.path.display(),
                    if known.is_empty() {
                        "none".into()
                    } else {
                        known.join(", ")
                    }
                )));
            }
            Role::Djob(name.clone())
        }
        Target::Cron => {
            if !cfg.cron.enabled {
                bail!(Usage(format!("cron is disabled in {}", cfg.path.display())));
            }
            Role::Cron
        }
        Target::Portal => Role::Portal(crate::roles::Color::Blue),
    })
}

pub async fn run(cfg: &Config, verb: Verb, target: &Target, out: Out) -> anyhow::Result<ExitCode> {
    let role = role_of(cfg, target)?;
    let engine = super::engine().await?;
    let cx = Ctx::new(cfg, &engine, out)?; // the env file, before any change
    crate::proxy::ensure_dirs(cfg)?;
    if let Role::Portal(_) = role {
        if verb != Verb::Restart {
            bail!(Usage("the portal is started and stopped by promote and rollback\nhint: webdock restart portal".into()));
        }
        return restart_portal(cfg, &engine, out).await;
    }
    let _lock = Lock::try_acquire(
        &role_lock_path(cfg, &role),
        &role.describe(),
        &Holder::me(verb.as_str(), None),
    )?;
    let name = role.container_name(&cfg.project);
    let current = engine.inspect_container(&name).await?;
    match verb {
        Verb::Stop => {
            let Some(c) = current else {
                bail!("{} has no container {name} to stop", role.describe());
            };
            let grace = cx
                .specs
                .spec(&role, &Tag::parse("x").expect("valid"))
                .stop_timeout;
            let t = std::time::Instant::now();
            // Stopped on purpose: it must stay stopped across an engine restart.
            engine.set_restart(&name, false).await?;
            engine.stop_container(&name, grace).await?;
            report(out, &role, "stopped", Some(&c.id), None, t.elapsed());
        }
        Verb::Restart | Verb::Start => {
            // Same tag again on restart; the live tag when there is no container.
            let tag = match current.as_ref().and_then(|c| c.label(LABEL_TAG)) {
                Some(t) => t.to_string(),
                None => live_tag(cfg, &engine).await?,
            };
            let tag =
                Tag::parse(&tag).map_err(|e| anyhow::anyhow!("bad tag label {tag:?}: {e}"))?;
            if let (Verb::Start, Some(c)) = (verb, current.as_ref().filter(|c| c.running)) {
                report(
                    out,
                    &role,
                    "already running",
                    Some(&c.id),
                    None,
                    std::time::Duration::ZERO,
                );
                return Ok(ExitCode::SUCCESS);
            }
            let r = cx.replace(&role, &tag).await?;
            report(
                out,
                &role,
                "replaced",
                r.old.as_deref(),
                Some(&r.new),
                r.down,
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn short(id: &str) -> &str {
    &id[..id.len().min(12)]
}

fn report(
    out: Out,
    role: &Role,
    what: &str,
    old: Option<&str>,
    new: Option<&str>,
    down: std::time::Duration,
) {
    if out.json {
        println!(
            "{}",
            json!({ "role": role.describe(), "action": what, "old": old, "new": new, "down_ms": down.as_millis() })
        );
    } else {
        let old = old.map(short).unwrap_or("(none)");
        match new {
            Some(n) => println!(
                "{}: {old} → {}, down {:.2} s",
                role.describe(),
                short(n),
                down.as_secs_f64()
            ),
            None if what == "stopped" => println!(
                "{}: {old} stopped in {:.2} s",
                role.describe(),
                down.as_secs_f64()
            ),
            None => println!("{}: {old} {what}", role.describe()),
        }
    }
}

async fn live_tag(cfg: &Config, engine: &impl Engine) -> anyhow::Result<String> {
    let live = crate::proxy::live(cfg)?;
    let Some(color) = live else {
        bail!(Usage(
            "no release is live yet\nhint: webdock promote TAG".into()
        ));
    };
    let c = engine
        .inspect_container(&Role::Portal(color).container_name(&cfg.project))
        .await?;
    c.and_then(|c| c.label(LABEL_TAG).map(str::to_owned))
        .ok_or_else(|| {
            anyhow::anyhow!("the live color {color} has no portal container\nhint: webdock status")
        })
}

async fn restart_portal(
    cfg: &Config,
    engine: &crate::engine::Docker,
    out: Out,
) -> anyhow::Result<ExitCode> {
    let tag = Tag::parse(&live_tag(cfg, engine).await?)?;
    crate::proxy::preflight(cfg)?;
    let _lock = take_deploy_lock(cfg, "restart portal", Some(tag.as_str()))?;
    let mut cx = Ctx::new(cfg, engine, out)?;
    cx.promote(&tag, "restart-portal", true).await?;
    eprintln!("portal restarted on {tag} in the idle color, then flipped");
    Ok(ExitCode::SUCCESS)
}
