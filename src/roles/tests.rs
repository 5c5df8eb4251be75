use super::*;
use std::path::PathBuf;

#[test]
fn names_labels_and_mounts() {
    let cfg = Config::parse(
        &PathBuf::from("/srv/w/webdock.toml"),
        "project = \"demo\"\nvolumes = [\"demo-data:/data\"]\n[djobs.billing]\ncommand = [\"x\"]\nstop_grace = \"7s\"\nenv = { A = \"1\" }\n",
    )
    .unwrap();
    let s = Specs::new(&cfg).unwrap();
    let tag = Tag::parse("1.0.0").unwrap();
    let p = s.spec(&Role::Portal(Color::Green), &tag);
    assert_eq!(p.name, "demo-portal-green");
    assert_eq!(p.image, "webdock-demo:1.0.0");
    assert!(p
        .binds
        .contains(&"/run/webdock/demo/green:/run/webdock/sock".to_string()));
    assert_eq!(p.labels[LABEL_COLOR], "green");
    let d = s.spec(&Role::Djob("billing".into()), &tag);
    assert_eq!(d.name, "demo-djob-billing");
    assert!(d.env.contains(&"WEBDOCK_DJOB=billing".to_string()));
    assert!(d.env.contains(&"A=1".to_string()));
    assert_eq!(d.stop_timeout.as_secs(), 12);
    assert_eq!(d.log.as_ref().unwrap().options["max-size"], "10m");
    assert!(!d.env.iter().any(|e| e.starts_with("WEBDOCK_HEARTBEAT")));
    let r = s.spec(&Role::Release(tag.clone()), &tag);
    assert_eq!(r.name, "demo-release-1.0.0");
    assert!(!r.restart_always);
    assert_eq!(r.cmd.as_deref().unwrap()[0], "python");
}

#[test]
fn heartbeat_timezone_and_logging_reach_the_containers() {
    let cfg = Config::parse(
        &PathBuf::from("/srv/w/webdock.toml"),
        "project = \"demo\"\n[logging]\ndriver = \"local\"\n[cron]\ntimezone = \"Europe/Amsterdam\"\nlogging = { driver = \"journald\" }\n[djobs.billing]\ncommand = [\"x\"]\nheartbeat = \"1m\"\nstop_grace = \"7s\"\n",
    )
    .unwrap();
    let s = Specs::new(&cfg).unwrap();
    let tag = Tag::parse("1.0.0").unwrap();
    let d = s.spec(&Role::Djob("billing".into()), &tag);
    for e in [
        "WEBDOCK_HEARTBEAT_FILE=/run/webdock/heartbeat/beat",
        "WEBDOCK_HEARTBEAT_SECONDS=60",
        "WEBDOCK_STOP_GRACE=7",
    ] {
        assert!(d.env.contains(&e.to_string()), "{e}: {:?}", d.env);
    }
    assert!(d
        .binds
        .contains(&"/run/webdock/demo/djobs/billing:/run/webdock/heartbeat".to_string()));
    assert_eq!(d.log.as_ref().unwrap().driver, "local");
    let c = s.spec(&Role::Cron, &tag);
    assert!(c
        .env
        .contains(&"WEBDOCK_TIMEZONE=Europe/Amsterdam".to_string()));
    assert_eq!(c.log.as_ref().unwrap().driver, "journald");
    assert!(c.log.as_ref().unwrap().options.is_empty());
}

#[test]
fn the_lease_reaches_cron_and_djobs_only() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let env = dir.path().join("app.env");
    std::fs::write(&env, "LEASE_DATABASE_URL=postgresql://db/app\n").unwrap();
    std::fs::set_permissions(&env, std::fs::Permissions::from_mode(0o600)).unwrap();
    let cfg = Config::parse(
        &dir.path().join("webdock.toml"),
        "project = \"demo\"\nenv_file = \"app.env\"\n[lease]\npostgres = \"LEASE_DATABASE_URL\"\nwindow = \"4s\"\n[djobs.billing]\ncommand = [\"x\"]\n",
    )
    .unwrap();
    let tag = Tag::parse("1.0.0").unwrap();
    let s = Specs::new(&cfg).unwrap().named("work1");
    let d = s.spec(&Role::Djob("billing".into()), &tag);
    for e in [
        "WEBDOCK_LEASE_DSN=postgresql://db/app",
        "WEBDOCK_LEASE_NAME=demo/billing",
        "WEBDOCK_LEASE_WINDOW=4",
        "WEBDOCK_HOST=work1",
    ] {
        assert!(d.env.contains(&e.to_string()), "{e}: {:?}", d.env);
    }
    let c = s.spec(&Role::Cron, &tag);
    assert!(c.env.contains(&"WEBDOCK_LEASE_NAME=demo/cron".to_string()));
    let p = s.spec(&Role::Portal(Color::Blue), &tag);
    assert!(!p.env.iter().any(|e| e.starts_with("WEBDOCK_LEASE")));
    // the fleet of one is "local"
    let d = Specs::new(&cfg)
        .unwrap()
        .spec(&Role::Djob("billing".into()), &tag);
    assert!(d.env.contains(&"WEBDOCK_HOST=local".to_string()));
    // a missing variable stops the command before any container
    std::fs::write(&env, "OTHER=1\n").unwrap();
    let e = format!("{:#}", Specs::new(&cfg).err().unwrap());
    assert!(e.contains("LEASE_DATABASE_URL"), "{e}");
}
