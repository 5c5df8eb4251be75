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
    /// On a fleet: the host it runs on, or where it should (its stopped
    /// container, else the first host of its placement).
    pub host: Option<String>,
    /// Hosts of its placement that could not be looked at: not seen
    /// running is then unknown, not "not running".
    pub unseen: Vec<String>,
    /// For perfdata labels: `cron`, `billing`.
    pub label: String,
    pub running: bool,
    pub tag: Option<String>,
    pub restarts: i64,
    /// Seconds since it last started.
    pub uptime_s: Option<i64>,
    /// Kills by its heartbeat watchdog in the last hour: restarts the
    /// container's count may not show.
    pub watchdog_kills: usize,
    /// Seconds since the daemon's last heartbeat (None: it could not be
    /// read), and its limit, when the djob has a heartbeat configured.
    pub heartbeat: Option<(Option<i64>, Duration)>,
}

/// One host that serves the site (the fleet of one, or a portal host of
/// `[hosts]`).
#[derive(Debug, Clone)]
pub struct HostSeen {
    /// None for the fleet of one: its messages name no host.
    pub name: Option<String>,
    /// Why it could not be looked at: its state is unknown, never assumed.
    pub unreachable: Option<String>,
    pub live_tag: Option<String>,
    /// The live color answered (2xx naming the live tag) through the host
    /// nginx (or its socket, when no `public_url` is configured).
    pub live_answers: Result<(), String>,
}

impl HostSeen {
    fn prefix(&self) -> String {
        self.name
            .as_ref()
            .map(|n| format!("{n}: "))
            .unwrap_or_default()
    }
}

#[derive(Debug, Clone)]
pub struct CheckInput {
    pub project: String,
    /// Every host (one for the fleet of one), and whether it serves the
    /// site: a worker-only host of `[hosts]` only has to be reachable.
    pub hosts: Vec<(HostSeen, bool)>,
    pub workers: Vec<WorkerSeen>,
    /// Running portals: `portal blue [on web1]`, restarts, seconds up.
    pub portals: Vec<(String, i64, Option<i64>)>,
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
    let fleet = i.hosts.iter().any(|(h, _)| h.name.is_some());
    let (mut serving, mut answering) = (0, 0);
    for (h, serves) in &i.hosts {
        let at = h.prefix();
        if let Some(why) = &h.unreachable {
            add(
                State::Critical,
                format!("{at}cannot be reached, its state is unknown: {why}"),
            );
            serving += u8::from(*serves);
            continue;
        }
        if !serves {
            continue;
        }
        serving += 1;
        match (&h.live_tag, &h.live_answers) {
            (None, _) => add(State::Critical, format!("{at}nothing is live")),
            (Some(t), Err(why)) => add(
                State::Critical,
                format!("{at}the live release {t} does not answer: {why}"),
            ),
            (Some(_), Ok(())) => answering += 1,
        }
    }
    perf.push(format!("'live_answers'={answering};;{serving}:"));
    if fleet {
        let down = i
            .hosts
            .iter()
            .filter(|(h, _)| h.unreachable.is_some())
            .count();
        perf.push(format!("'hosts_unreachable'={down};;0"));
    }
    // The tag the workers should run: the one the (first reachable) site
    // serves.
    let live_tag = i
        .hosts
        .iter()
        .filter(|(h, serves)| *serves && h.unreachable.is_none())
        .find_map(|(h, _)| h.live_tag.clone());
    for w in &i.workers {
        let on = w
            .host
            .as_ref()
            .map(|h| format!(" on {h}"))
            .unwrap_or_default();
        if !w.running && w.unseen.is_empty() {
            add(State::Critical, format!("{}{on} is not running", w.name));
        } else if !w.running {
            add(
                State::Unknown,
                format!(
                    "{} is not seen running: {} cannot be reached",
                    w.name,
                    w.unseen.join(", ")
                ),
            );
        }
        if let Some((age, limit)) = w.heartbeat {
            let limit_s = limit.as_secs() as i64;
            // The watchdog gives a new daemon a full limit from its start
            // (it touches the beat when it sees a new pid): the age that
            // counts is at most the uptime, which also covers a beat not
            // written yet, or one left by the container's previous run.
            let age = match (age, w.uptime_s.filter(|_| w.running)) {
                (Some(a), Some(up)) => Some(a.min(up)),
                (None, Some(up)) if up <= limit_s => Some(up),
                (age, _) => age,
            };
            match age {
                Some(age) if w.running && age > limit_s => add(
                    State::Critical,
                    format!(
                        "{}{on} has not beaten for {age}s (limit {limit_s}s)",
                        w.name
                    ),
                ),
                None if w.running => add(
                    State::Unknown,
                    format!("{}{on}: its heartbeat cannot be read", w.name),
                ),
                _ => {}
            }
            // No warning level: the watchdog acts at the limit. `U` is the
            // plugin convention for a value that could not be measured.
            let value = age.map(|a| format!("{a}s")).unwrap_or_else(|| "U".into());
            perf.push(format!("'{}_heartbeat_age'={value};;{limit_s}", w.label));
        }
        if w.watchdog_kills > 0 {
            add(
                State::Warning,
                format!(
                    "{}{on} restarted in the last hour ({} kill(s) by its heartbeat watchdog)",
                    w.name, w.watchdog_kills
                ),
            );
        } else if w.restarts > 0 && w.uptime_s.is_some_and(|u| u < HOUR) {
            add(
                State::Warning,
                format!(
                    "{}{on} restarted in the last hour ({} restarts in all)",
                    w.name, w.restarts
                ),
            );
        }
        perf.push(format!("'{}_restarts'={}c", w.label, w.restarts));
        if let (Some(live), Some(tag)) = (&live_tag, &w.tag) {
            if w.running && tag != live {
                add(
                    State::Warning,
                    format!(
                        "{}{on} runs {tag} but {live} is live: a promote did not finish",
                        w.name
                    ),
                );
            }
        }
    }
    for (name, restarts, up) in &i.portals {
        if *restarts > 0 && up.is_some_and(|u| u < HOUR) {
            add(
                State::Warning,
                format!("{name} restarted in the last hour ({restarts} restarts in all)"),
            );
        }
    }
    let portal_restarts: i64 = i.portals.iter().map(|p| p.1).sum();
    perf.push(format!("'portal_restarts'={portal_restarts}c"));
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
        0 if fleet => format!(
            "{}: live {} and answering on {answering} host(s), {} worker(s) running",
            i.project,
            live_tag.as_deref().unwrap_or("-"),
            i.workers.len()
        ),
        0 => format!(
            "{}: live {} and answering, {} worker(s) running",
            i.project,
            live_tag.as_deref().unwrap_or("-"),
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
mod tests;
