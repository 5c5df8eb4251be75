//! `webdock check` against a real engine and host nginx: the Nagios exit
//! codes and performance data for each state on-call must be woken for.

mod common;
use common::*;

fn check(p: &Project) -> (i32, String) {
    let o = p.webdock(&["check"]);
    let line = String::from_utf8_lossy(&o.stdout).trim().to_string();
    assert_eq!(line.lines().count(), 1, "one line: {line}");
    (o.status.code().unwrap_or(-1), line)
}

#[test]
fn check_speaks_the_nagios_plugin_convention() {
    ensure_image("1.0.0");
    ensure_image("1.0.1");
    let mut p = Project::new("chk", "");
    // nothing live yet: CRITICAL
    let (code, line) = check(&p);
    assert_eq!(code, 2, "{line}");
    p.with_nginx("");
    p.ok(&["promote", "1.0.0"]);

    let (code, line) = check(&p);
    assert_eq!(code, 0, "{line}");
    assert!(line.starts_with("WEBDOCK OK - "), "{line}");
    assert!(line.contains("'live_answers'=1;;1:"), "{line}");
    assert!(line.contains("'billing_restarts'=0c"), "{line}");
    let j: serde_json::Value =
        serde_json::from_str(&p.ok(&["check", "--json"])).expect("check --json is JSON");
    assert_eq!(j["state"], "OK");
    assert_eq!(j["exit_code"], 0);

    // a djob stopped: CRITICAL naming it
    p.ok(&["stop", "djob", "billing"]);
    let (code, line) = check(&p);
    assert_eq!(code, 2, "{line}");
    assert!(line.contains("djob billing is not running"), "{line}");
    p.ok(&["start", "djob", "billing"]);
    assert_eq!(check(&p).0, 0);

    // a promote killed after its flip: workers on the old tag, WARNING
    let o = run(p
        .cmd()
        .args(["promote", "1.0.1"])
        .env("WEBDOCK_KILL_AT", "verify"));
    assert!(!o.status.success());
    let (code, line) = check(&p);
    assert_eq!(code, 1, "{line}");
    assert!(line.contains("a promote did not finish"), "{line}");
    p.ok(&["promote", "1.0.1"]);
    assert_eq!(check(&p).0, 0);

    // the live portal stopped: CRITICAL
    let live = p.container_name(&format!("portal-{}", p.live_link().expect("a live link")));
    docker_ok(&["stop", "-t", "2", &live]);
    let (code, line) = check(&p);
    assert_eq!(code, 2, "{line}");
    assert!(line.contains("does not answer"), "{line}");
    assert!(line.contains("'live_answers'=0;;1:"), "{line}");
    docker_ok(&["start", &live]);
    wait_for(60, "the portal to answer again", || {
        (check(&p).0 == 0).then_some(())
    });

    // the host nginx down: CRITICAL
    drop(p.nginx.take());
    let (code, line) = check(&p);
    assert_eq!(code, 2, "{line}");
    assert!(line.contains("does not answer"), "{line}");
}

#[test]
fn check_is_unknown_when_it_cannot_look() {
    let p = Project::new("chku", "");
    let o = run(p
        .cmd()
        .arg("check")
        .env("DOCKER_HOST", "unix:///nonexistent/docker.sock"));
    let line = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(3), "{line}");
    assert!(line.starts_with("WEBDOCK UNKNOWN - "), "{line}");
}
