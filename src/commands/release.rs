//! `webdock release kill`, `webdock logs release`, `webdock backup` and
//! `webdock backups`: the verbs of the release phase.
//!
//! webdock never kills a release command on its own; `release kill` is the
//! explicit verb for a person who decides to, and it names what it kills.
//! `backup --verify` restores the newest backup into a scratch database
//! and checks it, so a backup is known to restore, not just to exist.
//!
//! With `[hosts]` they all act on the release host (`Config::release_host`,
//! the one whose engine runs the release command), with its paths; the
//! backup records live on the controller, beside the fleet's history.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde_json::json;

use crate::backups;
use crate::config::{fill, Config};
use crate::deploy::{take_deploy_lock, Deployer};
use crate::engine::{ContainerInfo, Docker, Engine};
use crate::host::Host;
use crate::lock::Lock;
use crate::names::Tag;
use crate::out::Out;
use crate::plan::is_active;
use crate::roles::{LABEL_ROLE, LABEL_TAG};
use crate::Usage;

/// The host that runs the release phase: the local engine for the fleet
/// of one, else the release host of `[hosts]` through its engine.
async fn release_host(cfg: &Config) -> anyhow::Result<Host<Docker>> {
    let Some(h) = cfg.release_host() else {
        return super::local_host(cfg).await;
    };
    let engine = crate::fleet::connect_one(h)
        .await
        .with_context(|| format!("release host {}: {} unreachable", h.name, h.engine))?;
    Ok(Host::remote(cfg, h, engine))
}

