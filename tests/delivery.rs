//! Image delivery across engines, against real parts only: the machine's
//! engine builds and pushes, a real registry (Debian's `docker-registry`)
//! stores, and a private dockerd that starts empty plays the other machine.
//!
//! - `build --push` then `pull` into the empty engine: the same digest and
//!   image id arrive, pinned by digest, with the right `webdock.tag`; the
//!   tag pushed again with other content resolves to the new digest.
//! - `ship` with no registry: the first ship sends the image, a second one
//!   of a code-only change sends only the changed layers; `promote` onto a
//!   `[hosts]` host that lacks the image ships it the same way by itself.
//! - A registry with htpasswd auth: anonymous push and pull fail naming
//!   it; credentials from the environment push, an auth file pulls.
//! - An unreachable registry fails naming it (exit 1) and changes nothing;
//!   `--push` without a registry and `ship --to` nonsense are bad usage.

mod common;
use common::*;

use common::dockerd_dl::{docker0_exists, PrivateDockerd, TestRegistry, AUTH_PASSWORD};

/// The same creation time as the shared test images: one code, one image id.
const EPOCH: &str = "1767225600";

/// Puts `registry = ADDR` (and `more`) at the top of the project's config,
/// before its tables.
fn with_registry(p: &Project, addr: &str, more: &str) {
    let text = std::fs::read_to_string(&p.config).unwrap();
    std::fs::write(&p.config, format!("registry = \"{addr}\"\n{more}{text}")).unwrap();
}

