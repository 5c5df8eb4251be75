//! `webdock check`: gathers what `check::evaluate` judges (every host's
//! status report, one request through each host's nginx, disk use), prints
//! the Nagios line (or `--json`) and exits with the plugin's code. Any
//! error on the way is UNKNOWN (exit 3), never a crash with exit 1.
//!
//! With `[hosts]` every host is asked at once; one that does not answer is
//! CRITICAL by name, and each worker is judged on the host it runs on (or
//! should run on), never on the controller.

use std::path::Path;
use std::process::ExitCode;

use futures_util::future::join_all;
use serde_json::json;

use crate::check::{self, CheckInput, HostSeen, Verdict, WorkerSeen};
use crate::clock::age_secs;
use crate::config::Config;
use crate::engine::Engine;
use crate::health;
use crate::history::Entry;
use crate::host::Host;
use crate::out::Out;
use crate::report::{self, HeartbeatView, Row, StatusReport};
use crate::roles::Role;

pub async fn run(cfg: anyhow::Result<Config>, out: Out) -> anyhow::Result<ExitCode> {
    let v = match cfg {
        Ok(cfg) => gather(&cfg)
            .await
            .unwrap_or_else(|e| check::unknown(&format!("{e:#}"))),
        Err(e) => check::unknown(&format!("{e:#}")),
    };
    if out.json {
        out.data_json(&json!({
            "state": v.state,
            "exit_code": v.state.exit_code(),
            "summary": v.summary,
            "problems": v.problems,
            "perfdata": v.perfdata,
        }));
    } else {
        out.data(&v.to_string());
    }
    Ok(ExitCode::from(v.state.exit_code()))
}

/// One host's report: its name (None for the fleet of one), whether it
/// serves the site, and what it showed (or why it could not be asked).
type Seen = (
    Option<String>,
    bool,
    Result<(StatusReport, HostSeen), String>,
);

async fn gather(cfg: &Config) -> anyhow::Result<Verdict> {
    let (seen, disks, history) = if cfg.hosts.is_empty() {
        let host = super::local_host(cfg).await?;
        let r = report::status(cfg, &host).await?;
        let site = site(cfg, &host, &r).await;
        let disks = [host.layout.state_dir(), host.layout.socket_dir()]
            .iter()
            .filter_map(|d| disk_used_pct(d).map(|p| (d.display().to_string(), p)))
            .collect();
        let history = r.history.clone();
        (vec![(None, true, Ok((r, site)))], disks, history)
    } else {
        let seen = join_all(cfg.hosts.iter().map(|h| async move {
            let r: anyhow::Result<(StatusReport, HostSeen)> = async {
                let d = crate::fleet::connect_one(h).await?;
                let host = Host::remote(cfg, h, d);
                let r = report::status(cfg, &host).await?;
                let site = site(cfg, &host, &r).await;
                Ok((r, site))
            }
            .await;
            let why = |e: anyhow::Error| {
                let e = format!("{e:#}");
                e.lines().next().unwrap_or_default().to_string()
            };
            (Some(h.name.clone()), h.runs("portal"), r.map_err(why))
        }))
        .await;
        // The fleet's history is the controller's; the hosts' disks are
        // not looked at from here.
        let (entries, _) = crate::history::read(&cfg.layout().history()).unwrap_or_default();
        (seen, vec![], entries.into_iter().rev().collect())
    };
    Ok(check::evaluate(&input(cfg, &seen, disks, &history)))
}

/// What the check judges, from every host's report.
fn input(cfg: &Config, seen: &[Seen], disks: Vec<(String, f64)>, history: &[Entry]) -> CheckInput {
    let hosts = seen
        .iter()
        .map(|(name, serves, r)| {
            let h = match r {
                Ok((_, site)) => site.clone(),
                Err(why) => HostSeen {
                    name: name.clone(),
                    unreachable: Some(why.clone()),
                    live_tag: None,
                    live_answers: Err(why.clone()),
                },
            };
            (h, *serves)
        })
        .collect();
    let workers = crate::report::fleet::worker_roles(cfg)
        .iter()
        .map(|role| worker(cfg, role, seen))
        .collect();
    let mut portals = Vec::new();
    for (name, _, r) in seen {
        if let Ok((r, _)) = r {
            for p in r.portals.iter().filter(|p| p.row.running) {
                let on = name
                    .as_ref()
                    .map(|n| format!(" on {n}"))
                    .unwrap_or_default();
                portals.push((
                    format!("portal {}{on}", p.color),
                    p.row.restarts,
                    p.row.uptime_s,
                ));
            }
        }
    }
    // The other color, running another tag: how long since traffic left it
    // (the newest successful release in history).
    let since_flip = history
        .iter()
        .find(|e| e.outcome.is_ok() && e.action.is_release())
        .and_then(|e| age_secs(&e.when));
    let idle_portal = seen.iter().find_map(|(name, _, r)| {
        let (r, site) = r.as_ref().ok()?;
        let p = r
            .portals
            .iter()
            .find(|p| !p.live && p.row.running && p.row.tag != site.live_tag)?;
        let on = name
            .as_ref()
            .map(|n| format!(" on {n}"))
            .unwrap_or_default();
        Some((format!("{}{on}", p.row.tag.clone()?), since_flip?))
    });
    CheckInput {
        project: cfg.project.clone(),
        hosts,
        workers,
        portals,
        idle_portal,
        idle_portal_warn: cfg.check.idle_portal_warn,
        disks,
        disk_warn_pct: cfg.check.disk_warn,
    }
}

