//! The release phase is safe (issue 15), against the real engine and the
//! example app: one release command per project at a time, never killed by
//! webdock (not by a kill of webdock, a timeout or a signal), truthful
//! messages, and a backup before every new release command that is known
//! to restore.
//!
//! The image `slow` carries a test-only migration that appends a line to
//! `/data/release-starts` each time it *starts*, then sleeps
//! `SLOW_MIGRATION_SECONDS`: the number of lines is the number of times a
//! migration was started.

use std::process::{Child, Command, Stdio};

mod common;
use common::*;

const SLOW_MIGRATION: &str = r#"import os
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

from django.db import migrations


def slow(apps, schema_editor):
    data = Path(os.environ.get("WEBDOCK_DATA", "/data"))
    line = f"{os.environ.get('WEBDOCK_RELEASE')} {os.getpid()} {datetime.now(timezone.utc).isoformat()}\n"
    fd = os.open(data / "release-starts", os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    os.write(fd, line.encode())
    os.fsync(fd)
    os.close(fd)
    print("slow migration: started", flush=True)
    time.sleep(float(os.environ.get("SLOW_MIGRATION_SECONDS", "20")))
    print("slow migration: done", flush=True)


class Migration(migrations.Migration):
    atomic = False
    dependencies = [("portal", "LATEST")]
    operations = [migrations.RunPython(slow, migrations.RunPython.noop)]
"#;

const BACKUP: &str = r#"[backup]
command = ["python", "manage.py", "backup_db", "{file}"]
suffix = ".sqlite3"
keep = 2
restore = ["python", "manage.py", "restore_db", "{file}", "{scratch}"]
verify = ["python", "manage.py", "check_db", "{scratch}"]
scratch = "/tmp/webdock-scratch.sqlite3"
"#;

fn slow_image() {
    ensure_variant("slow", |app| {
        // After the example's newest migration, whatever it is: a second
        // leaf would make Django refuse to migrate at all.
        let dir = app.join("portal/migrations");
        let latest = std::fs::read_dir(&dir)
            .unwrap()
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter(|n| n.ends_with(".py") && n.as_bytes()[0].is_ascii_digit())
            .max()
            .expect("the example has migrations");
        let latest = latest.trim_end_matches(".py");
        std::fs::write(
            dir.join("9999_slow.py"),
            SLOW_MIGRATION.replace("LATEST", latest),
        )
        .unwrap()
    });
}

/// A project whose slow migration sleeps `secs`.
fn project(hint: &str, extra: &str, secs: u32) -> Project {
    let p = Project::new(hint, extra);
    let text = std::fs::read_to_string(&p.config).unwrap().replacen(
        "[env]\n",
        &format!("[env]\nSLOW_MIGRATION_SECONDS = \"{secs}\"\n"),
        1,
    );
    std::fs::write(&p.config, text).unwrap();
    p
}

fn starts(p: &Project) -> usize {
    std::fs::read_to_string(p.data().join("release-starts"))
        .unwrap_or_default()
        .lines()
        .count()
}

/// A webdock in the background, killed if the test ends first.
struct Bg(Child);
impl Drop for Bg {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn_promote(p: &Project, tag: &str) -> Bg {
    Bg(p.cmd()
        .args(["promote", tag])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap())
}

fn signal(bg: &Bg, sig: i32) {
    unsafe { libc::kill(bg.0.id() as i32, sig) };
}

fn finish(mut bg: Bg) -> (Option<i32>, String) {
    use std::io::Read;
    let mut err = String::new();
    bg.0.stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    let st = bg.0.wait().unwrap();
    (st.code(), err)
}

fn container_id(name: &str) -> Option<String> {
    let o = docker(&["inspect", "-f", "{{.Id}} {{.State.Running}}", name]);
    o.status
        .success()
        .then(|| String::from_utf8_lossy(&o.stdout).trim().to_string())
}

fn err_of(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn a_killed_promote_leaves_its_migration_running_and_the_next_promote_waits_for_it() {
    ensure_image("1.0.0");
    ensure_image("1.0.1");
    slow_image();
    let p = project("relkill", "", 15);
    p.ok(&["promote", "1.0.0"]);
    let bg = spawn_promote(&p, "slow");
    wait_for(120, "the slow migration to start", || {
        (starts(&p) == 1).then_some(())
    });
    signal(&bg, libc::SIGKILL);
    drop(bg);
    let rel = p.container_name("release-slow");
    let before = container_id(&rel).expect("the release container outlives webdock");
    assert!(before.ends_with("true"), "still running: {before}");
    let st = p.status_json();
    assert_eq!(st["releases"][0]["container"], rel.as_str(), "{st}");
    assert_eq!(
        st["releases"][0]["running"], true,
        "status shows the migration: {st}"
    );

    // another tag meanwhile: refused, naming the running one, which is untouched
    let o = p.webdock(&["promote", "1.0.1"]);
    let err = err_of(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.contains(&rel)
            && err.contains("release command of slow")
            && err.contains("running for"),
        "{err}"
    );
    assert_eq!(container_id(&rel).as_deref(), Some(before.as_str()));
    assert!(!p.containers().contains(&p.container_name("release-1.0.1")));

    // the same tag again: waits for the running migration and succeeds
    let o = p.webdock(&["promote", "slow"]);
    let err = err_of(&o);
    assert_eq!(o.status.code(), Some(0), "{err}");
    assert!(err.contains("already runs in"), "{err}");
    assert!(
        err.contains("slow migration: done"),
        "its output is streamed: {err}"
    );
    assert_eq!(starts(&p), 1, "exactly one start of the migration");
    assert_eq!(p.status_json()["live"]["tag"], "slow");
    assert!(!p.containers().contains(&rel), "removed once read");
}

#[test]
fn sigterm_during_the_release_says_where_the_migration_goes_on() {
    slow_image();
    let p = project("relterm", "", 12);
    let bg = spawn_promote(&p, "slow");
    wait_for(120, "the slow migration to start", || {
        (starts(&p) == 1).then_some(())
    });
    signal(&bg, libc::SIGTERM);
    let (code, err) = finish(bg);
    assert_eq!(code, Some(1), "{err}");
    let rel = p.container_name("release-slow");
    for needle in [
        "SIGTERM",
        &format!("goes on in container {rel}"),
        "webdock logs release",
        "webdock promote slow",
    ] {
        assert!(err.contains(needle), "{needle}: {err}");
    }
    assert!(container_id(&rel).unwrap().ends_with("true"), "not killed");
    let logs = p.ok(&["logs", "release"]);
    assert!(logs.contains("slow migration: started"), "{logs}");
    // it finishes by itself; the next promote takes its exit code
    assert_eq!(docker_ok(&["wait", &rel]), "0");
    let o = p.webdock(&["promote", "slow"]);
    let err = err_of(&o);
    assert_eq!(o.status.code(), Some(0), "{err}");
    assert!(err.contains("ended while no webdock waited"), "{err}");
    assert_eq!(starts(&p), 1);
    assert_eq!(p.status_json()["live"]["tag"], "slow");
}

#[test]
fn a_release_timeout_stops_the_waiting_not_the_migration() {
    slow_image();
    let p = project("reltime", "[release]\ntimeout = \"3s\"\n", 12);
    let o = p.webdock(&["promote", "slow"]);
    let err = err_of(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    let rel = p.container_name("release-slow");
    assert!(
        err.contains("did not end within release.timeout (3s)")
            && err.contains(&format!("goes on in container {rel}"))
            && !err.contains("nothing was changed\n"),
        "{err}"
    );
    assert!(
        container_id(&rel).unwrap().ends_with("true"),
        "still running"
    );
    assert_eq!(docker_ok(&["wait", &rel]), "0", "it finishes by itself");
    assert_eq!(starts(&p), 1);
    assert!(p.live_link().is_none(), "nothing went live");
    let h = p.history_lines();
    assert!(
        h[0]["outcome"].as_str().unwrap().starts_with("failed"),
        "{h:?}"
    );
}

#[test]
fn release_kill_names_what_it_kills_and_needs_the_tag() {
    slow_image();
    let p = project("relkil2", "", 60);
    let bg = spawn_promote(&p, "slow");
    wait_for(120, "the slow migration to start", || {
        (starts(&p) == 1).then_some(())
    });
    let rel = p.container_name("release-slow");
    for args in [&["release", "kill"][..], &["release", "kill", "1.0.1"]] {
        let o = p.webdock(args);
        let err = err_of(&o);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(&rel) && err.lines().count() <= 3, "{err}");
        assert!(container_id(&rel).unwrap().ends_with("true"));
    }
    let o = p.webdock(&["release", "kill", "slow"]);
    let err = err_of(&o);
    assert_eq!(o.status.code(), Some(0), "{err}");
    assert!(err.contains(&rel) && err.contains("partly"), "{err}");
    assert!(container_id(&rel).is_none(), "killed and removed");
    // the promote that waited reports a failed release command, truthfully
    let (code, err) = finish(bg);
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("no release was live and none went live") && err.contains("partly"),
        "{err}"
    );
}

#[test]
fn a_failing_backup_aborts_the_promote_before_any_release_command() {
    ensure_image("1.0.0");
    slow_image();
    let p = project("bakfail", "", 1);
    p.ok(&["promote", "1.0.0"]);
    let before: Vec<_> = p.containers().iter().map(|c| container_id(c)).collect();
    let failing = "[backup]\ncommand = [\"sh\", \"-c\", \"echo disk full >&2; exit 3\"]\n";
    p.write_config(failing);
    let o = p.webdock(&["promote", "slow"]);
    let err = err_of(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.contains("exited with 3")
            && err.contains("disk full")
            && err.contains("no release command ran"),
        "{err}"
    );
    assert_eq!(starts(&p), 0, "no release command ran");
    let after: Vec<_> = p.containers().iter().map(|c| container_id(c)).collect();
    assert_eq!(before, after, "no container changed");
    assert_eq!(p.status_json()["live"]["tag"], "1.0.0");
}

#[test]
fn backups_are_listed_named_in_history_kept_to_keep_and_verified_by_a_restore() {
    ensure_image("1.0.0");
    ensure_image("1.0.1");
    let p = Project::new("bakok", BACKUP);
    p.ok(&["promote", "1.0.0"]);
    p.ok(&["promote", "1.0.1"]);
    let list: serde_json::Value = serde_json::from_str(&p.ok(&["backups", "--json"])).unwrap();
    let list = list.as_array().unwrap().clone();
    assert_eq!(list.len(), 2, "{list:?}");
    assert_eq!(list[0]["tag"], "1.0.0");
    assert_eq!(list[1]["tag"], "1.0.1");
    let h = p.history_lines();
    for (entry, backup) in h.iter().zip(&list) {
        assert_eq!(entry["backup"], backup["name"], "{entry}");
    }
    let on_disk = |r: &serde_json::Value| {
        let f = r["file"].as_str().unwrap().strip_prefix("/data/").unwrap();
        p.data().join(f)
    };
    assert!(on_disk(&list[1]).is_file());
    // a third backup: the oldest goes (keep = 2)
    let name = p.ok(&["backup"]);
    let now: serde_json::Value = serde_json::from_str(&p.ok(&["backups", "--json"])).unwrap();
    let now = now.as_array().unwrap().clone();
    assert_eq!(now.len(), 2);
    assert_eq!(now[1]["name"], name.trim());
    assert!(!on_disk(&list[0]).exists(), "pruned from the data volume");
    let table = p.ok(&["backups"]);
    assert!(table.contains(name.trim()), "{table}");

    let out = p.ok(&["backup", "--verify"]);
    assert!(out.contains("integrity ok"), "{out}");
    assert!(
        !out.contains(" 0 migrations applied"),
        "a migrated database: {out}"
    );
    // a backup that does not restore is caught
    std::fs::write(on_disk(&now[1]), b"not a database at all, just some bytes").unwrap();
    let o = p.webdock(&["backup", "--verify"]);
    let err = err_of(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.contains(name.trim()) && err.contains("not a database"),
        "{err}"
    );
    assert!(p.containers().iter().all(|c| !c.contains("verify")));
}

#[test]
fn backup_verbs_refuse_bad_input_with_exit_2() {
    let p = Project::new("bakbad", "");
    let o = p.webdock(&["backup", "--verify"]);
    assert_eq!(o.status.code(), Some(2), "{}", err_of(&o));
    assert!(err_of(&o).contains("[backup]"));
    let o = run(Command::new(bin())
        .arg("-c")
        .arg(&p.config)
        .args(["release", "kill", "bad tag"]));
    assert_eq!(o.status.code(), Some(2), "{}", err_of(&o));
}

/// `docker inspect` of `name` on a rig host's engine: "ID RUNNING", if it exists.
fn rig_container(h: &common::rig::RigHost, name: &str) -> Option<String> {
    let o = run(Command::new("docker")
        .env("DOCKER_HOST", &h.docker_unix)
        .args(["inspect", "-f", "{{.Id}} {{.State.Running}}", name]));
    o.status
        .success()
        .then(|| String::from_utf8_lossy(&o.stdout).trim().to_string())
}

#[test]
fn in_a_fleet_the_release_verbs_act_on_the_release_host() {
    use common::fleet::Fleet;
    use common::rig::Rig;
    ensure_image("1.0.0");
    slow_image();
    let rig = Rig::up(2);
    rig.load(&[&format!("{IMAGE}:1.0.0"), &format!("{IMAGE}:slow")]);
    let f = Fleet::new(&rig, &["web1", "web2"], &[]);
    // web2 runs the release phase: not the first host, not the controller
    let text = std::fs::read_to_string(&f.config).unwrap().replacen(
        "[env]\n",
        "[env]\nSLOW_MIGRATION_SECONDS = \"120\"\n",
        1,
    );
    std::fs::write(
        &f.config,
        format!("{text}[release]\nhost = \"web2\"\n{BACKUP}"),
    )
    .unwrap();
    let list = |f: &Fleet| -> Vec<serde_json::Value> {
        let v: serde_json::Value =
            serde_json::from_str(&f.ok(&rig, &["backups", "--json"])).unwrap();
        v.as_array().unwrap().clone()
    };
    f.ok(&rig, &["promote", "1.0.0"]);
    let backups = list(&f);
    assert_eq!(
        backups.len(),
        1,
        "the fleet's backup is listed: {backups:?}"
    );
    assert_eq!(backups[0]["tag"], "1.0.0");
    assert_eq!(f.history()[0]["backup"], backups[0]["name"]);

    let starts = || {
        std::fs::read_to_string(f.path().join("data/release-starts"))
            .unwrap_or_default()
            .lines()
            .count()
    };
    let bg = Bg(f
        .cmd(&rig)
        .args(["promote", "slow"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap());
    wait_for(120, "the slow migration to start", || {
        (starts() == 1).then_some(())
    });
    let rel = format!("fl{}-release-slow", rig.id);
    let on_web2 = rig_container(rig.host("web2"), &rel).expect("it runs on the release host");
    assert!(on_web2.ends_with("true"), "{on_web2}");
    assert!(rig_container(rig.host("web1"), &rel).is_none());
    assert!(container_id(&rel).is_none(), "not on this machine's engine");

    let logs = f.ok(&rig, &["logs", "release"]);
    assert!(logs.contains("slow migration: started"), "{logs}");
    let o = f.webdock(&rig, &["release", "kill", "slow"]);
    let err = err_of(&o);
    assert_eq!(o.status.code(), Some(0), "{err}");
    assert!(err.contains(&rel) && err.contains("partly"), "{err}");
    assert!(
        rig_container(rig.host("web2"), &rel).is_none(),
        "killed and removed"
    );
    let (code, err) = finish(bg);
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("the live release (1.0.0) was not touched") && err.contains("partly"),
        "{err}"
    );

    // a backup now, by the live release on the release host, and its restore
    let name = f.ok(&rig, &["backup"]);
    let backups = list(&f);
    assert_eq!(backups.len(), 2, "{backups:?}"); // keep = 2
    assert_eq!(backups[1]["name"], name.trim());
    let out = f.ok(&rig, &["backup", "--verify"]);
    assert!(out.contains("integrity ok"), "{out}");
}

#[test]
fn with_postgresql_the_example_backs_up_with_pg_dump_and_verify_restores_it() {
    use common::fleet::Fleet;
    use common::rig::Rig;
    ensure_image("1.0.0");
    let rig = Rig::up_with(1, &["--postgres"]);
    rig.load(&[&format!("{IMAGE}:1.0.0")]);
    let pg = rig.pg_url().expect("the rig is up with --postgres");
    let f = Fleet::with(
        &rig,
        &["web1"],
        &[],
        &["web1"],
        "",
        Some(&format!("DATABASE_URL={pg}\n")),
    );
    let backup = BACKUP
        .replace(".sqlite3\"", ".dump\"")
        .replace("/tmp/webdock-scratch.sqlite3", "webdock_scratch");
    let text = std::fs::read_to_string(&f.config).unwrap();
    std::fs::write(&f.config, format!("{text}{backup}")).unwrap();
    f.ok(&rig, &["promote", "1.0.0"]);
    // a backup of the migrated database, by pg_dump
    let name = f.ok(&rig, &["backup"]);
    let v: serde_json::Value = serde_json::from_str(&f.ok(&rig, &["backups", "--json"])).unwrap();
    let newest = v.as_array().unwrap().last().unwrap().clone();
    assert_eq!(newest["name"], name.trim());
    let file = f
        .path()
        .join(newest["file"].as_str().unwrap().strip_prefix("/").unwrap());
    let dump = std::fs::read(&file).unwrap();
    assert!(
        dump.starts_with(b"PGDMP"),
        "a pg_dump custom archive: {file:?}"
    );
    let out = f.ok(&rig, &["backup", "--verify"]);
    assert!(out.contains("restored ok"), "{out}");
    let applied: u32 = out
        .split(" migrations applied")
        .next()
        .and_then(|s| s.rsplit(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{out}"));
    assert!(applied > 0, "the migrated database came back: {out}");
    // a corrupted dump does not verify
    std::fs::write(&file, &dump[..dump.len() / 2]).unwrap();
    let o = f.webdock(&rig, &["backup", "--verify"]);
    let err = err_of(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.contains(name.trim()) && err.contains("pg_restore"),
        "{err}"
    );
}
