//! A release across several hosts behind a load balancer (issue 12), on the
//! rig: every host a network namespace with its own dockerd (mutual TLS),
//! host nginx and sshd; the load balancer on the controller. All of them
//! flip, or none does; zero failed requests through the balancer.

use std::process::Command;
use std::sync::atomic::Ordering;

mod common;
use common::fleet::Fleet;
use common::rig::Rig;
use common::*;

/// The release each host's nginx serves, by host.
fn served(rig: &Rig, hosts: &[&str]) -> Vec<String> {
    hosts
        .iter()
        .map(|h| {
            let url = format!("{}/health/", rig.host(h).nginx_url);
            let o = run(Command::new("curl").args([
                "-s",
                "-m",
                "5",
                "-D",
                "-",
                "-o",
                "/dev/null",
                &url,
            ]));
            let text = String::from_utf8_lossy(&o.stdout).to_string();
            text.lines()
                .find_map(|l| {
                    l.strip_prefix("X-Release: ")
                        .or_else(|| l.strip_prefix("x-release: "))
                })
                .map(|s| s.trim().to_string())
                .unwrap_or_else(|| {
                    format!(
                        "(no release: {})",
                        text.lines().next().unwrap_or("no answer")
                    )
                })
        })
        .collect()
}

fn all_serve(rig: &Rig, hosts: &[&str], tag: &str) {
    let got = served(rig, hosts);
    assert!(
        got.iter().all(|t| t == tag),
        "every host serves {tag}: {got:?}"
    );
}

/// The tags of `host`'s portal containers, running or not.
fn portal_tags(rig: &Rig, host: &str) -> Vec<String> {
    let out = rig.docker_ok(
        host,
        &[
            "ps",
            "-a",
            "--filter",
            "label=webdock.role=portal",
            "--format",
            "{{.Label \"webdock.tag\"}}",
        ],
    );
    out.lines().map(str::to_owned).collect()
}

/// No host has a portal container of `tag` left, running or not.
fn gone_everywhere(rig: &Rig, hosts: &[&str], tag: &str, when: &str) {
    for h in hosts {
        let tags = portal_tags(rig, h);
        assert!(
            !tags.iter().any(|t| t == tag),
            "{when}: {h} still has a portal of {tag}: {tags:?}"
        );
    }
}

/// A webdock held at a step (`WEBDOCK_HOLD_AT`) until `go`.
struct Held {
    child: std::process::Child,
    hold: std::path::PathBuf,
    rx: std::sync::mpsc::Receiver<Option<String>>,
}

impl Held {
    /// Starts `webdock ARGS` and returns once it is held at `point`.
    fn at(f: &Fleet, rig: &Rig, args: &[&str], point: &str) -> Held {
        let hold = f.path().join(format!("hold-{point}"));
        let mut child = f
            .cmd(rig)
            .args(args)
            .env("WEBDOCK_HOLD_AT", format!("{point}={}", hold.display()))
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let held = format!("held at {point} ");
        std::thread::spawn(move || {
            use std::io::BufRead;
            let mut all = String::new();
            for line in std::io::BufReader::new(stderr)
                .lines()
                .map_while(Result::ok)
            {
                if line.contains(&held) {
                    let _ = tx.send(None);
                }
                all.push_str(&line);
                all.push('\n');
            }
            let _ = tx.send(Some(all));
        });
        let first = rx
            .recv_timeout(std::time::Duration::from_secs(180))
            .unwrap_or_else(|_| panic!("webdock {args:?} reaches {point} within 3 minutes"));
        assert_eq!(first, None, "webdock {args:?} ended before {point}");
        Held { child, hold, rx }
    }

    /// Lets it go on; its exit code and stderr.
    fn go(mut self) -> (Option<i32>, String) {
        std::fs::write(&self.hold, "").unwrap();
        let status = self.child.wait().unwrap();
        let err = self
            .rx
            .recv_timeout(std::time::Duration::from_secs(60))
            .unwrap()
            .unwrap_or_default();
        (status.code(), err)
    }
}