/// One worker as the check judges it: where it runs (the first host that
/// runs it), else where its stopped container is, else the first host of
/// its placement; the hosts of its placement that could not be asked.
fn worker(cfg: &Config, role: &Role, seen: &[Seen]) -> WorkerSeen {
    let (placed, _) = cfg.placement(role);
    let mut rows: Vec<(Option<&String>, &Row, Option<&HeartbeatView>)> = Vec::new();
    let mut unseen = Vec::new();
    for (name, _, r) in seen {
        match r {
            Ok((r, _)) => match role {
                Role::Cron => rows.extend(r.cron.as_ref().map(|c| (name.as_ref(), c, None))),
                Role::Djob(n) => rows.extend(
                    r.djobs
                        .iter()
                        .filter(|d| &d.name == n)
                        .map(|d| (name.as_ref(), &d.row, d.heartbeat.as_ref())),
                ),
                _ => {}
            },
            Err(_) => unseen.extend(name.iter().filter(|n| placed.contains(n)).cloned()),
        }
    }
    let pick = rows
        .iter()
        .find(|(_, r, _)| r.running)
        .or_else(|| rows.iter().find(|(_, r, _)| r.container.is_some()))
        .or_else(|| rows.first());
    let (label, heartbeat_limit) = match role {
        Role::Djob(n) => (n.clone(), cfg.djob(n).and_then(|d| d.heartbeat)),
        _ => ("cron".to_string(), None),
    };
    let mut w = WorkerSeen {
        name: role.describe(),
        host: pick.and_then(|(h, _, _)| h.cloned()).or_else(|| {
            (!cfg.hosts.is_empty())
                .then(|| placed.first().cloned())
                .flatten()
        }),
        unseen,
        label,
        running: pick.is_some_and(|(_, r, _)| r.running),
        tag: pick.and_then(|(_, r, _)| r.tag.clone()),
        restarts: pick.map(|(_, r, _)| r.restarts).unwrap_or(0),
        uptime_s: pick.and_then(|(_, r, _)| r.uptime_s),
        watchdog_kills: 0,
        heartbeat: None,
    };
    let hb = pick.and_then(|(_, _, h)| *h);
    // A djob with a heartbeat whose age could not be read is unknown,
    // never fresh.
    w.heartbeat = heartbeat_limit.map(|limit| (hb.and_then(|h| h.age_s).map(|a| a as i64), limit));
    w.watchdog_kills = hb.map_or(0, |h| h.kills_last_hour);
    w
}

/// Whether the live release answers through the host's nginx (its
/// `public_url`), or through the live socket when none is configured.
async fn site<E: Engine>(cfg: &Config, host: &Host<E>, r: &StatusReport) -> HostSeen {
    let name = (!cfg.hosts.is_empty()).then(|| host.name.clone());
    let live_tag = r.live.as_ref().and_then(|l| l.tag.clone());
    let live_answers = match (&r.live, &live_tag) {
        (Some(l), Some(tag)) => {
            let (what, answer) = match &host.public_url {
                Some(url) => (
                    url.clone(),
                    health::probe_url(url, cfg.health.timeout).await,
                ),
                None => (
                    host.layout.socket(l.color).display().to_string(),
                    host.probe(l.color, &cfg.health, cfg.health.timeout).await,
                ),
            };
            match answer {
                Ok(a) if a.names(tag) => Ok(()),
                Ok(a) => Err(format!("{what} answered {}", a.describe())),
                Err(e) => Err(format!("{what}: {e}")),
            }
        }
        _ => Err("nothing is live".into()),
    };
    HostSeen {
        name,
        unreachable: None,
        live_tag,
        live_answers,
    }
}

/// Percent of the filesystem holding `dir` in use, as `df` counts it.
fn disk_used_pct(dir: &Path) -> Option<f64> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(dir.as_os_str().as_bytes()).ok()?;
    let mut s: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: a valid C string and a zeroed out-parameter.
    if unsafe { libc::statvfs(c.as_ptr(), &mut s) } != 0 || s.f_blocks == 0 {
        return None;
    }
    let used = (s.f_blocks - s.f_bfree) as f64;
    let avail = s.f_bavail as f64;
    Some(100.0 * used / (used + avail))
}
