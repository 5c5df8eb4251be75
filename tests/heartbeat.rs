//! Djob liveness (issue 17, item 2): a djob that stops beating but keeps
//! running (a deadlock: it even ignores SIGTERM) is killed by the
//! container's watchdog and restarted in the same container, and at no
//! moment do two of its daemons run. The host sees the beat go stale
//! (the heartbeat file's age, read with a stat) before the watchdog acts.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

mod common;
use common::*;

/// Beats 10 times every 0.5 s, writes `hang`, then hangs ignoring SIGTERM;
/// started again after that (the log says it hung once), it beats forever,
/// so the test also sees what comes after the watchdog's restart.
const HANGER: &str = r#"[djobs.hanger]
command = ["python", "-c", "import os, pathlib, signal, time; signal.signal(signal.SIGTERM, lambda *a: None); f = pathlib.Path(os.environ['WEBDOCK_HEARTBEAT_FILE']); hung = os.path.exists('/data/hanger.log') and 'hang' in open('/data/hanger.log').read(); log = lambda w: open('/data/hanger.log', 'a').write(f'{w} {os.getpid()} {time.time()}' + chr(10)); log('start'); [(f.touch(), time.sleep(0.5)) for i in range(10)]; hung and [(f.touch(), time.sleep(0.5)) for i in iter(int, 1)]; log('hang'); time.sleep(1e9)"]
"#;

/// The djob's `heartbeat` (long enough for python to start on a machine
/// at a load of 25: a daemon gets the full limit from its start), the
/// watchdog's step at that limit (a tenth, at least 1 s), and its
/// `stop_grace`: long, so that `status` and `check` have time to see the
/// hung daemon before it is SIGKILLed.
const LIMIT: f64 = 10.0;
const STEP: f64 = 1.0;
const GRACE: f64 = 10.0;
/// The watchdog counts in whole seconds (its age and the kill's time).
const ROUNDING: f64 = 2.0;
/// Scheduling slack on a loaded machine, and a container's restart with
/// a python djob's start (38 s seen at a load average of 50 on 2 cores).
const SLACK: f64 = 5.0;
const START_BUDGET: f64 = 60.0;

