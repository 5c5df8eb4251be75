//! The per-tag image, against the real engine: labels and cache, each role
//! from one image, the portal over its unix socket, graceful stop.

use std::process::Command;
use std::time::Duration;

mod common;
use common::*;

/// Runs the image in a role with a host socket dir mounted; removed on drop.
struct Run {
    name: String,
}

impl Run {
    fn start(image: &str, env: &[&str], mounts: &[String]) -> Run {
        let name = format!("webdock-e2e-run-{}", free_port());
        let mut args: Vec<String> = vec!["run".into(), "-d".into(), "--name".into(), name.clone()];
        for e in env {
            args.push("-e".into());
            args.push(e.to_string());
        }
        for m in mounts {
            args.push("-v".into());
            args.push(m.clone());
        }
        args.push(image.into());
        let a: Vec<&str> = args.iter().map(String::as_str).collect();
        docker_ok(&a);
        Run { name }
    }

    fn ps(&self) -> String {
        docker_ok(&["exec", &self.name, "ps", "-eo", "user,args"])
    }
}

impl Drop for Run {
    fn drop(&mut self) {
        let _ = docker(&["rm", "-f", &self.name]);
    }
}

fn migrate(image: &str, data: &str) {
    let o = docker(&[
        "run",
        "--rm",
        "-e",
        "WEBDOCK_ROLE=release",
        "-e",
        "DJANGO_SECRET_KEY=t",
        "-v",
        data,
        image,
        "python",
        "manage.py",
        "migrate",
        "--noinput",
    ]);
    assert!(
        o.status.success(),
        "migrate: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

#[test]
fn build_labels_the_image_and_a_rebuild_without_change_is_all_cache() {
    let tmp = tempfile::tempdir().unwrap();
    let app = tmp.path().join("app");
    copy_dir(&repo_root().join("examples/portal"), &app);
    let tag = format!("cache-{}", free_port());
    let cfg = tmp.path().join("webdock.toml");
    std::fs::write(&cfg, format!("project = \"cachetest\"\nimage = \"{IMAGE}\"\napp = \"app\"\ncrontab = \"crontab\"\n[djobs.billing]\ncommand = [\"python\", \"manage.py\", \"djob\", \"billing\"]\n")).unwrap();
    let build = || {
        let o = run(Command::new(bin())
            .arg("-c")
            .arg(&cfg)
            .args(["--json", "build", &tag])
            .env("SOURCE_DATE_EPOCH", "1700000000"));
        assert!(
            o.status.success(),
            "build: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        let out = String::from_utf8_lossy(&o.stdout).into_owned();
        let built: serde_json::Value = out
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .find(|v| v["event"] == "built")
            .unwrap_or_else(|| panic!("no built event in {out}"));
        built
    };
    let first = build();
    let second = build();
    let reference = format!("{IMAGE}:{tag}");
    let _cleanup = scopeguard(reference.clone());
    assert_eq!(first["id"], second["id"], "same inputs, same image");
    assert_eq!(
        second["cached_steps"], second["steps"],
        "every step from cache: {second}"
    );
    let labels: serde_json::Value = serde_json::from_str(&docker_ok(&[
        "image",
        "inspect",
        &reference,
        "--format",
        "{{json .Config.Labels}}",
    ]))
    .unwrap();
    assert_eq!(labels["webdock.tag"], tag.as_str());
    assert_eq!(labels["webdock.djobs"], "billing");
    assert_eq!(labels["org.opencontainers.image.version"], tag.as_str());
    assert_eq!(
        labels["org.opencontainers.image.created"],
        "2023-11-14T22:13:20Z"
    );
    assert!(labels["org.opencontainers.image.revision"]
        .as_str()
        .is_some_and(|r| !r.is_empty()));
    // A one-line app change rebuilds from the app layer on, not the wheels.
    std::fs::write(app.join("portal/static/portal/extra.css"), "body{}").unwrap();
    let third = build();
    assert_ne!(third["id"], first["id"]);
    assert!(
        third["cached_steps"].as_u64().unwrap() >= 5,
        "wheels and base layers stay cached: {third}"
    );
}

/// Removes an image when dropped.
struct ImageGuard(String);
fn scopeguard(r: String) -> ImageGuard {
    ImageGuard(r)
}
impl Drop for ImageGuard {
    fn drop(&mut self) {
        let _ = docker(&["rmi", "-f", &self.0]);
    }
}

/// The 1.0.0 image as a portal, migrated, with a host socket directory
/// under `dir` mounted; returns the container and the socket path.
fn start_portal(dir: &std::path::Path) -> (Run, std::path::PathBuf) {
    let image = ensure_image("1.0.0");
    let data = format!("{}:/data", dir.join("data").display());
    migrate(&image, &data);
    let sock_dir = dir.join("sock");
    std::fs::create_dir(&sock_dir).unwrap();
    let run = Run::start(
        &image,
        &["WEBDOCK_ROLE=portal", "DJANGO_SECRET_KEY=t"],
        &[format!("{}:/run/webdock/sock", sock_dir.display()), data],
    );
    (run, sock_dir.join("nginx.sock"))
}

#[test]
fn portal_serves_the_app_and_static_files_over_the_mounted_socket() {
    let tmp = tempfile::tempdir().unwrap();
    let (_r, sock) = start_portal(tmp.path());
    let health = wait_for(60, "the portal to answer /health/", || {
        unix_get(&sock, "/health/", "")
            .ok()
            .filter(|r| r.status == 200)
    });
    assert_eq!(health.header("X-Release"), Some("1.0.0"));
    assert!(health.text().contains("1.0.0"));
    // the socket is connectable by anyone (the host nginx runs as another user)
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&sock).unwrap().permissions().mode() & 0o777,
        0o666
    );
    let index = unix_get(&sock, "/", "").unwrap();
    assert_eq!(index.status, 200);
    let html = index.text();
    let css = html
        .split('"')
        .find(|s| s.starts_with("/static/") && s.ends_with(".css"))
        .unwrap_or_else(|| panic!("no stylesheet link in {html}"));
    let r = unix_get(&sock, css, "Accept-Encoding: gzip\r\n").unwrap();
    assert_eq!(r.status, 200, "{css}");
    assert!(
        r.header("Content-Type")
            .unwrap_or_default()
            .starts_with("text/css"),
        "{:?}",
        r.headers
    );
    assert_eq!(
        r.header("Content-Encoding"),
        Some("gzip"),
        "pre-compressed file served: {:?}",
        r.headers
    );
    assert!(
        r.header("Cache-Control")
            .unwrap_or_default()
            .contains("immutable"),
        "{:?}",
        r.headers
    );
}

#[test]
fn each_role_runs_only_its_own_processes() {
    let image = ensure_image("1.0.0");
    let tmp = tempfile::tempdir().unwrap();
    let data = format!("{}:/data", tmp.path().join("data").display());
    let cron = Run::start(
        &image,
        &["WEBDOCK_ROLE=cron", "DJANGO_SECRET_KEY=t"],
        std::slice::from_ref(&data),
    );
    let billing = Run::start(
        &image,
        &[
            "WEBDOCK_ROLE=djob",
            "WEBDOCK_DJOB=billing",
            "DJANGO_SECRET_KEY=t",
        ],
        std::slice::from_ref(&data),
    );
    let fax = Run::start(
        &image,
        &[
            "WEBDOCK_ROLE=djob",
            "WEBDOCK_DJOB=email2fax",
            "DJANGO_SECRET_KEY=t",
        ],
        std::slice::from_ref(&data),
    );
    let ps = wait_for(30, "cron to run", || {
        Some(cron.ps()).filter(|p| p.contains("cron -f"))
    });
    assert!(
        !ps.contains("nginx") && !ps.contains("uwsgi") && !ps.contains("djob"),
        "cron container: {ps}"
    );
    let ps = wait_for(30, "billing to run", || {
        Some(billing.ps()).filter(|p| p.contains("djob billing"))
    });
    assert!(
        !ps.contains("nginx")
            && !ps.contains("uwsgi")
            && !ps.contains("cron")
            && !ps.contains("email2fax"),
        "billing container: {ps}"
    );
    let line = ps.lines().find(|l| l.contains("djob billing")).unwrap();
    assert!(
        line.starts_with("app "),
        "the djob runs as the app user: {line}"
    );
    let ps = wait_for(30, "email2fax to run", || {
        Some(fax.ps()).filter(|p| p.contains("djob email2fax"))
    });
    assert!(!ps.contains("djob billing"), "{ps}");
    // the heartbeat log on the shared volume names both daemons
    let log = wait_for(30, "billing heartbeats", || {
        std::fs::read_to_string(tmp.path().join("data/logs/djob-billing.log"))
            .ok()
            .filter(|s| s.contains("beat"))
    });
    assert!(log.contains("start "), "{log}");
}

#[test]
fn unknown_role_or_djob_exits_non_zero_naming_it() {
    let image = ensure_image("1.0.0");
    for (env, needle) in [
        (vec!["WEBDOCK_ROLE=janitor"], "unknown role \"janitor\""),
        (
            vec!["WEBDOCK_ROLE=djob", "WEBDOCK_DJOB=fax"],
            "unknown djob \"fax\"",
        ),
        (
            vec!["WEBDOCK_ROLE=cron", "WEBDOCK_TIMEZONE=Mars/Olympus_Mons"],
            "unknown time zone \"Mars/Olympus_Mons\"",
        ),
        (
            vec!["WEBDOCK_ROLE=cron", "WEBDOCK_TIMEZONE=../../etc/passwd"],
            "unknown time zone",
        ),
        (
            vec![
                "WEBDOCK_ROLE=djob",
                "WEBDOCK_DJOB=billing",
                "WEBDOCK_HEARTBEAT_SECONDS=soon",
            ],
            "WEBDOCK_HEARTBEAT_SECONDS \"soon\" is not a number",
        ),
    ] {
        let mut args = vec!["run", "--rm"];
        for e in &env {
            args.push("-e");
            args.push(e);
        }
        args.push(&image);
        let o = docker(&args);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{env:?}: {err}");
        assert!(err.contains(needle), "{env:?}: {err}");
    }
}

#[test]
fn docker_stop_lets_a_request_in_flight_finish() {
    let tmp = tempfile::tempdir().unwrap();
    let (r, sock) = start_portal(tmp.path());
    wait_for(60, "the portal", || {
        unix_get(&sock, "/health/", "")
            .ok()
            .filter(|r| r.status == 200)
    });
    let s2 = sock.clone();
    let slow = std::thread::spawn(move || unix_get(&s2, "/slow/?seconds=4", ""));
    std::thread::sleep(Duration::from_millis(800));
    let stop = docker(&["stop", "-t", "20", &r.name]);
    assert!(stop.status.success());
    let resp = slow
        .join()
        .unwrap()
        .expect("the slow request got an answer");
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert!(resp.text().contains("slow done"));
    let code = docker_ok(&["inspect", &r.name, "--format", "{{.State.ExitCode}}"]);
    assert_eq!(code, "0", "a graceful stop exits 0");
}

/// Issue 14: the example's JS and SCSS, compiled on the build host by
/// esbuild and sassc, reach the image only as output: hashed by
/// collectstatic, with a `.gz` twin, served with long cache headers.
#[test]
fn the_compiled_bundle_is_hashed_and_served_gzipped_with_long_cache_headers() {
    let tmp = tempfile::tempdir().unwrap();
    let (r, sock) = start_portal(tmp.path());
    wait_for(60, "the portal to answer /health/", || {
        unix_get(&sock, "/health/", "")
            .ok()
            .filter(|r| r.status == 200)
    });
    let html = unix_get(&sock, "/", "").unwrap().text();
    for (ext, ty, needle) in [
        ("js", "application/javascript", "release badge"),
        ("css", "text/css", ".badge{"),
    ] {
        let url = html
            .split('"')
            .find(|s| s.starts_with("/static/portal/app.") && s.ends_with(&format!(".{ext}")))
            .unwrap_or_else(|| panic!("no hashed app.*.{ext} in {html}"));
        let hash = url.split('.').nth(1).unwrap();
        assert!(
            hash.len() == 12 && hash.bytes().all(|b| b.is_ascii_hexdigit()),
            "content-hashed name: {url}"
        );
        let gz = unix_get(&sock, url, "Accept-Encoding: gzip\r\n").unwrap();
        assert_eq!(gz.status, 200, "{url}");
        assert_eq!(
            gz.header("Content-Encoding"),
            Some("gzip"),
            "{:?}",
            gz.headers
        );
        assert!(gz.body.starts_with(&[0x1f, 0x8b]), "a gzip body for {url}");
        assert!(
            gz.header("Content-Type")
                .unwrap_or_default()
                .starts_with(ty),
            "{:?}",
            gz.headers
        );
        assert!(
            gz.header("Cache-Control")
                .unwrap_or_default()
                .contains("max-age=31536000"),
            "{:?}",
            gz.headers
        );
        let plain = unix_get(&sock, url, "").unwrap();
        assert!(
            plain.text().contains(needle),
            "compiled {ext}: {}",
            plain.text()
        );
    }
    // The bundlers and their sources stay on the build host.
    let found = docker_ok(&[
        "exec",
        &r.name,
        "sh",
        "-c",
        "ls /app; command -v esbuild sassc node || true",
    ]);
    assert!(
        !found.contains("frontend\n") && !found.contains("esbuild") && !found.contains("sassc"),
        "{found}"
    );
}
