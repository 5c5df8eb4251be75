//! Djob liveness: a daemon that deadlocks stays "running" forever, so a
//! djob with `heartbeat = "60s"` must prove it is alive that often.
//!
//! The mechanism is a file. The container's environment names it in
//! `WEBDOCK_HEARTBEAT_FILE`; the daemon touches it (one line of Python, see
//! docs/operations.md). Its directory is a per-djob host directory,
//! `<socket_root>/<project>/djobs/<name>/`, bind-mounted at
//! [`MOUNT`], so the host (`status`, `check`) reads the heartbeat's age with
//! a `stat`, no `docker exec`. Inside the container a watchdog service
//! beside the daemon (`images/rootfs/usr/lib/webdock/watchdog`) kills a
//! daemon whose beat is older than the limit: SIGTERM, SIGKILL after the
//! djob's `stop_grace`. The daemon's death stops its container
//! (`djob-finish`), and the engine restarts that same container: never a
//! second one. Each kill appends `<unix time> <age in s>` to [`KILLS`] in
//! the same directory, which is how the host counts the restarts the
//! watchdog caused.

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use crate::config::{Config, Djob};
use crate::engine::Engine;
use crate::host::{Host, Reach};

/// Where the djob's heartbeat directory is mounted in its container.
pub const MOUNT: &str = "/run/webdock/heartbeat";
/// The file the daemon touches.
pub const BEAT: &str = "beat";
/// One line per kill by the watchdog.
pub const KILLS: &str = "kills";

/// The host directory of one djob's heartbeat.
pub fn dir(cfg: &Config, djob: &str) -> PathBuf {
    cfg.layout().heartbeat_dir(djob)
}

/// What the host can tell of a djob's heartbeat.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Heartbeat {
    /// The configured limit.
    pub limit: Duration,
    /// Since the last beat (the watchdog also touches the file when the
    /// daemon starts); None before the first start.
    pub age: Option<Duration>,
    /// Unix times of the watchdog's kills, oldest first.
    pub kills: Vec<i64>,
}

impl Heartbeat {
    /// Past its limit: the watchdog is about to kill, or cannot.
    pub fn stale(&self) -> bool {
        self.age.is_some_and(|a| a > self.limit)
    }

    /// Kills at or after `since` (unix seconds), e.g. the last hour's.
    pub fn kills_since(&self, since: i64) -> usize {
        self.kills.iter().filter(|&&t| t >= since).count()
    }
}

/// The `kills` file: `<unix time> <age>` per line; anything else is skipped.
pub fn parse_kills(text: &str) -> Vec<i64> {
    text.lines()
        .filter_map(|l| l.split_whitespace().next()?.parse().ok())
        .collect()
}

/// The heartbeat of a djob as the host sees it; None when the djob has no
/// heartbeat configured.
pub fn read(cfg: &Config, d: &Djob, now: SystemTime) -> Option<Heartbeat> {
    Some(read_dir(&dir(cfg, &d.name), d.heartbeat?, now))
}

/// The heartbeat of a djob on `host`: a `stat` of the file on the fleet of
/// one; on a host of `[hosts]`, one command in its helper container, which
/// bind-mounts the host's socket directory (the host's own clock measures
/// the age, so a controller's clock skew does not make it fresh or stale).
/// A host that cannot be asked gives an unknown age, never a fresh one.
pub async fn read_on<E: Engine>(host: &Host<E>, d: &Djob) -> Option<Heartbeat> {
    let limit = d.heartbeat?;
    let now = SystemTime::now();
    if host.reach == Reach::Local {
        return Some(read_dir(&host.layout.heartbeat_dir(&d.name), limit, now));
    }
    let dir = format!("{}/djobs/{}", crate::host::IN_SOCKETS, d.name);
    let script = "date +%s; stat -c %Y \"$1/beat\" 2>/dev/null || echo -; cat \"$1/kills\" 2>/dev/null; true";
    let cmd: Vec<String> = ["sh", "-c", script, "heartbeat", &dir]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let asked = tokio::time::timeout(
        Duration::from_secs(10),
        host.engine.exec(&host.helper_name(), &cmd),
    )
    .await;
    let unknown = Heartbeat {
        limit,
        age: None,
        kills: vec![],
    };
    let Ok(Ok(o)) = asked else {
        return Some(unknown);
    };
    let here = now
        .duration_since(std::time::UNIX_EPOCH)
        .map(|t| t.as_secs() as i64)
        .unwrap_or(0);
    Some(parse_remote(&o.output, limit, here).unwrap_or(unknown))
}