fn json_events(stdout: &[u8]) -> Vec<serde_json::Value> {
    String::from_utf8_lossy(stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON: {l}: {e}")))
        .collect()
}

fn event(events: &[serde_json::Value], kind: &str) -> serde_json::Value {
    events
        .iter()
        .find(|e| e["event"] == kind)
        .unwrap_or_else(|| panic!("no {kind} event in {events:#?}"))
        .clone()
}

fn ok(o: std::process::Output, what: &str) -> std::process::Output {
    assert!(
        o.status.success(),
        "{what} exited {:?}\nstdout: {}\nstderr: {}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    o
}

fn main_id(reference: &str) -> String {
    docker_ok(&["image", "inspect", "-f", "{{.Id}}", reference])
}

#[test]
fn a_pushed_tag_is_pulled_by_digest_into_an_engine_that_never_saw_it() {
    let docker0 = docker0_exists();
    let p = Project::new("dlpush", "");
    let reg = TestRegistry::start(&p.path().join("registry"));
    with_registry(&p, &reg.addr, "registry_stall_timeout = \"30s\"\n");
    let tag = "dl-push";
    let local = format!("{IMAGE}:{tag}");

    // build --push on the main engine: image id, then the digest, on stdout
    let o = ok(
        run(p
            .cmd()
            .args(["build", tag, "--push"])
            .env("SOURCE_DATE_EPOCH", EPOCH)),
        "build --push",
    );
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2, "id and digest: {out}");
    let (id, digest) = (lines[0].to_owned(), lines[1].to_owned());
    assert!(
        digest.starts_with("sha256:") && digest.len() == 71,
        "{digest}"
    );
    assert_eq!(main_id(&local), id);
    assert!(
        reg.stored_bytes() > 50_000_000,
        "the registry holds the layers"
    );

    // the other machine has never seen it
    let d = PrivateDockerd::start(&p.path().join("pd"));
    assert!(
        d.inspect(&local, "{{.Id}}").is_none(),
        "the engine starts empty"
    );
    let o = ok(
        run(p
            .cmd()
            .env("DOCKER_HOST", d.host())
            .args(["pull", tag, "--json"])),
        "pull",
    );
    let pulled = event(&json_events(&o.stdout), "pulled");
    assert_eq!(pulled["digest"], digest.as_str(), "{pulled}");
    assert_eq!(pulled["id"], id.as_str(), "the same image id: {pulled}");
    let pinned = format!("{}/{IMAGE}@{digest}", reg.addr);
    assert_eq!(pulled["pinned"], pinned.as_str());
    assert_eq!(d.inspect(&local, "{{.Id}}").as_deref(), Some(id.as_str()));
    assert_eq!(
        d.inspect(&local, "{{index .Config.Labels \"webdock.tag\"}}")
            .as_deref(),
        Some(tag)
    );
    let digests = d.inspect(&local, "{{json .RepoDigests}}").unwrap();
    assert!(digests.contains(&pinned), "pulled by digest: {digests}");

    // the tag pushed again with other content: resolve sees the new digest
    let tmp = tempfile::tempdir().unwrap();
    let app = tmp.path().join("app");
    copy_dir(&repo_root().join("examples/portal"), &app);
    let views = app.join("portal/views.py");
    let mut code = std::fs::read_to_string(&views).unwrap();
    code.push_str("\n# pushed again with other content\n");
    std::fs::write(&views, code).unwrap();
    let text = std::fs::read_to_string(&p.config).unwrap();
    let text = text.replace(
        &format!(
            "app = \"{}\"",
            repo_root().join("examples/portal").display()
        ),
        &format!("app = \"{}\"", app.display()),
    );
    std::fs::write(&p.config, text).unwrap();
    let o = ok(
        run(p
            .cmd()
            .args(["build", tag, "--push"])
            .env("SOURCE_DATE_EPOCH", EPOCH)),
        "build --push of other content",
    );
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    let (id2, digest2) = (out.lines().next().unwrap(), out.lines().nth(1).unwrap());
    assert_ne!(digest2, digest, "other content, other digest");
    let o = ok(
        run(p
            .cmd()
            .env("DOCKER_HOST", d.host())
            .args(["pull", tag, "--json"])),
        "pull of the moved tag",
    );
    let events = json_events(&o.stdout);
    let pulled = event(&events, "pulled");
    assert_eq!(pulled["digest"], digest2, "the resolve sees the move");
    assert_eq!(pulled["id"], id2);
    // only the changed layers came down the second time
    let fresh: Vec<_> = events
        .iter()
        .filter(|e| e["event"] == "pull" && e["status"] == "Pull complete")
        .collect();
    let existing: Vec<_> = events
        .iter()
        .filter(|e| e["event"] == "pull" && e["status"] == "Already exists")
        .collect();
    assert!(
        // an image is four layers (base, dependencies, webdock's files,
        // the app): a code change leaves the first ones in place
        fresh.len() <= 2 && existing.len() >= 2,
        "{} layers pulled, {} already there",
        fresh.len(),
        existing.len()
    );

    // the registry's names for both pushes on the main engine (the first
    // push's image keeps only its digest reference once the tag moved)
    let _ = docker(&["rmi", &format!("{}/{IMAGE}:{tag}", reg.addr), &pinned]);
    drop(d);
    assert_eq!(
        docker0_exists(),
        docker0,
        "docker0 must survive the private engine"
    );
}

#[test]
fn an_unreachable_registry_fails_naming_it_and_changes_nothing() {
    let p = Project::new("dldown", "");
    let dead = format!("127.0.0.1:{}", free_port());
    with_registry(&p, &dead, "");
    let tag = "dl-never-pushed";
    let o = p.webdock(&["pull", tag]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.lines()
            .any(|l| l.starts_with("error: registry ") && l.contains(&dead)),
        "the error names the registry: {err}"
    );
    assert!(
        docker(&["image", "inspect", &format!("{IMAGE}:{tag}")])
            .status
            .code()
            != Some(0),
        "nothing was tagged"
    );

    // a push to it fails after the build, naming it too (a tag of this
    // test's own: this build's labels differ from the shared images')
    let o = run(p
        .cmd()
        .args(["build", "dl-down", "--push"])
        .env("SOURCE_DATE_EPOCH", EPOCH));
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains(&format!("registry {dead}: push")), "{err}");
    let _ = docker(&["rmi", &format!("{dead}/{IMAGE}:dl-down")]);
}

