//! Cron across a swap of its container (`webdock restart cron`, and every
//! promote): the stop waits for jobs in progress up to `[cron] stop_grace`,
//! a job that outlives the grace is killed, and a minute that starts while
//! no crond runs is skipped, never caught up (Debian cron keeps no memory of
//! the minutes before its start). docs/operations.md tells on-call the same.
//!
//! The evidence is the example app's `$WEBDOCK_DATA/logs/cron.log`: `tick`
//! lines of the every-minute job, `start`/`end` lines of `cron_tick
//! --sleep S`, each with the writer's hostname (the container), pid and time.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

mod common;
use common::*;

#[derive(Debug, Clone, PartialEq, Eq)]
struct Line {
    event: String,
    host: String,
    pid: u32,
    ns: i64,
}

fn cron_log(p: &Project) -> Vec<Line> {
    let path = p.data().join("logs").join("cron.log");
    std::fs::read_to_string(&path)
        .unwrap_or_default()
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let [event, host, pid, ns] = f[..] else {
                panic!("bad line {l:?} in {}", path.display())
            };
            Line {
                event: event.into(),
                host: host.into(),
                pid: pid.parse().unwrap(),
                ns: ns.parse().unwrap(),
            }
        })
        .collect()
}

fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as i64
}

fn rfc3339_ns(s: &str) -> i64 {
    OffsetDateTime::parse(s.trim(), &Rfc3339)
        .unwrap_or_else(|e| panic!("bad time {s:?}: {e}"))
        .unix_timestamp_nanos() as i64
}

/// The project with `[cron] stop_grace` set to `grace`.
fn project(hint: &str, grace: &str) -> Project {
    let p = Project::new(hint, "");
    let cfg = std::fs::read_to_string(&p.config).unwrap();
    let old = "[cron]\nstop_grace = \"5s\"";
    assert!(cfg.contains(old), "the harness config changed: {cfg}");
    std::fs::write(
        &p.config,
        cfg.replace(old, &format!("[cron]\nstop_grace = \"{grace}\"")),
    )
    .unwrap();
    p
}

/// Id and start time (ns) of the project's cron container.
fn cron_container(p: &Project) -> (String, i64) {
    let out = docker_ok(&[
        "inspect",
        "-f",
        "{{.Id}} {{.State.StartedAt}}",
        &p.container_name("cron"),
    ]);
    let (id, started) = out.split_once(' ').unwrap();
    (id.to_string(), rfc3339_ns(started))
}

/// Starts `cron_tick --sleep secs` in the cron container as the app user,
/// detached, like a job cron started; returns its `start` line.
fn start_job(p: &Project, secs: f64) -> Line {
    let (id, _) = cron_container(p);
    let t = now_ns();
    docker_ok(&[
        "exec",
        "-d",
        "-u",
        "app",
        &p.container_name("cron"),
        "sh",
        "-c",
        &format!("cd /app && exec python manage.py cron_tick --sleep {secs}"),
    ]);
    wait_for(60, "the job's start line", || {
        cron_log(p)
            .into_iter()
            .find(|l| l.event == "start" && id.starts_with(&l.host) && l.ns >= t)
    })
}

fn restart_cron(p: &Project) -> u64 {
    let out = p.ok(&["--json", "restart", "cron"]);
    let v: serde_json::Value = serde_json::from_str(out.trim()).expect("JSON report");
    assert_eq!(v["role"], "cron", "{v}");
    v["down_ms"].as_u64().unwrap()
}

fn crons(p: &Project) -> Vec<String> {
    p.containers()
        .into_iter()
        .filter(|c| c.ends_with("-cron"))
        .collect()
}

#[test]
fn restarting_cron_waits_for_the_job_in_progress() {
    ensure_image("1.0.0");
    let p = project("crwait", "30s");
    p.ok(&["promote", "1.0.0"]);
    let (old, _) = cron_container(&p);
    let job = start_job(&p, 6.0);
    let down = restart_cron(&p);
    let (new, new_started) = cron_container(&p);
    assert_ne!(old, new);
    let end = cron_log(&p)
        .into_iter()
        .find(|l| l.event == "end" && l.host == job.host && l.pid == job.pid)
        .unwrap_or_else(|| panic!("the job {job:?} was cut: no end line\n{:#?}", cron_log(&p)));
    assert!(
        end.ns < new_started,
        "the job ended ({}) before the new cron container started ({new_started})",
        end.ns
    );
    assert_eq!(crons(&p), [p.container_name("cron")]);
    assert_eq!(p.status_json()["cron"]["state"], "running");
    eprintln!(
        "cron swap with a job in progress: down {down} ms; the job ended {} ms before the new container started",
        (new_started - end.ns) / 1_000_000
    );
}

