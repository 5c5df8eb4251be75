//! The invariants when things go wrong (issue 5): webdock SIGKILLed at every
//! step boundary of promote and rollback, a container dying right after its
//! health checks, a health endpoint that hangs, a socket that never
//! answers, the host nginx down, a read-only or full state directory. After
//! each: traffic on a healthy color, never two of a djob, no stale lock,
//! history intact, and the next command repairs or reports the state.

use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::Command;

mod common;
use common::*;

/// Every step of promote (each is a kill point at its end), and
/// `release-wait` inside the release step: the names the code uses.
fn promote_kill_points() -> Vec<&'static str> {
    use webdock::deploy::{Step, RELEASE_WAIT};
    let mut points = Vec::new();
    for s in Step::ALL {
        if s == Step::Release {
            points.push(RELEASE_WAIT);
        }
        points.push(s.as_str());
    }
    points
}

/// A backup before each release command, so that its kill point is passed.
const BACKUP: &str =
    "[backup]\ncommand = [\"python\", \"manage.py\", \"backup_db\", \"{file}\"]\nkeep = 2\n";

fn live_answer(p: &Project) -> Resp {
    http_get(p.nginx.as_ref().unwrap().port, "/health/").expect("host nginx answers")
}

/// The invariants that must hold after any fault.
fn assert_invariants(p: &Project, when: &str) {
    let st = p.status_json();
    assert!(st["lock"].is_null(), "{when}: no stale lock: {st}");
    // Invariant 1: the live color's portal answers through the host nginx
    // with the tag status calls live.
    if let Some(tag) = st["live"]["tag"].as_str() {
        let r = live_answer(p);
        assert_eq!(r.status, 200, "{when}: live color answers: {}", r.text());
        assert_eq!(r.header("X-Release"), Some(tag), "{when}");
    }
    // Invariant 2: at most one running container per djob and for cron.
    for role in ["djob-billing", "djob-email2fax", "cron"] {
        let name = p.container_name(role);
        let running = docker_ok(&[
            "ps",
            "-q",
            "--filter",
            &format!("label=webdock.project={}", p.name),
            "--filter",
            &format!("name=^{name}$"),
        ]);
        assert!(
            running.lines().count() <= 1,
            "{when}: two {role}: {running}"
        );
    }
    // Invariant 4: every history line parses (history_lines panics otherwise).
    let _ = p.history_lines();
}

fn killed_at(p: &Project, point: &str, args: &[&str]) {
    let o = run(p.cmd().args(args).env("WEBDOCK_KILL_AT", point));
    assert_eq!(
        o.status.signal(),
        Some(9),
        "{args:?} should die at {point}: {:?}\n{}",
        o.status,
        String::from_utf8_lossy(&o.stderr)
    );
}

#[test]
fn promote_killed_at_every_step_is_repaired_by_the_next_promote() {
    ensure_image("1.0.0");
    ensure_image("1.0.1");
    let mut p = Project::new("killp", BACKUP);
    p.with_nginx(BACKUP);
    p.ok(&["promote", "1.0.0"]);
    let (mut current, mut next) = ("1.0.0", "1.0.1");
    let points = promote_kill_points();
    for point in &points {
        killed_at(&p, point, &["promote", next]);
        assert_invariants(&p, &format!("after a kill at {point}"));
        let st = p.status_json();
        let live = st["live"]["tag"].as_str().unwrap().to_string();
        // Before the flip nothing visible changed; after it, the new tag is live.
        let flipped =
            points.iter().position(|k| k == point) >= points.iter().position(|k| *k == "flip");
        assert_eq!(
            live,
            if flipped { next } else { current },
            "kill at {point}"
        );
        p.ok(&["promote", next]);
        assert_invariants(&p, &format!("after the repair of a kill at {point}"));
        let st = p.status_json();
        assert_eq!(st["live"]["tag"], next, "{point}: {st}");
        assert!(
            st["warnings"].as_array().unwrap().is_empty(),
            "{point}: converged: {st}"
        );
        assert!(
            st["djobs"]
                .as_array()
                .unwrap()
                .iter()
                .all(|d| d["tag"] == next && d["running"] == true),
            "{point}: {st}"
        );
        std::mem::swap(&mut current, &mut next);
    }
}

