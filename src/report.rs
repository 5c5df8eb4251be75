//! What `status` shows: a typed report of one host, gathered once and
//! rendered twice (the table and `--json`, shape in docs/json.md).

pub mod fleet;

use std::collections::HashMap;
use std::time::Duration;

use serde::Serialize;

use crate::clock::age_secs;
use crate::config::Config;
use crate::engine::{ContainerInfo, Engine};
use crate::history::{self, Entry};
use crate::host::Host;
use crate::lock::Holder;
use crate::plan::{self, Observed};
use crate::roles::{Color, Role, LABEL_TAG};

/// One role's container, or its absence.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    pub container: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    pub tag: Option<String>,
    pub state: String,
    pub running: bool,
    pub uptime_s: Option<i64>,
    pub restarts: i64,
    /// The manifest digest of its image (`sha256:…`), when the image came
    /// from or went to a registry.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
}

/// Image id → the digest its RepoDigests name (the configured registry's
/// first, else any).
type Digests = HashMap<String, String>;

async fn digests<E: Engine>(cfg: &Config, host: &Host<E>, cs: &[ContainerInfo]) -> Digests {
    let ours = cfg.registry.as_ref().map(|r| r.repository(&cfg.image));
    let mut out = Digests::new();
    for c in cs {
        if c.image_id.is_empty() || out.contains_key(&c.image_id) {
            continue;
        }
        let Ok(Some(img)) = host.engine.inspect_image(&c.image_id).await else {
            continue;
        };
        let split = |rd: &String| {
            rd.split_once('@')
                .map(|(r, d)| (r.to_owned(), d.to_owned()))
        };
        let all: Vec<(String, String)> = img.repo_digests.iter().filter_map(split).collect();
        let pick = all
            .iter()
            .find(|(r, _)| Some(r) == ours.as_ref())
            .or(all.first());
        if let Some((_, d)) = pick {
            out.insert(c.image_id.clone(), d.clone());
        }
    }
    out
}

