use super::*;

fn parse(t: &str) -> Result<Config, ConfigError> {
    Config::parse(Path::new("/srv/app/webdock.toml"), t)
}

#[test]
fn minimal_config_gets_defaults() {
    let c = parse("project = \"demo\"\n").unwrap();
    assert_eq!(c.image, "webdock-demo");
    assert_eq!(c.app_dir, PathBuf::from("/srv/app/."));
    assert_eq!(c.health.consecutive, 3);
    assert_eq!(c.release.command[0], "python");
    assert_eq!(c.layout().socket_dir(), Path::new("/run/webdock/demo"));
}

#[test]
fn unknown_key_names_key_and_line() {
    let e = parse("project = \"demo\"\n\n[health]\nconsecutve = 3\n")
        .unwrap_err()
        .to_string();
    assert!(e.contains(":4:"), "{e}");
    assert!(e.contains("consecutve"), "{e}");
    assert!(!e.contains('\n'), "one line: {e}");
}

#[test]
fn bad_values_are_refused_with_their_name() {
    let cases = [
        ("project = \"Demo\"", "\"Demo\""),
        ("project = 3", "invalid type"),
        ("project = \"d\"\n[health]\ntimeout = \"soon\"", "soon"),
        (
            "project = \"d\"\n[djobs.\"bad name\"]\ncommand=[\"x\"]",
            "bad name",
        ),
        ("project = \"d\"\n[djobs.a]\ncommand=[]", "djobs.a.command"),
        ("project = \"d\"\nrequirements = \"../etc/passwd\"", "'..'"),
        ("project = \"d\"\nvolumes = [\"x;rm:/data\"]", "x;rm"),
        ("project = \"d\"\n[env]\nWEBDOCK_ROLE = \"x\"", "reserved"),
        ("project = \"d\"\nimage = \"UP\"", "\"UP\""),
        (
            "project = \"d\"\n[env]\nA = \"a\\u0000b\"",
            "env A holds a NUL",
        ),
        (
            "project = \"d\"\n[portal]\npublic_url = \"http://a b/\"",
            "public_url",
        ),
        (
            "project = \"d\"\n[djobs.a]\ncommand=[\"x\"]\nenv = { WEBDOCK_ROLE = \"cron\" }",
            "reserved",
        ),
        (
            "project = \"d\"\n[portal]\nprocesses = 0",
            "portal.processes",
        ),
        ("", "missing field `project`"),
    ];
    for (text, needle) in cases {
        let e = parse(text).unwrap_err().to_string();
        assert!(e.contains(needle), "{text:?} gave {e:?}, wanted {needle:?}");
    }
}

#[test]
fn errors_stay_one_short_printable_line() {
    let huge = format!("project = \"{}\"\n", "a".repeat(5 << 20));
    let e = parse(&huge).unwrap_err().to_string();
    assert!(e.len() < 400, "{} bytes", e.len());
    assert!(e.ends_with("characters long (at most 32)"), "{e}");
    let e = parse("project = \"d\"\n\"\\u001b[2J\" = 1\n")
        .unwrap_err()
        .to_string();
    assert!(!e.contains('\u{1b}') && e.contains("\\u{1b}[2J"), "{e}");
}

#[test]
fn djobs_keep_their_settings() {
    let c = parse(
            "project = \"d\"\n[djobs.billing]\ncommand = [\"python\", \"manage.py\", \"djob\", \"billing\"]\nstop_grace = \"3s\"\nenv = { MODE = \"live\" }\n",
        )
        .unwrap();
    let d = c.djob("billing").unwrap();
    assert_eq!(d.stop_grace, Duration::from_secs(3));
    assert_eq!(d.env["MODE"], "live");
    assert!(c.djob("fax").is_none());
}

#[test]
fn lease_is_parsed_with_its_default_window() {
    let c = parse(
        "project = \"d\"\nenv_file = \"app.env\"\n[lease]\npostgres = \"LEASE_DATABASE_URL\"\n",
    )
    .unwrap();
    let l = c.lease.unwrap();
    assert_eq!(l.dsn_var, "LEASE_DATABASE_URL");
    assert_eq!(l.window, Duration::from_secs(10));
    let c = parse(
        "project = \"d\"\nenv_file = \"app.env\"\n[lease]\npostgres = \"PG\"\nwindow = \"3s\"\n",
    )
    .unwrap();
    assert_eq!(c.lease.unwrap().window, Duration::from_secs(3));
    assert!(parse("project = \"d\"\n").unwrap().lease.is_none());
}