#[test]
fn a_promote_killed_between_flip_and_workers_is_reported_by_status() {
    ensure_image("1.0.0");
    ensure_image("1.0.1");
    let mut p = Project::new("killst", "");
    p.with_nginx("");
    p.ok(&["promote", "1.0.0"]);
    killed_at(&p, "verify", &["promote", "1.0.1"]);
    let st = p.status_json();
    assert_eq!(st["live"]["tag"], "1.0.1");
    let w = st["warnings"].to_string();
    assert!(
        w.contains("runs 1.0.0 but 1.0.1 is live") && w.contains("webdock promote 1.0.1"),
        "{st}"
    );
}

#[test]
fn rollback_killed_at_every_step_leaves_a_healthy_color_and_is_repaired() {
    ensure_image("1.0.0");
    ensure_image("1.0.1");
    let mut p = Project::new("killr", "");
    p.with_nginx("");
    p.ok(&["promote", "1.0.0"]);
    p.ok(&["promote", "1.0.1"]);
    use webdock::deploy::Step;
    // The steps of a warm rollback.
    for step in [Step::Health, Step::Flip, Step::Verify, Step::Workers] {
        let point = step.as_str();
        killed_at(&p, point, &["rollback"]);
        assert_invariants(&p, &format!("after a rollback killed at {point}"));
        // Whatever is live now, promoting it finishes the job.
        let live = p.status_json()["live"]["tag"].as_str().unwrap().to_string();
        p.ok(&["promote", &live]);
        assert_invariants(&p, &format!("after repairing a rollback killed at {point}"));
        assert!(p.status_json()["warnings"].as_array().unwrap().is_empty());
        // get back to "1.0.1 live, 1.0.0 warm" for the next round
        if live == "1.0.0" {
            p.ok(&["promote", "1.0.1"]);
        }
    }
}

/// Runs promote held at `step` (test builds only), does `act` there, releases it.
fn promote_held_at(p: &Project, step: &str, tag: &str, act: impl FnOnce()) -> std::process::Output {
    held_at(p, &["promote", tag], step, act)
}

#[test]
fn a_container_dying_right_after_its_health_checks_gets_no_traffic() {
    ensure_image("1.0.0");
    ensure_image("1.0.1");
    let mut p = Project::new("dies", "");
    p.with_nginx("");
    p.ok(&["promote", "1.0.0"]);
    let green = p.container_name("portal-green");
    let o = promote_held_at(&p, "health", "1.0.1", || {
        docker_ok(&["kill", &green]);
    });
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.contains("stopped answering right after its health checks"),
        "{err}"
    );
    assert_eq!(p.live_link().as_deref(), Some("blue"), "never flipped");
    assert_eq!(live_answer(&p).header("X-Release"), Some("1.0.0"));
    assert!(!p.containers().contains(&green));
    assert_invariants(&p, "after a container died");
}

#[test]
fn a_health_endpoint_that_hangs_fails_the_promote_within_its_deadline() {
    ensure_image("1.0.0");
    ensure_variant("hang-health", |app| {
        std::fs::write(app.join("HANG_HEALTH"), "").unwrap()
    });
    let mut p = Project::new("hang", "");
    p.with_nginx("");
    // the good release first, with the normal deadline (a loaded machine
    // can take more than 8 s to start it); then the short one
    p.ok(&["promote", "1.0.0"]);
    std::fs::write(
        &p.config,
        std::fs::read_to_string(&p.config)
            .unwrap()
            .replace("deadline = \"90s\"", "deadline = \"8s\"\ntimeout = \"1s\""),
    )
    .unwrap();
    let o = p.webdock(&["promote", "hang-health"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("no answer within 1000 ms"), "{err}");
    assert_eq!(p.live_link().as_deref(), Some("blue"));
    assert!(!p.containers().contains(&p.container_name("portal-green")));
    assert_invariants(&p, "after a hanging health endpoint");
}

#[test]
fn a_socket_that_appears_but_never_answers_fails_the_promote() {
    ensure_image("1.0.0");
    ensure_image("1.0.1");
    let mut p = Project::new("mute", "");
    p.with_nginx("");
    std::fs::write(
        &p.config,
        std::fs::read_to_string(&p.config)
            .unwrap()
            .replace("deadline = \"90s\"", "deadline = \"20s\"\ntimeout = \"1s\""),
    )
    .unwrap();
    p.ok(&["promote", "1.0.0"]);
    let green = p.container_name("portal-green");
    let sock = p.path().join("run").join(&p.name).join("green/nginx.sock");
    // Stop the new container's nginx the moment its socket exists: the
    // socket accepts connections into its backlog and nothing ever answers.
    // SIGSTOP, not `docker pause`: the cgroup freezer gives up on a
    // container that is still starting on a loaded machine (regression:
    // "OCI runtime pause failed: unable to freeze" stopped the suite).
    let o = promote_held_at(&p, "start-portal", "1.0.1", || {
        wait_for(60, "the socket", || sock.exists().then_some(()));
        freeze::sigstop(&green, "nginx");
    });
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("failed its health check"), "{err}");
    assert_eq!(p.live_link().as_deref(), Some("blue"));
    assert!(
        !p.containers().contains(&green),
        "the frozen container is removed: {:?}",
        p.containers()
    );
    assert_invariants(&p, "after a mute socket");
}

