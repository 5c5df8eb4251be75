//! The release phase against the recording fake: one release command at a
//! time, never killed, a backup before it.

use std::path::Path;

use super::fake::Fake;
use super::*;
use crate::history::Intent;
use crate::host::Host;
use crate::roles::Role;

fn cfg(root: &Path, extra: &str) -> Config {
    let text = format!(
        "project = \"demo\"\nimage = \"app\"\nsocket_root = \"{}\"\nstate_root = \"{}\"\n[health]\nconsecutive = 1\ninterval = \"1ms\"\ndeadline = \"5s\"\n[cron]\nenabled = false\n{extra}\n",
        root.join("run").display(),
        root.join("state").display()
    );
    Config::parse(&root.join("webdock.toml"), &text).unwrap()
}

const BACKUP: &str = "[backup]\ncommand = [\"backup\", \"{file}\"]\nkeep = 2\n";

fn tag(s: &str) -> Tag {
    Tag::parse(s).unwrap()
}

/// A release container of `t` left by an earlier webdock.
fn leave_release(f: &Fake, c: &Config, t: &str, running: bool) -> String {
    let specs = crate::roles::Specs::new(c).unwrap();
    let spec = specs.spec(&Role::Release(tag(t)), &tag(t));
    let name = spec.name.clone();
    f.leave(spec, running);
    name
}

fn creates(f: &Fake, what: &str) -> usize {
    f.calls()
        .iter()
        .filter(|c| c.starts_with("create") && c.contains(what))
        .count()
}

#[tokio::test]
async fn another_tags_running_release_command_is_refused_and_left_alone() {
    let d = tempfile::tempdir().unwrap();
    let c = cfg(d.path(), BACKUP);
    let f = Fake::default();
    f.image("app", "1", "");
    f.image("app", "2", "");
    let running = leave_release(&f, &c, "1", true);
    let h = Host::local(&c, &f);
    let e = Deployer::new(&c, &h, Out::plain())
        .unwrap()
        .promote(&tag("2"), Intent::Promote)
        .await
        .unwrap_err();
    let msg = format!("{e:#}");
    assert!(
        msg.contains(&running) && msg.contains("release command of 1"),
        "{msg}"
    );
    assert_eq!(creates(&f, ""), 0, "nothing started: {:?}", f.calls());
    assert!(f.containers.lock().unwrap()[&running].1, "still running");
    assert!(
        !f.calls().iter().any(|c| c.contains(&running)),
        "{:?}",
        f.calls()
    );
}

#[tokio::test]
async fn the_same_tags_running_release_command_is_waited_for_not_started_again() {
    let d = tempfile::tempdir().unwrap();
    let c = cfg(d.path(), BACKUP);
    let f = Fake::default();
    f.image("app", "2", "");
    let running = leave_release(&f, &c, "2", true);
    let h = Host::local(&c, &f);
    Deployer::new(&c, &h, Out::plain())
        .unwrap()
        .promote(&tag("2"), Intent::Promote)
        .await
        .unwrap();
    let calls = f.calls();
    assert_eq!(creates(&f, "release"), 0, "{calls:?}");
    assert_eq!(
        creates(&f, "backup"),
        0,
        "no backup of a half-migrated database: {calls:?}"
    );
    assert!(calls.contains(&format!("wait {running}")), "{calls:?}");
    assert!(calls.contains(&format!("follow {running}")), "{calls:?}");
    assert!(calls.contains(&format!("remove {running}")), "{calls:?}");
}

#[tokio::test]
async fn a_release_timeout_leaves_the_command_running_and_says_where() {
    let d = tempfile::tempdir().unwrap();
    let c = cfg(d.path(), "");
    let f = Fake::default();
    f.image("app", "2", "");
    *f.release_hangs.lock().unwrap() = true;
    let h = Host::local(&c, &f);
    let e = Deployer::new(&c, &h, Out::plain())
        .unwrap()
        .promote(&tag("2"), Intent::Promote)
        .await
        .unwrap_err();
    let msg = format!("{e:#}");
    assert!(
        msg.contains("goes on in container demo-release-2") && msg.contains("webdock logs release"),
        "{msg}"
    );
    assert!(f.containers.lock().unwrap().contains_key("demo-release-2"));
    assert!(!f.calls().contains(&"remove demo-release-2".to_string()));
    assert_eq!(creates(&f, "portal"), 0);
}

