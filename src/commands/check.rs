//! `webdock check`: gathers what `check::evaluate` judges (the status
//! report, one request through the host nginx, disk use), prints the
//! Nagios line (or `--json`) and exits with the plugin's code. Any error on
//! the way is UNKNOWN (exit 3), never a crash with exit 1.

use std::path::Path;
use std::process::ExitCode;

use serde_json::json;

use crate::check::{self, CheckInput, Verdict, WorkerSeen};
use crate::clock::age_secs;
use crate::config::Config;
use crate::health;
use crate::out::Out;
use crate::report::{self, Row};

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

fn seen(name: String, label: &str, r: &Row) -> WorkerSeen {
    WorkerSeen {
        name,
        label: label.to_string(),
        running: r.running,
        tag: r.tag.clone(),
        restarts: r.restarts,
        uptime_s: r.uptime_s,
        heartbeat: None,
    }
}

async fn gather(cfg: &Config) -> anyhow::Result<Verdict> {
    let host = super::local_host(cfg).await?;
    let r = report::status(cfg, &host).await?;
    let live_tag = r.live.as_ref().and_then(|l| l.tag.clone());
    let live_answers = match (&r.live, &live_tag) {
        (Some(l), Some(tag)) => match &host.public_url {
            Some(url) => match health::probe_url(url, cfg.health.timeout).await {
                Ok(a) if a.names(tag) => Ok(()),
                Ok(a) => Err(format!("{url} answered {}", a.describe())),
                Err(e) => Err(format!("{url}: {e}")),
            },
            None => {
                let sock = host.layout.socket(l.color);
                match health::probe_unix(
                    &sock,
                    &cfg.health.host,
                    &cfg.health.path,
                    cfg.health.timeout,
                )
                .await
                {
                    Ok(a) if a.names(tag) => Ok(()),
                    Ok(a) => Err(format!("{} answered {}", sock.display(), a.describe())),
                    Err(e) => Err(format!("{}: {e}", sock.display())),
                }
            }
        },
        _ => Err("nothing is live".into()),
    };
    let mut workers = Vec::new();
    if let Some(c) = &r.cron {
        workers.push(seen("cron".into(), "cron", c));
    }
    for d in &r.djobs {
        let mut w = seen(format!("djob {}", d.name), &d.name, &d.row);
        w.heartbeat = d.heartbeat.as_ref().map(|h| {
            (
                h.age_s.unwrap_or(0) as i64,
                std::time::Duration::from_secs(h.limit_s),
            )
        });
        if d.heartbeat.as_ref().is_some_and(|h| h.kills_last_hour > 0) {
            // a watchdog kill is a restart the container count may not show
            w.restarts = w.restarts.max(1);
            w.uptime_s = w.uptime_s.map(|u| u.min(3599));
        }
        workers.push(w);
    }
    // The other color, running another tag: how long since traffic left it
    // (the newest successful release in history).
    let since_flip = r
        .history
        .iter()
        .find(|e| e.outcome.is_ok() && e.action.is_release())
        .and_then(|e| age_secs(&e.when));
    let idle_portal = r
        .portals
        .iter()
        .find(|p| !p.live && p.row.running && p.row.tag != live_tag)
        .and_then(|p| Some((p.row.tag.clone()?, since_flip?)));
    let disks = [host.layout.state_dir(), host.layout.socket_dir()]
        .iter()
        .filter_map(|d| disk_used_pct(d).map(|p| (d.display().to_string(), p)))
        .collect();
    Ok(check::evaluate(&CheckInput {
        project: cfg.project.clone(),
        live_tag,
        live_answers,
        workers,
        idle_portal,
        idle_portal_warn: cfg.check.idle_portal_warn,
        disks,
        disk_warn_pct: cfg.check.disk_warn,
    }))
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
