//! Bounded logs by default (issue 17, item 1): on an engine whose config
//! sets no log options (a private dockerd with an empty daemon.json, as on a
//! stock Debian host, whose json-file logs then grow without limit), a djob
//! that writes 50 MB keeps at most webdock's default bound on disk
//! (json-file, max-size 10m, max-file 3), `webdock logs djob NAME` still
//! shows its tail, and `doctor` warns about a project container whose log is
//! unbounded.

mod common;

use common::dockerd::{docker0_exists, PrivateDockerd};
use common::*;

/// Writes 50 MiB of 1 KiB lines, then a last line, then waits for SIGTERM.
const CHATTY: &str = r#"[djobs.chatty]
command = ["python", "-c", "import sys, time; l = 'x' * 1023 + chr(10); [sys.stdout.write(l) for i in range(51200)]; sys.stdout.flush(); print('chatty: done', flush=True); time.sleep(1e9)"]
"#;

fn wd(p: &Project, d: &PrivateDockerd, args: &[&str]) -> std::process::Output {
    run(p.cmd().env("DOCKER_HOST", d.host()).args(args))
}

fn text(o: &std::process::Output) -> String {
    format!(
        "exit {:?}\nstdout: {}\nstderr: {}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn a_chatty_djob_on_an_engine_without_log_options_stays_within_the_bound() {
    let image = ensure_variant_djobs("chatty", CHATTY);
    let docker0 = docker0_exists();
    let p = Project::new("logs", CHATTY);
    let d = PrivateDockerd::start(&p.path().join("pd"));
    d.load(&image);

    // The engine's own default here: json-file with no options.
    let stray = format!("{}-stray", p.name);
    let o = d.cli(&[
        "create",
        "--name",
        &stray,
        "--label",
        &format!("webdock.project={}", p.name),
        "--entrypoint",
        "true",
        &image,
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let log_config = |name: &str| {
        let o = d.cli(&["inspect", "-f", "{{json .HostConfig.LogConfig}}", name]);
        assert!(o.status.success(), "{}", text(&o));
        String::from_utf8_lossy(&o.stdout).trim().to_string()
    };
    assert_eq!(log_config(&stray), r#"{"Type":"json-file","Config":{}}"#);

    let o = wd(&p, &d, &["promote", "chatty"]);
    assert!(o.status.success(), "{}", text(&o));
    let chatty = p.container_name("djob-chatty");
    let lc = log_config(&chatty);
    assert!(
        lc.contains(r#""max-size":"10m""#) && lc.contains(r#""max-file":"3""#),
        "webdock sets the bound itself: {lc}"
    );

    // The tail through webdock, once the 50 MiB are out.
    let tail = wait_for(300, "chatty's last line in webdock logs", || {
        let o = wd(&p, &d, &["logs", "djob", "chatty", "--tail", "3"]);
        let out = String::from_utf8_lossy(&o.stdout).into_owned();
        (o.status.success() && out.contains("chatty: done")).then_some(out)
    });
    assert!(tail.lines().count() <= 3, "{tail}");

    // On disk: the container's json log and its rotated files.
    let o = d.cli(&["inspect", "-f", "{{.LogPath}}", &chatty]);
    let log_path = std::path::PathBuf::from(String::from_utf8_lossy(&o.stdout).trim());
    let base = log_path.file_name().unwrap().to_string_lossy().into_owned();
    let files: Vec<(String, u64)> = std::fs::read_dir(log_path.parent().unwrap())
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(&base))
        .map(|e| {
            (
                e.file_name().to_string_lossy().into_owned(),
                e.metadata().unwrap().len(),
            )
        })
        .collect();
    let total: u64 = files.iter().map(|(_, n)| n).sum();
    let bound = 3 * 10 * 1024 * 1024 + 1024 * 1024;
    assert!(
        files.len() >= 2 && total <= bound,
        "at most 3 files of 10 MiB (and it did rotate): {files:?}, {total} bytes"
    );

    // doctor warns about the stray, not about webdock's own containers.
    let o = wd(&p, &d, &["doctor", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("doctor --json");
    let warned: Vec<String> = v["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["warning"] == true)
        .map(|c| c["check"].as_str().unwrap().to_string())
        .collect();
    assert!(
        warned.len() == 1 && warned[0].contains(&stray) && warned[0].contains("without limit"),
        "{v}"
    );
    eprintln!(
        "logging: chatty wrote 50 MiB; on disk {} files, {total} bytes (bound {bound})",
        files.len()
    );
    drop(d);
    assert_eq!(
        docker0_exists(),
        docker0,
        "the shared engine's bridge docker0 must survive the private daemon"
    );
}
