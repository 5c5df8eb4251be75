//! `promote` by digest, against real parts only: the machine's engine
//! builds, pushes and runs staging; a real registry (Debian's
//! `docker-registry`) stores; a private dockerd that starts empty runs
//! production (the other machine).
//!
//! - staging releases TAG (digest D1); TAG is pushed again with other
//!   content (D2); production's `promote TAG` refuses naming both digests
//!   and changes nothing; `promote TAG --from staging` pulls D1 by digest
//!   into the empty engine and runs it: history and `status --json` show D1.
//! - destinations: a bad overlay key names the overlay file and line (exit
//!   2), `require_destination` refuses without `-d`, `--from` a destination
//!   that never ran the tag is refused.
//! - a registry that is down, or a layer truncated in it, fails promote
//!   before any container changes, exit 1, naming the registry.
//! - a `[hosts]` fleet (one host on another empty engine) gets the digest
//!   in its check phase; `--json`'s `pull` events and `done` event and
//!   history carry it.
//! - staging accepts the re-push once (`--allow-moved-tag`), after which no
//!   flag is needed; a plain `promote TAG` onto a third empty engine pulls
//!   D2 by digest. Every container runs the image id promote checked.

mod common;
use common::*;

use common::dockerd_dl::{docker0_exists, PrivateDockerd, TestRegistry};

const EPOCH: &str = "1767225600";

/// Puts `registry = ADDR` at the top of the config and writes the two
/// destination overlays.
fn with_registry(p: &Project, addr: &str) {
    let text = std::fs::read_to_string(&p.config).unwrap();
    std::fs::write(
        &p.config,
        format!("registry = \"{addr}\"\nregistry_stall_timeout = \"30s\"\n{text}"),
    )
    .unwrap();
    for d in ["staging", "production"] {
        std::fs::write(
            p.path().join(format!("webdock.{d}.toml")),
            format!("# {d}\n[env]\nDESTINATION = \"{d}\"\n"),
        )
        .unwrap();
    }
}