impl Row {
    fn of(c: Option<&ContainerInfo>, digests: &Digests) -> Row {
        match c {
            None => Row {
                container: None,
                id: None,
                tag: None,
                state: "absent".into(),
                running: false,
                uptime_s: None,
                restarts: 0,
                digest: None,
            },
            Some(c) => Row {
                container: Some(c.name.clone()),
                id: Some(c.id[..c.id.len().min(12)].to_string()),
                tag: c.label(LABEL_TAG).map(str::to_owned),
                state: c.state.clone(),
                running: c.running,
                uptime_s: if c.running {
                    c.started_at.as_deref().and_then(age_secs)
                } else {
                    None
                },
                restarts: c.restart_count,
                digest: digests.get(&c.image_id).cloned(),
            },
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct PortalRow {
    pub color: Color,
    pub live: bool,
    /// `None` when not running (nothing to probe).
    pub healthy: Option<bool>,
    #[serde(flatten)]
    pub row: Row,
}

/// A djob's liveness as the host sees it (`[djobs.NAME] heartbeat`).
#[derive(Debug, Clone, Serialize)]
pub struct HeartbeatView {
    /// Seconds since the daemon's last beat; null before its first start.
    pub age_s: Option<u64>,
    pub limit_s: u64,
    pub stale: bool,
    /// Kills by the in-container watchdog in the last hour, and in all.
    pub kills_last_hour: usize,
    pub kills: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct DjobRow {
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub heartbeat: Option<HeartbeatView>,
    #[serde(flatten)]
    pub row: Row,
}

#[derive(Debug, Clone, Serialize)]
pub struct Live {
    pub color: Color,
    pub tag: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct StatusReport {
    pub project: String,
    pub live: Option<Live>,
    pub portals: Vec<PortalRow>,
    pub cron: Option<Row>,
    pub djobs: Vec<DjobRow>,
    /// Release containers: a running one is a migration in progress.
    pub releases: Vec<Row>,
    pub lock: Option<Holder>,
    /// The newest deploys first.
    pub history: Vec<Entry>,
    pub warnings: Vec<String>,
}

/// Looks at the host; never takes a lock and never changes anything.
/// Whether `host` shows a row for the worker (a host of its placement),
/// and whether a missing container there is a problem: on a fleet of one
/// always; on a fleet, where `failover = "auto"` puts one on every listed
/// host, or where one is (the fleet view says where a manual one should
/// run).
fn placed_here<E: Engine>(
    cfg: &Config,
    host: &Host<E>,
    role: &Role,
    obs: &plan::Observed,
) -> (bool, bool) {
    if cfg.hosts.is_empty() {
        return (true, true);
    }
    let (hosts, failover) = cfg.placement(role);
    let listed = hosts.contains(&host.name);
    let present = match role {
        Role::Cron => obs.cron().is_some(),
        Role::Djob(n) => obs.djob(n).is_some(),
        _ => false,
    };
    (
        listed || present,
        present || (listed && failover == crate::config::placement::Failover::Auto),
    )
}

pub async fn status<E: Engine>(cfg: &Config, host: &Host<E>) -> anyhow::Result<StatusReport> {
    let containers = host.engine.list_containers(&cfg.project).await?;
    let (live, link_problem) = match host.live().await {
        Ok(l) => (l, None),
        Err(e) => (None, Some(e.to_string())),
    };
    let digests = digests(cfg, host, &containers).await;
    let obs = Observed::new(containers, live);
    let mut portals = Vec::new();
    for color in [Color::Blue, Color::Green] {
        let c = obs.portal(color);
        let healthy = match c {
            Some(c) if c.running => {
                let tag = c.label(LABEL_TAG).unwrap_or_default();
                let a = host.probe(color, &cfg.health, Duration::from_secs(2)).await;
                Some(a.is_ok_and(|a| a.names(tag)))
            }
            _ => None,
        };
        portals.push(PortalRow {
            color,
            live: live == Some(color),
            healthy,
            row: Row::of(c, &digests),
        });
    }
    let mut djobs = Vec::new();
    for d in &cfg.djobs {
        if placed_here(cfg, host, &Role::Djob(d.name.clone()), &obs).0 {
            djobs.push(DjobRow {
                name: d.name.clone(),
                heartbeat: heartbeat_view(host, d).await,
                row: Row::of(obs.djob(&d.name), &digests),
            });
        }
    }
    let hist_path = host.layout.history();
    let (entries, torn) = history::read(&hist_path).unwrap_or_default();
    // A host without the worker role (a portal-only fleet host) runs no
    // cron and no djobs: nothing to miss there.
    let names: Vec<String> = cfg
        .djobs
        .iter()
        .filter(|d| placed_here(cfg, host, &Role::Djob(d.name.clone()), &obs).1)
        .map(|d| d.name.clone())
        .collect();
    let (cron_shown, cron_expected) = placed_here(cfg, host, &Role::Cron, &obs);
    let mut current = std::collections::HashMap::new();
    for tag in obs.tags_in_use() {
        let reference = format!("{}:{tag}", cfg.image);
        if let Ok(Some(img)) = host.engine.inspect_image(&reference).await {
            current.insert(tag, img.id);
        }
    }
    let mut warnings = plan::warnings(
        &obs,
        &names,
        cfg.cron.enabled && cron_expected,
        &cfg.image,
        &current,
    );
    if let Some(p) = link_problem {
        warnings.insert(0, p);
    }
    if torn > 0 {
        warnings.push(format!(
            "{torn} unreadable line(s) in {}",
            hist_path.display()
        ));
    }
    Ok(StatusReport {
        project: cfg.project.clone(),
        live: live.map(|color| Live {
            color,
            tag: obs.live_tag().map(str::to_owned),
        }),
        portals,
        cron: (cfg.cron.enabled && cron_shown).then(|| Row::of(obs.cron(), &digests)),
        djobs,
        releases: obs
            .containers
            .iter()
            .filter(|c| c.label(crate::roles::LABEL_ROLE) == Some("release"))
            .map(|c| Row::of(Some(c), &digests))
            .collect(),
        lock: crate::lock::holder(&host.layout.deploy_lock()),
        history: entries.into_iter().rev().take(5).collect(),
        warnings,
    })
}

/// Read on the host the djob runs on (through its helper on a host of
/// `[hosts]`): an age that cannot be read stays null, never 0.
async fn heartbeat_view<E: Engine>(
    host: &Host<E>,
    d: &crate::config::Djob,
) -> Option<HeartbeatView> {
    let now = std::time::SystemTime::now();
    let hb = crate::heartbeat::read_on(host, d).await?;
    let hour_ago = now
        .duration_since(std::time::UNIX_EPOCH)
        .map(|t| t.as_secs() as i64 - 3600)
        .unwrap_or(0);
    Some(HeartbeatView {
        age_s: hb.age.map(|a| a.as_secs()),
        limit_s: hb.limit.as_secs(),
        stale: hb.stale(),
        kills_last_hour: hb.kills_since(hour_ago),
        kills: hb.kills.len(),
    })
}
