//! `webdock check`: the verdict for the monitoring people already run
//! (Nagios, Icinga, monit), in the Nagios plugin convention: one line of
//! text, exit 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN, performance data
//! after a `|`.
//!
//! [`evaluate`] is pure: it turns what was observed ([`CheckInput`]) into a
//! verdict, and is table-tested below. Gathering the input is I/O and lives
//! in `commands/check.rs`.

use std::fmt;
use std::time::Duration;

use serde::Serialize;

/// Nagios states, in order of severity (UNKNOWN is below CRITICAL only in
/// its exit code: a check that cannot see must not hide what it saw).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum State {
    Ok,
    Warning,
    Unknown,
    Critical,
}

impl State {
    pub fn exit_code(self) -> u8 {
        match self {
            State::Ok => 0,
            State::Warning => 1,
            State::Critical => 2,
            State::Unknown => 3,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            State::Ok => "OK",
            State::Warning => "WARNING",
            State::Critical => "CRITICAL",
            State::Unknown => "UNKNOWN",
        }
    }
}

/// One worker (cron or a djob) as the check sees it.
#[derive(Debug, Clone)]
pub struct WorkerSeen {
    /// `cron` or `djob billing`.
    pub name: String,
    /// For perfdata labels: `cron`, `billing`.
    pub label: String,
    pub running: bool,
    pub tag: Option<String>,
    pub restarts: i64,
    /// Seconds since it last started.
    pub uptime_s: Option<i64>,
    /// Seconds since the daemon's last heartbeat, and its limit, when the
    /// djob has a heartbeat configured.
    pub heartbeat: Option<(i64, Duration)>,
}

