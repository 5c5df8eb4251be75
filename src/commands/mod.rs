//! One file per verb (or per small family of verbs). Each loads what it
//! needs, does its work and returns the exit code; errors bubble up to
//! `main`, which prints them and picks the exit code.

mod build;
mod check;
mod deliver;
mod failover;
mod host;
mod meter;
mod pin;
mod promote;
mod release;
mod restart;
mod status;

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;

use crate::cli::{Cli, Command, ReleaseVerb};
use crate::config::Config;
use crate::names::Tag;
use crate::out::Out;
use crate::Usage;
use restart::Verb;

pub async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let out = Out::new(cli.json);
    let dest = cli.destination.as_deref();
    let cfg = || load(&cli.config, dest);
    match &cli.command {
        Command::Build {
            tag,
            no_cache,
            emit_context,
            push,
            force,
        } => {
            let tag = parse_tag(tag)?;
            // One image for every destination: build needs none.
            let cfg = load_any(&cli.config, dest)?;
            let push = match push {
                true => Some(deliver::push_target(&cfg, "--push")?),
                false => None,
            };
            build::run(&cfg, &tag, *no_cache, *force, emit_context.as_deref(), out).await?;
            match push {
                Some(target) => deliver::push(&cfg, &tag, target, out).await,
                None => Ok(ExitCode::SUCCESS),
            }
        }
        Command::Ship { tag, to } => {
            let tag = parse_tag(tag)?;
            deliver::ship(&cfg()?, &tag, to, out).await
        }
        Command::Pull { tag } => {
            let tag = parse_tag(tag)?;
            deliver::pull(&cfg()?, &tag, out).await
        }
        Command::Base => build::base(out).await,
        Command::Promote {
            tag,
            skip_host,
            from,
            allow_moved_tag,
        } => {
            let tag = parse_tag(tag)?;
            let pin = promote::PinArgs {
                from: from.as_deref(),
                allow_moved_tag: *allow_moved_tag,
            };
            promote::promote(&cfg()?, &tag, skip_host, pin, out).await
        }
        Command::Rollback { skip_host } => promote::rollback(&cfg()?, skip_host, out).await,
        Command::Status => status::status(&cfg()?, out).await,
        Command::History { limit } => status::history(&cfg()?, *limit, out),
        Command::Restart { target } => restart::run(&cfg()?, Verb::Restart, target, out).await,
        Command::Stop { target } => restart::run(&cfg()?, Verb::Stop, target, out).await,
        Command::Start { target } => restart::run(&cfg()?, Verb::Start, target, out).await,
        Command::Failover { target, to } => {
            failover::failover(&cfg()?, target, to.as_deref(), out).await
        }
        Command::Logs {
            role,
            name,
            follow,
            tail,
        } if role == "release" => release::logs(&cfg()?, name.as_deref(), *follow, tail, out).await,
        Command::Release {
            verb: ReleaseVerb::Kill { tag, yes },
        } => {
            let tag = tag.as_deref().map(parse_tag).transpose()?;
            release::kill(&cfg()?, tag.as_ref(), *yes, out).await
        }
        Command::Backup { verify } => release::backup(&cfg()?, *verify, out).await,
        Command::Backups => release::list(&cfg()?, out),
        Command::Logs {
            role,
            name,
            follow,
            tail,
        } => host::logs(&cfg()?, role, name.as_deref(), *follow, tail, out).await,
        Command::NginxSnippet { host } => host::nginx_snippet(&cfg()?, host.as_deref(), out),
        Command::LbSnippet { listen } => host::lb_snippet(&cfg()?, listen, out),
        Command::Doctor => host::doctor(&cfg()?, out).await,
        Command::Check => check::run(cfg(), out).await,
    }
}

/// The config for the destination; refused without one when the file
/// says `require_destination = true`.
pub fn load(path: &Path, dest: Option<&str>) -> anyhow::Result<Config> {
    let cfg = load_any(path, dest)?;
    if cfg.require_destination && cfg.destination.is_none() {
        let names = crate::config::destination::siblings(path).join(", ");
        anyhow::bail!(Usage(format!(
            "{} has require_destination = true, and no destination was given\nhint: pass -d NAME (overlays here: {})",
            path.display(),
            if names.is_empty() { "none" } else { &names }
        )));
    }
    Ok(cfg)
}

fn load_any(path: &Path, dest: Option<&str>) -> anyhow::Result<Config> {
    Ok(crate::config::destination::load(path, dest)?)
}

pub fn parse_tag(s: &str) -> anyhow::Result<Tag> {
    Tag::parse(s).map_err(|e| {
        Usage(format!("tag {s:?} {e}\nhint: a tag is 1-128 of [A-Za-z0-9_.-] and starts with a letter, digit or '_'")).into()
    })
}

/// Connects to the engine with a hint if it is not there.
pub async fn engine() -> anyhow::Result<crate::engine::Docker> {
    crate::engine::Docker::connect()
        .await
        .context("connecting to Docker")
}

/// The fleet of one: the local engine with the config's paths.
pub async fn local_host(cfg: &Config) -> anyhow::Result<crate::host::Host<crate::engine::Docker>> {
    Ok(crate::host::Host::local(cfg, engine().await?))
}
