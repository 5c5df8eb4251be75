//! Cron in the right time zone (issue 17, item 4): with `[cron] timezone =
//! "Asia/Kolkata"` (UTC+05:30 all year, so both the hour and the minute
//! differ from UTC), a job scheduled for an upcoming minute of Kolkata time
//! runs at that minute. Read as UTC, that schedule names a time hours away:
//! before this change cron silently ran the crontab in UTC.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

mod common;
use common::*;

const ZONE: &str = "Asia/Kolkata";
const OFFSET: i64 = 5 * 3600 + 30 * 60;

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// Removes the test's one-off image.
struct Image(String);
impl Drop for Image {
    fn drop(&mut self) {
        let _ = docker(&["rmi", "-f", &self.0]);
    }
}

#[test]
fn a_job_scheduled_in_the_configured_zone_runs_at_that_minute() {
    // The shared layers, built once.
    ensure_image("1.0.0");
    // One job for each of the next minutes from the second on, each
    // scheduled in Kolkata time and writing which minute it was meant for:
    // however long the build and promote take on a loaded machine, the
    // first minute after them is checked.
    let first = (now() / 60 + 2) * 60;
    let targets: Vec<i64> = (0..12).map(|k| first + 60 * k).collect();
    let hm = |t: i64| ((t / 3600) % 24, (t / 60) % 60);
    let mut crontab = String::new();
    for &t in &targets {
        let (hour, minute) = hm(t + OFFSET);
        assert!((hour, minute) != hm(t));
        crontab.push_str(&format!(
            "{minute} {hour} * * * python -c \"import os, time; open('/data/tz.log', 'a').write(f'{t} {{time.time()}} {{os.environ.get(chr(84) + chr(90))}}' + chr(10))\"\n"
        ));
    }
    let tag = format!("tz-{}", first / 60);
    let image = Image(ensure_variant(&tag, |app| {
        std::fs::write(app.join("crontab"), &crontab).unwrap()
    }));
    let p = Project::new("tz", "");
    let cfg = std::fs::read_to_string(&p.config).unwrap();
    let old = "[cron]\nstop_grace = \"5s\"";
    assert!(cfg.contains(old), "the harness config changed: {cfg}");
    std::fs::write(
        &p.config,
        cfg.replace(old, &format!("{old}\ntimezone = \"{ZONE}\"")),
    )
    .unwrap();
    p.ok(&["promote", &tag]);
    let cron = p.container_name("cron");
    let date = docker_ok(&["exec", &cron, "date", "+%Z %z"]);
    assert_eq!(date, "IST +0530", "the cron container runs in {ZONE}");
    let target = *targets
        .iter()
        .find(|&&t| t > now() + 5)
        .expect("the build and promote took past every scheduled minute");
    let (hour, minute) = hm(target + OFFSET);
    let (utc_hour, utc_minute) = hm(target);

    let log = p.data().join("tz.log");
    let wait = (target + 75 - now()).max(0) as u64;
    std::thread::sleep(Duration::from_secs(wait));
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    let runs: Vec<(f64, String)> = text
        .lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            let meant: i64 = w.next()?.parse().ok()?;
            (meant == target).then_some(())?;
            Some((w.next()?.parse().ok()?, w.next()?.to_string()))
        })
        .collect();
    assert_eq!(
        runs.len(),
        1,
        "one run, at {hour:02}:{minute:02} {ZONE} ({utc_hour:02}:{utc_minute:02} UTC): {text:?}\n{}",
        String::from_utf8_lossy(&docker(&["logs", "--tail", "20", &cron]).stderr)
    );
    let (ran, tz) = &runs[0];
    assert!(
        (target as f64..(target + 60) as f64).contains(ran),
        "ran at {ran}, scheduled for {target}"
    );
    assert_eq!(tz, ZONE, "the job sees TZ too");
    eprintln!(
        "timezone: scheduled {hour:02}:{minute:02} {ZONE}, ran {:.1} s into that minute ({utc_hour:02}:{utc_minute:02} UTC)",
        ran - target as f64
    );
    drop(p);
    drop(image);
}
