//! webdock: blue/green releases of Django-style apps on a Docker host.
//!
//! This file only parses the command line and dispatches; each verb lives in
//! `commands/`. Exit codes: 0 ok, 1 the operation failed, 2 bad usage or
//! config (see README).

use std::process::ExitCode;

use clap::Parser;
use webdock::{cli, commands, config, Usage};

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    let filter = match cli.verbose {
        0 => "webdock=info",
        1 => "webdock=debug",
        // Not bollard's or hyper's debug logs: they print request bodies,
        // and a container-create body holds the env file's secrets.
        _ => "webdock=trace",
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("WEBDOCK_LOG")
                .unwrap_or_else(|_| filter.into()),
        )
        .with_writer(std::io::stderr)
        .with_target(false)
        .without_time()
        .with_ansi(
            std::io::IsTerminal::is_terminal(&std::io::stderr())
                && std::env::var_os("NO_COLOR").is_none(),
        )
        .init();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    match rt.block_on(commands::run(cli)) {
        Ok(code) => code,
        Err(e) => {
            if is_broken_pipe(&e) {
                return ExitCode::SUCCESS;
            }
            eprintln!("error: {e:#}");
            ExitCode::from(exit_code(&e))
        }
    }
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

fn exit_code(e: &anyhow::Error) -> u8 {
    let usage = e
        .chain()
        .any(|c| c.is::<Usage>() || c.is::<config::ConfigError>());
    if usage {
        2
    } else {
        1
    }
}
