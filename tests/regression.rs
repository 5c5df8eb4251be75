//! Regression tests, each named after what broke (issue 16, "holes a
//! careful review found"). Each failed against the code before its fix.

use std::process::Command;
use std::time::Instant;

mod common;
use common::*;

fn served_tag(p: &Project) -> Option<String> {
    let n = p.nginx.as_ref().expect("nginx");
    let r = http_get(n.port, "/health/").ok()?;
    (r.status == 200)
        .then(|| r.header("X-Release").map(str::to_owned))
        .flatten()
}

fn served(p: &Project) -> String {
    served_tag(p).expect("the host nginx answers 200 with X-Release")
}

/// Item 1: after `promote a1`, `promote a2` and a `promote a3` killed right
/// after its new color passed health, `rollback` flipped to a3, a release
/// that never went live. It must go back to a1.
#[test]
fn rollback_after_a_promote_killed_before_its_flip_goes_back_not_forward() {
    ensure_image("1.0.0");
    ensure_image("1.0.1");
    ensure_image("1.0.2");
    let mut p = Project::new("rgfwd", "");
    p.with_nginx("");
    p.ok(&["promote", "1.0.0"]);
    p.ok(&["promote", "1.0.1"]);
    let o = run(p
        .cmd()
        .args(["promote", "1.0.2"])
        .env("WEBDOCK_KILL_AT", "health"));
    assert!(!o.status.success(), "the promote was killed");
    assert_eq!(served(&p), "1.0.1");
    // the unreleased 1.0.2 runs, healthy, in the idle color
    let st = p.status_json();
    assert!(
        st["portals"]
            .as_array()
            .unwrap()
            .iter()
            .any(|x| x["tag"] == "1.0.2" && x["running"] == true),
        "{st}"
    );
    p.ok(&["rollback"]);
    assert_eq!(served(&p), "1.0.0", "rollback must go back, not forward");
    let st = p.status_json();
    assert_eq!(st["live"]["tag"], "1.0.0", "{st}");
    assert!(
        !st["portals"]
            .as_array()
            .unwrap()
            .iter()
            .any(|x| x["tag"] == "1.0.2"),
        "the unverified 1.0.2 color was replaced: {st}"
    );
    assert_eq!(st["djobs"][0]["tag"], "1.0.0", "{st}");
}

/// Item 1's fix made rollback refuse after a promote that went live but did
/// not finish (its workers step failed, or it was killed after its flip):
/// "no previous release to roll back to from 1.0.1", the very case
/// docs/operations.md recommends rollback for; and `promote 1.0.1` again
/// recorded from_tag 1.0.1, so it stayed refused.
#[test]
fn rollback_after_a_promote_killed_after_its_flip_goes_to_the_release_before() {
    ensure_image("1.0.0");
    ensure_image("1.0.1");
    let mut p = Project::new("rgaft", "");
    p.with_nginx("");
    p.ok(&["promote", "1.0.0"]);
    let kill_at_workers = |p: &Project| {
        let o = run(p
            .cmd()
            .args(["promote", "1.0.1"])
            .env("WEBDOCK_KILL_AT", "workers"));
        assert!(!o.status.success(), "the promote was killed");
        assert_eq!(served(p), "1.0.1", "the flip had happened");
    };
    kill_at_workers(&p);
    p.ok(&["rollback"]);
    assert_eq!(served(&p), "1.0.0");
    let st = p.status_json();
    assert_eq!(st["live"]["tag"], "1.0.0", "{st}");
    assert_eq!(st["djobs"][0]["tag"], "1.0.0", "{st}");
    // Again, and this time `promote 1.0.1` is re-run to finish it first.
    kill_at_workers(&p);
    p.ok(&["promote", "1.0.1"]);
    p.ok(&["rollback"]);
    assert_eq!(served(&p), "1.0.0");
    let last = p.history_lines().pop().unwrap();
    assert_eq!(last["action"], "rollback", "{last}");
    assert_eq!(last["tag"], "1.0.0", "{last}");
}

/// Item 9: `restart portal` read the live tag before it took the deploy
/// lock, so a promote finishing in that window was silently rolled back by
/// the restart. Held right after it decided the tag, the restart holds the
/// lock: a promote then is refused naming it, and the site ends on the tag
/// that was live, which is still the live one.
#[test]
fn restart_portal_decides_its_tag_under_the_lock_so_no_promote_is_undone() {
    ensure_image("1.0.0");
    ensure_image("1.0.1");
    let mut p = Project::new("rgrsl", "");
    p.with_nginx("");
    p.ok(&["promote", "1.0.0"]);
    let mut refused = None;
    let o = held_at(&p, &["restart", "portal"], "restart-decided", || {
        refused = Some(p.webdock(&["promote", "1.0.1"]));
    });
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    let refused = refused.unwrap();
    let perr = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(
        refused.status.code(),
        Some(1),
        "the promote is refused: {perr}"
    );
    assert!(perr.contains("restart portal"), "names the restart: {perr}");
    assert_eq!(served(&p), "1.0.0");
    let st = p.status_json();
    assert_eq!(st["live"]["tag"], "1.0.0", "{st}");
    let h = p.history_lines();
    assert!(
        h.iter().all(|e| e["tag"] == "1.0.0"),
        "no release of 1.0.1 happened, so none was undone: {h:?}"
    );
    // and once the restart is done, the promote goes through
    p.ok(&["promote", "1.0.1"]);
    assert_eq!(served(&p), "1.0.1");
}