impl Drop for Held {
    /// A test that failed while it was held leaves no webdock waiting.
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn lb_port(rig: &Rig) -> u16 {
    rig.lb_url().rsplit(':').next().unwrap().parse().unwrap()
}

#[test]
fn three_hosts_flip_together_under_load_and_fail_together() {
    ensure_image("1.0.0");
    ensure_image("1.0.1");
    ensure_image("1.0.2");
    let rig = Rig::up(3);
    let all = ["web1", "web2", "web3"];
    rig.load(&[
        &format!("{IMAGE}:1.0.0"),
        &format!("{IMAGE}:1.0.1"),
        &format!("{IMAGE}:1.0.2"),
    ]);
    let f = Fleet::new(&rig, &all, &[]);
    f.ok(&rig, &["promote", "1.0.0"]);
    all_serve(&rig, &all, "1.0.0");

    // Keep-alive GET and POST through the load balancer across promotes
    // and rollbacks: not one failed request.
    let (stop, counts, clients) = load::start(lb_port(&rig), 6);
    // 10 promotes and 5 rollbacks: promote, promote, rollback, five times.
    let rounds = [
        ("promote", "1.0.1"),
        ("promote", "1.0.0"),
        ("rollback", "1.0.1"),
    ];
    for (verb, tag) in rounds.iter().cycle().take(15).copied() {
        let args: Vec<&str> = if verb == "promote" {
            vec![verb, tag]
        } else {
            vec![verb]
        };
        f.ok(&rig, &args);
        all_serve(&rig, &all, tag);
    }
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        c.join().unwrap();
    }
    let errors = counts.errors.lock().unwrap().clone();
    assert_eq!(counts.failed.load(Ordering::Relaxed), 0, "{errors:?}");
    assert_eq!(counts.non_2xx.load(Ordering::Relaxed), 0, "{errors:?}");
    assert!(counts.ok.load(Ordering::Relaxed) > 100, "the load ran");
    let h = f.history();
    let last = h.last().unwrap();
    assert_eq!(last["outcome"], "ok");
    assert_eq!(last["hosts"].as_array().unwrap().len(), 3, "{last}");
    let promote = h.iter().rev().find(|e| e["action"] == "promote").unwrap();
    assert!(promote["flip_window_ms"].as_f64().is_some(), "{promote}");
    // A warm rollback records its flip window and each host's steps too.
    let rollback = h.iter().rev().find(|e| e["action"] == "rollback").unwrap();
    assert!(rollback["flip_window_ms"].as_f64().is_some(), "{rollback}");
    for host in rollback["hosts"].as_array().unwrap() {
        let steps: Vec<&str> = host["steps"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|s| s[0].as_str())
            .collect();
        // (the release host also has the workers step)
        assert_eq!(steps[..3], ["health", "flip", "verify"], "{rollback}");
    }