#[test]
fn bad_lease_sections_name_the_file_and_key() {
    let cases = [
        ("[lease]\n", "lease.postgres is required"),
        (
            "[lease]\npostgres = \"PG\"\nwindow = \"1s\"\n",
            "lease.window 1s",
        ),
        (
            "[lease]\npostgres = \"PG\"\nwindow = \"2500ms\"\n",
            "whole seconds",
        ),
        ("[lease]\npostgres = \"PG\"\nwindow = \"soon\"\n", "soon"),
        (
            "[lease]\npostgres = \"NOT A NAME\"\n",
            "lease.postgres \"NOT A NAME\"",
        ),
        ("[lease]\npostgres = \"WEBDOCK_X\"\n", "reserved"),
        (
            "[lease]\npostgres = \"PG\"\nttl = \"3s\"\n",
            "unknown field `ttl`",
        ),
    ];
    for (lease, needle) in cases {
        let text = format!("project = \"d\"\nenv_file = \"app.env\"\n{lease}");
        let e = parse(&text).unwrap_err().to_string();
        assert!(
            e.contains(needle),
            "{lease:?} gave {e:?}, wanted {needle:?}"
        );
        assert!(e.starts_with("config /srv/app/webdock.toml"), "{e}");
        assert!(!e.contains('\n'), "one line: {e}");
    }
    let e = parse("project = \"d\"\n[lease]\npostgres = \"PG\"\n")
        .unwrap_err()
        .to_string();
    assert!(e.contains("env_file is not set"), "{e}");
}

#[test]
fn lease_dsn_comes_from_the_env_file() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let env = dir.path().join("app.env");
    let cfg = dir.path().join("webdock.toml");
    let load = |env_text: &str| {
        std::fs::write(&env, env_text).unwrap();
        std::fs::set_permissions(&env, std::fs::Permissions::from_mode(0o600)).unwrap();
        Config::parse(
            &cfg,
            "project = \"d\"\nenv_file = \"app.env\"\n[lease]\npostgres = \"LEASE_DATABASE_URL\"\n",
        )
        .unwrap()
        .lease_dsn()
    };
    let url = "postgresql://u:p@db:5432/app";
    assert_eq!(
        load(&format!("A=1\nLEASE_DATABASE_URL={url}\n"))
            .unwrap()
            .as_deref(),
        Some(url)
    );
    let e = format!("{:#}", load("A=1\n").unwrap_err());
    let first = e.lines().next().unwrap();
    assert!(
        first.contains(&env.display().to_string()) && first.contains("LEASE_DATABASE_URL"),
        "{e}"
    );
    assert!(first.contains("lease.postgres"), "{e}");
    let e = format!("{:#}", load("LEASE_DATABASE_URL=mysql://x\n").unwrap_err());
    assert!(e.contains("not a postgresql:// URL"), "{e}");
    assert!(parse("project = \"d\"\n")
        .unwrap()
        .lease_dsn()
        .unwrap()
        .is_none());
}

#[test]
fn placement_names_hosts_of_the_fleet_and_auto_needs_a_lease() {
    let hosts = "[hosts.web1]\nengine = \"unix:///run/a.sock\"\nroles = [\"portal\"]\n[hosts.work1]\nengine = \"unix:///run/b.sock\"\nroles = [\"worker\"]\n[hosts.work2]\nengine = \"unix:///run/c.sock\"\nroles = [\"worker\"]\n";
    let djob = |extra: &str| {
        format!("project = \"d\"\n[djobs.billing]\ncommand = [\"x\"]\n{extra}\n{hosts}")
    };
    let c = parse(&djob("hosts = [\"work2\", \"web1\"]")).unwrap();
    let billing = crate::roles::Role::Djob("billing".into());
    assert_eq!(c.placement(&billing).0, vec!["work2", "web1"]);
    // No hosts: the worker hosts in order; cron too.
    let c = parse(&djob("")).unwrap();
    assert_eq!(c.placement(&billing).0, vec!["work1", "work2"]);
    assert_eq!(
        c.placement(&crate::roles::Role::Cron).0,
        vec!["work1", "work2"]
    );
    for (extra, want) in [
        ("hosts = [\"work9\"]", "\"work9\" is not one of [hosts]"),
        ("hosts = [\"work1\", \"work1\"]", "listed twice"),
        ("failover = \"auto\"", "needs [lease]"),
        ("failover = \"sometimes\"", "sometimes"),
    ] {
        let e = parse(&djob(extra)).unwrap_err().to_string();
        assert!(e.contains(want), "{extra}: {e}");
        assert!(!e.contains('\n'), "one line: {e}");
    }
    let e = parse("project = \"d\"\n[cron]\nhosts = [\"a\"]\n")
        .unwrap_err()
        .to_string();
    assert!(e.contains("cron.hosts") && e.contains("no [hosts]"), "{e}");
}
