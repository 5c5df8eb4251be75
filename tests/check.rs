//! `webdock check` against a real engine and host nginx: the Nagios exit
//! codes and performance data for each state on-call must be woken for.

mod common;
use common::fleet::Fleet;
use common::rig::Rig;
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
    assert_eq!(perf(&line, "live_answers"), Some("0"), "{line}");
    p.with_nginx("");
    // billing beats as in the example (every 0.2 s); a limit far above its
    // start, which takes a minute at a load average of 50
    let text = std::fs::read_to_string(&p.config).unwrap();
    let text = text.replace(
        "[djobs.billing]\n",
        "[djobs.billing]\nheartbeat = \"600s\"\n",
    );
    std::fs::write(&p.config, text).unwrap();
    p.ok(&["promote", "1.0.0"]);

    let (code, line) = check(&p);
    assert_eq!(code, 0, "{line}");
    assert!(line.starts_with("WEBDOCK OK - "), "{line}");
    assert!(line.contains("'live_answers'=1;;1:"), "{line}");
    assert!(line.contains("'billing_restarts'=0c"), "{line}");
    assert!(line.contains("'portal_restarts'=0c"), "{line}");
    assert!(
        perf(&line, "disk_used").is_some_and(|d| d.ends_with('%')),
        "{line}"
    );
    // no warning level: the watchdog acts at the limit
    let age = perf(&line, "billing_heartbeat_age").expect("billing beats");
    assert!(age.ends_with('s') && age != "U", "{line}");
    assert!(
        line.contains(&format!("'billing_heartbeat_age'={age};;600")),
        "{line}"
    );
    let j: serde_json::Value =
        serde_json::from_str(&p.ok(&["check", "--json"])).expect("check --json is JSON");
    assert_eq!(j["state"], "OK");
    assert_eq!(j["exit_code"], 0);

    // a djob stopped: CRITICAL naming it
    p.ok(&["stop", "djob", "billing"]);
    let (code, line) = check(&p);
    assert_eq!(code, 2, "{line}");
    assert!(line.contains("djob billing is not running"), "{line}");
    assert!(
        perf(&line, "billing_restarts").is_some_and(|v| v.ends_with('c')),
        "{line}"
    );
    assert_eq!(perf(&line, "live_answers"), Some("1"), "{line}");
    assert!(perf(&line, "billing_heartbeat_age").is_some(), "{line}");
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
    assert_eq!(perf(&line, "live_answers"), Some("1"), "{line}");
    assert!(perf(&line, "billing_restarts").is_some(), "{line}");
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
    assert_eq!(perf(&line, "live_answers"), Some("0"), "{line}");
    assert!(line.contains("'live_answers'=0;;1:"), "{line}");
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

/// The value of one perfdata label in a check line (`'x'=3s;;60` → `3s`).
fn perf<'a>(line: &'a str, label: &str) -> Option<&'a str> {
    let (_, data) = line.split_once(" | ")?;
    data.split(' ')
        .find_map(|p| p.strip_prefix(&format!("'{label}'=")))
        .map(|v| v.split(';').next().unwrap_or(v))
}

/// With `[hosts]`, check asks every host: each worker is judged on the host
/// it runs on (not the controller's engine), each host's nginx is asked, a
/// remote djob's heartbeat is read on its host, and a host that does not
/// answer is CRITICAL by name, never guessed fine.
#[test]
fn a_fleet_check_judges_each_worker_on_its_host_and_names_a_host_it_cannot_reach() {
    ensure_image("1.0.0");
    let rig = Rig::up(2);
    rig.load(&[&format!("{IMAGE}:1.0.0")]);
    let workers = r#"[cron]
stop_grace = "5s"
[djobs.billing]
command = ["python", "manage.py", "djob", "billing"]
stop_grace = "5s"
heartbeat = "600s"
"#;
    let f = Fleet::with(&rig, &["web1", "web2"], &[], &["web2"], workers, None);
    let check = || {
        let o = f.webdock(&rig, &["check"]);
        let line = String::from_utf8_lossy(&o.stdout).trim().to_string();
        assert_eq!(line.lines().count(), 1, "one line: {line}");
        (o.status.code().unwrap_or(-1), line)
    };
    f.ok(&rig, &["promote", "1.0.0"]);
    // webdock's own helper logs within the default bound too (the rig's
    // engines set no log options)
    let helper = format!("fl{}-proxy", rig.id);
    let log = rig.docker_ok(
        "web1",
        &["inspect", "-f", "{{json .HostConfig.LogConfig}}", &helper],
    );
    assert!(log.contains("\"max-size\":\"10m\""), "{log}");

    let (code, line) = wait_for(60, "the fleet check to be OK", || {
        let (code, line) = check();
        (code == 0).then_some((code, line))
    });
    assert_eq!(code, 0, "{line}");
    assert!(line.contains("answering on 2 host(s)"), "{line}");
    assert_eq!(perf(&line, "live_answers"), Some("2"), "{line}");
    assert_eq!(perf(&line, "hosts_unreachable"), Some("0"), "{line}");
    assert!(
        line.contains(";;600"),
        "the heartbeat's limit is the critical bar: {line}"
    );
    let age = perf(&line, "billing_heartbeat_age").expect("billing's heartbeat age");
    let secs: u64 = age
        .strip_suffix('s')
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("read on web2, not unknown: {line}"));
    assert!(secs < 60, "it beats every 0.2 s: {line}");
    // status reads the remote heartbeat through the host too
    let st: serde_json::Value = serde_json::from_str(&f.ok(&rig, &["status", "--json"])).unwrap();
    let billing = st["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|h| h["host"] == "web2")
        .flat_map(|h| h["status"]["djobs"].as_array().cloned().unwrap_or_default())
        .find(|d| d["name"] == "billing")
        .expect("billing shown on web2");
    assert!(billing["heartbeat"]["age_s"].is_u64(), "{billing}");

    // billing stopped on web2: CRITICAL naming the djob and its host
    f.ok(&rig, &["stop", "djob", "billing"]);
    let (code, line) = check();
    assert_eq!(code, 2, "{line}");
    assert!(
        line.contains("djob billing on web2 is not running"),
        "{line}"
    );
    assert!(
        perf(&line, "billing_restarts").is_some_and(|v| v.ends_with('c')),
        "{line}"
    );
    f.ok(&rig, &["start", "djob", "billing"]);
    wait_for(60, "the fleet check to be OK again", || {
        (check().0 == 0).then_some(())
    });

    // web1 cut off: CRITICAL naming it, the other host still judged
    rig.cut("web1");
    let (code, line) = check();
    rig.heal("web1");
    assert_eq!(code, 2, "{line}");
    assert!(line.contains("web1: cannot be reached"), "{line}");
    assert_eq!(perf(&line, "hosts_unreachable"), Some("1"), "{line}");
    assert_eq!(perf(&line, "live_answers"), Some("1"), "{line}");
}