    // A host's engine killed during prepare: aborted, nothing flipped.
    let a = Held::at(&f, &rig, &["promote", "1.0.0"], "release");
    rig.kill_dockerd("web3");
    let (code, err) = a.go();
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("web3") && err.contains("no host was flipped"),
        "{err}"
    );
    // the others' new colors are removed; web3's removal cannot be confirmed
    assert!(err.contains("removed except on: web3"), "{err}");
    gone_everywhere(&rig, &["web1", "web2"], "1.0.0", "web3's engine killed");
    all_serve(&rig, &["web1", "web2"], "1.0.1");
    rig.start_dockerd("web3");
    wait_for(
        120,
        "web3 to serve again after its engine came back",
        || (served(&rig, &["web3"])[0] == "1.0.1").then_some(()),
    );

    // A tag unhealthy on one host only: nothing flips anywhere, and its
    // new colors are gone on every host.
    // 1.0.2 answers its health checks with 500 on web3 only: the same image
    // plus /app/FAIL_HEALTH (create, cp and commit keep its entrypoint and
    // command; a `run --entrypoint sh` committed would make a container
    // that never starts, and leaves no log lines to show).
    let flag = f.path().join("FAIL_HEALTH");
    std::fs::write(&flag, "").unwrap();
    rig.docker_ok(
        "web3",
        &["create", "--name", "breakit", &format!("{IMAGE}:1.0.2")],
    );
    rig.docker_ok(
        "web3",
        &["cp", flag.to_str().unwrap(), "breakit:/app/FAIL_HEALTH"],
    );
    rig.docker_ok("web3", &["commit", "breakit", &format!("{IMAGE}:1.0.2")]);
    rig.docker_ok("web3", &["rm", "breakit"]);
    let o = f.webdock(&rig, &["promote", "1.0.2"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.contains("web3") && err.contains("no host was flipped"),
        "{err}"
    );
    // the reason is web3's portal's own last lines (Django logs the 500s)
    let tail = err
        .split_once(&format!("--- last log lines of fl{}-portal-", rig.id))
        .map(|(_, t)| t)
        .unwrap_or_else(|| panic!("web3's container's last lines: {err}"));
    assert!(tail.contains("Internal Server Error: /health/"), "{err}");
    assert!(err.contains("the new colors were removed\n"), "{err}");
    all_serve(&rig, &all, "1.0.1");
    gone_everywhere(&rig, &all, "1.0.2", "unhealthy on web3");

    // A new color that passed its health checks on every host, then fails
    // on one before the flip (its last probe): nothing flips, and the new
    // color goes on every host, that one's too.
    let a = Held::at(&f, &rig, &["promote", "1.0.0"], "fleet-healthy");
    let new = rig.docker_ok(
        "web2",
        &[
            "ps",
            "--filter",
            "label=webdock.tag=1.0.0",
            "--filter",
            "label=webdock.role=portal",
            "--format",
            "{{.Names}}",
        ],
    );
    assert_eq!(new.lines().count(), 1, "web2 runs the new color: {new}");
    rig.docker_ok("web2", &["exec", &new, "touch", "/app/FAIL_HEALTH"]);
    let (code, err) = a.go();
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("web2: ") && err.contains("stopped answering right after its health checks"),
        "{err}"
    );
    assert!(
        err.contains("no host was flipped and the new colors were removed"),
        "{err}"
    );
    all_serve(&rig, &all, "1.0.1");
    gone_everywhere(&rig, &all, "1.0.0", "failed its last probe on web2");

    // The check through one host's nginx fails after the flip: every host
    // flips back.
    let inc = rig.host("web2").nginx_include.clone();
    let good = std::fs::read_to_string(&inc).unwrap();
    std::fs::write(
        &inc,
        "location / { add_header X-Release wrong always; return 200 'wrong'; }\n",
    )
    .unwrap();
    rig.reload_nginx("web2");
    let o = f.webdock(&rig, &["promote", "1.0.0"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("flipped back"), "{err}");
    gone_everywhere(&rig, &all, "1.0.0", "the check through web2's nginx failed");
    std::fs::write(&inc, good).unwrap();
    rig.reload_nginx("web2");
    // a reload is graceful: the old workers go on a moment
    wait_for(30, "web2's nginx to load its config again", || {
        served(&rig, &all)
            .iter()
            .all(|t| t == "1.0.1")
            .then_some(())
    });

    // One host cut off: refused, naming it; with --skip-host the others
    // move and status says web2 is behind.
    rig.cut("web2");
    let o = f.webdock(&rig, &["promote", "1.0.0"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("web2") && err.contains("unreachable"), "{err}");
    all_serve(&rig, &["web1", "web3"], "1.0.1");
    f.ok(&rig, &["promote", "1.0.0", "--skip-host", "web2"]);
    all_serve(&rig, &["web1", "web3"], "1.0.0");
    let o = f.webdock(&rig, &["status"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("web2") && err.contains("behind"), "{err}");
    assert!(err.contains("cannot be reached"), "{err}");
    rig.heal("web2");
    f.ok(&rig, &["promote", "1.0.0"]);
    all_serve(&rig, &all, "1.0.0");
    let st: serde_json::Value = serde_json::from_str(&f.ok(&rig, &["status", "--json"])).unwrap();
    assert!(st["warnings"].as_array().unwrap().is_empty(), "{st}");
    // no host warns of anything: the portal-only hosts miss no cron or djob
    for h in st["hosts"].as_array().unwrap() {
        assert!(
            h["status"]["warnings"].as_array().unwrap().is_empty(),
            "{h}"
        );
    }
}

#[test]
fn a_killed_controller_leaves_no_lock_and_the_next_promote_converges() {
    ensure_image("1.0.0");
    ensure_image("1.0.1");
    let rig = Rig::up(2);
    let all = ["web1", "web2"];
    rig.load(&[&format!("{IMAGE}:1.0.0"), &format!("{IMAGE}:1.0.1")]);
    let f = Fleet::new(&rig, &all, &[]);
    f.ok(&rig, &["promote", "1.0.0"]);
    let mut tag = "1.0.0";
    for point in [
        "fleet-checked",
        "release",
        "health",
        "fleet-healthy",
        "fleet-prepared",
        "fleet-flipped-unverified",
        "fleet-flipped",
        "workers",
    ] {
        let next = if tag == "1.0.0" { "1.0.1" } else { "1.0.0" };
        let o = run(f
            .cmd(&rig)
            .args(["promote", next])
            .env("WEBDOCK_KILL_AT", point));
        assert!(!o.status.success(), "{point}: killed");
        // the links never point at an unhealthy color: each host serves a
        // release, the old or the new one
        for t in served(&rig, &all) {
            assert!(t == tag || t == next, "{point}: {t}");
        }
        f.ok(&rig, &["promote", next]);
        all_serve(&rig, &all, next);
        tag = next;
    }
    // Two controllers at once: exactly one wins, the other names the holder.
    // A holds the lock once it is held after its release step.
    let a = Held::at(&f, &rig, &["promote", "1.0.1"], "release");
    let o = f.webdock(&rig, &["promote", "1.0.1"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("locked fleet-wide by pid"), "{err}");
    let (code, err) = a.go();
    assert_eq!(code, Some(0), "{err}");
    all_serve(&rig, &all, "1.0.1");
}

#[test]
fn a_whole_promote_over_ssh() {
    ensure_image("1.0.0");
    let rig = Rig::up(1);
    rig.load(&[&format!("{IMAGE}:1.0.0")]);
    let f = Fleet::new(&rig, &["web1"], &["web1"]);
    let sshd_log = rig.dir().join("logs/web1-sshd.log");
    let logins = || {
        std::fs::read_to_string(&sshd_log)
            .unwrap_or_default()
            .matches("Accepted ")
            .count()
    };
    let before = logins();
    f.ok(&rig, &["promote", "1.0.0"]);
    all_serve(&rig, &["web1"], "1.0.0");
    // One ssh connection carries the whole promote (a master per HTTP
    // connection ran into sshd's MaxStartups under load and failed a
    // `docker create` with "client error (Connect)").
    let used = logins() - before;
    assert!(
        (1..=2).contains(&used),
        "the promote logged in {used} times over ssh; one connection should carry it"
    );
    let st: serde_json::Value = serde_json::from_str(&f.ok(&rig, &["status", "--json"])).unwrap();
    assert_eq!(st["hosts"][0]["reachable"], true, "{st}");
    assert_eq!(st["hosts"][0]["status"]["live"]["tag"], "1.0.0", "{st}");
}
