//! Security properties (issue 5): secrets from a 0600 env file reach the
//! containers and nowhere else (not an image layer, the history or
//! webdock's output); app processes run as the unprivileged `app` user;
//! directories and the socket get the narrowest modes that still let the
//! host nginx in; and no input ever reaches a shell.

use std::os::unix::fs::PermissionsExt;

mod common;
use common::*;

fn mode(p: &std::path::Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

#[test]
fn env_file_secrets_reach_the_containers_and_nowhere_else() {
    ensure_image("1.0.0");
    let secret = format!("s3cr3t-{}", free_port());
    let p = Project::new("secret", "");
    let env_file = p.path().join("secrets.env");
    std::fs::write(&env_file, format!("# secrets\nPAYMENT_TOKEN={secret}\n")).unwrap();
    std::fs::set_permissions(&env_file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let cfg = std::fs::read_to_string(&p.config).unwrap();
    std::fs::write(
        &p.config,
        cfg.replacen(
            "keep_images = 100\n",
            &format!("keep_images = 100\nenv_file = \"{}\"\n", env_file.display()),
            1,
        ),
    )
    .unwrap();
    // readable by others: refused, nothing created
    let o = p.webdock(&["promote", "1.0.0"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("chmod 600"), "{err}");
    assert!(p.containers().is_empty());
    std::fs::set_permissions(&env_file, std::fs::Permissions::from_mode(0o600)).unwrap();
    let o = p.webdock(&["-v", "promote", "1.0.0"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let mut output =
        String::from_utf8_lossy(&o.stdout).into_owned() + &String::from_utf8_lossy(&o.stderr);
    for args in [
        &["status"][..],
        &["history", "--json"],
        &["-vv", "status", "--json"],
    ] {
        let o = p.webdock(args);
        output += &String::from_utf8_lossy(&o.stdout);
        output += &String::from_utf8_lossy(&o.stderr);
    }
    assert!(!output.contains(&secret), "webdock printed the secret");
    let history =
        std::fs::read_to_string(p.path().join("state").join(&p.name).join("history.jsonl"))
            .unwrap();
    assert!(!history.contains(&secret), "history holds the secret");
    for role in ["portal-blue", "djob-billing", "cron"] {
        let env = docker_ok(&["exec", &p.container_name(role), "printenv", "PAYMENT_TOKEN"]);
        assert_eq!(env, secret, "{role} gets the secret");
    }
    let image = format!("{IMAGE}:1.0.0");
    let layers =
        docker_ok(&["history", "--no-trunc", &image]) + &docker_ok(&["image", "inspect", &image]);
    assert!(!layers.contains(&secret), "the image holds the secret");
    // the cron container does not leave it world-readable on disk
    let files = docker_ok(&[
        "exec",
        &p.container_name("cron"),
        "sh",
        "-c",
        "ls -l /run/webdock/crontab /var/spool/cron/crontabs/app 2>&1 || true",
    ]);
    assert!(
        !files.contains("rw-r--r--") && !files.contains("/run/webdock/crontab\n"),
        "{files}"
    );
}

#[test]
fn app_processes_run_as_app_and_modes_are_narrow() {
    ensure_image("1.0.0");
    let mut p = Project::new("perms", "");
    p.with_nginx("");
    p.ok(&["promote", "1.0.0"]);
    for role in ["portal-blue", "djob-billing", "cron"] {
        let ps = docker_ok(&["exec", &p.container_name(role), "ps", "-eo", "user:12,args"]);
        for line in ps.lines().skip(1) {
            let (user, args) = line.split_at(12.min(line.len()));
            let prog = args.split_whitespace().next().unwrap_or("");
            let app_process =
                prog.contains("python") || prog.starts_with("uwsgi") || prog.contains("/uwsgi");
            if app_process {
                assert_eq!(user.trim(), "app", "{role}: {line}");
            }
        }
        if role == "portal-blue" {
            assert!(
                ps.lines()
                    .any(|l| l.starts_with("app") && l.contains("uwsgi")),
                "{ps}"
            );
        }
    }
    let run = p.path().join("run").join(&p.name);
    assert_eq!(mode(&run.join("blue")), 0o755);
    assert_eq!(mode(&run.join("green")), 0o755);
    assert_eq!(
        mode(&run.join("blue/nginx.sock")),
        0o666,
        "any local user may connect: the host nginx runs as another user"
    );
    assert_eq!(mode(&p.path().join("state").join(&p.name)), 0o700);
    // and the host nginx, whose workers run as nobody, does get through
    assert_eq!(
        http_get(p.nginx.as_ref().unwrap().port, "/health/")
            .unwrap()
            .status,
        200
    );
}

#[test]
fn shell_metacharacters_in_commands_are_arguments_never_shell() {
    let argv_djob = r#"[djobs.argv]
command = ["python", "-c", "import sys, time; open('/data/argv.txt', 'w').write(repr(sys.argv[1:])); time.sleep(3600)", "$(touch /data/pwned1)", "; touch /data/pwned2", "`touch /data/pwned3`", "a b", "\"'"]
"#;
    ensure_variant_djobs("argv-djob", argv_djob);
    let extra = format!(
        "{argv_djob}[release]\ncommand = [\"python\", \"-c\", \"import sys, subprocess; open('/data/release.txt', 'w').write(repr(sys.argv[1:])); sys.exit(subprocess.call(['python', 'manage.py', 'migrate', '--noinput']))\", \"$(touch /data/pwned4)\", \"&& touch /data/pwned5\"]\n"
    );
    let p = Project::new("noshell", &extra);
    p.ok(&["promote", "argv-djob"]);
    let data = p.data();
    let argv = wait_for(30, "the argv djob to write its arguments", || {
        std::fs::read_to_string(data.join("argv.txt")).ok()
    });
    assert_eq!(
        argv,
        r#"['$(touch /data/pwned1)', '; touch /data/pwned2', '`touch /data/pwned3`', 'a b', '"\'']"#
    );
    let rel = std::fs::read_to_string(data.join("release.txt")).unwrap();
    assert_eq!(rel, "['$(touch /data/pwned4)', '&& touch /data/pwned5']");
    for i in 1..=5 {
        assert!(
            !data.join(format!("pwned{i}")).exists(),
            "a shell ran pwned{i}"
        );
    }
}
