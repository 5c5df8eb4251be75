//! `webdock logs`, `webdock nginx-snippet` and `webdock doctor`: the verbs
//! that look at the host rather than change it.

use std::os::unix::fs::PermissionsExt;
use std::process::ExitCode;

use anyhow::bail;
use futures_util::StreamExt;

use crate::config::Config;
use crate::engine::Engine;
use crate::out::Out;
use crate::proxy;
use crate::roles::{Color, Role};
use crate::Usage;

pub async fn logs(
    cfg: &Config,
    role: &str,
    name: Option<&str>,
    follow: bool,
    tail: &str,
    out: Out,
) -> anyhow::Result<ExitCode> {
    let role = match (role, name) {
        ("portal", None) => Role::Portal(proxy::live(&cfg.layout())?.ok_or_else(|| {
            Usage("no release is live yet; name a color: webdock logs portal blue".into())
        })?),
        ("portal", Some(c)) => Role::Portal(
            Color::parse(c).ok_or_else(|| Usage(format!("unknown color {c:?}: blue or green")))?,
        ),
        ("cron", None) => Role::Cron,
        ("djob", Some(n)) if cfg.djob(n).is_some() => Role::Djob(n.into()),
        ("djob", Some(n)) => bail!(Usage(format!(
            "unknown djob {n:?}\nhint: see [djobs] in {}",
            cfg.path.display()
        ))),
        ("djob", None) => bail!(Usage("which djob? webdock logs djob NAME".into())),
        (r, _) => bail!(Usage(format!(
            "unknown role {r:?}: portal [COLOR], cron or djob NAME"
        ))),
    };
    let engine = super::engine().await?;
    let name = role.container_name(&cfg.project);
    let Some(info) = engine.inspect_container(&name).await? else {
        bail!("{} has no container {name}", role.describe());
    };
    let mut s = engine.follow_logs(&name, follow, tail);
    while let Some(item) = s.next().await {
        let chunk = item.map_err(|e| {
            let driver = &info.log.driver;
            let hint = if crate::logging::readable(driver) {
                String::new()
            } else {
                format!("\nhint: log driver {driver} cannot be read back by the engine; read the logs where it sends them, or use [logging] driver = \"local\" or \"json-file\"")
            };
            anyhow::anyhow!("reading the log of {name} (log driver {driver}): {e}{hint}")
        })?;
        out.data_bytes(chunk.as_ref())?;
    }
    Ok(ExitCode::SUCCESS)
}

