//! One file per verb. Each loads what it needs, does its work and returns
//! the exit code; errors bubble up to `main` which prints them.

mod build;

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;

use crate::cli::{Cli, Command};
use crate::config::Config;
use crate::names::Tag;
use crate::out::Out;
use crate::Usage;

pub async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let out = Out::new(cli.json);
    match cli.command {
        Command::Build { tag, no_cache } => {
            build::run(&load(&cli.config)?, &parse_tag(&tag)?, no_cache, out).await
        }
        Command::Base => build::base(out).await,
        other => Err(Usage(format!("{other:?} is not implemented yet")).into()),
    }
}

pub fn load(path: &Path) -> anyhow::Result<Config> {
    Ok(Config::load(path)?)
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