/// The helper's answer: its clock, the beat's mtime (`-` when none), then
/// the `kills` file. Kill times are moved onto the controller's clock
/// (`here`), so "the last hour" means the same on every host.
pub fn parse_remote(text: &str, limit: Duration, here: i64) -> Option<Heartbeat> {
    let mut lines = text.lines();
    let there: i64 = lines.next()?.trim().parse().ok()?;
    let age = match lines.next()?.trim() {
        "-" => None,
        t => Some(Duration::from_secs(
            there.saturating_sub(t.parse().ok()?).max(0) as u64,
        )),
    };
    let rest: Vec<&str> = lines.collect();
    let kills = parse_kills(&rest.join("\n"))
        .into_iter()
        .map(|t| t + (here - there))
        .collect();
    Some(Heartbeat { limit, age, kills })
}

fn read_dir(dir: &std::path::Path, limit: Duration, now: SystemTime) -> Heartbeat {
    let age = std::fs::metadata(dir.join(BEAT))
        .and_then(|m| m.modified())
        .ok()
        .map(|t| now.duration_since(t).unwrap_or_default());
    let kills = std::fs::read_to_string(dir.join(KILLS))
        .map(|t| parse_kills(&t))
        .unwrap_or_default();
    Heartbeat { limit, age, kills }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn kills_are_counted_from_their_lines() {
        let k = parse_kills("1700000000 75\n\ngarbage\n1700003600 61\n");
        assert_eq!(k, [1700000000, 1700003600]);
        let h = Heartbeat {
            limit: Duration::from_secs(60),
            age: Some(Duration::from_secs(61)),
            kills: k,
        };
        assert!(h.stale());
        assert_eq!(h.kills_since(1700000001), 1);
    }

    #[test]
    fn the_host_reads_age_and_kills_from_the_djob_directory() {
        let t = tempfile::tempdir().unwrap();
        let text = format!(
            "project = \"p\"\nsocket_root = \"{}\"\n[djobs.billing]\ncommand = [\"x\"]\nheartbeat = \"60s\"\n[djobs.fax]\ncommand = [\"y\"]\n",
            t.path().display()
        );
        let cfg = Config::parse(Path::new("/srv/w/webdock.toml"), &text).unwrap();
        let billing = cfg.djob("billing").unwrap();
        assert!(read(&cfg, cfg.djob("fax").unwrap(), SystemTime::now()).is_none());
        let h = read(&cfg, billing, SystemTime::now()).unwrap();
        assert_eq!((h.age, h.kills.len()), (None, 0));
        let d = dir(&cfg, "billing");
        assert_eq!(d, t.path().join("p/djobs/billing"));
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join(BEAT), "").unwrap();
        std::fs::write(d.join(KILLS), "1 70\n").unwrap();
        let later = SystemTime::now() + Duration::from_secs(90);
        let h = read(&cfg, billing, later).unwrap();
        assert!(h.stale() && h.age.unwrap() >= Duration::from_secs(89));
        assert_eq!(h.kills, [1]);
    }

    #[test]
    fn a_remote_answer_is_read_on_the_hosts_clock() {
        let limit = Duration::from_secs(60);
        // the host's clock is 100 s behind the controller's
        let h = parse_remote("1000\n925\n900 70\n990 61\n", limit, 1100).unwrap();
        assert_eq!(h.age, Some(Duration::from_secs(75)));
        assert!(h.stale());
        assert_eq!(h.kills, [1000, 1090]);
        let none = parse_remote("1000\n-\n", limit, 1000).unwrap();
        assert_eq!((none.age, none.kills.len()), (None, 0));
        assert!(
            !none.stale(),
            "an unknown age is not stale, and not fresh either"
        );
        assert!(parse_remote("", limit, 0).is_none());
        assert!(parse_remote("x\n1\n", limit, 0).is_none());
    }
}
