//! The fleet test rig's own tests: that `scripts/rig` gives hosts that work
//! (each engine runs containers, each host nginx and sshd answer at the
//! host's address, the load balancer round-robins, a cut host is cut and a
//! healed one back, the registry carries an image from the main engine to a
//! host), and that it is hygienic: after `down`, even after an `up` killed
//! half-way, nothing of the rig remains, and docker0 and the machine's
//! engine are as they were. The fleet suites of webdock build on it.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

mod common;
use common::rig::{docker_main, rig_script, MainEngine, Rig, Sentinel};
use common::*;

/// One GET over TCP to `http://ADDR:PORT/path`, with a short timeout.
fn get(url: &str, path: &str) -> std::io::Result<Resp> {
    get_as(url, path, "rig.test")
}

/// The same with a `Host` header of the caller's (Django checks it).
fn get_as(url: &str, path: &str, host: &str) -> std::io::Result<Resp> {
    let hostport = url.trim_start_matches("http://");
    let addr: std::net::SocketAddr = hostport.parse().map_err(std::io::Error::other)?;
    let mut s = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    )?;
    read_response(&mut std::io::BufReader::new(s))
}

fn rand_tag() -> String {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    format!(
        "{:08x}",
        (t ^ (std::process::id() as u64) << 24) & 0xffff_ffff
    )
}

/// Images this test made on the main engine, removed on drop.
struct MainImages(Vec<String>);
impl Drop for MainImages {
    fn drop(&mut self) {
        for r in &self.0 {
            let _ = docker_main().args(["rmi", "-f", r]).output();
        }
    }
}