#[test]
fn the_host_nginx_down_fails_the_promote_and_traffic_stays_on_the_old_color() {
    ensure_image("1.0.0");
    ensure_image("1.0.1");
    let mut p = Project::new("ngxdown", "");
    p.with_nginx("");
    p.ok(&["promote", "1.0.0"]);
    let port = p.nginx.as_ref().unwrap().port;
    p.nginx = None; // stops it
    let o = p.webdock(&["promote", "1.0.1"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.contains(&format!("127.0.0.1:{port}")) && err.contains("flipped back to blue"),
        "{err}"
    );
    assert_eq!(p.live_link().as_deref(), Some("blue"));
    let blue = p.path().join("run").join(&p.name).join("blue/nginx.sock");
    assert_eq!(
        unix_get(&blue, "/health/", "").unwrap().header("X-Release"),
        Some("1.0.0")
    );
    assert!(p.status_json()["lock"].is_null());
}

struct Mount(PathBuf);
impl Mount {
    fn tmpfs(dir: &Path, opts: &str) -> Mount {
        std::fs::create_dir_all(dir).unwrap();
        let o = run(Command::new("mount")
            .args(["-t", "tmpfs", "-o", opts, "tmpfs"])
            .arg(dir));
        assert!(
            o.status.success(),
            "this test mounts a small tmpfs (it needs root and mount(8)): {}",
            String::from_utf8_lossy(&o.stderr)
        );
        Mount(dir.into())
    }
}
impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

#[test]
fn a_full_or_read_only_state_directory_is_refused_before_anything_changes() {
    ensure_image("1.0.0");
    ensure_image("1.0.1");
    let mut p = Project::new("disk", "");
    p.with_nginx("");
    p.ok(&["promote", "1.0.0"]);
    let state = p.path().join("state");
    let saved = std::fs::read(state.join(&p.name).join("history.jsonl")).unwrap();
    let before = p.containers();
    for (what, opts) in [
        ("full", "size=256k,mode=0755"),
        ("read-only", "size=1m,mode=0755"),
    ] {
        let m = Mount::tmpfs(&state, opts);
        let dir = state.join(&p.name);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("history.jsonl"), &saved).unwrap();
        // the live link lives on the state disk too: as it was
        std::fs::create_dir_all(state.join("live.d")).unwrap();
        std::os::unix::fs::symlink(
            p.path().join("run").join(&p.name).join("blue"),
            p.live_link_path(),
        )
        .unwrap();
        if what == "full" {
            // fill it: the write stops with ENOSPC
            let _ = std::fs::write(dir.join("filler"), vec![0u8; 1 << 20]);
        } else {
            let o = run(Command::new("mount").args(["-o", "remount,ro"]).arg(&state));
            assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        }
        let o = p.webdock(&["promote", "1.0.1"]);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "{what}: {err}");
        assert!(
            err.contains(&state.join(&p.name).display().to_string()),
            "{what}: names the directory: {err}"
        );
        assert_eq!(p.containers(), before, "{what}: nothing started");
        assert_eq!(p.live_link().as_deref(), Some("blue"), "{what}");
        assert_eq!(
            std::fs::read(dir.join("history.jsonl")).unwrap(),
            saved,
            "{what}: history intact"
        );
        drop(m);
    }
    // the real state directory again: promote works
    p.ok(&["promote", "1.0.1"]);
    assert_eq!(p.history_lines().len(), 2);
}
