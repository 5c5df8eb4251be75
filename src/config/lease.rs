//! `[lease]`: the PostgreSQL session lease every djob and cron container
//! holds beside its daemon (issue 13; the contract is in `crate::lease`).
//! The file names a variable of the env file, never the URL itself: the URL
//! carries a password, and the env file is where secrets live (mode 0600).

use std::path::Path;
use std::time::Duration;

use serde::Deserialize;

/// The shortest window: the holder confirms every window/6 and kills its
/// daemon after window/2 without an answer; below 2 s that is a few round
/// trips, and a busy database would kill healthy daemons.
pub const MIN_WINDOW: Duration = Duration::from_secs(2);

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawLease {
    pub(super) postgres: Option<String>,
    #[serde(default = "d_window", with = "humantime_serde")]
    pub(super) window: Duration,
}

fn d_window() -> Duration {
    Duration::from_secs(10)
}

/// A validated `[lease]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseConfig {
    /// The name of the env file variable holding the libpq URL.
    pub dsn_var: String,
    /// How long a silent holder may go unconfirmed before the server frees
    /// its lease (`idle_session_timeout`); its daemon dies by window/2.
    pub window: Duration,
}

/// Checks `[lease]` as written; `has_env_file` because the URL must come
/// from one.
pub(super) fn check(raw: RawLease, has_env_file: bool) -> Result<LeaseConfig, String> {
    let Some(var) = raw.postgres else {
        return Err(
            "lease.postgres is required with [lease]: the name of an env_file variable holding a postgresql:// URL"
                .into(),
        );
    };
    crate::names::check_env_name(&var).map_err(|e| format!("lease.postgres {var:?} {e}"))?;
    if var.starts_with("WEBDOCK_") {
        return Err(format!(
            "lease.postgres {var:?} is reserved: WEBDOCK_* variables are set by webdock"
        ));
    }
    if raw.window < MIN_WINDOW || raw.window.subsec_nanos() != 0 {
        return Err(format!(
            "lease.window {} must be whole seconds, at least {}s",
            humantime::format_duration(raw.window),
            MIN_WINDOW.as_secs()
        ));
    }
    if !has_env_file {
        return Err(format!(
            "lease.postgres names {var}, a variable of env_file, but env_file is not set"
        ));
    }
    Ok(LeaseConfig {
        dsn_var: var,
        window: raw.window,
    })
}

/// The URL from the env file's variables, checked: one line naming the file
/// and the key when it is missing or not a libpq URL.
pub(super) fn dsn_from(
    lease: &LeaseConfig,
    env_file: &Path,
    vars: &std::collections::BTreeMap<String, String>,
) -> anyhow::Result<String> {
    let var = &lease.dsn_var;
    let Some(url) = vars.get(var) else {
        anyhow::bail!(crate::Usage(format!(
            "env_file {}: no {var}, which lease.postgres names\nhint: add {var}=postgresql://USER:PASSWORD@HOST:5432/DB to it",
            env_file.display()
        )));
    };
    if !(url.starts_with("postgresql://") || url.starts_with("postgres://")) {
        anyhow::bail!(crate::Usage(format!(
            "env_file {}: {var} (lease.postgres) is not a postgresql:// URL",
            env_file.display()
        )));
    }
    Ok(url.clone())
}

impl super::Config {
    /// The lease's libpq URL, read from the env file (None without
    /// `[lease]`). A missing variable or a value that is no
    /// `postgresql://` URL is one `Usage` line naming the file and the key.
    pub fn lease_dsn(&self) -> anyhow::Result<Option<String>> {
        let Some(l) = &self.lease else {
            return Ok(None);
        };
        let Some(file) = &self.env_file else {
            // parse refuses [lease] without env_file
            anyhow::bail!(crate::Usage(format!(
                "config {}: lease.postgres needs env_file",
                self.path.display()
            )));
        };
        let vars = crate::roles::read_env_file(file)?;
        dsn_from(l, file, &vars).map(Some)
    }
}
