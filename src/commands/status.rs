//! `webdock status` and `webdock history`: what runs, what is live, what is
//! wrong. Both render typed data (`report::StatusReport`, history entries);
//! the `--json` shape is documented in docs/json.md.

use std::process::ExitCode;

use crate::clock::human_secs;
use crate::config::Config;
use crate::history;
use crate::out::Out;
use crate::report::fleet::FleetStatus;
use crate::report::{self, Row, StatusReport};

pub async fn status(cfg: &Config, out: Out) -> anyhow::Result<ExitCode> {
    if !cfg.hosts.is_empty() {
        return fleet_status(cfg, out).await;
    }
    let host = super::local_host(cfg).await?;
    let r = report::status(cfg, &host).await?;
    if out.json {
        out.data_pretty(&r)?;
    } else {
        print_status(&r, out);
    }
    Ok(ExitCode::SUCCESS)
}

/// Every host's report, side by side, and the workers across them.
async fn fleet_status(cfg: &Config, out: Out) -> anyhow::Result<ExitCode> {
    let r = report::fleet::fleet_status(cfg).await;
    if out.json {
        out.data_pretty(&r)?;
    } else {
        print_fleet(&r, out);
    }
    Ok(ExitCode::SUCCESS)
}

fn print_fleet(r: &FleetStatus, out: Out) {
    for h in &r.hosts {
        out.data(&format!("== host {}", h.host));
        match (&h.status, &h.error) {
            (Some(s), _) => print_status(s, out),
            (None, e) => out.data(&format!("unreachable: {}", e.as_deref().unwrap_or("?"))),
        }
        out.data("");
    }
    out.data("== workers");
    for w in &r.workers {
        out.data(&format!(
            "{:<22} {:<24} hosts {}{}",
            w.role,
            if w.running_on.is_empty() {
                "running nowhere".to_string()
            } else {
                format!("running on {}", w.running_on.join(", "))
            },
            w.hosts.join(", "),
            if w.auto() { " (failover auto)" } else { "" }
        ));
        if let Some(l) = &w.lease {
            out.data(&format!(
                "{:<22} lease {}: {}",
                "",
                l.name,
                if l.held {
                    format!(
                        "held by {} (epoch {}) since {}",
                        l.holder.as_deref().unwrap_or("?"),
                        l.epoch.map_or("null".into(), |e| e.to_string()),
                        l.since.as_deref().unwrap_or("?")
                    )
                } else {
                    "free".to_string()
                }
            ));
        }
    }
    for w in &r.warnings {
        out.warn(w);
    }
}

fn or_dash(s: Option<&str>) -> &str {
    s.unwrap_or("-")
}

fn uptime(r: &Row) -> String {
    r.uptime_s.map(human_secs).unwrap_or_else(|| "-".into())
}

fn line(role: &str, name: &str, r: &Row, health: &str) -> String {
    format!(
        "{:<8} {:<10} {:<28} {:<14} {:<10} {:<8} {:<8} {:<8} {}",
        role,
        name,
        or_dash(r.container.as_deref()),
        or_dash(r.tag.as_deref()),
        r.state,
        health,
        uptime(r),
        r.restarts,
        // `sha256:` and 12 hex digits, like a short image id
        or_dash(r.digest.as_deref().map(|d| &d[..d.len().min(19)]))
    )
}