#[test]
fn bad_delivery_usage_is_refused_before_any_work() {
    let p = Project::new("dlusage", "");
    // --push without a registry: exit 2, and nothing is built
    let o = p.webdock(&["build", "dl-no-registry", "--push"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.starts_with("error: --push needs a registry"), "{err}");
    assert!(
        !docker(&["image", "inspect", &format!("{IMAGE}:dl-no-registry")])
            .status
            .success()
    );
    for to in ["nonsense", "http://x", "tcp://", "ssh://"] {
        let o = p.webdock(&["ship", "1.0.0", "--to", to]);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{to}: {err}");
        assert!(err.contains(to) && err.contains("hint:"), "{err}");
    }
    // a loose auth file is refused, naming the file and the fix
    let auth = p.path().join("registry-auth");
    std::fs::write(&auth, "ci:secret\n").unwrap();
    with_registry(
        &p,
        "127.0.0.1:1",
        &format!("registry_auth_file = \"{}\"\n", auth.display()),
    );
    let o = run(p
        .cmd()
        .env_remove("WEBDOCK_REGISTRY_USER")
        .env_remove("WEBDOCK_REGISTRY_PASSWORD")
        .args(["pull", "1.0.0"]));
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains("registry-auth") && err.contains("chmod 600"),
        "{err}"
    );
}

#[test]
fn ship_sends_only_the_layers_the_target_lacks() {
    let docker0 = docker0_exists();
    let v1 = ensure_image("1.0.0");
    let v2 = ensure_variant("dl-ship-2", |app| {
        let views = app.join("portal/views.py");
        let mut code = std::fs::read_to_string(&views).unwrap();
        code.push_str("\n# a code-only change\n");
        std::fs::write(&views, code).unwrap();
    });
    let p = Project::new("dlship", "");
    let d = PrivateDockerd::start(&p.path().join("pd"));
    let ship = |tag: &str, to: &str| {
        let o = ok(
            run(p.cmd().args(["ship", tag, "--to", to, "--json"])),
            "ship",
        );
        event(&json_events(&o.stdout), "shipped")
    };

    // into the empty engine: every layer goes
    let first = ship("1.0.0", &d.host());
    assert_eq!(first["id"], main_id(&v1).as_str(), "{first}");
    assert_eq!(first["layers_skipped"], 0, "{first}");
    let exported = first["bytes_exported"].as_u64().unwrap();
    assert!(exported > 100_000_000, "{first}");
    assert_eq!(d.inspect(&v1, "{{.Id}}"), Some(main_id(&v1)));

    // a code-only change: only the changed layers go; `--to` names the
    // engine by its [hosts] entry this time
    let text = std::fs::read_to_string(&p.config).unwrap();
    let root = p.path().display();
    std::fs::write(
        &p.config,
        format!(
            "{text}\n[hosts.pd]\nengine = \"{}\"\nroles = [\"portal\", \"worker\"]\nsocket_root = \"{root}/pd-run\"\nstate_root = \"{root}/pd-state\"\n",
            d.host()
        ),
    )
    .unwrap();
    let second = ship("dl-ship-2", "pd");
    assert_eq!(second["id"], main_id(&v2).as_str(), "{second}");
    let sent = second["bytes_sent"].as_u64().unwrap();
    let layers = second["layers"].as_u64().unwrap();
    assert!(
        second["layers_skipped"].as_u64().unwrap() >= layers - 3,
        "{second}"
    );
    assert!(
        sent * 20 < second["bytes_exported"].as_u64().unwrap(),
        "a code-only change sends under 5% of the image: {second}"
    );
    assert_eq!(d.inspect(&v2, "{{.Id}}"), Some(main_id(&v2)));
    assert_eq!(
        d.inspect(&v2, "{{index .Config.Labels \"webdock.tag\"}}")
            .as_deref(),
        Some("dl-ship-2")
    );
    // the shipped image runs on the other engine
    let o = d.cli(&[
        "run",
        "--rm",
        "--entrypoint",
        "cat",
        &v2,
        "/app/portal/views.py",
    ]);
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("# a code-only change"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );

    // a tag this engine lacks fails naming it
    let o = p.webdock(&["ship", "dl-missing", "--to", &d.host()]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains(&format!("{IMAGE}:dl-missing")), "{err}");
    eprintln!(
        "ship: first {} of {} bytes, code-only change {} of {} bytes ({} of {} layers skipped)",
        first["bytes_sent"],
        exported,
        sent,
        second["bytes_exported"],
        second["layers_skipped"],
        layers
    );
    drop(d);
    assert_eq!(
        docker0_exists(),
        docker0,
        "docker0 must survive the private engine"
    );
}