#[test]
fn a_job_longer_than_the_stop_grace_is_killed_at_the_grace() {
    ensure_image("1.0.0");
    let p = project("crkill", "5s");
    p.ok(&["promote", "1.0.0"]);
    let job = start_job(&p, 120.0);
    let down = restart_cron(&p);
    let (_, new_started) = cron_container(&p);
    assert!(
        !cron_log(&p)
            .iter()
            .any(|l| l.event == "end" && l.host == job.host && l.pid == job.pid),
        "a 120 s job cannot have ended within a 5 s grace"
    );
    assert!(job.ns < new_started);
    assert_eq!(crons(&p), [p.container_name("cron")]);
    eprintln!("cron swap cutting a job at a 5 s grace: down {down} ms");
}

/// Follows the old cron container's log with Docker's timestamps, to learn
/// when its crond was down (`webdock-init: cron stopped`, printed once
/// s6 saw crond exit).
fn follow_logs(p: &Project, into: &Path) -> std::process::Child {
    let f = std::fs::File::create(into).unwrap();
    Command::new("docker")
        .args(["logs", "-f", "-t", &p.container_name("cron")])
        .stdout(f.try_clone().unwrap())
        .stderr(f)
        .stdin(Stdio::null())
        .spawn()
        .unwrap()
}

#[test]
fn a_minute_that_starts_during_the_swap_is_skipped_not_caught_up() {
    ensure_image("1.0.0");
    let p = project("crmin", "60s");
    p.ok(&["promote", "1.0.0"]);
    const MIN: i64 = 60_000_000_000;
    for attempt in 0..3 {
        // Start the swap some seconds before a minute boundary and hold it
        // open past the boundary with a job that ends 12 s after it.
        // Between :30 and :42, so that the job (at most 42 s) ends well
        // within the 60 s grace.
        const S: i64 = 1_000_000_000;
        let into_minute = now_ns().rem_euclid(MIN);
        let wait = match into_minute {
            t if t < 30 * S => 30 * S - t,
            t if t > 42 * S => MIN - t + 30 * S,
            _ => 0,
        };
        std::thread::sleep(Duration::from_nanos(wait as u64));
        let now = now_ns();
        let boundary = now - now.rem_euclid(MIN) + MIN;
        let secs = (boundary + 12_000_000_000 - now) as f64 / 1e9;
        let (old, _) = cron_container(&p);
        let job = start_job(&p, secs);
        let log = p.path().join(format!("old-cron-{attempt}.log"));
        let mut follower = follow_logs(&p, &log);
        restart_cron(&p);
        let (new, up) = cron_container(&p);
        let _ = follower.wait();
        let text = std::fs::read_to_string(&log).unwrap();
        let down = text
            .lines()
            .find(|l| l.contains("webdock-init: cron stopped"))
            .map(|l| rfc3339_ns(l.split_whitespace().next().unwrap()))
            .unwrap_or_else(|| {
                panic!("the old cron container never said its crond stopped:\n{text}")
            });
        let end = cron_log(&p)
            .into_iter()
            .find(|l| l.event == "end" && l.host == job.host && l.pid == job.pid)
            .expect("the job ran to its end");
        assert!(end.ns < up, "the job ended before the new cron started");
        // The minutes whose first second fell while no crond ran.
        let skipped: Vec<i64> = (down.div_euclid(MIN) + 1..=up.div_euclid(MIN))
            .map(|m| m * MIN)
            .filter(|&b| b > down && b < up)
            .collect();
        if skipped.is_empty() {
            eprintln!(
                "attempt {attempt}: crond went down after the boundary (machine slow); again"
            );
            continue;
        }
        // The new crond schedules from its own start: its first tick is at
        // the next minute after it came up.
        let first_new = wait_for(150, "a tick from the new cron container", || {
            cron_log(&p)
                .into_iter()
                .find(|l| l.event == "tick" && new.starts_with(&l.host))
        });
        let ticks = cron_log(&p);
        for b in &skipped {
            let hit: Vec<&Line> = ticks
                .iter()
                .filter(|l| l.event == "tick" && l.ns.div_euclid(MIN) * MIN == *b)
                .collect();
            assert!(
                hit.is_empty(),
                "minute {b} started during the swap, yet it ran: {hit:?}"
            );
        }
        assert!(
            first_new.ns.div_euclid(MIN) * MIN > up,
            "the new crond ran a minute from before its start (a catch-up): {first_new:?}, up at {up}"
        );
        assert!(
            ticks
                .iter()
                .filter(|l| l.event == "tick")
                .all(|l| old.starts_with(&l.host) || new.starts_with(&l.host)),
            "ticks only from the two cron containers"
        );
        assert_eq!(crons(&p), [p.container_name("cron")]);
        eprintln!(
            "cron swap over a minute boundary: crond down for {} ms, {} minute(s) skipped, the new cron's first tick {} s after its start",
            (up - down) / 1_000_000,
            skipped.len(),
            (first_new.ns - up) / 1_000_000_000
        );
        return;
    }
    panic!("three attempts and the swap never spanned a minute boundary");
}