fn container_pid(name: &str) -> Option<u32> {
    let o = docker(&["inspect", "-f", "{{.State.Pid}}", name]);
    String::from_utf8_lossy(&o.stdout)
        .trim()
        .parse()
        .ok()
        .filter(|p| *p > 0)
}

/// Item 2: a reboot empties `/run` (tmpfs) under containers that the engine
/// then restarts: the live link was gone, the host nginx answered 502 and
/// stayed so. With no webdock command run, the site must come back on the
/// color that was live.
#[test]
fn a_reboot_that_empties_the_socket_root_brings_the_site_back_by_itself() {
    ensure_image("1.0.0");
    ensure_image("1.0.1");
    let mut p = Project::new("rgboot", "");
    p.with_nginx("");
    p.ok(&["promote", "1.0.0"]);
    p.ok(&["promote", "1.0.1"]);
    let portals = [
        p.container_name("portal-blue"),
        p.container_name("portal-green"),
    ];
    // What a reboot does, as webdock sees it: the socket root is emptied
    // and every container dies, then the engine starts them again.
    std::fs::remove_dir_all(p.path().join("run")).unwrap();
    for name in p.containers() {
        if let Some(pid) = container_pid(&name) {
            let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
        }
    }
    let t = Instant::now();
    let tag = wait_for(120, "the site to come back by itself", || {
        served_tag(&p).filter(|t| t == "1.0.1")
    });
    assert_eq!(tag, "1.0.1");
    eprintln!("site back after {:.1} s", t.elapsed().as_secs_f64());
    for n in &portals {
        let o = docker_ok(&["inspect", "-f", "{{.RestartCount}}", n]);
        assert_ne!(o, "0", "{n} was restarted by the engine");
    }
    let st = p.status_json();
    assert_eq!(st["live"]["tag"], "1.0.1", "{st}");
    // and the release before is still a rollback away
    p.ok(&["rollback"]);
    assert_eq!(served(&p), "1.0.0");
}

