//! The binary's contract for bad input: a one-line error naming the input,
//! exit code 2, and nothing changed. No Docker needed for these.

use std::process::Command;

mod common;

fn webdock(dir: &std::path::Path, args: &[&str]) -> std::process::Output {
    Command::new(common::bin())
        .current_dir(dir)
        .args(args)
        .output()
        .unwrap()
}

fn write_cfg(dir: &std::path::Path, text: &str) {
    std::fs::write(dir.join("webdock.toml"), text).unwrap();
}

#[test]
fn bad_tags_exit_2_naming_the_tag_before_anything_runs() {
    let d = tempfile::tempdir().unwrap();
    // A config whose app does not exist: if anything ran, the error would be about the app.
    write_cfg(d.path(), "project = \"badtags\"\napp = \"missing\"\n");
    let long = "a".repeat(129);
    for tag in ["../x", "a b", long.as_str(), "", "-x", "a/b", "x:y"] {
        for verb in ["build", "promote"] {
            let o = webdock(d.path(), &[verb, tag]);
            let err = String::from_utf8_lossy(&o.stderr);
            assert_eq!(o.status.code(), Some(2), "{verb} {tag:?}: {err}");
            let first = err.lines().next().unwrap_or_default();
            assert!(first.starts_with("error: tag "), "{verb} {tag:?}: {err}");
            assert!(first.contains(&format!("{tag:?}")), "names the tag: {err}");
            assert!(!err.contains("missing"), "nothing ran: {err}");
        }
    }
}

#[test]
fn config_errors_name_the_key_and_line_and_exit_2() {
    let d = tempfile::tempdir().unwrap();
    let cases: &[(&str, &str)] = &[
        (
            "project = \"ok\"\n[health]\nconsecutve = 3\n",
            "webdock.toml:3: unknown field `consecutve`",
        ),
        (
            "project = \"ok\"\n[portal]\nstop_grace = \"forever\"\n",
            "webdock.toml:3:",
        ),
        ("project = \"Bad Name\"\n", "name \"Bad Name\""),
        ("project = 7\n", "webdock.toml:1: invalid type"),
        ("", "missing field `project`"),
        (
            "project = \"ok\"\n[djobs.x]\ncommand = \"sh -c 'rm -rf /'\"\n",
            "webdock.toml:3: invalid type: string",
        ),
        ("\u{0}\u{1}binary", "webdock.toml"),
    ];
    for (text, needle) in cases {
        write_cfg(d.path(), text);
        let o = webdock(d.path(), &["status"]);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{text:?}: {err}");
        assert!(err.contains(needle), "{text:?}: wanted {needle:?} in {err}");
        assert_eq!(err.trim_end().lines().count(), 1, "one line: {err}");
    }
    let o = webdock(d.path(), &["-c", "/nonexistent/webdock.toml", "status"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("/nonexistent/webdock.toml"));
}

#[test]
fn unknown_djob_is_refused_with_the_known_ones() {
    let d = tempfile::tempdir().unwrap();
    write_cfg(
        d.path(),
        "project = \"ok\"\n[djobs.billing]\ncommand = [\"x\"]\n",
    );
    let o = webdock(d.path(), &["restart", "djob", "fax"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("unknown djob \"fax\""), "{err}");
    assert!(err.contains("billing"), "{err}");
}

/// `restart portal` with `[hosts]` acted on the local engine alone (the
/// controller's, often no host of the fleet at all) while the fleet's
/// portals stayed as they were: it is refused, before any engine is asked.
#[test]
fn restart_portal_with_hosts_is_refused_not_run_on_the_local_engine() {
    let d = tempfile::tempdir().unwrap();
    write_cfg(
        d.path(),
        "project = \"fl\"\n[hosts.web1]\nengine = \"unix:///nonexistent/a.sock\"\nroles = [\"portal\"]\n",
    );
    let o = webdock(d.path(), &["restart", "portal"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains("restart portal does not reach [hosts]"),
        "{err}"
    );
    assert!(!err.contains("nonexistent"), "no engine was asked: {err}");
}

#[test]
fn help_teaches_the_verbs() {
    let o = Command::new(common::bin()).arg("--help").output().unwrap();
    let s = String::from_utf8_lossy(&o.stdout);
    for verb in [
        "build",
        "promote",
        "rollback",
        "status",
        "restart",
        "nginx-snippet",
        "doctor",
        "Exit codes",
    ] {
        assert!(s.contains(verb), "--help lacks {verb}");
    }
}

#[test]
fn nginx_snippet_points_at_the_live_link_without_upstream_keepalive() {
    let d = tempfile::tempdir().unwrap();
    write_cfg(
        d.path(),
        "project = \"snip\"\nsocket_root = \"/srv/sock\"\nstate_root = \"/srv/state\"\n",
    );
    let o = webdock(d.path(), &["nginx-snippet"]);
    assert!(o.status.success());
    let s = String::from_utf8_lossy(&o.stdout);
    assert!(
        // The live link sits beside the state (it must survive a reboot
        // that empties a tmpfs socket root) and points into the socket root.
        s.contains("proxy_pass http://unix:/srv/state/live.d/snip/nginx.sock:;"),
        "{s}"
    );
    assert!(s.contains("proxy_http_version 1.0;"), "{s}");
}
