//! Reaching a fleet: connecting every host of `[hosts]` at once, and the
//! fleet-wide deploy lock.
//!
//! The lock is a kernel `flock` on the first host (by name), held by a
//! shell in that host's `<project>-proxy` helper whose stdin is the
//! controller's open connection to the engine. Two controllers on two
//! machines contend for the same file on the same host, so only one wins;
//! and the lock cannot go stale: when the controller exits or is killed
//! (kill -9), its kernel closes the connection, the engine closes the
//! shell's stdin, the shell exits and the kernel drops the flock, at once.
//! A controller that vanishes without closing anything (power lost, a
//! network partition) holds it until the lock host's end of the connection
//! gives up: over `tcp://`, dockerd's TCP keep-alive (Go's default, about
//! 2.5 minutes of silence); over `ssh://`, sshd's `ClientAliveInterval` ×
//! `ClientAliveCountMax` (off by default, which leaves the kernel's TCP
//! keep-alive: about 2 hours). docs/architecture.md has the details.

use std::time::Duration;

use anyhow::{anyhow, bail};
use futures_util::future::join_all;

use crate::config::{Config, EngineUrl, HostConfig};
use crate::engine::{Docker, Held, Target};
use crate::host::{Host, IN_LINKS};
use crate::lock::Holder;

/// How long a host may take to answer before it counts as unreachable.
pub const CONNECT_WITHIN: Duration = Duration::from_secs(10);

/// Connects to every host at once. An unreachable host is never guessed
/// dead: it is an error naming it, unless the caller skips it.
pub async fn connect(cfg: &Config, skip: &[String]) -> anyhow::Result<Vec<Host<Docker>>> {
    for s in skip {
        if !cfg.hosts.iter().any(|h| &h.name == s) {
            bail!(crate::Usage(format!(
                "--skip-host {s:?} is not one of [hosts] ({})",
                cfg.hosts
                    .iter()
                    .map(|h| h.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
    }
    let wanted: Vec<&HostConfig> = cfg
        .hosts
        .iter()
        .filter(|h| !skip.contains(&h.name))
        .collect();
    if wanted.is_empty() {
        bail!(crate::Usage("every host is skipped".into()));
    }
    let results = join_all(wanted.iter().map(|h| connect_one(h))).await;
    let mut hosts = Vec::new();
    let mut errors = Vec::new();
    for (h, r) in wanted.iter().zip(results) {
        match r {
            Ok(d) => hosts.push(Host::remote(cfg, h, d)),
            Err(e) => errors.push(format!("{}: {} unreachable: {e:#}", h.name, h.engine)),
        }
    }
    if !errors.is_empty() {
        bail!(
            "{}; nothing was changed\nhint: a host that cannot be reached is never guessed dead; fix it, or leave it out with --skip-host NAME (it stays behind, and status says so)",
            errors.join("; ")
        );
    }
    Ok(hosts)
}

/// Connects to every host at once and goes on without those that do not
/// answer, returned with why: for the on-call verbs, which must work while
/// a host is down, and which never guess what runs there.
pub async fn connect_some(
    cfg: &Config,
) -> anyhow::Result<(Vec<Host<Docker>>, Vec<(String, String)>)> {
    let results = join_all(cfg.hosts.iter().map(connect_one)).await;
    let mut hosts = Vec::new();
    let mut down = Vec::new();
    for (h, r) in cfg.hosts.iter().zip(results) {
        match r {
            Ok(d) => hosts.push(Host::remote(cfg, h, d)),
            Err(e) => down.push((h.name.clone(), format!("{} unreachable: {e:#}", h.engine))),
        }
    }
    Ok((hosts, down))
}

pub async fn connect_one(h: &HostConfig) -> anyhow::Result<Docker> {
    let target = match &h.engine {
        EngineUrl::Unix(p) => Target::Unix(p),
        EngineUrl::Tcp(a) => Target::Tcp {
            addr: a,
            tls: h
                .tls
                .as_ref()
                .map(|t| (t.ca.as_path(), t.cert.as_path(), t.key.as_path())),
        },
        EngineUrl::Ssh(a) => Target::Ssh(a),
    };
    Ok(Docker::connect_to(target, CONNECT_WITHIN).await?)
}

/// The fleet-wide deploy lock; dropping it (or dying) releases it.
pub struct FleetLock {
    _held: Held,
}

/// The lock's home: the first host by name. Skipping it is refused, since
/// two controllers must contend on the same host.
pub fn lock_host(cfg: &Config) -> &HostConfig {
    &cfg.hosts[0]
}

const LOCK_SCRIPT: &str = r#"exec 9>>"$1"
if flock -n 9; then
  printf '%s\n' "$3" > "$2"
  echo held
  read _ || true
  exit 0
fi
sleep 0.2
echo busy
cat "$2" 2>/dev/null
exit 1"#;

impl FleetLock {
    /// Takes the lock on `host` (the lock host, its helper running) or
    /// fails at once naming the holder.
    pub async fn take(
        host: &Host<Docker>,
        command: &str,
        tag: Option<&str>,
    ) -> anyhow::Result<FleetLock> {
        let mut me = Holder::me(command, tag);
        me.command = format!("{command} (from {})", controller_name());
        // The helper sees the host's links directory at IN_LINKS.
        let in_helper = |p: std::path::PathBuf| -> anyhow::Result<String> {
            let rest = p.strip_prefix(host.layout.links_dir())?;
            Ok(format!("{IN_LINKS}/{}", rest.display()))
        };
        let cmd: Vec<String> = vec![
            "sh".into(),
            "-c".into(),
            LOCK_SCRIPT.into(),
            "lock".into(),
            in_helper(host.layout.fleet_lock())?,
            in_helper(host.layout.fleet_lock_holder())?,
            serde_json::to_string(&me)?,
        ];
        match host.engine.hold(&host.helper_name(), &cmd).await? {
            Ok(held) => Ok(FleetLock { _held: held }),
            Err(said) => {
                let holder = said
                    .lines()
                    .find_map(|l| serde_json::from_str::<Holder>(l.trim()).ok());
                Err(anyhow!(match holder {
                    Some(h) => format!(
                        "project {} is locked fleet-wide by pid {} ({} {}) since {}, on lock host {}\nhint: wait for it to finish; the lock is freed the moment that controller exits, or once the lock host's engine (or sshd) drops the connection of a controller that vanished",
                        host.project,
                        h.pid,
                        h.command,
                        h.tag.as_deref().unwrap_or("-"),
                        h.started,
                        host.name
                    ),
                    None => format!(
                        "project {} is locked fleet-wide on lock host {} ({})",
                        host.project,
                        host.name,
                        said.trim()
                    ),
                }))
            }
        }
    }
}

fn controller_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "?".into())
}