/// What on-call saw while the daemon hung: when, `status --json`, the
/// status table, and `check`'s exit code and line.
type Seen = (f64, serde_json::Value, String, (Option<i32>, String));

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
        &format!("{HANGER}heartbeat = \"{LIMIT}s\"\nstop_grace = \"{GRACE}s\"\n"),
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
    let check = || {
        let o = p.webdock(&["check"]);
        let line = String::from_utf8_lossy(&o.stdout).trim().to_string();
        (o.status.code(), line)
    };

    let deadline = Instant::now() + Duration::from_secs(180);
    let (mut max_procs, mut polls) = (0, 0u64);
    let mut stale_seen: Option<Seen> = None;
    // The daemon that hangs is the one that logs `hang`; on a loaded
    // machine an earlier start may be killed before it got there (its
    // python slower than the limit), and that is not what is tested here.
    let after = |v: Vec<f64>, t: f64| -> Vec<f64> { v.into_iter().filter(|&x| x > t).collect() };
    let done = || {
        let hang = lines("hang").first().copied()?;
        let kill = after(kill_times(), hang - 1.0).first().copied()?;
        after(lines("start"), kill).first().map(|_| ())
    };
    while done().is_none() {
        assert!(
            Instant::now() < deadline,
            "the hung djob did not hang, get killed and restart within 180 s: kills {:?}, log {:?}\n{}",
            kill_times(),
            std::fs::read_to_string(&log).unwrap_or_default(),
            docker_ok(&["logs", "--tail", "20", &p.container_name("djob-hanger")])
        );
        max_procs = max_procs.max(hangers());
        polls += 1;
        let hang = lines("hang")
            .first()
            .copied()
            .filter(|_| stale_seen.is_none());
        if let Some(hang) = hang {
            let age = std::fs::metadata(&beat)
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| SystemTime::now().duration_since(t).ok());
            if age.is_some_and(|a| a.as_secs_f64() > LIMIT + 0.5) {
                // While it hangs: what on-call sees. All of it must come
                // before the restart (checked below).
                let at = now();
                let st = p.status_json();
                let text = p.ok(&["status"]);
                stale_seen = Some((at, st, text, check()));
                assert!(
                    after(lines("start"), hang).is_empty(),
                    "status and check saw the hung daemon, not its successor"
                );
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let hangs = lines("hang");
    let kills = after(kill_times(), hangs[0] - 1.0);
    let starts = after(lines("start"), kills[0]);
    assert_eq!(max_procs, 1, "never two hangers, in {polls} polls");
    let (stale_at, st, text, (code, line)) =
        stale_seen.expect("the test looked while the beat was stale");
    assert!(
        hangs[0] < stale_at && stale_at <= kills[0] + GRACE,
        "hung, then seen stale before the SIGKILL: hang {hangs:?}, stale {stale_at}, kills {kills:?}"
    );
    let hb = st["djobs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["name"] == "hanger")
        .map(|d| d["heartbeat"].clone())
        .unwrap();
    assert_eq!(hb["stale"], true, "status --json showed it stale: {hb}");
    // whole seconds: seen past LIMIT + 0.5 s by the beat file's mtime
    assert!(hb["age_s"].as_f64().unwrap() >= LIMIT, "{hb}");
    assert!(
        text.lines()
            .any(|l| l.starts_with("djob") && l.contains("hanger") && l.contains("STALE ")),
        "the status table shows STALE and the age: {text}"
    );
    assert_eq!(
        code,
        Some(2),
        "check is CRITICAL while the beat is stale: {line}"
    );
    assert!(line.contains("djob hanger has not beaten for"), "{line}");
    assert!(line.contains(&format!(";;{LIMIT}")), "{line}");

    // The time bounds: killed once the beat is past the limit, at the
    // watchdog's next look; back after the grace and a start.
    let last_beat = hangs[0] - 0.5;
    let killed = kills[0] - last_beat;
    assert!(
        killed > LIMIT - ROUNDING && killed <= LIMIT + STEP + ROUNDING + SLACK,
        "killed {killed:.1} s after the last beat (limit {LIMIT} s, step {STEP} s)"
    );
    let back = starts[0] - last_beat;
    assert!(
        back <= LIMIT + STEP + ROUNDING + GRACE + START_BUDGET + SLACK,
        "started again {back:.1} s after the last beat: starts {starts:?}, kills {kills:?}"
    );
    let c = p.container_name("djob-hanger");
    let restarts: i64 = docker_ok(&["inspect", "-f", "{{.RestartCount}}", &c])
        .parse()
        .unwrap();
    assert!(restarts >= 1, "the same container restarted: {restarts}");
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
        logs.contains("no heartbeat for")
            && logs.contains(&format!("ignored SIGTERM for {GRACE}s: SIGKILL")),
        "the watchdog says what it did: {logs}"
    );

    // Afterwards: the new daemon beats. A watchdog restart in the last hour
    // is a WARNING, not CRITICAL, and stays so.
    let (code, line) = wait_for(30, "check to settle on WARNING", || {
        let (code, line) = check();
        (code == Some(1)).then_some((code, line))
    });
    assert!(
        line.contains("djob hanger restarted in the last hour"),
        "{line}"
    );
    for _ in 0..3 {
        std::thread::sleep(Duration::from_secs(1));
        let (again, line) = check();
        assert_eq!(again, code, "still WARNING: {line}");
    }
    assert_eq!(
        after(kill_times(), hangs[0] - 1.0).len(),
        1,
        "it hung once and was killed once"
    );
    let all_kills = kill_times().len();
    let st = p.status_json();
    let d = st["djobs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["name"] == "hanger")
        .cloned()
        .unwrap();
    assert_eq!(d["heartbeat"]["limit_s"], LIMIT as u64, "{d}");
    assert_eq!(d["heartbeat"]["stale"], false, "{d}");
    assert_eq!(d["heartbeat"]["kills"], all_kills, "{d}");
    assert_eq!(d["heartbeat"]["kills_last_hour"], all_kills, "{d}");
    assert_eq!(hangers(), 1);
    eprintln!(
        "heartbeat {LIMIT}s, grace {GRACE}s: last beat -> kill {killed:.1} s, -> restart {back:.1} s"
    );
}