/// The deploy lock `webdock backup` holds (the fleet lock with `[hosts]`)
/// and the live tag it backs up by.
enum Held {
    Local(#[allow(dead_code)] Lock),
    Fleet(#[allow(dead_code)] crate::fleet::FleetLock),
}

async fn lock_for_backup(cfg: &Config, host: &Host<Docker>) -> anyhow::Result<(Held, String)> {
    let none = || -> anyhow::Error {
        Usage("no release is live: nothing to back up yet\nhint: promote makes one before each release command".into()).into()
    };
    if cfg.hosts.is_empty() {
        let lock = take_deploy_lock(cfg, "backup", None)?;
        let obs = host.observe(&cfg.project).await?;
        let live = obs.live_tag().ok_or_else(none)?.to_string();
        return Ok((Held::Local(lock), live));
    }
    let lh = crate::fleet::lock_host(cfg);
    let lock_host = Host::remote(
        cfg,
        lh,
        crate::fleet::connect_one(lh)
            .await
            .with_context(|| format!("lock host {}: {} unreachable", lh.name, lh.engine))?,
    );
    let mut live = None;
    for h in [host, &lock_host] {
        if let Some(t) = h.observe(&cfg.project).await?.live_tag() {
            live = Some(t.to_string());
            break;
        }
    }
    let live = live.ok_or_else(none)?;
    lock_host
        .ensure_dirs(&format!("{}:{live}", cfg.image))
        .await?;
    let lock = crate::fleet::FleetLock::take(&lock_host, "backup", None).await?;
    crate::proxy::ensure_dirs(&cfg.layout())?; // the controller keeps the records
    Ok((Held::Fleet(lock), live))
}

async fn release_containers(
    cfg: &Config,
    engine: &impl Engine,
) -> anyhow::Result<Vec<ContainerInfo>> {
    Ok(engine
        .list_containers(&cfg.project)
        .await?
        .into_iter()
        .filter(|c| c.label(LABEL_ROLE) == Some("release"))
        .collect())
}

fn describe(c: &ContainerInfo) -> String {
    let age = c
        .started_at
        .as_deref()
        .and_then(crate::clock::age_secs)
        .map(|s| format!(", running for {}", crate::clock::human_secs(s)))
        .unwrap_or_default();
    format!(
        "{} (release command of {}{age})",
        c.name,
        c.label(LABEL_TAG).unwrap_or("?")
    )
}

/// Kills the running release command: only the one of `tag`, or with `yes`
/// whichever runs.
pub async fn kill(
    cfg: &Config,
    tag: Option<&Tag>,
    yes: bool,
    out: Out,
) -> anyhow::Result<ExitCode> {
    let host = release_host(cfg).await?;
    let engine = &host.engine;
    let running: Vec<ContainerInfo> = release_containers(cfg, engine)
        .await?
        .into_iter()
        .filter(is_active)
        .collect();
    let Some(c) = running.first() else {
        bail!(
            "no release command of project {} runs: nothing to kill",
            cfg.project
        );
    };
    let its_tag = c.label(LABEL_TAG).unwrap_or_default();
    match tag {
        Some(t) if t.as_str() != its_tag => bail!(Usage(format!(
            "the release command that runs is {}'s, not {t}: nothing was killed\nhint: webdock release kill {its_tag}",
            describe(c)
        ))),
        None if !yes => bail!(Usage(format!(
            "say which release command to kill: the one running is {}\nhint: webdock release kill {its_tag} (or --yes)",
            describe(c)
        ))),
        _ => {}
    }
    out.progress(&format!("killing {}", describe(c)));
    engine
        .stop_container(&c.name, Duration::from_secs(10))
        .await?;
    let output = engine.logs_tail(&c.name, 20).await.unwrap_or_default();
    engine.remove_container(&c.name).await?;
    // The promote that waited for it may be removing it too ("already in
    // progress" counts as done): say "removed" only once it is gone.
    for _ in 0..100 {
        if engine.inspect_container(&c.name).await?.is_none() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    out.note(&format!(
        "killed and removed {}: the migration may have changed the database partly; its last output:\n{}\n`webdock promote {its_tag}` runs it afresh; to restore a backup see docs/operations.md",
        c.name,
        output.trim_end()
    ));
    if out.json {
        out.data_json(&json!({ "killed": c.name, "tag": its_tag }));
    }
    Ok(ExitCode::SUCCESS)
}

/// `webdock logs release [TAG]`: the running release command's output
/// (or the one of TAG), from its first line.
pub async fn logs(
    cfg: &Config,
    tag: Option<&str>,
    follow: bool,
    tail: &str,
    out: Out,
) -> anyhow::Result<ExitCode> {
    let host = release_host(cfg).await?;
    let engine = &host.engine;
    let all = release_containers(cfg, engine).await?;
    let c = match tag {
        Some(t) => all.iter().find(|c| c.label(LABEL_TAG) == Some(t)),
        None => all.iter().find(|c| is_active(c)).or(all.first()),
    };
    let Some(c) = c else {
        bail!(
            "no release container{} of project {}: release commands that ended are removed once webdock has read them",
            tag.map(|t| format!(" of {t}")).unwrap_or_default(),
            cfg.project
        );
    };
    use futures_util::StreamExt;
    let mut s = engine.follow_logs(&c.name, follow, tail);
    while let Some(item) = s.next().await {
        out.data_bytes(item?.as_ref())?;
    }
    Ok(ExitCode::SUCCESS)
}

/// `webdock backups`: the backups on record, oldest first.
pub fn list(cfg: &Config, out: Out) -> anyhow::Result<ExitCode> {
    let records = backups::read(&cfg.layout().backups())?;
    if out.json {
        out.data_pretty(&records)?;
    } else if records.is_empty() {
        out.note(&format!(
            "no backups yet ({})",
            cfg.layout().backups().display()
        ));
    } else {
        out.data(&format!("{:<40} {:<14} {:<22} FILE", "NAME", "TAG", "WHEN"));
        for r in &records {
            out.data(&format!(
                "{:<40} {:<14} {:<22} {}",
                r.name, r.tag, r.when, r.file
            ));
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `webdock backup`: a backup now, by the live release's image; with
/// `--verify`, a restore of the newest backup into a scratch database and
/// the configured check.
pub async fn backup(cfg: &Config, verify: bool, out: Out) -> anyhow::Result<ExitCode> {
    let b = &cfg.backup;
    if !b.enabled() {
        bail!(Usage(format!(
            "no [backup] command in {}\nhint: see docs/configuration.md, section [backup]",
            cfg.path.display()
        )));
    }
    if verify && (b.restore.is_empty() || b.verify.is_empty()) {
        bail!(Usage(format!(
            "backup --verify needs backup.restore and backup.verify in {}\nhint: see docs/configuration.md, section [backup]",
            cfg.path.display()
        )));
    }
    let host = release_host(cfg).await?;
    let d = Deployer::new(cfg, &host, out)?;
    if !verify {
        let (_lock, live) = lock_for_backup(cfg, &host).await?;
        let tag = super::parse_tag(&live)?;
        let r = d.take_backup(&tag).await?;
        if out.json {
            out.data_pretty(&r)?;
        } else {
            out.data(&r.name);
            out.note(&format!(
                "backup {} written to {} ({:.1} s)",
                r.name, r.file, r.seconds
            ));
        }
        return Ok(ExitCode::SUCCESS);
    }
    let records = backups::read(&d.backups_path())?;
    let Some(newest) = records.last() else {
        bail!(
            "no backups on record in {}\nhint: webdock backup",
            d.backups_path().display()
        );
    };
    // Its own release's image restores it best; the live one if that is gone.
    let obs = host.observe(&cfg.project).await?;
    let mut tag = super::parse_tag(&newest.tag)?;
    if host
        .engine
        .inspect_image(&cfg.image_ref(&tag))
        .await?
        .is_none()
    {
        match obs.live_tag() {
            Some(live) => tag = super::parse_tag(live)?,
            None => bail!(
                "image {} of backup {} is gone and no release is live",
                cfg.image_ref(&tag),
                newest.name
            ),
        }
    }
    let vars = [
        ("file", newest.file.as_str()),
        ("scratch", b.scratch.as_str()),
        ("tag", newest.tag.as_str()),
    ];
    let script = format!(
        "{} && {}",
        shell_words(&fill(&b.restore, &vars)),
        shell_words(&fill(&b.verify, &vars))
    );
    let env = vec![
        format!("WEBDOCK_BACKUP_FILE={}", newest.file),
        format!("WEBDOCK_SCRATCH={}", b.scratch),
    ];
    let t = Instant::now();
    out.progress(&format!(
        "restoring backup {} into {} and checking it",
        newest.name, b.scratch
    ));
    let run = d
        .one_off(
            "verify",
            &tag,
            vec!["sh".into(), "-ec".into(), script],
            env,
            b.timeout,
        )
        .await?;
    let secs = t.elapsed().as_secs_f64();
    if run.code != 0 {
        bail!(
            "backup {} did not restore and check: exited with {} in {} (the scratch database only; nothing else was touched)\n--- its output ---\n{}",
            newest.name,
            run.code,
            run.container,
            run.output.trim_end()
        );
    }
    if out.json {
        out.data_pretty(&json!({ "backup": newest.name, "file": newest.file, "tag": newest.tag, "verified": true, "seconds": secs, "output": run.output }))?;
    } else {
        out.data(run.output.trim_end());
        out.note(&format!(
            "backup {} restores and passes the check ({secs:.1} s)",
            newest.name
        ));
    }
    Ok(ExitCode::SUCCESS)
}

/// Arguments as one POSIX shell command line, each single-quoted.
fn shell_words(args: &[String]) -> String {
    args.iter()
        .map(|a| format!("'{}'", a.replace('\'', r"'\''")))
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    #[test]
    fn shell_words_survive_quotes_and_spaces() {
        let a = ["python", "it's", "a b", "$X"].map(String::from);
        assert_eq!(super::shell_words(&a), r#"'python' 'it'\''s' 'a b' '$X'"#);
    }
}