/// A registry that wants basic auth: anonymous push and pull are refused
/// naming it (exit 1, nothing tagged); `WEBDOCK_REGISTRY_USER`/`_PASSWORD`
/// push, and `registry_auth_file` pulls into an engine that never saw it.
#[test]
fn an_authenticated_registry_takes_credentials_from_the_env_or_the_auth_file() {
    use std::os::unix::fs::PermissionsExt;
    let docker0 = docker0_exists();
    let p = Project::new("dlauth", "");
    let reg = TestRegistry::start_with_auth(&p.path().join("registry"));
    with_registry(&p, &reg.addr, "registry_stall_timeout = \"30s\"\n");
    let tag = "dl-auth";
    let local = format!("{IMAGE}:{tag}");
    let anonymous = || {
        let mut c = p.cmd();
        c.env_remove("WEBDOCK_REGISTRY_USER")
            .env_remove("WEBDOCK_REGISTRY_PASSWORD")
            .env("SOURCE_DATE_EPOCH", EPOCH);
        c
    };
    let refused = |o: std::process::Output, what: &str| {
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "{what}: {err}");
        assert!(
            err.lines()
                .any(|l| l.starts_with("error: ") && l.contains(&reg.addr)),
            "{what} names the registry: {err}"
        );
    };

    refused(
        run(anonymous().args(["build", tag, "--push"])),
        "anonymous push",
    );
    let o = ok(
        run(anonymous()
            .env("WEBDOCK_REGISTRY_USER", "ci")
            .env("WEBDOCK_REGISTRY_PASSWORD", AUTH_PASSWORD)
            .args(["build", tag, "--push"])),
        "push with credentials from the environment",
    );
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    let digest = out.lines().nth(1).unwrap_or_default().to_owned();
    assert!(digest.starts_with("sha256:"), "{out}");

    let d = PrivateDockerd::start(&p.path().join("pd"));
    refused(
        run(anonymous().env("DOCKER_HOST", d.host()).args(["pull", tag])),
        "anonymous pull",
    );
    assert!(d.inspect(&local, "{{.Id}}").is_none(), "nothing pulled");

    let auth = p.path().join("registry-auth");
    std::fs::write(&auth, format!("ci:{AUTH_PASSWORD}\n")).unwrap();
    std::fs::set_permissions(&auth, std::fs::Permissions::from_mode(0o600)).unwrap();
    let text = std::fs::read_to_string(&p.config).unwrap();
    std::fs::write(
        &p.config,
        format!("registry_auth_file = \"{}\"\n{text}", auth.display()),
    )
    .unwrap();
    let o = ok(
        run(anonymous()
            .env("DOCKER_HOST", d.host())
            .args(["pull", tag, "--json"])),
        "pull with registry_auth_file",
    );
    let pulled = event(&json_events(&o.stdout), "pulled");
    assert_eq!(pulled["digest"], digest.as_str(), "{pulled}");
    assert_eq!(
        d.inspect(&local, "{{.Id}}").as_deref(),
        Some(main_id(&local).as_str())
    );
    drop(d);
    let _ = docker(&[
        "rmi",
        &local,
        &format!("{}/{IMAGE}:{tag}", reg.addr),
        &format!("{}/{IMAGE}@{digest}", reg.addr),
    ]);
    assert_eq!(
        docker0_exists(),
        docker0,
        "docker0 must survive the private engine"
    );
}