fn tiny_image(reference: &str, mark: &str) {
    let o = run(Command::new(rig_script()).args(["tiny-image", reference, mark]));
    assert!(
        o.status.success(),
        "scripts/rig tiny-image {reference}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// Everything of rig `id` (made in `dir`) that still exists on the machine;
/// `ports` are the controller's (LB, registry): nothing may listen there.
fn rig_leftovers(id: &str, dir: &Path, ports: &[&str]) -> Vec<String> {
    let mut left = Vec::new();
    let ss = run(Command::new("ss").args(["-Htln"]));
    for l in String::from_utf8_lossy(&ss.stdout).lines() {
        let local = l.split_whitespace().nth(3).unwrap_or_default();
        if ports.iter().any(|p| local.ends_with(&format!(":{p}"))) {
            left.push(format!("listener {local}"));
        }
    }
    for e in std::fs::read_dir("/run/netns")
        .into_iter()
        .flatten()
        .flatten()
    {
        let n = e.file_name().to_string_lossy().into_owned();
        if n.contains(id) {
            left.push(format!("netns {n}"));
        }
    }
    for e in std::fs::read_dir("/sys/class/net").unwrap().flatten() {
        let n = e.file_name().to_string_lossy().into_owned();
        if n.contains(id) {
            left.push(format!("interface {n}"));
        }
    }
    let d = format!("{}/", dir.display());
    let exec = format!("/run/wdr-{id}");
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let cmd =
            String::from_utf8_lossy(&std::fs::read(e.path().join("cmdline")).unwrap_or_default())
                .replace('\0', " ");
        if pid != std::process::id() && (cmd.contains(&d) || cmd.contains(&exec)) {
            left.push(format!("process {pid}: {cmd}"));
        }
    }
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    for m in mounts.lines().filter_map(|l| l.split_whitespace().nth(4)) {
        if m.starts_with(&d) || m.starts_with(&exec) {
            left.push(format!("mount {m}"));
        }
    }
    for ctl in std::fs::read_dir("/sys/fs/cgroup").unwrap().flatten() {
        for e in std::fs::read_dir(ctl.path())
            .into_iter()
            .flatten()
            .flatten()
        {
            if e.file_name().to_string_lossy().contains(id) {
                left.push(format!("cgroup {}", e.path().display()));
            }
        }
    }
    if Path::new(&exec).exists() {
        left.push(format!("directory {exec}"));
    }
    left
}

#[test]
fn two_hosts_work_and_down_leaves_the_machine_as_it_was() {
    require_docker();
    let before = MainEngine::snapshot();
    let tag = rand_tag();
    let image = format!("rig-tiny-{tag}:1");
    let shipped = format!("rig-tiny-{tag}:shipped");
    let _images = MainImages(vec![image.clone(), shipped.clone()]);
    tiny_image(&image, "loaded");
    tiny_image(&shipped, &format!("shipped-{tag}"));
    let sentinel = Sentinel::start(&image, &format!("rig-sentinel-{tag}"));

    let mut rig = Rig::up(2);
    let names: Vec<String> = rig.hosts().iter().map(|h| h.name.clone()).collect();
    assert_eq!(names, ["web1", "web2"]);
    rig.load(&[&image]);

    // every host is an engine of its own, not the machine's
    let main_id = docker_ok(&["info", "--format", "{{.ID}}"]);
    let mut ids = Vec::new();
    for h in &names {
        let id = rig.docker_ok(h, &["info", "--format", "{{.ID}}"]);
        assert_ne!(id, main_id, "{h} answers with the main engine");
        assert!(!ids.contains(&id), "{h} shares an engine with another host");
        ids.push(id);
        // a container runs, on the namespace's own bridge, and reaches the
        // controller (registry, later PostgreSQL) through it
        let out = rig.docker_ok(
            h,
            &[
                "run",
                "--rm",
                &image,
                "bash",
                "-c",
                &format!(
                    "cat /etc/rig-mark; exec 3<>/dev/tcp/{}/{} && echo reached",
                    rig.controller_addr(),
                    rig.registry().rsplit(':').next().unwrap()
                ),
            ],
        );
        assert_eq!(out, "loaded\nreached", "{h}");
        // over TCP with the rig's client certificate, and not without it
        let tcp = rig.docker_tcp(h, &["info", "--format", "{{.ID}}"]);
        assert!(tcp.status.success(), "{h} over TLS: {tcp:?}");
        assert_eq!(
            String::from_utf8_lossy(&tcp.stdout).trim(),
            ids.last().unwrap()
        );
        // (`docker info` exits 0 on a server error: `version` does not)
        let anon = run(docker_main()
            .env("DOCKER_HOST", &rig.host(h).docker_tcp)
            .args(["version", "--format", "{{.Server.ID}}"]));
        assert!(
            !anon.status.success() && String::from_utf8_lossy(&anon.stderr).contains("HTTPS"),
            "{h} answers TCP without TLS: {anon:?}"
        );
    }
    let ps = rig.docker_ok("web2", &["ps", "-a", "--format", "{{.Image}}"]);
    assert!(ps.is_empty(), "web2 sees no container of web1's: {ps}");

    // each host nginx answers at its own address from the root namespace
    for h in rig.hosts() {
        let r = get(&h.nginx_url, "/rig/host").expect("host nginx answers");
        assert_eq!((r.status, r.text()), (200, format!("{}\n", h.name)));
        assert_eq!(r.header("X-Rig-Host"), Some(h.name.as_str()));
    }
    // hosts reach each other (the switch keeps their traffic off the
    // machine's iptables FORWARD chain)
    let o = rig.ssh(
        "web1",
        &format!(
            "exec 3<>/dev/tcp/{}/80; printf 'GET /rig/host HTTP/1.0\\r\\n\\r\\n' >&3; cat <&3",
            rig.host("web2").addr
        ),
    );
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(
        text.ends_with("\nweb2\n"),
        "web1 → web2's nginx: {text} {o:?}"
    );
    // the load balancer takes turns
    let seen: Vec<String> = (0..4)
        .map(|_| {
            get(rig.lb_url(), "/rig/host")
                .expect("the LB answers")
                .text()
        })
        .collect();
    assert!(
        seen[0] != seen[1] && seen[0] == seen[2] && seen[1] == seen[3],
        "round robin: {seen:?}"
    );

    // ssh as root with the rig's key lands on the host, talking to its engine
    let o = rig.ssh(
        "web1",
        "echo $RIG_HOST; docker info --format '{{.ID}}'; ip -4 -o addr show eth0",
    );
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success(),
        "ssh web1: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(text.starts_with(&format!("web1\n{}\n", ids[0])), "{text}");
    assert!(
        text.contains(&format!("{}/24", rig.host("web1").addr)),
        "{text}"
    );
    // and the docker CLI reaches the engine over ssh://root@web1
    let o = run(docker_main()
        .env("PATH", rig.path_env())
        .env("DOCKER_HOST", &rig.host("web1").ssh)
        .args(["info", "--format", "{{.ID}}"]));
    assert!(o.status.success(), "docker over ssh: {o:?}");
    assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), ids[0]);

    // cut: web1 is unreachable over TCP (nginx, engine, ssh), the LB
    // routes around it; heal brings it back
    rig.cut("web1");
    assert!(
        get(&rig.host("web1").nginx_url, "/rig/host").is_err(),
        "web1 is cut"
    );
    let o = run(Command::new("timeout")
        .args([
            "10",
            "docker",
            "--tlsverify",
            "-H",
            &rig.host("web1").docker_tcp,
        ])
        .env("DOCKER_CERT_PATH", rig.cert_path())
        .arg("version"));
    assert!(
        !o.status.success(),
        "web1's engine over TCP while cut: {o:?}"
    );
    assert!(!rig.ssh("web1", "true").status.success());
    let o = rig.ssh(
        "web2",
        &format!(
            "timeout 3 bash -c 'exec 3<>/dev/tcp/{}/80' || echo cut",
            rig.host("web1").addr
        ),
    );
    assert_eq!(
        String::from_utf8_lossy(&o.stdout),
        "cut\n",
        "web2 → web1 while cut"
    );
    for _ in 0..4 {
        let r = get(rig.lb_url(), "/rig/host").expect("the LB answers with one host cut");
        assert_eq!((r.status, r.text()), (200, "web2\n".to_string()));
    }
    // a cut is a network fault only: the engine still runs (unix socket)
    rig.docker_ok("web1", &["version"]);
    rig.heal("web1");
    wait_for(20, "web1 reachable after heal", || {
        get(&rig.host("web1").nginx_url, "/rig/host").ok()
    });
    assert!(rig.docker_tcp("web1", &["version"]).status.success());

    // the registry: pushed from the main engine, pulled by a host engine
    let pushed = format!("{}/rig-tiny-{tag}:shipped", rig.registry_push());
    let pulled = format!("{}/rig-tiny-{tag}:shipped", rig.registry());
    docker_ok(&["tag", &shipped, &pushed]);
    let push = run(docker_main().args(["push", &pushed]));
    let _ = docker_main().args(["rmi", &pushed]).output();
    assert!(
        push.status.success(),
        "push: {}",
        String::from_utf8_lossy(&push.stderr)
    );
    rig.docker_ok("web2", &["pull", "-q", &pulled]);
    let out = rig.docker_ok("web2", &["run", "--rm", &pulled, "cat", "/etc/rig-mark"]);
    assert_eq!(out, format!("shipped-{tag}"));

    // an engine killed and started again
    rig.docker_ok(
        "web2",
        &[
            "run",
            "-d",
            "--stop-timeout",
            "1",
            "--name",
            "survivor",
            &image,
            "sleep",
            "600",
        ],
    );
    rig.kill_dockerd("web2");
    assert!(!rig.docker("web2", &["version"]).status.success());
    rig.start_dockerd("web2");
    rig.docker_ok("web2", &["version"]);

    // a test fills a host's nginx include (webdock nginx-snippet, later)
    std::fs::write(
        &rig.host("web2").nginx_include,
        "location = /filled { return 200 \"filled\\n\"; }\n",
    )
    .unwrap();
    rig.reload_nginx("web2");
    let r = wait_for(10, "the reloaded nginx", || {
        get(&rig.host("web2").nginx_url, "/filled")
            .ok()
            .filter(|r| r.status == 200)
    });
    assert_eq!(r.text(), "filled\n");

    // down also after an engine crash: its containers live on under their
    // shims, outside the namespace (own network namespaces)
    rig.docker_ok("web1", &["run", "-d", &image, "sleep", "600"]);
    rig.kill_dockerd("web1");
    let dir = rig.dir().to_path_buf();
    let id = rig.id.clone();
    let ports: Vec<String> = [rig.lb_url(), rig.registry(), rig.registry_push()]
        .iter()
        .map(|a| a.rsplit(':').next().unwrap().to_string())
        .collect();
    let ports: Vec<&str> = ports.iter().map(String::as_str).collect();
    rig.down();
    assert_eq!(
        rig_leftovers(&id, &dir, &ports),
        Vec::<String>::new(),
        "rig {id} left these"
    );
    assert!(!dir.join("rig.env").exists());
    // idempotent
    rig.rig_ok("down", &[]);
    sentinel.assert_untouched();
    MainEngine::snapshot().assert_unchanged_since(&before);
}