#[derive(Debug, Clone)]
pub struct CheckInput {
    pub project: String,
    pub live_tag: Option<String>,
    /// The live color answered (2xx naming the live tag) through the host
    /// nginx (or its socket, when no `public_url` is configured).
    pub live_answers: Result<(), String>,
    pub workers: Vec<WorkerSeen>,
    /// A portal of another tag than the live one, and seconds since it
    /// stopped being live.
    pub idle_portal: Option<(String, i64)>,
    pub idle_portal_warn: Duration,
    /// Directory, percent of its filesystem in use.
    pub disks: Vec<(String, f64)>,
    pub disk_warn_pct: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Problem {
    pub state: State,
    pub message: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Verdict {
    pub state: State,
    pub summary: String,
    pub problems: Vec<Problem>,
    /// `'label'=value[unit];warn;crit`
    pub perfdata: Vec<String>,
}

impl fmt::Display for Verdict {
    /// The plugin's one line: `WEBDOCK CRITICAL - djob billing is not running | 'x'=1`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "WEBDOCK {} - {}", self.state.as_str(), self.summary)?;
        if !self.perfdata.is_empty() {
            write!(f, " | {}", self.perfdata.join(" "))?;
        }
        Ok(())
    }
}

/// A verdict when the check could not look (engine down, bad config).
pub fn unknown(why: &str) -> Verdict {
    Verdict {
        state: State::Unknown,
        summary: why.lines().next().unwrap_or(why).to_string(),
        problems: vec![Problem {
            state: State::Unknown,
            message: why.to_string(),
        }],
        perfdata: vec![],
    }
}

const HOUR: i64 = 3600;

pub fn evaluate(i: &CheckInput) -> Verdict {
    let mut problems = Vec::new();
    let mut perf = Vec::new();
    let mut add = |state, message: String| problems.push(Problem { state, message });
    match (&i.live_tag, &i.live_answers) {
        (None, _) => add(State::Critical, "nothing is live".into()),
        (Some(t), Err(why)) => add(
            State::Critical,
            format!("the live release {t} does not answer: {why}"),
        ),
        (Some(_), Ok(())) => {}
    }
    perf.push(format!(
        "'live_answers'={};;1:",
        u8::from(i.live_answers.is_ok())
    ));
    for w in &i.workers {
        if !w.running {
            add(State::Critical, format!("{} is not running", w.name));
        }
        if let Some((age, limit)) = w.heartbeat {
            let limit_s = limit.as_secs() as i64;
            if w.running && age > limit_s {
                add(
                    State::Critical,
                    format!("{} has not beaten for {age}s (limit {limit_s}s)", w.name),
                );
            }
            perf.push(format!(
                "'{}_heartbeat_age'={age}s;{};{}",
                w.label,
                limit_s / 2,
                limit_s
            ));
        }
        if w.restarts > 0 && w.uptime_s.is_some_and(|u| u < HOUR) {
            add(
                State::Warning,
                format!(
                    "{} restarted in the last hour ({} restarts in all)",
                    w.name, w.restarts
                ),
            );
        }
        perf.push(format!("'{}_restarts'={}c", w.label, w.restarts));
        if let (Some(live), Some(tag)) = (&i.live_tag, &w.tag) {
            if w.running && tag != live {
                add(
                    State::Warning,
                    format!(
                        "{} runs {tag} but {live} is live: a promote did not finish",
                        w.name
                    ),
                );
            }
        }
    }
    if let Some((tag, age)) = &i.idle_portal {
        let warn = i.idle_portal_warn.as_secs() as i64;
        if *age > warn {
            add(
                State::Warning,
                format!(
                    "the portal of {tag} has run beside the live one for {age}s (over {warn}s)"
                ),
            );
        }
    }
    for (dir, pct) in &i.disks {
        if *pct > i.disk_warn_pct {
            add(
                State::Warning,
                format!("the disk of {dir} is {pct:.0}% full"),
            );
        }
    }
    if let Some((_, pct)) = i.disks.iter().max_by(|a, b| a.1.total_cmp(&b.1)) {
        perf.push(format!("'disk_used'={pct:.0}%;{:.0};", i.disk_warn_pct));
    }
    let state = problems.iter().map(|p| p.state).max().unwrap_or(State::Ok);
    let summary = match problems.iter().filter(|p| p.state == state).count() {
        0 => format!(
            "{}: live {} and answering, {} worker(s) running",
            i.project,
            i.live_tag.as_deref().unwrap_or("-"),
            i.workers.len()
        ),
        n => {
            let worst: Vec<&str> = problems
                .iter()
                .filter(|p| p.state == state)
                .map(|p| p.message.as_str())
                .collect();
            let more = problems.len() - n;
            let mut s = format!("{}: {}", i.project, worst.join("; "));
            if more > 0 {
                s.push_str(&format!(" (+{more} lesser)"));
            }
            s
        }
    };
    Verdict {
        state,
        summary,
        problems,
        perfdata: perf,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn worker(name: &str) -> WorkerSeen {
        WorkerSeen {
            name: format!("djob {name}"),
            label: name.into(),
            running: true,
            tag: Some("2".into()),
            restarts: 0,
            uptime_s: Some(5 * HOUR),
            heartbeat: None,
        }
    }

    fn fine() -> CheckInput {
        CheckInput {
            project: "shop".into(),
            live_tag: Some("2".into()),
            live_answers: Ok(()),
            workers: vec![worker("billing")],
            idle_portal: Some(("1".into(), 60)),
            idle_portal_warn: Duration::from_secs(7 * 24 * 3600),
            disks: vec![("/var/lib/webdock".into(), 40.0)],
            disk_warn_pct: 90.0,
        }
    }

    #[test]
    fn verdicts() {
        type Case = (&'static str, fn(&mut CheckInput), State, &'static str);
        let cases: Vec<Case> = vec![
            ("all fine", |_| {}, State::Ok, "live 2 and answering"),
            (
                "portal down",
                |i| i.live_answers = Err("502".into()),
                State::Critical,
                "does not answer: 502",
            ),
            (
                "nothing live",
                |i| i.live_tag = None,
                State::Critical,
                "nothing is live",
            ),
            (
                "djob stopped",
                |i| i.workers[0].running = false,
                State::Critical,
                "djob billing is not running",
            ),
            (
                "stale heartbeat",
                |i| i.workers[0].heartbeat = Some((200, Duration::from_secs(60))),
                State::Critical,
                "has not beaten for 200s",
            ),
            (
                "fresh heartbeat",
                |i| i.workers[0].heartbeat = Some((3, Duration::from_secs(60))),
                State::Ok,
                "answering",
            ),
            (
                "recent restart",
                |i| {
                    i.workers[0].restarts = 2;
                    i.workers[0].uptime_s = Some(30)
                },
                State::Warning,
                "restarted in the last hour",
            ),
            (
                "old restart",
                |i| i.workers[0].restarts = 2,
                State::Ok,
                "answering",
            ),
            (
                "half promote",
                |i| i.workers[0].tag = Some("1".into()),
                State::Warning,
                "a promote did not finish",
            ),
            (
                "old idle portal",
                |i| i.idle_portal = Some(("1".into(), 8 * 24 * 3600)),
                State::Warning,
                "beside the live one",
            ),
            (
                "disk full",
                |i| i.disks[0].1 = 97.0,
                State::Warning,
                "97% full",
            ),
        ];
        for (what, change, state, text) in cases {
            let mut i = fine();
            change(&mut i);
            let v = evaluate(&i);
            assert_eq!(v.state, state, "{what}: {v}");
            assert!(v.to_string().contains(text), "{what}: {v}");
        }
    }

    #[test]
    fn the_worst_state_wins_and_perfdata_follows_the_bar() {
        let mut i = fine();
        i.disks[0].1 = 97.0;
        i.workers[0].running = false;
        i.workers[0].heartbeat = Some((3, Duration::from_secs(60)));
        let v = evaluate(&i);
        assert_eq!(v.state, State::Critical);
        assert_eq!(v.state.exit_code(), 2);
        let line = v.to_string();
        assert!(
            line.starts_with("WEBDOCK CRITICAL - shop: djob billing is not running (+1 lesser) | "),
            "{line}"
        );
        assert!(line.contains("'billing_heartbeat_age'=3s;30;60"), "{line}");
        assert!(line.contains("'live_answers'=1;;1:"), "{line}");
        assert_eq!(
            unknown("cannot reach the Docker engine\nhint: x")
                .state
                .exit_code(),
            3
        );
    }
}