/// `promote` onto a `[hosts]` host whose engine lacks the image and with no
/// registry: the delivery step ships it from this machine's engine, the
/// host runs it, and the next tag sends only the layers that changed.
#[test]
fn promote_ships_to_a_host_that_lacks_the_image() {
    let docker0 = docker0_exists();
    let v1 = ensure_image("1.0.0");
    let v2 = ensure_variant("dl-ship-2", |app| {
        let views = app.join("portal/views.py");
        let mut code = std::fs::read_to_string(&views).unwrap();
        code.push_str("\n# a code-only change\n");
        std::fs::write(&views, code).unwrap();
    });
    let p = Project::new("dlauto", "");
    let d = PrivateDockerd::start(&p.path().join("pd"));
    let root = p.path().display();
    let text = std::fs::read_to_string(&p.config).unwrap();
    std::fs::write(
        &p.config,
        format!(
            "{text}\n[hosts.h1]\nengine = \"{}\"\nroles = [\"portal\", \"worker\"]\nsocket_root = \"{root}/h1/run\"\nstate_root = \"{root}/h1/state\"\n",
            d.host()
        ),
    )
    .unwrap();
    let promote = |tag: &str| {
        let o = ok(
            run(p.cmd().args(["--json", "promote", tag])),
            "promote onto the empty engine",
        );
        json_events(&o.stdout)
    };
    let running = || {
        let o = d.cli(&[
            "ps",
            "--no-trunc",
            "--format",
            "{{.Label \"webdock.role\"}} {{.Image}}",
        ]);
        String::from_utf8_lossy(&o.stdout).into_owned()
    };

    let events = promote("1.0.0");
    let first = event(&events, "shipped");
    assert_eq!(
        (first["host"].as_str(), first["id"].as_str()),
        (Some("h1"), Some(main_id(&v1).as_str())),
        "{first}"
    );
    assert_eq!(first["layers_skipped"], 0, "{first}");
    assert!(
        events
            .iter()
            .any(|e| e["event"] == "ship-layer" && e["host"] == "h1"),
        "ship-layer events name the host"
    );
    assert_eq!(d.inspect(&v1, "{{.Id}}"), Some(main_id(&v1)));
    let ps = running();
    assert!(
        ps.lines().any(|l| l == format!("portal {}", main_id(&v1))),
        "h1 runs 1.0.0: {ps}"
    );

    let events = promote("dl-ship-2");
    let second = event(&events, "shipped");
    let layers = second["layers"].as_u64().unwrap();
    assert!(
        second["layers_skipped"].as_u64().unwrap() >= layers - 3,
        "{second}"
    );
    let sent = second["bytes_sent"].as_u64().unwrap();
    assert!(
        sent * 20 < second["bytes_exported"].as_u64().unwrap(),
        "a code-only change sends under 5% of the image: {second}"
    );
    assert_eq!(event(&events, "done")["tag"], "dl-ship-2");
    let ps = running();
    assert!(
        ps.lines().any(|l| l == format!("portal {}", main_id(&v2))),
        "h1 runs dl-ship-2: {ps}"
    );
    eprintln!(
        "promote's ship: first {} bytes, code-only change {sent} of {} bytes",
        first["bytes_sent"], second["bytes_exported"]
    );
    drop(d);
    drop(p);
    assert_eq!(
        docker0_exists(),
        docker0,
        "docker0 must survive the private engine"
    );
}

