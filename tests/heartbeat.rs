//! Djob liveness (issue 17, item 2): a djob that stops beating but keeps
//! running (a deadlock: it even ignores SIGTERM) is killed by the
//! container's watchdog and restarted in the same container, and at no
//! moment do two of its daemons run. The host sees the beat go stale
//! (the heartbeat file's age, read with a stat) before the watchdog acts.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

mod common;
use common::*;

/// Beats 10 times every 0.5 s, writes `hang`, then hangs ignoring SIGTERM.
const HANGER: &str = r#"[djobs.hanger]
command = ["python", "-c", "import os, pathlib, signal, time; signal.signal(signal.SIGTERM, lambda *a: None); f = pathlib.Path(os.environ['WEBDOCK_HEARTBEAT_FILE']); log = lambda w: open('/data/hanger.log', 'a').write(f'{w} {os.getpid()} {time.time()}' + chr(10)); log('start'); [(f.touch(), time.sleep(0.5)) for i in range(10)]; log('hang'); time.sleep(1e9)"]
"#;

fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// Host processes running the hanger (its command line is unique to it).
fn hangers() -> usize {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter(|e| {
            std::fs::read(e.path().join("cmdline"))
                .map(|c| String::from_utf8_lossy(&c).contains("/data/hanger.log"))
                .unwrap_or(false)
        })
        .count()
}

#[test]
fn a_djob_that_hangs_is_killed_and_restarted_and_never_runs_twice() {
    ensure_variant_djobs("hanger", HANGER);
    let p = Project::new(
        "hb",
        &format!("{HANGER}heartbeat = \"3s\"\nstop_grace = \"2s\"\n"),
    );
    p.ok(&["promote", "hanger"]);
    let dir = p.path().join("run").join(&p.name).join("djobs/hanger");
    let (beat, kills) = (dir.join("beat"), dir.join("kills"));
    let log = p.data().join("hanger.log");
    let lines = |what: &str| -> Vec<f64> {
        std::fs::read_to_string(&log)
            .unwrap_or_default()
            .lines()
            .filter(|l| l.starts_with(what))
            .filter_map(|l| l.split_whitespace().nth(2)?.parse().ok())
            .collect()
    };
    let kill_times = || -> Vec<f64> {
        std::fs::read_to_string(&kills)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.split_whitespace().next()?.parse().ok())
            .collect()
    };

    let deadline = Instant::now() + Duration::from_secs(180);
    let (mut max_procs, mut stale_seen_at, mut polls) = (0, None::<f64>, 0u64);
    while kill_times().len() < 2 || lines("start").len() < 3 {
        assert!(
            Instant::now() < deadline,
            "the hung djob was not killed and restarted twice within 180 s: kills {:?}, log {:?}\n{}",
            kill_times(),
            std::fs::read_to_string(&log).unwrap_or_default(),
            docker_ok(&["logs", "--tail", "20", &p.container_name("djob-hanger")])
        );
        max_procs = max_procs.max(hangers());
        polls += 1;
        if stale_seen_at.is_none() && kill_times().is_empty() {
            let age = std::fs::metadata(&beat)
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| SystemTime::now().duration_since(t).ok());
            if age.is_some_and(|a| a > Duration::from_secs(3)) {
                stale_seen_at = Some(now());
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let kills = kill_times();
    let (starts, hangs) = (lines("start"), lines("hang"));
    assert_eq!(max_procs, 1, "never two hangers, in {polls} polls");
    let stale = stale_seen_at.expect("the host saw the heartbeat go stale before the first kill");
    assert!(
        hangs[0] < kills[0] && stale <= kills[0] + 1.0,
        "hung, then seen stale, then killed: hang {hangs:?}, stale {stale}, kills {kills:?}"
    );
    assert!(
        starts[1] > kills[0],
        "the restart came after the kill: starts {starts:?}, kills {kills:?}"
    );
    let c = p.container_name("djob-hanger");
    let restarts: i64 = docker_ok(&["inspect", "-f", "{{.RestartCount}}", &c])
        .parse()
        .unwrap();
    assert!(restarts >= 2, "the same container restarted: {restarts}");
    assert_eq!(
        p.containers()
            .iter()
            .filter(|n| n.contains("djob-hanger"))
            .count(),
        1
    );
    let logs = docker(&["logs", &c]);
    let logs = String::from_utf8_lossy(&logs.stderr);
    assert!(
        logs.contains("no heartbeat for") && logs.contains("ignored SIGTERM for 2s: SIGKILL"),
        "the watchdog says what it did: {logs}"
    );
    // The host-side reading that status and check use.
    let cfg = webdock::config::Config::load(&p.config).unwrap();
    let hb = webdock::heartbeat::read(&cfg, cfg.djob("hanger").unwrap(), SystemTime::now())
        .expect("a heartbeat is configured");
    assert!(hb.kills.len() >= 2, "{hb:?}");
    // status and check show it: the kills, and a check that is not OK
    let st = p.status_json();
    let d = st["djobs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["name"] == "hanger")
        .cloned()
        .unwrap();
    assert_eq!(d["heartbeat"]["limit_s"], 3, "{d}");
    assert!(d["heartbeat"]["kills"].as_u64().unwrap() >= 2, "{d}");
    assert!(
        d["heartbeat"]["kills_last_hour"].as_u64().unwrap() >= 2,
        "{d}"
    );
    let o = p.webdock(&["check"]);
    let line = String::from_utf8_lossy(&o.stdout);
    assert!(
        matches!(o.status.code(), Some(1 | 2)) && line.contains("hanger"),
        "check names the hung djob: {:?} {line}",
        o.status.code()
    );
    assert!(line.contains("'hanger_heartbeat_age'="), "{line}");
    eprintln!(
        "heartbeat 3s, grace 2s: last beat -> restart {:.1} s (hang at {:.1}, killed at {:.0}, started again at {:.1})",
        starts[1] - hangs[0],
        hangs[0],
        kills[0],
        starts[1]
    );
}
