//! `webdock status` and `webdock history`: what runs, what is live, what is
//! wrong. Both render typed data (`report::StatusReport`, history entries);
//! the `--json` shape is documented in docs/json.md.

use std::process::ExitCode;

use crate::clock::human_secs;
use crate::config::Config;
use crate::history;
use crate::out::Out;
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

/// Every host's report, side by side; a host that cannot be reached is
/// shown as such, never guessed down or up.
async fn fleet_status(cfg: &Config, out: Out) -> anyhow::Result<ExitCode> {
    use futures_util::future::join_all;
    let reports = join_all(cfg.hosts.iter().map(|h| async move {
        let r: anyhow::Result<StatusReport> = async {
            let d = crate::fleet::connect_one(h).await?;
            let host = crate::host::Host::remote(cfg, h, d);
            report::status(cfg, &host).await
        }
        .await;
        (h.name.clone(), r)
    }))
    .await;
    let (entries, _) = history::read(&cfg.layout().history()).unwrap_or_default();
    let last = entries
        .iter()
        .rev()
        .find(|e| e.action.is_release() && e.outcome.is_ok());
    let mut warnings = Vec::new();
    let mut tags = std::collections::BTreeMap::new();
    for (name, r) in &reports {
        match r {
            Ok(r) => {
                let t = r
                    .live
                    .as_ref()
                    .and_then(|l| l.tag.clone())
                    .unwrap_or_else(|| "-".into());
                tags.entry(t).or_insert_with(Vec::new).push(name.clone());
            }
            Err(e) => warnings.push(format!(
                "{name} cannot be reached ({}): its state is unknown, not assumed",
                format!("{e:#}").lines().next().unwrap_or_default()
            )),
        }
    }
    if tags.len() > 1 {
        let parts: Vec<String> = tags
            .iter()
            .map(|(t, h)| format!("{t} on {}", h.join(", ")))
            .collect();
        warnings.push(format!(
            "hosts serve different releases: {}",
            parts.join("; ")
        ));
    }
    if let Some(e) = last.filter(|e| !e.skipped.is_empty()) {
        warnings.push(format!(
            "{} skipped by the last release ({}): behind until the next promote reaches it",
            e.skipped.join(", "),
            e.tag
        ));
    }
    let leases = match crate::lease_store::views(cfg, &super::failover::worker_roles(cfg)).await {
        Ok(l) => l,
        Err(e) => {
            warnings.push(format!(
                "the lease store cannot be read ({}): who holds each worker's lease is unknown",
                format!("{e:#}").lines().next().unwrap_or_default()
            ));
            None
        }
    };
    let workers = super::failover::workers_view(cfg, &reports, leases.as_deref(), &mut warnings);
    if out.json {
        let hosts: Vec<serde_json::Value> = reports
            .iter()
            .map(|(n, r)| match r {
                Ok(r) => serde_json::json!({ "host": n, "reachable": true, "status": r }),
                Err(e) => {
                    serde_json::json!({ "host": n, "reachable": false, "error": format!("{e:#}") })
                }
            })
            .collect();
        out.data_pretty(&serde_json::json!({
            "project": cfg.project,
            "hosts": hosts,
            "workers": workers,
            "history": entries.iter().rev().take(5).collect::<Vec<_>>(),
            "warnings": warnings,
        }))?;
        return Ok(ExitCode::SUCCESS);
    }
    for (name, r) in &reports {
        out.data(&format!("== host {name}"));
        match r {
            Ok(r) => print_status(r, out),
            Err(e) => out.data(&format!("unreachable: {e:#}")),
        }
        out.data("");
    }
    out.data("== workers");
    for w in &workers {
        out.data(&format!(
            "{:<22} {:<24} hosts {}{}",
            w["role"].as_str().unwrap_or("?"),
            match w["running_on"].as_array().map(|a| a.len()) {
                Some(0) | None => "running nowhere".to_string(),
                _ => format!("running on {}", join(&w["running_on"])),
            },
            join(&w["hosts"]),
            if w["failover"] == "auto" {
                " (failover auto)"
            } else {
                ""
            }
        ));
        if let Some(l) = w.get("lease").filter(|l| !l.is_null()) {
            out.data(&format!(
                "{:<22} lease {}: {}",
                "",
                l["name"].as_str().unwrap_or("?"),
                if l["held"] == true {
                    format!(
                        "held by {} (epoch {}) since {}",
                        l["holder"].as_str().unwrap_or("?"),
                        l["epoch"],
                        l["since"].as_str().unwrap_or("?")
                    )
                } else {
                    "free".to_string()
                }
            ));
        }
    }
    for w in &warnings {
        out.warn(w);
    }
    Ok(ExitCode::SUCCESS)
}

fn join(v: &serde_json::Value) -> String {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|x| x.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        })
        .unwrap_or_default()
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
