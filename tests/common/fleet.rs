//! A project whose `[hosts]` are the rig's hosts (the fleet tests).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use super::rig::Rig;
use super::*;

/// A project whose `[hosts]` are the rig's hosts, each with paths of its
/// own (the rig's hosts share this machine's filesystem).
pub struct Fleet {
    pub dir: tempfile::TempDir,
    pub config: PathBuf,
}

impl Fleet {
    pub fn new(rig: &Rig, hosts: &[&str], ssh: &[&str]) -> Fleet {
        Fleet::with(rig, hosts, ssh, &[hosts[0]], "", None)
    }

    /// `workers`: the hosts with the worker role; `extra`, when not empty,
    /// replaces the `[cron]` and `[djobs.*]` tables (placement, [lease]);
    /// `env`: the text of an env file (mode 0600) the config names.
    pub fn with(
        rig: &Rig,
        hosts: &[&str],
        ssh: &[&str],
        workers: &[&str],
        extra: &str,
        env: Option<&str>,
    ) -> Fleet {
        let dir = tempfile::Builder::new()
            .prefix("wdfleet-")
            .tempdir()
            .unwrap();
        std::fs::set_permissions(
            dir.path(),
            std::os::unix::fs::PermissionsExt::from_mode(0o755),
        )
        .unwrap();
        let d = dir.path().display().to_string();
        let certs = rig.cert_path();
        let mut text = format!(
            r#"project = "fl{id}"
image = "{IMAGE}"
app = "{app}"
crontab = "crontab"
socket_root = "{d}/ctl/run"
state_root = "{d}/ctl/state"
volumes = ["{d}/data:/data"]
[env]
DJANGO_ALLOWED_HOSTS = "*"
DJANGO_SECRET_KEY = "test-not-secret"
[portal]
processes = 2
stop_grace = "10s"
[health]
consecutive = 3
interval = "100ms"
# at load average 60 on 2 cores the example's uWSGI took 26 s to load the
# app: 30 s failed a healthy promote
deadline = "60s"
[cron]
stop_grace = "5s"
[djobs.billing]
command = ["python", "manage.py", "djob", "billing"]
stop_grace = "5s"
[djobs.email2fax]
command = ["python", "manage.py", "djob", "email2fax"]
stop_grace = "5s"
"#,
            id = rig.id,
            app = repo_root().join("examples/portal").display(),
        );
        if let Some(env) = env {
            let file = dir.path().join("app.env");
            std::fs::write(&file, env).unwrap();
            std::fs::set_permissions(&file, std::os::unix::fs::PermissionsExt::from_mode(0o600))
                .unwrap();
            text.insert_str(0, "env_file = \"app.env\"\n");
        }
        if !extra.is_empty() {
            let cut = text.find("[cron]\n").expect("the base config has [cron]");
            text.truncate(cut);
            text.push_str(extra);
        }
        for name in hosts {
            let h = rig.host(name);
            let engine = if ssh.contains(name) {
                h.ssh.clone()
            } else {
                h.docker_tcp.clone()
            };
            let tls = if engine.starts_with("tcp://") && h.tls {
                format!(
                    "tls = {{ ca = \"{c}/ca.pem\", cert = \"{c}/cert.pem\", key = \"{c}/key.pem\" }}\n",
                    c = certs.display()
                )
            } else {
                String::new()
            };
            let roles = if workers.contains(name) {
                "[\"portal\", \"worker\"]"
            } else {
                "[\"portal\"]"
            };
            text.push_str(&format!(
                "[hosts.{name}]\nengine = \"{engine}\"\n{tls}roles = {roles}\npublic_url = \"{url}/health/\"\nsocket_root = \"{d}/{name}/run\"\nstate_root = \"{d}/{name}/state\"\n",
                url = h.nginx_url
            ));
        }
        let config = dir.path().join("webdock.toml");
        std::fs::write(&config, text).unwrap();
        let f = Fleet { dir, config };
        for name in hosts {
            let snip = f.ok(rig, &["nginx-snippet", "--host", name]);
            std::fs::write(&rig.host(name).nginx_include, snip).unwrap();
            rig.reload_nginx(name);
        }
        // The balancer in front is the one users get: `webdock lb-snippet`.
        rig.use_balancer(&f.ok(rig, &["lb-snippet", "--listen", rig.lb_listen()]));
        f
    }

    pub fn cmd(&self, rig: &Rig) -> Command {
        let mut c = Command::new(bin());
        c.arg("-c").arg(&self.config).env("PATH", rig.path_env());
        c
    }

    pub fn webdock(&self, rig: &Rig, args: &[&str]) -> Output {
        run(self.cmd(rig).args(args))
    }

    pub fn ok(&self, rig: &Rig, args: &[&str]) -> String {
        let o = self.webdock(rig, args);
        assert!(
            o.status.success(),
            "webdock {args:?} exited {:?}\n{}",
            o.status.code(),
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    pub fn history(&self) -> Vec<serde_json::Value> {
        let project = std::fs::read_to_string(&self.config)
            .unwrap()
            .lines()
            .next()
            .unwrap()
            .split('"')
            .nth(1)
            .unwrap()
            .to_string();
        let h = self
            .dir
            .path()
            .join("ctl/state")
            .join(project)
            .join("history.jsonl");
        std::fs::read_to_string(h)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }
}
