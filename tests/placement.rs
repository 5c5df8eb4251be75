//! Never two of a djob across the fleet (issue 13): placement, stop-first
//! across hosts, the on-call verbs from two controllers, and a host that
//! does not answer never guessed dead. On the rig: three hosts, each its
//! own dockerd, nginx and sshd in a network namespace; a watcher reads the
//! process table of the machine (every rig container is a process here)
//! through the whole run.

use std::collections::BTreeMap;
use std::process::Command;
use std::thread;
use std::time::Duration;

mod common;
use common::fleet::Fleet;
use common::rig::Rig;
use common::watch::Watcher;
use common::*;

/// Running `manage.py djob NAME` daemons of one project on this machine.
fn daemons(project: &str, djob: &str) -> usize {
    let needle = format!("djob\0{djob}");
    let env = format!("WEBDOCK_PROJECT={project}\0");
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return 0;
    };
    dir.filter_map(|e| e.ok())
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .bytes()
                .all(|b| b.is_ascii_digit())
        })
        .filter(|e| {
            let cmd = std::fs::read(e.path().join("cmdline")).unwrap_or_default();
            String::from_utf8_lossy(&cmd).contains("manage.py")
                && String::from_utf8_lossy(&cmd).contains(&needle)
        })
        .filter(|e| {
            let environ = std::fs::read(e.path().join("environ")).unwrap_or_default();
            String::from_utf8_lossy(&environ).contains(&env)
        })
        .count()
}

/// Which hosts have the container, and whether it runs there.
fn where_runs(rig: &Rig, hosts: &[&str], name: &str) -> BTreeMap<String, bool> {
    let mut m = BTreeMap::new();
    for h in hosts {
        let o = rig.docker(h, &["inspect", "-f", "{{.State.Running}}", name]);
        if o.status.success() {
            m.insert(
                h.to_string(),
                String::from_utf8_lossy(&o.stdout).trim() == "true",
            );
        }
    }
    m
}

fn project(rig: &Rig) -> String {
    format!("fl{}", rig.id)
}

const WORKERS: &str = r#"[cron]
stop_grace = "5s"
hosts = ["web2", "web3"]
[djobs.billing]
command = ["python", "manage.py", "djob", "billing"]
stop_grace = "5s"
hosts = ["web3", "web2"]
[djobs.email2fax]
command = ["python", "manage.py", "djob", "email2fax"]
stop_grace = "5s"
"#;

const HOSTS: [&str; 3] = ["web1", "web2", "web3"];