#[test]
fn down_after_an_up_killed_half_way_removes_everything() {
    require_docker();
    let before = MainEngine::snapshot();
    let dir = tempfile::Builder::new()
        .prefix("wdrig-")
        .tempdir_in("/tmp")
        .unwrap();
    let mut up = Command::new(rig_script())
        .arg("up")
        .arg(dir.path())
        .arg("3")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // killed once it is making hosts: a host namespace exists
    let id = wait_for(30, "up to make a namespace", || {
        let state = std::fs::read_to_string(dir.path().join("rig.env")).ok()?;
        let id = state
            .lines()
            .find_map(|l| l.strip_prefix("RIG_ID="))?
            .to_string();
        std::fs::read_dir("/run/netns")
            .ok()?
            .flatten()
            .any(|e| {
                e.file_name()
                    .to_string_lossy()
                    .contains(&format!("{id}-web"))
            })
            .then_some(id)
    });
    unsafe { libc::kill(up.id() as i32, libc::SIGKILL) };
    let _ = up.wait();

    let o = run(Command::new(rig_script()).arg("down").arg(dir.path()));
    assert!(
        o.status.success(),
        "down: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    // nothing comes back either: up's per-host workers were stopped too
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        rig_leftovers(&id, dir.path(), &[]),
        Vec::<String>::new(),
        "rig {id} left these"
    );
    MainEngine::snapshot().assert_unchanged_since(&before);
}

