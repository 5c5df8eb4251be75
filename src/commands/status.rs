//! `webdock status` and `webdock history`: what runs, what is live, what is
//! wrong. The `--json` shape is documented in docs/json.md.

use std::process::ExitCode;
use std::time::Duration;

use serde_json::{json, Value};

use crate::clock::{age_secs, human_secs};
use crate::config::Config;
use crate::engine::{ContainerInfo, Engine};
use crate::health;
use crate::history;
use crate::out::Out;
use crate::plan;
use crate::proxy;
use crate::roles::{Color, LABEL_COLOR, LABEL_DJOB, LABEL_ROLE, LABEL_TAG};

fn row(c: Option<&ContainerInfo>) -> Value {
    match c {
        None => {
            json!({ "container": null, "tag": null, "state": "absent", "running": false, "uptime_s": null, "restarts": 0 })
        }
        Some(c) => json!({
            "container": c.name,
            "id": &c.id[..c.id.len().min(12)],
            "tag": c.label(LABEL_TAG),
            "state": c.state,
            "running": c.running,
            "uptime_s": if c.running { c.started_at.as_deref().and_then(age_secs) } else { None },
            "restarts": c.restart_count,
        }),
    }
}

pub async fn status(cfg: &Config, out: Out) -> anyhow::Result<ExitCode> {
    let engine = super::engine().await?;
    let containers = engine.list_containers(&cfg.project).await?;
    let (live, link_problem) = match proxy::live(cfg) {
        Ok(l) => (l, None),
        Err(e) => (None, Some(e.to_string())),
    };
    let role = |c: &&ContainerInfo, r: &str| c.label(LABEL_ROLE) == Some(r);
    let mut portals = Vec::new();
    for color in [Color::Blue, Color::Green] {
        let c = containers
            .iter()
            .find(|c| role(c, "portal") && c.label(LABEL_COLOR) == Some(color.as_str()));
        let mut v = row(c);
        let healthy = match c {
            Some(c) if c.running => {
                let tag = c.label(LABEL_TAG).unwrap_or_default();
                let a = health::probe_unix(
                    &proxy::socket_path(cfg, color),
                    &cfg.health.host,
                    &cfg.health.path,
                    Duration::from_secs(2),
                )
                .await;
                Some(a.is_ok_and(|a| a.names(tag)))
            }
            _ => None,
        };
        v["color"] = json!(color);
        v["live"] = json!(live == Some(color));
        v["healthy"] = json!(healthy);
        portals.push(v);
    }
    let cron = containers.iter().find(|c| role(c, "cron"));
    let mut djobs = Vec::new();
    for d in &cfg.djobs {
        let c = containers
            .iter()
            .find(|c| role(c, "djob") && c.label(LABEL_DJOB) == Some(d.name.as_str()));
        let mut v = row(c);
        v["name"] = json!(d.name);
        djobs.push(v);
    }
    let live_tag = live.and_then(|color| {
        containers
            .iter()
            .find(|c| role(c, "portal") && c.label(LABEL_COLOR) == Some(color.as_str()))
            .and_then(|c| c.label(LABEL_TAG).map(str::to_owned))
    });
    let lock = crate::lock::holder(&crate::deploy::deploy_lock_path(cfg));
    let (entries, torn) = history::read(&history::path(&cfg.state_dir())).unwrap_or_default();
    let recent: Vec<_> = entries.iter().rev().take(5).collect();
    let names: Vec<String> = cfg.djobs.iter().map(|d| d.name.clone()).collect();
    let mut warnings = plan::warnings(&containers, live, &names, cfg.cron.enabled, &cfg.image);
    if let Some(p) = link_problem {
        warnings.insert(0, p);
    }
    if torn > 0 {
        warnings.push(format!(
            "{torn} unreadable line(s) in {}",
            history::path(&cfg.state_dir()).display()
        ));
    }
    let v = json!({
        "project": cfg.project,
        "live": live.map(|c| json!({ "color": c, "tag": live_tag })),
        "portals": portals,
        "cron": if cfg.cron.enabled { row(cron) } else { Value::Null },
        "djobs": djobs,
        "lock": lock,
        "history": recent,
        "warnings": warnings,
    });
    if out.json {
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        print_status(&v);
    }
    Ok(ExitCode::SUCCESS)
}

fn s(v: &Value) -> String {
    match v {
        Value::Null => "-".into(),
        Value::String(s) => s.clone(),
        v => v.to_string(),
    }
}

