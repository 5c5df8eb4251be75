//! Blue/green through a real host nginx: promote, rollback, failures that
//! must leave traffic where it was, and the deploy lock.

use std::process::Stdio;

mod common;
use common::*;

fn live_tag(p: &Project) -> String {
    let n = p.nginx.as_ref().expect("nginx");
    let r = http_get(n.port, "/health/").expect("host nginx answers");
    assert_eq!(r.status, 200, "{}", r.text());
    r.header("X-Release").expect("X-Release").to_string()
}

#[test]
fn promote_promote_rollback_promote_moves_traffic_and_records_history() {
    ensure_image("1.0.0");
    ensure_image("1.0.1");
    let mut p = Project::new("pprp", "");
    p.with_nginx("");
    p.ok(&["promote", "1.0.0"]);
    assert_eq!(live_tag(&p), "1.0.0");
    assert_eq!(p.live_link().as_deref(), Some("blue"));
    p.ok(&["promote", "1.0.1"]);
    assert_eq!(live_tag(&p), "1.0.1");
    assert_eq!(p.live_link().as_deref(), Some("green"));
    // the previous color stays warm for rollback
    let st = p.status_json();
    assert_eq!(st["portals"][0]["running"], true, "{st}");
    assert_eq!(st["portals"][0]["tag"], "1.0.0", "{st}");
    p.ok(&["rollback"]);
    assert_eq!(live_tag(&p), "1.0.0");
    assert_eq!(p.live_link().as_deref(), Some("blue"));
    let st = p.status_json();
    assert_eq!(
        st["djobs"][0]["tag"], "1.0.0",
        "djobs follow the rollback: {st}"
    );
    p.ok(&["promote", "1.0.1"]);
    assert_eq!(live_tag(&p), "1.0.1");
    let h = p.history_lines();
    let got: Vec<(String, String)> = h
        .iter()
        .map(|e| {
            (
                e["action"].as_str().unwrap().to_string(),
                e["tag"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            ("promote", "1.0.0"),
            ("promote", "1.0.1"),
            ("rollback", "1.0.0"),
            ("promote", "1.0.1")
        ]
        .map(|(a, t)| (a.to_string(), t.to_string()))
    );
    assert!(h.iter().all(|e| e["outcome"] == "ok"));
    let st = p.status_json();
    assert_eq!(st["live"]["tag"], "1.0.1");
    assert_eq!(st["live"]["color"], "green");
    assert_eq!(st["cron"]["running"], true, "{st}");
    assert!(
        st["djobs"]
            .as_array()
            .unwrap()
            .iter()
            .all(|d| d["running"] == true && d["tag"] == "1.0.1"),
        "{st}"
    );
    assert!(st["warnings"].as_array().unwrap().is_empty(), "{st}");
}

#[test]
fn a_tag_whose_health_fails_never_gets_traffic_and_is_removed() {
    ensure_image("1.0.0");
    ensure_variant("broken-health", |app| {
        std::fs::write(app.join("FAIL_HEALTH"), "").unwrap()
    });
    let mut p = Project::new("badh", "");
    p.with_nginx("");
    // a short deadline: the broken tag answers 500 for ever
    std::fs::write(
        &p.config,
        std::fs::read_to_string(&p.config)
            .unwrap()
            .replace("deadline = \"90s\"", "deadline = \"15s\""),
    )
    .unwrap();
    p.ok(&["promote", "1.0.0"]);
    let o = p.webdock(&["promote", "broken-health"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("failed its health check"), "{err}");
    assert!(
        err.contains("last log lines"),
        "the container's logs are shown: {err}"
    );
    assert_eq!(live_tag(&p), "1.0.0");
    assert_eq!(p.live_link().as_deref(), Some("blue"));
    assert!(
        !p.containers().contains(&p.container_name("portal-green")),
        "{:?}",
        p.containers()
    );
    let st = p.status_json();
    assert!(
        st["djobs"]
            .as_array()
            .unwrap()
            .iter()
            .all(|d| d["tag"] == "1.0.0"),
        "djobs untouched: {st}"
    );
    assert!(p.history_lines().last().unwrap()["outcome"]
        .as_str()
        .unwrap()
        .starts_with("failed"));
}

#[test]
fn a_failing_release_command_changes_nothing() {
    ensure_image("1.0.0");
    ensure_image("1.0.1");
    let mut p = Project::new("badrel", "");
    p.with_nginx("");
    p.ok(&["promote", "1.0.0"]);
    let before = p.containers();
    p.write_config("[release]\ncommand = [\"python\", \"-c\", \"import sys; print('migration boom'); sys.exit(3)\"]\n");
    // write_config dropped public_url: put the nginx back in
    p.with_nginx("[release]\ncommand = [\"python\", \"-c\", \"import sys; print('migration boom'); sys.exit(3)\"]\n");
    let o = p.webdock(&["promote", "1.0.1"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.contains("exited with 3") && err.contains("migration boom"),
        "{err}"
    );
    assert_eq!(p.containers(), before);
    assert_eq!(p.live_link().as_deref(), Some("blue"));
}

#[test]
fn two_promotes_at_once_one_runs_the_other_names_the_holder() {
    ensure_image("1.0.0");
    ensure_image("1.0.1");
    let p = Project::new("lock", "");
    let a = p
        .cmd()
        .args(["promote", "1.0.0"])
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let b = p
        .cmd()
        .args(["promote", "1.0.1"])
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let (a, b) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
    let codes = [a.status.code(), b.status.code()];
    assert!(
        codes.contains(&Some(0)) && codes.contains(&Some(1)),
        "{codes:?}\n{}\n{}",
        String::from_utf8_lossy(&a.stderr),
        String::from_utf8_lossy(&b.stderr)
    );
    let loser = if a.status.code() == Some(1) { &a } else { &b };
    let err = String::from_utf8_lossy(&loser.stderr);
    assert!(
        err.contains("is locked by pid") && err.contains("promote"),
        "{err}"
    );
}

#[test]
fn a_wrong_answer_through_the_host_nginx_flips_back() {
    ensure_image("1.0.0");
    ensure_image("1.0.1");
    let mut p = Project::new("vrfy", "");
    p.with_nginx("");
    p.ok(&["promote", "1.0.0"]);
    // public_url now points at a server that always claims another release
    let liar = Nginx::start(
        &p.path().join("liar"),
        "    location / { add_header X-Release bogus always; return 200 \"ok bogus\"; }",
        "",
    );
    let cfg = std::fs::read_to_string(&p.config).unwrap();
    let port = p.nginx.as_ref().unwrap().port;
    std::fs::write(
        &p.config,
        cfg.replace(
            &format!("127.0.0.1:{port}/health/"),
            &format!("127.0.0.1:{}/health/", liar.port),
        ),
    )
    .unwrap();
    let o = p.webdock(&["promote", "1.0.1"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("flipped back to blue"), "{err}");
    assert!(
        !p.containers().contains(&p.container_name("portal-green")),
        "the unverified color is removed, so no later rollback can pick it: {:?}",
        p.containers()
    );
    assert_eq!(p.live_link().as_deref(), Some("blue"));
    assert_eq!(live_tag(&p), "1.0.0");
}

#[test]
fn unknown_tag_mislabelled_image_and_bad_config_change_nothing() {
    let img = ensure_image("1.0.0");
    let p = Project::new("badin", "");
    let o = p.webdock(&["promote", "9.9.9"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains(&format!("{IMAGE}:9.9.9 not found")) && err.contains("webdock build 9.9.9"),
        "{err}"
    );
    let mis = format!("mislabel-{}", free_port());
    docker_ok(&["tag", &img, &format!("{IMAGE}:{mis}")]);
    let o = p.webdock(&["promote", &mis]);
    let _ = docker(&["rmi", &format!("{IMAGE}:{mis}")]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("labelled webdock.tag=1.0.0"), "{err}");
    std::fs::write(
        &p.config,
        "project = \"x\"\n[portal]\nprocesses = \"many\"\n",
    )
    .unwrap();
    let o = p.webdock(&["promote", "1.0.0"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains(":3:"));
    assert!(p.containers().is_empty());
    assert_eq!(p.live_link(), None);
    assert!(p.history_lines().is_empty());
}
