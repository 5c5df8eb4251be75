//! webdock as a library: every module of the `webdock` binary, so that
//! integration tests and fuzz targets can call the parsers and pure
//! decisions directly. The binary (`main.rs`) only parses and dispatches.

pub mod backups;
pub mod build;
pub mod check;
pub mod cli;
pub mod clock;
pub mod commands;
pub mod config;
pub mod delivery;
pub mod deploy;
pub mod engine;
pub mod fleet;
pub mod health;
pub mod heartbeat;
pub mod history;
pub mod host;
pub mod layout;
pub mod lease;
pub mod lease_store;
pub mod lock;
pub mod logging;
pub mod names;
pub mod nginx;
pub mod out;
pub mod pin;
pub mod plan;
pub mod proc;
pub mod proxy;
pub mod report;
pub mod roles;
pub mod timezone;

/// Bad usage or configuration: exit code 2, and nothing was changed.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Usage(pub String);