#[test]
fn postgres_and_plain_tcp_on_request() {
    require_docker();
    let tag = rand_tag();
    let image = format!("rig-tiny-{tag}:pg");
    let _images = MainImages(vec![image.clone()]);
    tiny_image(&image, "pg");
    let mut rig = Rig::up_with(1, &["--postgres", "--plain-tcp", "--names", "db1"]);
    let url = rig.pg_url().expect("RIG_PG with --postgres").to_string();
    let h = rig.host("db1").clone();
    // from the host's namespace, as a djob's lease client would
    let o = run(Command::new("nsenter")
        .arg(format!("--net=/run/netns/{}", h.ns))
        .args(["psql", &url, "-tAc", "select pg_try_advisory_lock(42)"]));
    assert!(
        o.status.success(),
        "psql from db1: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), "t");
    // and from a container on the host's engine, through its bridge
    rig.load(&[&image]);
    let port = url.rsplit(':').next().unwrap().split('/').next().unwrap();
    let out = rig.docker_ok(
        "db1",
        &[
            "run",
            "--rm",
            &image,
            "bash",
            "-c",
            &format!(
                "exec 3<>/dev/tcp/{}/{port} && echo reached",
                rig.controller_addr()
            ),
        ],
    );
    assert_eq!(out, "reached");
    // --plain-tcp: the engine on ADDR:2375 without TLS
    assert!(rig.host("db1").docker_tcp.ends_with(":2375"));
    let o = rig.docker_tcp("db1", &["version", "--format", "{{.Server.Version}}"]);
    assert!(o.status.success(), "plain TCP: {o:?}");
    let dir = rig.dir().to_path_buf();
    let id = rig.id.clone();
    rig.down();
    assert_eq!(
        rig_leftovers(&id, &dir, &[port]),
        Vec::<String>::new(),
        "rig {id} left these"
    );
}

/// What the fleet suites will build on: today's single-host webdock,
/// pointed at a rig host's engine and host nginx, deploys there, and the
/// load balancer serves both hosts' releases.
#[test]
fn webdock_promotes_on_rig_hosts_and_the_lb_serves_both() {
    let image = ensure_image("1.0.0");
    let rig = Rig::up(2);
    rig.load(&[&image]);
    let projects: Vec<Project> = rig
        .hosts()
        .iter()
        .map(|_| Project::new("rigwd", ""))
        .collect();
    std::thread::scope(|s| {
        for (h, p) in rig.hosts().iter().zip(&projects) {
            let rig = &rig;
            s.spawn(move || {
                // promote verifies through this host's nginx (Host: its address)
                let text = std::fs::read_to_string(&p.config)
                    .unwrap()
                    .replace(
                        "[portal]\n",
                        &format!("[portal]\npublic_url = \"{}/health/\"\n", h.nginx_url),
                    )
                    .replace(
                        "localhost,127.0.0.1",
                        &format!("localhost,127.0.0.1,{}", h.addr),
                    );
                std::fs::write(&p.config, text).unwrap();
                let snippet = p.ok(&["nginx-snippet"]);
                std::fs::write(&h.nginx_include, snippet).unwrap();
                rig.reload_nginx(&h.name);
                let o = run(p
                    .cmd()
                    .env("DOCKER_HOST", &h.docker_unix)
                    .args(["promote", "1.0.0"]));
                assert!(
                    o.status.success(),
                    "{}: promote: {}",
                    h.name,
                    String::from_utf8_lossy(&o.stderr)
                );
                let r = get_as(&h.nginx_url, "/health/", "localhost").unwrap();
                assert_eq!(
                    (r.status, r.header("X-Release")),
                    (200, Some("1.0.0")),
                    "{}",
                    h.name
                );
            });
        }
    });
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..4 {
        let r = get_as(rig.lb_url(), "/health/", "localhost").expect("the LB answers");
        assert_eq!((r.status, r.header("X-Release")), (200, Some("1.0.0")));
        seen.insert(r.header("X-Rig-Host").unwrap_or_default().to_string());
    }
    assert_eq!(seen.into_iter().collect::<Vec<_>>(), ["web1", "web2"]);
    // the portals run on the hosts' engines, not the machine's
    for (h, p) in rig.hosts().iter().zip(&projects) {
        let names = rig.docker_ok(&h.name, &["ps", "--format", "{{.Names}}"]);
        assert!(
            names.contains(&format!("{}-portal-blue", p.name)),
            "{}: {names}",
            h.name
        );
        assert!(p.containers().is_empty(), "nothing on the main engine");
    }
}

#[test]
fn bad_input_is_refused_with_exit_2_and_changes_nothing() {
    let dir = tempfile::Builder::new()
        .prefix("wdrig-")
        .tempdir_in("/tmp")
        .unwrap();
    let d = dir.path().to_str().unwrap();
    for (args, says) in [
        (vec!["up", d, "0"], "host count \"0\""),
        (vec!["up", d, "two"], "host count \"two\""),
        (
            vec!["up", d, "2", "--names", "a,b,c"],
            "names 3 hosts, not 2",
        ),
        (vec!["up", d, "2", "--names", "a,A"], "host name \"A\""),
        (vec!["up", d, "2", "--names", "a,a"], "\"a\" appears twice"),
        (vec!["up", "/tmp/a b", "1"], "rig directory \"/tmp/a b\""),
        (vec!["up", d, "1", "--fast"], "unknown option \"--fast\""),
        (vec!["env", d, "web1"], "no rig in"),
        (vec!["frobnicate"], "unknown rig command \"frobnicate\""),
    ] {
        let o = run(Command::new(rig_script()).args(&args));
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {err}");
        let first = err.lines().next().unwrap_or_default();
        assert!(
            first.starts_with("error: ") && first.contains(says),
            "{args:?}: {err}"
        );
        assert!(
            err.lines().skip(1).all(|l| l.starts_with("hint: ")),
            "{args:?}: {err}"
        );
    }
    let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert!(left.is_empty(), "bad input made {left:?}");
}