#[test]
fn a_djob_runs_on_its_first_host_moves_stop_first_and_restarts_from_two_controllers() {
    ensure_image("1.0.0");
    ensure_image("1.0.1");
    let rig = Rig::up(3);
    rig.load(&[&format!("{IMAGE}:1.0.0"), &format!("{IMAGE}:1.0.1")]);
    let f = Fleet::with(&rig, &HOSTS, &[], &["web2", "web3"], WORKERS, None);
    let p = project(&rig);
    let billing = format!("{p}-djob-billing");
    let email = format!("{p}-djob-email2fax");
    let watch = {
        let p = p.clone();
        Watcher::start(move || daemons(&p, "billing"))
    };

    f.ok(&rig, &["promote", "1.0.0"]);
    // The first host of each list runs it; nobody else has a container.
    assert_eq!(
        where_runs(&rig, &HOSTS, &billing),
        BTreeMap::from([("web3".into(), true)])
    );
    // email2fax names no hosts: the worker hosts, the first of them.
    assert_eq!(
        where_runs(&rig, &HOSTS, &email),
        BTreeMap::from([("web2".into(), true)])
    );
    assert_eq!(
        where_runs(&rig, &HOSTS, &format!("{p}-cron")),
        BTreeMap::from([("web2".into(), true)])
    );

    f.ok(&rig, &["promote", "1.0.1"]);
    assert_eq!(
        where_runs(&rig, &HOSTS, &billing),
        BTreeMap::from([("web3".into(), true)])
    );

    // A planned move: stopped and removed on web3, then started on web2.
    let moved: serde_json::Value = serde_json::from_str(&f.ok(
        &rig,
        &["--json", "failover", "djob", "billing", "--to", "web2"],
    ))
    .unwrap();
    assert_eq!(moved["stopped_on"], serde_json::json!(["web3"]), "{moved}");
    assert_eq!(moved["started_on"], serde_json::json!(["web2"]), "{moved}");
    assert_eq!(moved["tag"], "1.0.1", "{moved}");
    assert_eq!(
        where_runs(&rig, &HOSTS, &billing),
        BTreeMap::from([("web2".into(), true)])
    );
    // The next promote keeps it where it runs.
    f.ok(&rig, &["promote", "1.0.0"]);
    assert_eq!(
        where_runs(&rig, &HOSTS, &billing),
        BTreeMap::from([("web2".into(), true)])
    );

    // Two controllers (own state directories, the same fleet), ten
    // restarts each, all at once: each one runs or is refused naming the
    // holder; never two daemons.
    let text = std::fs::read_to_string(&f.config).unwrap();
    let other = f.path().join("webdock2.toml");
    std::fs::write(&other, text.replace("/ctl/", "/ctl2/")).unwrap();
    let mut children = Vec::new();
    for i in 0..20 {
        let mut c = Command::new(bin());
        let cfg = if i % 2 == 0 { &f.config } else { &other };
        c.arg("-c")
            .arg(cfg)
            .env("PATH", rig.path_env())
            .args(["restart", "djob", "billing"]);
        children.push(thread::spawn(move || run(&mut c)));
    }
    let mut ok = 0;
    for c in children {
        let o = c.join().unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        if o.status.success() {
            ok += 1;
        } else {
            assert!(
                err.contains("locked fleet-wide"),
                "a restart failed otherwise: {err}"
            );
        }
    }
    assert!(ok >= 1, "no restart ran");
    assert_eq!(
        where_runs(&rig, &HOSTS, &billing),
        BTreeMap::from([("web2".into(), true)])
    );

    let billing_view = |st: &serde_json::Value| {
        st["workers"]
            .as_array()
            .unwrap()
            .iter()
            .find(|w| w["role"] == "djob billing")
            .cloned()
            .unwrap_or_else(|| panic!("no billing in {st}"))
    };
    let st: serde_json::Value = serde_json::from_str(&f.ok(&rig, &["status", "--json"])).unwrap();
    assert_eq!(
        billing_view(&st)["running_on"],
        serde_json::json!(["web2"]),
        "{st}"
    );

    // web2 (running billing) cut off: never guessed dead.
    rig.cut("web2");
    let st: serde_json::Value = serde_json::from_str(&f.ok(&rig, &["status", "--json"])).unwrap();
    assert_eq!(
        billing_view(&st)["unreachable"],
        serde_json::json!(["web2"]),
        "{st}"
    );
    assert!(
        st["warnings"]
            .to_string()
            .contains("djob billing may run on web2"),
        "{st}"
    );
    let o = f.webdock(&rig, &["restart", "djob", "billing"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.contains("web2") && err.contains("djob billing"),
        "{err}"
    );
    // Without [lease], webdock cannot know the daemon is dead: refused.
    let o = f.webdock(&rig, &["failover", "djob", "billing", "--to", "web3"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("web2"), "{err}");
    assert!(!where_runs(&rig, &HOSTS, &billing).contains_key("web3"));
    rig.heal("web2");
    f.ok(&rig, &["restart", "djob", "billing"]);
    assert_eq!(
        where_runs(&rig, &HOSTS, &billing),
        BTreeMap::from([("web2".into(), true)])
    );

    thread::sleep(Duration::from_millis(200));
    assert_eq!(watch.max(), 1, "two billing daemons ran at once");
}

#[test]
fn restarts_racing_fleet_promotes_and_a_webdock_killed_mid_move_never_run_two() {
    ensure_image("1.0.0");
    ensure_image("1.0.1");
    let rig = Rig::up(3);
    rig.load(&[&format!("{IMAGE}:1.0.0"), &format!("{IMAGE}:1.0.1")]);
    let f = Fleet::with(&rig, &HOSTS, &[], &["web2", "web3"], WORKERS, None);
    let p = project(&rig);
    let billing = format!("{p}-djob-billing");
    let watch = {
        let p = p.clone();
        Watcher::start(move || daemons(&p, "billing"))
    };
    f.ok(&rig, &["promote", "1.0.0"]);

    // Three promotes from one controller, restarts from another, at once.
    let text = std::fs::read_to_string(&f.config).unwrap();
    let other = f.path().join("webdock2.toml");
    std::fs::write(&other, text.replace("/ctl/", "/ctl2/")).unwrap();
    let promotes = {
        let (cfg, path) = (f.config.clone(), rig.path_env());
        thread::spawn(move || {
            let mut outcomes = Vec::new();
            for tag in ["1.0.1", "1.0.0", "1.0.1"] {
                // A promote refused by a restart holding the lock is tried
                // again, as a release manager would.
                for _ in 0..50 {
                    let o = run(Command::new(bin())
                        .arg("-c")
                        .arg(&cfg)
                        .env("PATH", &path)
                        .args(["promote", tag]));
                    let err = String::from_utf8_lossy(&o.stderr).to_string();
                    if o.status.success() {
                        outcomes.push(tag);
                        break;
                    }
                    assert!(err.contains("locked fleet-wide"), "promote {tag}: {err}");
                    thread::sleep(Duration::from_millis(300));
                }
            }
            outcomes
        })
    };
    // Restarts while the promotes run, and on until one got through.
    let mut restarted = 0;
    let mut tries = 0;
    while !promotes.is_finished() || (restarted == 0 && tries < 60) {
        tries += 1;
        let o = run(Command::new(bin())
            .arg("-c")
            .arg(&other)
            .env("PATH", rig.path_env())
            .args(["restart", "djob", "billing"]));
        let err = String::from_utf8_lossy(&o.stderr);
        if o.status.success() {
            restarted += 1;
        } else {
            assert!(err.contains("locked fleet-wide"), "restart: {err}");
        }
        thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(promotes.join().unwrap(), vec!["1.0.1", "1.0.0", "1.0.1"]);
    assert!(restarted >= 1, "no restart got the lock");
    assert_eq!(
        where_runs(&rig, &HOSTS, &billing),
        BTreeMap::from([("web3".into(), true)])
    );

    // webdock killed mid-move: billing stopped on web3, not yet created on
    // web2. It runs nowhere (never two), status says so, and the fleet lock
    // died with the controller: the next command repairs.
    let o = run(f
        .cmd(&rig)
        .env("WEBDOCK_KILL_AT", "fleet-worker-removed:djob billing")
        .args(["failover", "djob", "billing", "--to", "web2"]));
    assert!(!o.status.success());
    assert!(where_runs(&rig, &HOSTS, &billing).is_empty());
    let st: serde_json::Value = serde_json::from_str(&f.ok(&rig, &["status", "--json"])).unwrap();
    assert!(
        st["warnings"]
            .to_string()
            .contains("djob billing runs on no host"),
        "{st}"
    );
    f.ok(&rig, &["start", "djob", "billing"]);
    let now = where_runs(&rig, &HOSTS, &billing);
    assert_eq!(now.len(), 1, "{now:?}");
    assert!(now.values().all(|r| *r), "{now:?}");
    thread::sleep(Duration::from_millis(200));
    assert_eq!(watch.max(), 1, "two billing daemons ran at once");
}