pub fn nginx_snippet(cfg: &Config, host: Option<&str>, out: Out) -> anyhow::Result<ExitCode> {
    let layout = match host {
        None => cfg.layout(),
        Some(name) => {
            let h = cfg.hosts.iter().find(|h| h.name == name).ok_or_else(|| {
                Usage(format!(
                    "unknown host {name:?}\nhint: hosts in {}: {}",
                    cfg.path.display(),
                    cfg.hosts
                        .iter()
                        .map(|h| h.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ))
            })?;
            cfg.host_layout(h)
        }
    };
    out.data(proxy::nginx_snippet(&cfg.project, &layout).trim_end());
    Ok(ExitCode::SUCCESS)
}

pub fn lb_snippet(cfg: &Config, listen: &str, out: Out) -> anyhow::Result<ExitCode> {
    let servers: Vec<String> = cfg
        .hosts
        .iter()
        .filter(|h| h.runs("portal"))
        .map(|h| {
            h.public_url.as_deref().and_then(authority).map(str::to_owned).ok_or_else(|| {
                Usage(format!(
                    "hosts.{}.public_url is not set: the balancer sends traffic to each host's nginx there",
                    h.name
                ))
            })
        })
        .collect::<Result<_, _>>()?;
    if servers.is_empty() {
        bail!(Usage(format!(
            "no portal hosts in {}: lb-snippet balances over [hosts]",
            cfg.path.display()
        )));
    }
    out.data(proxy::lb_snippet(&cfg.project, &servers, listen).trim_end());
    Ok(ExitCode::SUCCESS)
}

/// `http://10.0.0.2:8080/health/` → `10.0.0.2:8080` (port 80 when absent).
fn authority(url: &str) -> Option<&str> {
    url.strip_prefix("http://")?
        .split('/')
        .next()
        .filter(|a| !a.is_empty())
}

struct Report {
    problems: usize,
    warnings: usize,
    out: Out,
    items: Vec<serde_json::Value>,
}

impl Report {
    fn ok(&mut self, what: &str) {
        if self.out.json {
            self.items
                .push(serde_json::json!({ "check": what, "ok": true }));
        } else {
            self.out.data(&format!("ok       {what}"));
        }
    }
    fn problem(&mut self, what: &str, fix: &str) {
        self.problems += 1;
        if self.out.json {
            self.items
                .push(serde_json::json!({ "check": what, "ok": false, "fix": fix }));
        } else {
            self.out
                .data(&format!("PROBLEM  {what}\n         fix: {fix}"));
        }
    }
    /// Worth fixing, but nothing is broken yet: exit code stays 0.
    fn warning(&mut self, what: &str, fix: &str) {
        self.warnings += 1;
        if self.out.json {
            self.items.push(
                serde_json::json!({ "check": what, "ok": false, "warning": true, "fix": fix }),
            );
        } else {
            self.out
                .data(&format!("WARNING  {what}\n         fix: {fix}"));
        }
    }
}

pub async fn doctor(cfg: &Config, out: Out) -> anyhow::Result<ExitCode> {
    let mut r = Report {
        problems: 0,
        warnings: 0,
        out,
        items: vec![],
    };
    match crate::engine::Docker::connect().await {
        Ok(d) => {
            let v = d.server_version().await.unwrap_or_else(|e| e.to_string());
            r.ok(&format!(
                "Docker engine {v}, talking API {}",
                d.api_version()
            ));
            let base = crate::build::base_image_ref();
            match d.inspect_image(&base).await {
                Ok(Some(_)) => r.ok(&format!("base image {base} present")),
                _ => r.problem(
                    &format!("base image {base} missing"),
                    "webdock base (runs mmdebstrap once, ~1 min)",
                ),
            }
            for c in d.list_containers(&cfg.project).await.unwrap_or_default() {
                if crate::logging::unbounded(&c.log) {
                    r.warning(
                        &format!("container {} logs to {} with no max-size: its log grows without limit", c.name, c.log.driver),
                        "the next webdock promote (or restart of that role) recreates it with [logging] from webdock.toml (default: json-file, 10m x 3)",
                    );
                }
            }
        }
        Err(e) => r.problem(
            &format!("{e}").replace('\n', " "),
            "start dockerd (systemctl start docker) or set DOCKER_HOST",
        ),
    }
    for (what, dir) in [
        ("socket directory", cfg.layout().socket_dir().to_path_buf()),
        ("state directory", cfg.layout().state_dir().to_path_buf()),
    ] {
        match std::fs::metadata(&dir) {
            Ok(m) if m.is_dir() => {
                let mode = m.permissions().mode() & 0o777;
                if what == "socket directory" && mode & 0o005 != 0o005 {
                    r.problem(
                        &format!(
                            "{what} {} has mode {mode:o}: the host nginx cannot reach the sockets",
                            dir.display()
                        ),
                        &format!("chmod 755 {}", dir.display()),
                    );
                } else {
                    r.ok(&format!("{what} {} (mode {mode:o})", dir.display()));
                }
            }
            _ => r.problem(
                &format!("{what} {} does not exist", dir.display()),
                "webdock promote creates it; or mkdir -p it as the deploying user",
            ),
        }
    }
    match proxy::live(&cfg.layout()) {
        Ok(Some(c)) => {
            let sock = cfg.layout().socket(c);
            match crate::health::probe_unix(
                &sock,
                &cfg.health.host,
                &cfg.health.path,
                std::time::Duration::from_secs(2),
            )
            .await
            {
                Ok(a) if (200..300).contains(&a.status) => r.ok(&format!(
                    "live color {c} answers {} on {}",
                    a.describe(),
                    sock.display()
                )),
                Ok(a) => r.problem(
                    &format!("live color {c} answers {}", a.describe()),
                    "webdock status; webdock rollback",
                ),
                Err(e) => r.problem(
                    &format!("live color {c} does not answer on {}: {e}", sock.display()),
                    "webdock status; webdock rollback or webdock restart portal",
                ),
            }
        }
        Ok(None) => r.ok("no release live yet"),
        Err(e) => r.problem(&e.to_string().replace('\n', " "), "webdock promote TAG"),
    }
    for f in crate::nginx::check(cfg) {
        match f.ok {
            true => r.ok(&f.what),
            false => r.problem(&f.what, &f.fix),
        }
    }
    if let Some(p) = &cfg.env_file {
        match std::fs::metadata(p) {
            Ok(m) if m.permissions().mode() & 0o077 == 0 => {
                r.ok(&format!("env_file {} is private", p.display()))
            }
            Ok(m) => r.problem(
                &format!(
                    "env_file {} has mode {:o}",
                    p.display(),
                    m.permissions().mode() & 0o777
                ),
                &format!("chmod 600 {}", p.display()),
            ),
            Err(e) => r.problem(
                &format!("env_file {}: {e}", p.display()),
                "create it with KEY=value lines, mode 600",
            ),
        }
    }
    if out.json {
        out.data_json(
            &serde_json::json!({ "problems": r.problems, "warnings": r.warnings, "checks": r.items }),
        );
    } else if r.problems == 0 {
        out.data("\nno problems found");
    }
    Ok(if r.problems == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