fn print_status(r: &StatusReport, out: Out) {
    match &r.live {
        None => out.data(&format!("project {}: nothing is live yet", r.project)),
        Some(l) => out.data(&format!(
            "project {}: live {} on {}",
            r.project,
            or_dash(l.tag.as_deref()),
            l.color
        )),
    }
    out.data("");
    out.data(&format!(
        "{:<8} {:<10} {:<28} {:<14} {:<10} {:<8} {:<8} RESTARTS DIGEST",
        "ROLE", "NAME", "CONTAINER", "TAG", "STATE", "HEALTH", "UPTIME"
    ));
    for p in &r.portals {
        let name = if p.live {
            format!("{}*", p.color)
        } else {
            p.color.to_string()
        };
        let health = match p.healthy {
            Some(true) => "ok",
            Some(false) => "FAILING",
            None => "-",
        };
        out.data(&line("portal", &name, &p.row, health));
    }
    if let Some(c) = &r.cron {
        out.data(&line("cron", "-", c, "-"));
    }
    for d in &r.djobs {
        // A stopped daemon beats no more: its age says nothing.
        let beat = match &d.heartbeat {
            None => "-".to_string(),
            Some(_) if !d.row.running => "stopped".to_string(),
            Some(h) => match (h.stale, h.age_s) {
                (true, Some(a)) => format!("STALE {a}s"),
                (false, Some(a)) => format!("beat {a}s"),
                (_, None) => "beat ?".to_string(),
            },
        };
        out.data(&line("djob", &d.name, &d.row, &beat));
        if let Some(h) = d.heartbeat.as_ref().filter(|h| h.kills > 0) {
            out.data(&format!(
                "         {} killed by its heartbeat watchdog {} time(s), {} in the last hour",
                d.name, h.kills, h.kills_last_hour
            ));
        }
    }
    for rel in &r.releases {
        out.data(&line("release", "-", rel, "-"));
    }
    if let Some(l) = &r.lock {
        out.data(&format!(
            "\nlocked by pid {} ({} {}) since {}",
            l.pid,
            l.command,
            or_dash(l.tag.as_deref()),
            l.started
        ));
    }
    if !r.history.is_empty() {
        out.data("\nrecent deploys (newest first):");
        for e in &r.history {
            out.data(&format!(
                "  {}  {:<14} {:<10} from {:<10} {:>6.1} s  {}",
                e.when,
                e.action.as_str(),
                e.tag,
                or_dash(e.from_tag.as_deref()),
                e.seconds,
                e.outcome
            ));
        }
    }
    if !r.warnings.is_empty() {
        out.note("");
        for w in &r.warnings {
            out.warn(w);
        }
    }
}

pub fn history(cfg: &Config, limit: usize, out: Out) -> anyhow::Result<ExitCode> {
    let path = cfg.layout().history();
    let (entries, torn) = history::read(&path)?;
    let shown = &entries[entries.len().saturating_sub(limit)..];
    if out.json {
        for e in shown {
            out.data(&serde_json::to_string(e)?);
        }
    } else if shown.is_empty() {
        out.note(&format!("no deploys yet ({})", path.display()));
    } else {
        for e in shown {
            let steps: Vec<String> = e
                .steps
                .iter()
                .map(|(n, s)| format!("{n} {s:.2}s"))
                .collect();
            let colors = if e.hosts.is_empty() {
                format!(
                    "{}→{}",
                    or_dash(e.from_color.as_deref()),
                    or_dash(e.to_color.as_deref())
                )
            } else {
                let window = e
                    .flip_window_ms
                    .map(|w| format!(", flips within {w:.0} ms"))
                    .unwrap_or_default();
                format!("{} hosts{window}", e.hosts.len())
            };
            out.data(&format!(
                "{}  {:<14} {:<12} from {:<12} {}  {:>6.1} s  by {}  {}",
                e.when,
                e.action.as_str(),
                e.tag,
                or_dash(e.from_tag.as_deref()),
                colors,
                e.seconds,
                e.who,
                e.outcome
            ));
            if !steps.is_empty() {
                out.data(&format!("    {}", steps.join(", ")));
            }
            if let Some(b) = &e.backup {
                out.data(&format!("    backup before the release command: {b}"));
            }
        }
    }
    if torn > 0 {
        out.warn(&format!(
            "skipped {torn} unreadable line(s) in {}",
            path.display()
        ));
    }
    Ok(ExitCode::SUCCESS)
}