/// Item 3: `restart portal` put the live tag into the idle color, where the
/// previous release was kept warm; `rollback` then flipped between two
/// copies of the live tag and reported success.
#[test]
fn restart_portal_keeps_rollback_going_to_the_previous_release() {
    ensure_image("1.0.0");
    ensure_image("1.0.1");
    let mut p = Project::new("rgrsp", "");
    p.with_nginx("");
    p.ok(&["promote", "1.0.0"]);
    p.ok(&["promote", "1.0.1"]);
    let o = p.webdock(&["restart", "portal"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("1.0.0") && err.contains("rollback"),
        "restart portal says what it gave up: {err}"
    );
    assert_eq!(served(&p), "1.0.1");
    p.ok(&["rollback"]);
    assert_eq!(served(&p), "1.0.0", "rollback goes to the previous release");
    let h = p.history_lines();
    let last = h.last().unwrap();
    assert_eq!(last["action"], "rollback");
    assert_eq!(last["tag"], "1.0.0");
    assert_eq!(last["from_tag"], "1.0.1");
}

/// Item 5: a djob dropped from the config was stopped with a fixed 15 s,
/// whatever its own grace: a daemon that needs 20 s to finish cleanly was
/// killed halfway.
#[test]
fn a_dropped_djob_is_stopped_with_its_own_grace_not_15_s() {
    ensure_image("1.0.0");
    ensure_variant_djobs(
        "slowstop",
        "[djobs.slow]\ncommand = [\"python\", \"-c\", \"import os, signal, time\\nsignal.signal(signal.SIGTERM, lambda *a: (time.sleep(20), os.makedirs('/data/logs', exist_ok=True), open('/data/logs/slow-clean', 'w').write('clean'), os._exit(0)))\\nwhile True: time.sleep(1)\"]\n",
    );
    let slow = "[djobs.slow]\ncommand = [\"python\", \"-c\", \"baked into the image\"]\nstop_grace = \"40s\"\n";
    let p = Project::new("rgdrop", slow);
    p.ok(&["promote", "slowstop"]);
    assert!(p.containers().contains(&p.container_name("djob-slow")));
    // The djob leaves the config; the next promote removes its container.
    p.write_config("");
    let t = Instant::now();
    p.ok(&["promote", "1.0.0"]);
    let took = t.elapsed();
    assert!(!p.containers().contains(&p.container_name("djob-slow")));
    let marker = p.data().join("logs/slow-clean");
    assert!(
        marker.exists(),
        "the dropped djob was killed before its clean exit (promote took {took:?})"
    );
}

/// Item 7: with umask 077 the socket directories were created 0700 and the
/// host nginx (workers as nobody) got 502 from every request.
#[test]
fn sockets_stay_reachable_by_the_host_nginx_under_umask_077() {
    ensure_image("1.0.0");
    let mut p = Project::new("rgumask", "");
    p.with_nginx("");
    let o = run(Command::new("sh").arg("-c").arg(format!(
        "umask 077; exec {} -c {} promote 1.0.0",
        bin().display(),
        p.config.display()
    )));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(served(&p), "1.0.0");
}

/// Item 4: `webdock build v2` again with other code, then `promote v2`:
/// "portal already serves v2" skipped the release and the portal but
/// recreated cron and the djobs from the new image: two codes at once.
#[test]
fn a_rebuilt_live_tag_is_refused_and_with_force_released_whole() {
    ensure_image("1.0.0");
    let mut p = Project::new("rgrbt", "");
    let app = p.path().join("app");
    copy_dir(&repo_root().join("examples/portal"), &app);
    let retarget = |p: &Project| {
        let text = std::fs::read_to_string(&p.config).unwrap().replacen(
            &format!(
                "app = \"{}\"",
                repo_root().join("examples/portal").display()
            ),
            &format!("app = \"{}\"", app.display()),
            1,
        );
        std::fs::write(&p.config, text).unwrap();
    };
    retarget(&p);
    p.with_nginx("");
    retarget(&p);
    let tag = p.name.clone();
    p.ok(&["build", &tag]);
    p.ok(&["promote", &tag]);
    let color = p.live_link().unwrap();
    let page = |p: &Project| {
        http_get(p.nginx.as_ref().unwrap().port, "/health/")
            .map(|r| r.text())
            .unwrap_or_default()
    };
    assert!(!page(&p).contains("rebuilt-marker"));
    let views = app.join("portal/views.py");
    let code = std::fs::read_to_string(&views).unwrap();
    assert!(code.contains("_text(f\"ok {settings.RELEASE}\")"));
    std::fs::write(
        &views,
        code.replace(
            "_text(f\"ok {settings.RELEASE}\")",
            "_text(f\"ok rebuilt-marker {settings.RELEASE}\")",
        ),
    )
    .unwrap();
    // Refused: the tag is live and the build is other code; the tag keeps
    // the running image.
    let running = docker_ok(&[
        "image",
        "inspect",
        "-f",
        "{{.Id}}",
        &format!("{IMAGE}:{tag}"),
    ]);
    let o = p.webdock(&["build", &tag]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains(&format!("tag {tag} is live")), "{err}");
    let after = docker_ok(&[
        "image",
        "inspect",
        "-f",
        "{{.Id}}",
        &format!("{IMAGE}:{tag}"),
    ]);
    assert_eq!(after, running, "the tag still names the running image");
    // With --force, the promote that follows is a whole release: a new
    // color with the new code, and the workers on the same image.
    p.ok(&["build", &tag, "--force"]);
    // Until the promote, status says which containers run the earlier build.
    let st = p.status_json();
    let warned: Vec<&str> = st["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|w| w.as_str())
        .filter(|w| w.contains(&format!("runs an earlier build of {tag}")))
        .collect();
    for role in ["djob-billing", "cron", &format!("portal-{color}")] {
        let name = p.container_name(role);
        assert!(
            warned.iter().any(|w| w.starts_with(&format!("{name} "))),
            "{name} is warned about: {st}"
        );
    }
    p.ok(&["promote", &tag]);
    // After it, only the idle color (the earlier build, kept warm) is.
    let st = p.status_json();
    let idle = p.container_name(&format!("portal-{color}"));
    for w in st["warnings"].as_array().unwrap() {
        let w = w.as_str().unwrap();
        assert!(
            !w.contains("earlier build") || w.starts_with(&format!("{idle} ")),
            "only the idle color warns after the promote: {st}"
        );
    }
    assert_ne!(
        p.live_link().unwrap(),
        color,
        "a new color was started and flipped to"
    );
    assert!(page(&p).contains("rebuilt-marker"), "{}", page(&p));
    let new_id = docker_ok(&[
        "image",
        "inspect",
        "-f",
        "{{.Id}}",
        &format!("{IMAGE}:{tag}"),
    ]);
    for role in [
        "djob-billing",
        "cron",
        &format!("portal-{}", p.live_link().unwrap()),
    ] {
        let id = docker_ok(&["inspect", "-f", "{{.Image}}", &p.container_name(role)]);
        assert_eq!(id, new_id, "{role} runs the rebuilt image");
    }
    let _ = docker(&["rmi", &format!("{IMAGE}:{tag}")]);
}

// Item 8 (`watch webdock status` could fail a promote; a refusal named a
// dead holder) is tested where the lock lives: src/lock/tests.rs
// `a_reader_in_a_tight_loop_never_fails_a_taker` and
// `a_dead_holders_record_is_never_named_for_a_live_holder`.
