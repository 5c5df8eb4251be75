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

/// For unit tests that must run alone in a process of their own: under a
/// umask of their own, or away from the other tests' threads, whose
/// spawned children hold copies of every open file (lock files included)
/// between their fork and their exec.
#[cfg(test)]
pub(crate) mod own_process {
    const CHILD: &str = "WEBDOCK_TEST_OWN_PROCESS";

    /// True in the child process that [`run`] started for the test `name`.
    pub fn is_child(name: &str) -> bool {
        std::env::var_os(CHILD).as_deref() == Some(std::ffi::OsStr::new(name))
    }

    /// Runs this one test (`name`, its full path) again in a child process
    /// through `sh -c "<prelude>; exec <test binary> ..."`, where
    /// [`is_child`] is true, and asserts that it passed.
    pub fn run(name: &str, prelude: &str, env: &[(&str, &std::path::Path)]) {
        let mut c = std::process::Command::new("sh");
        c.arg("-c")
            .arg(format!("{prelude}; exec \"$0\" --exact --quiet {name}"))
            .arg(std::env::current_exe().unwrap())
            .env(CHILD, name);
        for (k, v) in env {
            c.env(k, v);
        }
        let o = c.output().unwrap();
        let out = String::from_utf8_lossy(&o.stdout);
        assert!(
            o.status.success(),
            "{name} in its own process:\n{out}{}",
            String::from_utf8_lossy(&o.stderr)
        );
        assert!(out.contains("1 passed"), "the child ran {name}: {out}");
    }
}