fn uptime(v: &Value) -> String {
    v["uptime_s"]
        .as_i64()
        .map(human_secs)
        .unwrap_or_else(|| "-".into())
}

fn print_status(v: &Value) {
    let live = &v["live"];
    if live.is_null() {
        println!("project {}: nothing is live yet", s(&v["project"]));
    } else {
        println!(
            "project {}: live {} on {}",
            s(&v["project"]),
            s(&live["tag"]),
            s(&live["color"])
        );
    }
    println!();
    println!(
        "{:<8} {:<10} {:<28} {:<14} {:<10} {:<8} {:<8} RESTARTS",
        "ROLE", "NAME", "CONTAINER", "TAG", "STATE", "HEALTH", "UPTIME"
    );
    for p in v["portals"].as_array().into_iter().flatten() {
        let name = if p["live"].as_bool() == Some(true) {
            format!("{}*", s(&p["color"]))
        } else {
            s(&p["color"])
        };
        let health = match p["healthy"].as_bool() {
            Some(true) => "ok",
            Some(false) => "FAILING",
            None => "-",
        };
        println!(
            "{:<8} {:<10} {:<28} {:<14} {:<10} {:<8} {:<8} {}",
            "portal",
            name,
            s(&p["container"]),
            s(&p["tag"]),
            s(&p["state"]),
            health,
            uptime(p),
            s(&p["restarts"])
        );
    }
    if !v["cron"].is_null() {
        let c = &v["cron"];
        println!(
            "{:<8} {:<10} {:<28} {:<14} {:<10} {:<8} {:<8} {}",
            "cron",
            "-",
            s(&c["container"]),
            s(&c["tag"]),
            s(&c["state"]),
            "-",
            uptime(c),
            s(&c["restarts"])
        );
    }
    for d in v["djobs"].as_array().into_iter().flatten() {
        println!(
            "{:<8} {:<10} {:<28} {:<14} {:<10} {:<8} {:<8} {}",
            "djob",
            s(&d["name"]),
            s(&d["container"]),
            s(&d["tag"]),
            s(&d["state"]),
            "-",
            uptime(d),
            s(&d["restarts"])
        );
    }
    if !v["lock"].is_null() {
        let l = &v["lock"];
        println!(
            "\nlocked by pid {} ({} {}) since {}",
            s(&l["pid"]),
            s(&l["command"]),
            s(&l["tag"]),
            s(&l["started"])
        );
    }
    let hist = v["history"].as_array().cloned().unwrap_or_default();
    if !hist.is_empty() {
        println!("\nrecent deploys (newest first):");
        for e in hist {
            println!(
                "  {}  {:<14} {:<10} from {:<10} {:>6.1} s  {}",
                s(&e["when"]),
                s(&e["action"]),
                s(&e["tag"]),
                s(&e["from_tag"]),
                e["seconds"].as_f64().unwrap_or(0.0),
                s(&e["outcome"])
            );
        }
    }
    let warnings = v["warnings"].as_array().cloned().unwrap_or_default();
    if !warnings.is_empty() {
        eprintln!();
        for w in warnings {
            eprintln!("warning: {}", s(&w));
        }
    }
}

pub fn history(cfg: &Config, limit: usize, out: Out) -> anyhow::Result<ExitCode> {
    let path = history::path(&cfg.state_dir());
    let (entries, torn) = history::read(&path)?;
    let shown = &entries[entries.len().saturating_sub(limit)..];
    if out.json {
        for e in shown {
            println!("{}", serde_json::to_string(e)?);
        }
    } else if shown.is_empty() {
        eprintln!("no deploys yet ({})", path.display());
    } else {
        for e in shown {
            let steps: Vec<String> = e
                .steps
                .iter()
                .map(|(n, s)| format!("{n} {s:.2}s"))
                .collect();
            println!(
                "{}  {:<14} {:<12} from {:<12} {}→{}  {:>6.1} s  by {}  {}",
                e.when,
                e.action,
                e.tag,
                e.from_tag.as_deref().unwrap_or("-"),
                e.from_color.as_deref().unwrap_or("-"),
                e.to_color.as_deref().unwrap_or("-"),
                e.seconds,
                e.who,
                e.outcome
            );
            if !steps.is_empty() {
                println!("    {}", steps.join(", "));
            }
        }
    }
    if torn > 0 {
        eprintln!(
            "warning: skipped {torn} unreadable line(s) in {}",
            path.display()
        );
    }
    Ok(ExitCode::SUCCESS)
}