/// A TCP relay in front of the test registry that, once `stall` is set,
/// stops relaying the registry's answers after 1 MB on a connection (the
/// connection stays open, nothing moves): a registry that hangs mid-layer.
struct StallingRelay {
    addr: String,
    stall: std::sync::Arc<std::sync::atomic::AtomicBool>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl StallingRelay {
    fn start(upstream: &str) -> StallingRelay {
        use std::io::{Read, Write};
        use std::sync::atomic::{AtomicBool, Ordering};
        use std::sync::Arc;
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.set_nonblocking(true).unwrap();
        let addr = l.local_addr().unwrap().to_string();
        let stall = Arc::new(AtomicBool::new(false));
        let stop = Arc::new(AtomicBool::new(false));
        let (st, sp, up) = (stall.clone(), stop.clone(), upstream.to_owned());
        std::thread::spawn(move || {
            while !sp.load(Ordering::SeqCst) {
                let Ok((client, _)) = l.accept() else {
                    std::thread::sleep(std::time::Duration::from_millis(20));
                    continue;
                };
                client.set_nonblocking(false).unwrap();
                let server = std::net::TcpStream::connect(&up).unwrap();
                let (mut c2, mut s2) = (client.try_clone().unwrap(), server.try_clone().unwrap());
                std::thread::spawn(move || {
                    let _ = std::io::copy(&mut c2, &mut s2);
                });
                let (st, sp) = (st.clone(), sp.clone());
                let (mut client, mut server) = (client, server);
                std::thread::spawn(move || {
                    let mut buf = vec![0u8; 64 << 10];
                    let mut relayed = 0usize;
                    loop {
                        if st.load(Ordering::SeqCst) && relayed > 1 << 20 {
                            // hang: keep both sockets open, move nothing
                            while !sp.load(Ordering::SeqCst) {
                                std::thread::sleep(std::time::Duration::from_millis(50));
                            }
                            return;
                        }
                        let n = match server.read(&mut buf) {
                            Ok(0) | Err(_) => return,
                            Ok(n) => n,
                        };
                        if client.write_all(&buf[..n]).is_err() {
                            return;
                        }
                        relayed += n;
                    }
                });
            }
        });
        StallingRelay { addr, stall, stop }
    }
}

impl Drop for StallingRelay {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

#[test]
fn a_pull_that_stalls_mid_layer_fails_naming_the_registry_and_the_layer() {
    let docker0 = docker0_exists();
    let p = Project::new("dlstall", "");
    let reg = TestRegistry::start(&p.path().join("registry"));
    let relay = StallingRelay::start(&reg.addr);
    with_registry(&p, &relay.addr, "registry_stall_timeout = \"3s\"\n");
    ok(
        run(p
            .cmd()
            .args(["build", "dl-stall", "--push"])
            .env("SOURCE_DATE_EPOCH", EPOCH)),
        "build --push through the relay",
    );
    relay.stall.store(true, std::sync::atomic::Ordering::SeqCst);
    let d = PrivateDockerd::start(&p.path().join("pd"));
    let o = run(p
        .cmd()
        .env("DOCKER_HOST", d.host())
        .args(["pull", "dl-stall"]));
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    let line = err
        .lines()
        .find(|l| l.starts_with("error: "))
        .unwrap_or_else(|| panic!("no error line: {err}"));
    assert!(
        line.contains(&format!("registry {}: pull", relay.addr))
            && line.contains("stalled: nothing moved for 3 s (layer "),
        "{line}"
    );
    let layer = line.rsplit("(layer ").next().unwrap().trim_end_matches(')');
    assert!(
        layer.len() == 12 && layer.chars().all(|c| c.is_ascii_hexdigit()),
        "the stalled layer is named: {line}"
    );
    assert!(
        d.inspect(&format!("{IMAGE}:dl-stall"), "{{.Id}}").is_none(),
        "nothing was tagged on the target"
    );
    let _ = docker(&["rmi", &format!("{}/{IMAGE}:dl-stall", relay.addr)]);
    drop(d);
    assert_eq!(docker0_exists(), docker0);
}
