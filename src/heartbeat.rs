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
    let limit = d.heartbeat?;
    let dir = dir(cfg, &d.name);
    let age = std::fs::metadata(dir.join(BEAT))
        .and_then(|m| m.modified())
        .ok()
        .map(|t| now.duration_since(t).unwrap_or_default());
    let kills = std::fs::read_to_string(dir.join(KILLS))
        .map(|t| parse_kills(&t))
        .unwrap_or_default();
    Some(Heartbeat { limit, age, kills })
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
}