fn ok(o: std::process::Output, what: &str) -> String {
    assert!(
        o.status.success(),
        "{what} exited {:?}\nstdout: {}\nstderr: {}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// `build TAG --push` of the example app (with `marker` appended to its
/// code): (image id, digest).
fn build_push(p: &Project, tag: &str, marker: &str) -> (String, String) {
    let tmp = tempfile::tempdir().unwrap();
    let app = tmp.path().join("app");
    copy_dir(&repo_root().join("examples/portal"), &app);
    let views = app.join("portal/views.py");
    let mut code = std::fs::read_to_string(&views).unwrap();
    code.push_str(&format!("\n# {marker}\n"));
    std::fs::write(&views, code).unwrap();
    let text = std::fs::read_to_string(&p.config).unwrap();
    let example = format!(
        "app = \"{}\"",
        repo_root().join("examples/portal").display()
    );
    let text = match text.find("\napp = ") {
        Some(_) if text.contains(&example) => {
            text.replace(&example, &format!("app = \"{}\"", app.display()))
        }
        _ => {
            let start = text.find("\napp = ").unwrap() + 1;
            let end = start + text[start..].find('\n').unwrap();
            format!(
                "{}app = \"{}\"{}",
                &text[..start],
                app.display(),
                &text[end..]
            )
        }
    };
    std::fs::write(&p.config, text).unwrap();
    let out = ok(
        run(p
            .cmd()
            .args(["build", tag, "--push"])
            .env("SOURCE_DATE_EPOCH", EPOCH)),
        "build --push",
    );
    let l: Vec<&str> = out.lines().collect();
    assert_eq!(l.len(), 2, "id and digest: {out}");
    assert!(l[1].starts_with("sha256:"), "{out}");
    (l[0].to_owned(), l[1].to_owned())
}

fn history(p: &Project, dest: &str) -> Vec<serde_json::Value> {
    let f = p
        .path()
        .join("state")
        .join(format!("{}.{dest}", p.name))
        .join("history.jsonl");
    std::fs::read_to_string(f)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// Every digest `status --json` shows for the portals, cron and djobs that run.
/// Every portal, cron and djob container on `d` was created from the image
/// id `id` (the one promote checked under its lock), not from the tag's name.
fn runs_only(d: &PrivateDockerd, id: &str) {
    let ps = d.cli(&[
        "ps",
        "--no-trunc",
        "--format",
        "{{.Label \"webdock.role\"}} {{.Image}}",
    ]);
    let ps = String::from_utf8_lossy(&ps.stdout).into_owned();
    let ours: Vec<&str> = ps
        .lines()
        .filter(|l| {
            ["portal ", "cron ", "djob "]
                .iter()
                .any(|r| l.starts_with(r))
        })
        .collect();
    assert!(
        !ours.is_empty() && ours.iter().all(|l| l.ends_with(&format!(" {id}"))),
        "created from {id}: {ps}"
    );
}

fn status_digests(s: &serde_json::Value) -> Vec<String> {
    let mut rows: Vec<&serde_json::Value> = s["portals"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["running"] == true)
        .collect();
    rows.extend(s["djobs"].as_array().unwrap().iter());
    rows.push(&s["cron"]);
    rows.iter()
        .map(|r| r["digest"].as_str().unwrap_or("(none)").to_owned())
        .collect()
}

#[test]
fn production_runs_the_digest_staging_ran_and_refuses_a_moved_tag() {
    let docker0 = docker0_exists();
    let p = Project::new("dgpin", "");
    let reg = TestRegistry::start(&p.path().join("registry"));
    with_registry(&p, &reg.addr);
    let tag = format!("dg-{}", &p.name[p.name.len() - 6..]);
    let local = format!("{IMAGE}:{tag}");
    let pinned = |d: &str| format!("{}/{IMAGE}@{d}", reg.addr);

    // staging (this machine's engine) releases TAG = D1
    let (id1, d1) = build_push(&p, &tag, "first content");
    ok(
        p.webdock(&["-d", "staging", "promote", &tag]),
        "staging promote",
    );
    let h = history(&p, "staging");
    assert_eq!(h.last().unwrap()["digest"], d1.as_str(), "{h:?}");
    let s: serde_json::Value = serde_json::from_str(&ok(
        p.webdock(&["-d", "staging", "status", "--json"]),
        "status",
    ))
    .unwrap();
    assert!(status_digests(&s).iter().all(|d| *d == d1), "{s:#}");
    assert!(history(&p, "production").is_empty());
    assert!(
        p.history_lines().is_empty(),
        "destinations keep their own history"
    );

    // TAG pushed again with other content: D2
    let (id2, d2) = build_push(&p, &tag, "other content under the same tag");
    assert_ne!(d1, d2);

    // production (an engine that never saw the image) refuses the moved tag
    let pd = PrivateDockerd::start(&p.path().join("pd"));
    let prod = |args: &[&str]| {
        run(p
            .cmd()
            .env("DOCKER_HOST", pd.host())
            .args(["-d", "production"])
            .args(args))
    };
    let o = prod(&["promote", &tag]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    let line = err
        .lines()
        .find(|l| l.starts_with("error: "))
        .unwrap_or_default();
    assert!(
        line.contains(&d1) && line.contains(&d2) && line.contains("moved"),
        "both digests named: {err}"
    );
    assert!(err.contains("--allow-moved-tag"), "{err}");
    assert!(
        pd.cli(&["ps", "-aq"]).stdout.is_empty(),
        "no container changed"
    );
    assert!(
        pd.inspect(&local, "{{.Id}}").is_none(),
        "nothing pulled or tagged"
    );
    // staging refuses it too now (its own history ran D1)
    let o = p.webdock(&["-d", "staging", "promote", &tag]);
    assert_eq!(
        o.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );

    // --from staging: exactly D1, pulled by digest into the empty engine
    let out = prod(&["promote", &tag, "--from", "staging"]);
    ok(out, "production promote --from staging");
    assert_eq!(
        pd.inspect(&local, "{{.Id}}").as_deref(),
        Some(id1.as_str()),
        "the bytes staging ran"
    );
    let rd = pd.inspect(&local, "{{json .RepoDigests}}").unwrap();
    assert!(rd.contains(&pinned(&d1)), "pulled by digest: {rd}");
    let h = history(&p, "production");
    let last = h.last().unwrap();
    assert_eq!(
        (last["digest"].as_str(), last["outcome"].as_str()),
        (Some(d1.as_str()), Some("ok")),
        "{h:?}"
    );
    let s: serde_json::Value =
        serde_json::from_str(&ok(prod(&["status", "--json"]), "status")).unwrap();
    let ds = status_digests(&s);
    assert!(
        ds.len() >= 3 && ds.iter().all(|d| *d == d1),
        "{ds:?} in {s:#}"
    );
    runs_only(&pd, &id1);
    let text = ok(prod(&["status"]), "status");
    let rows = text.lines().filter(|l| l.contains(&d1[..19])).count();
    assert!(rows >= 3, "the short digest on every running role: {text}");

    // D2's own layers truncated in the registry: production asked for D2
    // fails the pull naming the registry, and what runs is untouched
    let blob = |d: &str| {
        let h = d.trim_start_matches("sha256:");
        reg.dir
            .join("storage/docker/registry/v2/blobs/sha256")
            .join(&h[..2])
            .join(h)
            .join("data")
    };
    let layers = |d: &str| -> Vec<String> {
        let m: serde_json::Value =
            serde_json::from_slice(&std::fs::read(blob(d)).unwrap()).unwrap();
        m["layers"]
            .as_array()
            .unwrap_or_else(|| panic!("a manifest with layers: {m}"))
            .iter()
            .map(|l| l["digest"].as_str().unwrap().to_owned())
            .collect()
    };
    let old = layers(&d1);
    let fresh: Vec<String> = layers(&d2)
        .into_iter()
        .filter(|l| !old.contains(l))
        .collect();
    assert!(!fresh.is_empty(), "other content, other layers");
    let saved: Vec<(String, Vec<u8>)> = fresh
        .iter()
        .map(|l| (l.clone(), std::fs::read(blob(l)).unwrap()))
        .collect();
    for l in &fresh {
        let f = std::fs::OpenOptions::new()
            .write(true)
            .open(blob(l))
            .unwrap();
        let len = f.metadata().unwrap().len();
        f.set_len(len / 2).unwrap();
    }
    let containers = || {
        String::from_utf8_lossy(
            &pd.cli(&["ps", "-a", "--format", "{{.ID}} {{.Image}} {{.Names}}"])
                .stdout,
        )
        .into_owned()
    };
    let before = containers();
    let o = prod(&["promote", &tag, "--allow-moved-tag"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.contains(&format!("registry {}: pull", reg.addr)),
        "names the registry: {err}"
    );
    assert_eq!(containers(), before, "no container changed");
    assert_eq!(
        pd.inspect(&local, "{{.Id}}").as_deref(),
        Some(id1.as_str()),
        "the tag still names D1 there"
    );

    // a [hosts] fleet (one host, another empty engine): the check phase
    // pulls the digest there; `--json` ends with it
    let dr = PrivateDockerd::start(&p.path().join("dr"));
    let d = p.path().display();
    std::fs::write(
        p.path().join("webdock.dr.toml"),
        format!(
            "[hosts.dr1]\nengine = \"{}\"\nroles = [\"portal\", \"worker\"]\nsocket_root = \"{d}/dr1/run\"\nstate_root = \"{d}/dr1/state\"\n",
            dr.host()
        ),
    )
    .unwrap();
    let out = ok(
        p.webdock(&["-d", "dr", "--json", "promote", &tag, "--from", "staging"]),
        "fleet promote --from staging",
    );
    let done: serde_json::Value = out
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|e| e["event"] == "done")
        .unwrap_or_else(|| panic!("no done event: {out}"));
    assert_eq!(done["digest"], d1.as_str(), "{done}");
    assert_eq!(dr.inspect(&local, "{{.Id}}").as_deref(), Some(id1.as_str()));
    let h = history(&p, "dr");
    assert_eq!(h.last().unwrap()["digest"], d1.as_str(), "{h:?}");
    runs_only(&dr, &id1);
    let pulls = out
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|e| e["event"] == "pull" && e["host"] == "dr1")
        .count();
    assert!(pulls > 0, "promote --json shows its pull: {out}");

    // the registry repaired; staging accepts the re-push once, and from
    // then on D2 is the tag's truth: no flag again, here or elsewhere
    for (l, data) in &saved {
        std::fs::write(blob(l), data).unwrap();
    }
    ok(
        p.webdock(&["-d", "staging", "promote", &tag, "--allow-moved-tag"]),
        "staging accepts the move",
    );
    ok(
        p.webdock(&["-d", "staging", "promote", &tag]),
        "staging again, without the flag",
    );
    let h = history(&p, "staging");
    assert_eq!(h.last().unwrap()["digest"], d2.as_str(), "{h:?}");

    // a plain `promote TAG` (no --from) onto another empty engine pulls the
    // digest the registry names, and --json shows the pull as it goes
    let pe = PrivateDockerd::start(&p.path().join("pe"));
    std::fs::write(p.path().join("webdock.edge.toml"), "# edge\n").unwrap();
    let out = ok(
        run(p
            .cmd()
            .env("DOCKER_HOST", pe.host())
            .args(["-d", "edge", "--json", "promote", &tag])),
        "edge promote",
    );
    let events: Vec<serde_json::Value> = out
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let pulled: Vec<&serde_json::Value> = events
        .iter()
        .filter(|e| e["event"] == "pull" && e["host"] == "local")
        .collect();
    assert!(
        pulled.iter().any(|e| e["status"] == "Pull complete"),
        "pull events name the host and the layers: {out}"
    );
    let done = events.iter().find(|e| e["event"] == "done").unwrap();
    assert_eq!(done["digest"], d2.as_str(), "{done}");
    let rd = pe.inspect(&local, "{{json .RepoDigests}}").unwrap();
    assert!(rd.contains(&pinned(&d2)), "pulled by digest: {rd}");
    runs_only(&pe, &id2);

    drop(pe);
    drop(dr);
    drop(pd);
    drop(p);
    let _ = docker(&[
        "rmi",
        &format!("{}/{IMAGE}:{tag}", reg.addr),
        &pinned(&d1),
        &pinned(&d2),
        &local,
    ]);
    assert_eq!(
        docker0_exists(),
        docker0,
        "docker0 must survive the private engine"
    );
}

#[test]
fn destinations_are_checked_before_anything_runs() {
    let p = Project::new("dgdest", "");
    // a bad key in the overlay: its file and line, exit 2
    std::fs::write(
        p.path().join("webdock.production.toml"),
        "# production\n\nkeep_images = 3\nregistri = \"x\"\n",
    )
    .unwrap();
    let o = p.webdock(&["-d", "production", "promote", "1.0.0"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.starts_with("error: config ")
            && err.contains("webdock.production.toml:4:")
            && err.contains("registri"),
        "{err}"
    );
    // an overlay that does not exist
    let o = p.webdock(&["-d", "nowhere", "status"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains("webdock.nowhere.toml") && err.contains("hint:"),
        "{err}"
    );
    // require_destination: refused without -d, naming the overlays
    std::fs::write(
        p.path().join("webdock.production.toml"),
        "keep_images = 3\n",
    )
    .unwrap();
    let text = std::fs::read_to_string(&p.config).unwrap();
    std::fs::write(&p.config, format!("require_destination = true\n{text}")).unwrap();
    for args in [&["promote", "1.0.0"][..], &["status"], &["rollback"]] {
        let o = p.webdock(args);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {err}");
        assert!(
            err.contains("require_destination")
                && err.contains("-d NAME")
                && err.contains("production"),
            "{err}"
        );
    }
    // --from a destination that never released the tag (needs a registry)
    let text = std::fs::read_to_string(&p.config).unwrap();
    std::fs::write(
        &p.config,
        format!("registry = \"127.0.0.1:{}\"\n{text}", free_port()),
    )
    .unwrap();
    std::fs::write(p.path().join("webdock.staging.toml"), "keep_images = 3\n").unwrap();
    let o = p.webdock(&["-d", "production", "promote", "1.0.0", "--from", "staging"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains("destination staging never released 1.0.0"),
        "{err}"
    );
    assert!(p.containers().is_empty());
}

#[test]
fn a_registry_that_is_down_fails_promote_before_any_change() {
    let p = Project::new("dgdown", "");
    let dead = format!("127.0.0.1:{}", free_port());
    let text = std::fs::read_to_string(&p.config).unwrap();
    std::fs::write(&p.config, format!("registry = \"{dead}\"\n{text}")).unwrap();
    let o = p.webdock(&["promote", "dg-never-pushed"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.lines()
            .any(|l| l.starts_with("error: registry ") && l.contains(&dead)),
        "the error names the registry: {err}"
    );
    assert!(p.containers().is_empty(), "no container was created");
    assert!(p.live_link().is_none());
}