#[tokio::test]
async fn a_failed_release_command_says_the_database_may_have_changed() {
    let d = tempfile::tempdir().unwrap();
    let c = cfg(d.path(), BACKUP);
    let f = Fake::default();
    f.image("app", "2", "");
    *f.release_exit.lock().unwrap() = 3;
    let h = Host::local(&c, &f);
    let e = Deployer::new(&c, &h, Out::plain())
        .unwrap()
        .promote(&tag("2"), Intent::Promote)
        .await
        .unwrap_err();
    let msg = format!("{e:#}");
    for needle in [
        "exited with 3",
        "no release was live and none went live",
        "partly",
        "logs of demo-release-2",
        "backup taken before it is 2-",
    ] {
        assert!(msg.contains(needle), "{needle}: {msg}");
    }
    let (h, _) = history::read(&c.layout().history()).unwrap();
    assert!(h[0].backup.as_deref().unwrap().starts_with("2-"), "{h:?}");
}

#[tokio::test]
async fn a_failed_backup_stops_the_promote_before_the_release_command() {
    let d = tempfile::tempdir().unwrap();
    let c = cfg(d.path(), BACKUP);
    let f = Fake::default();
    f.image("app", "2", "");
    *f.backup_exit.lock().unwrap() = 1;
    let h = Host::local(&c, &f);
    let e = Deployer::new(&c, &h, Out::plain())
        .unwrap()
        .promote(&tag("2"), Intent::Promote)
        .await
        .unwrap_err();
    assert!(format!("{e:#}").contains("no release command ran"), "{e:#}");
    assert_eq!(creates(&f, "release"), 0, "{:?}", f.calls());
    assert_eq!(creates(&f, "portal"), 0);
    assert!(f.containers.lock().unwrap().is_empty());
    assert!(crate::backups::read(&c.layout().backups())
        .unwrap()
        .is_empty());
}

#[tokio::test]
async fn backups_are_recorded_named_in_history_and_kept_to_keep() {
    let d = tempfile::tempdir().unwrap();
    let c = cfg(d.path(), BACKUP);
    let f = Fake::default();
    let h = Host::local(&c, &f);
    let dep = Deployer::new(&c, &h, Out::plain()).unwrap();
    for t in ["1", "2", "3"] {
        f.image("app", t, "");
        dep.promote(&tag(t), Intent::Promote).await.unwrap();
    }
    let calls = f.calls();
    assert!(
        calls.iter().position(|c| c == "create demo-backup-3")
            < calls.iter().position(|c| c == "create demo-release-3"),
        "{calls:?}"
    );
    let rs = crate::backups::read(&c.layout().backups()).unwrap();
    assert_eq!(
        rs.iter().map(|r| r.tag.as_str()).collect::<Vec<_>>(),
        ["2", "3"]
    );
    let (h, _) = history::read(&c.layout().history()).unwrap();
    assert_eq!(h[2].backup.as_deref(), Some(rs[1].name.as_str()));
    assert!(rs[1].file.starts_with("/data/backups/3-") && rs[1].file.ends_with(".backup"));
}

#[tokio::test]
async fn a_failed_release_command_names_the_live_release_it_did_not_touch() {
    let d = tempfile::tempdir().unwrap();
    let c = cfg(d.path(), "");
    let f = Fake::default();
    let h = Host::local(&c, &f);
    let dep = Deployer::new(&c, &h, Out::plain()).unwrap();
    f.image("app", "1", "");
    dep.promote(&tag("1"), Intent::Promote).await.unwrap();
    f.image("app", "2", "");
    *f.release_exit.lock().unwrap() = 3;
    let e = dep.promote(&tag("2"), Intent::Promote).await.unwrap_err();
    let msg = format!("{e:#}");
    assert!(
        msg.contains("the live release (1) was not touched") && msg.contains("partly"),
        "{msg}"
    );
    assert_eq!(creates(&f, "portal-green"), 0, "{:?}", f.calls());
}

#[tokio::test]
async fn another_tags_ended_release_container_is_read_reported_and_removed() {
    let d = tempfile::tempdir().unwrap();
    let c = cfg(d.path(), BACKUP);
    let f = Fake::default();
    f.image("app", "2", "");
    let ended = leave_release(&f, &c, "1", false);
    let h = Host::local(&c, &f);
    Deployer::new(&c, &h, Out::plain())
        .unwrap()
        .promote(&tag("2"), Intent::Promote)
        .await
        .unwrap();
    let calls = f.calls();
    let at = |s: &str| {
        calls
            .iter()
            .position(|c| c == s)
            .unwrap_or_else(|| panic!("no {s:?} in {calls:?}"))
    };
    // its exit code and output are read, then it is removed, all before
    // this tag's backup and release command
    assert!(at(&format!("wait {ended}")) < at(&format!("logs {ended}")));
    assert!(at(&format!("logs {ended}")) < at(&format!("remove {ended}")));
    assert!(at(&format!("remove {ended}")) < at("create demo-backup-2"));
    assert!(at("create demo-backup-2") < at("create demo-release-2"));
    assert!(!f.containers.lock().unwrap().contains_key(&ended));
}
