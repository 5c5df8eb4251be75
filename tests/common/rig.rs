//! The fleet test rig (`scripts/rig`) from Rust: several hosts on this one
//! machine, each a network namespace with its own Docker engine, host nginx
//! and sshd, behind a load balancer (the project's `webdock lb-snippet`
//! once a test has one, `Rig::use_balancer`), with a registry (and optionally
//! PostgreSQL) on the controller. `Rig::up` runs `scripts/rig up`; dropping
//! the `Rig` runs `scripts/rig down`, also when the test panics, so a failed
//! fleet test leaves nothing behind. `MainEngine` snapshots what a rig must
//! never touch (docker0, the machine's engine and its containers) so a test
//! can assert it is untouched. docs/testing.md describes the rig.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use super::{repo_root, run};

/// One rig host, as `scripts/rig env DIR HOST` describes it.
#[derive(Debug, Clone)]
pub struct RigHost {
    pub name: String,
    /// Its address on the rig's switch (e.g. `10.233.7.11`).
    pub addr: String,
    /// The network namespace its processes run in.
    pub ns: String,
    /// `unix://…/docker.sock`: unaffected by `cut` (unix sockets cross namespaces).
    pub docker_unix: String,
    /// `tcp://ADDR:2376`, mutual TLS with the rig's CA (`Rig::cert_path`);
    /// `tcp://ADDR:2375`, plain, when the rig is up with `--plain-tcp`.
    pub docker_tcp: String,
    pub tls: bool,
    /// `ssh://root@NAME`; needs `Rig::path_env` (an `ssh` using the rig's config).
    pub ssh: String,
    /// `http://ADDR:80`, the host nginx.
    pub nginx_url: String,
    pub nginx_conf: PathBuf,
    /// The file the host nginx includes inside its `server { }`: a test
    /// writes `webdock nginx-snippet` there, then `Rig::reload_nginx`.
    pub nginx_include: PathBuf,
}

/// A running rig; `down` on drop.
pub struct Rig {
    dir: tempfile::TempDir,
    pub id: String,
    env: BTreeMap<String, String>,
    hosts: Vec<RigHost>,
    is_down: bool,
}

pub fn rig_script() -> PathBuf {
    repo_root().join("scripts/rig")
}

/// `export K=V` lines (values as bash `%q` prints plain paths) to a map.
fn parse_env(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter_map(|l| l.strip_prefix("export "))
        .filter_map(|l| l.split_once('='))
        .filter(|(k, _)| *k != "PATH")
        .map(|(k, v)| (k.to_string(), v.trim_matches('\'').replace("\\ ", " ")))
        .collect()
}

impl Rig {
    /// N hosts named web1..webN.
    pub fn up(n: usize) -> Rig {
        Rig::up_with(n, &[])
    }

    /// N hosts with `scripts/rig up` options (`--names a,b`, `--postgres`).
    pub fn up_with(n: usize, opts: &[&str]) -> Rig {
        assert!(
            unsafe { libc::geteuid() } == 0,
            "the fleet rig needs root (network namespaces, dockerd)"
        );
        // short: unix socket paths under it are limited to 108 bytes
        let dir = tempfile::Builder::new()
            .prefix("wdrig-")
            .tempdir_in("/tmp")
            .unwrap();
        let o = run(Command::new(rig_script())
            .arg("up")
            .arg(dir.path())
            .arg(n.to_string())
            .args(opts));
        assert!(
            o.status.success(),
            "scripts/rig up {} {n} {opts:?} failed (exit {:?}; it tore down what it made):\n{}",
            dir.path().display(),
            o.status.code(),
            String::from_utf8_lossy(&o.stderr)
        );
        let env = parse_env(&rig_ok(dir.path(), "env", &[]));
        let names: Vec<String> = env["RIG_HOSTS"]
            .split_whitespace()
            .map(str::to_owned)
            .collect();
        let hosts = names
            .iter()
            .map(|h| {
                let e = parse_env(&rig_ok(dir.path(), "env", &[h]));
                RigHost {
                    name: h.clone(),
                    addr: e["RIG_ADDR"].clone(),
                    ns: e["RIG_NS"].clone(),
                    docker_unix: e["RIG_DOCKER_UNIX"].clone(),
                    docker_tcp: e["RIG_DOCKER_TCP"].clone(),
                    tls: !e["RIG_DOCKER_TCP"].ends_with(":2375"),
                    ssh: e["RIG_SSH"].clone(),
                    nginx_url: e["RIG_NGINX"].clone(),
                    nginx_conf: e["RIG_NGINX_CONF"].clone().into(),
                    nginx_include: e["RIG_NGINX_INCLUDE"].clone().into(),
                }
            })
            .collect();
        Rig {
            id: env["RIG_ID"].clone(),
            dir,
            env,
            hosts,
            is_down: false,
        }
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn hosts(&self) -> &[RigHost] {
        &self.hosts
    }

    pub fn host(&self, name: &str) -> &RigHost {
        self.hosts
            .iter()
            .find(|h| h.name == name)
            .unwrap_or_else(|| panic!("no rig host {name}"))
    }

    /// `http://127.0.0.1:PORT`: nginx round-robin over every host's nginx
    /// (the rig's own until `use_balancer`).
    pub fn lb_url(&self) -> &str {
        &self.env["RIG_LB"]
    }

    /// `127.0.0.1:PORT` of the load balancer.
    pub fn lb_listen(&self) -> &str {
        self.lb_url().trim_start_matches("http://")
    }

    /// The load balancer's upstream and server from `text` (what `webdock
    /// lb-snippet --listen` printed for `lb_listen`): checked, then a
    /// graceful reload (`scripts/rig lb`).
    pub fn use_balancer(&self, text: &str) {
        let file = self.dir().join("balancer.conf");
        std::fs::write(&file, text).unwrap();
        self.rig_ok("lb", &[file.to_str().unwrap()]);
    }

    /// `ADDR:PORT` of the registry as the hosts' engines reach it (insecure
    /// registry in their daemon.json).
    pub fn registry(&self) -> &str {
        &self.env["RIG_REGISTRY"]
    }

    /// `127.0.0.1:PORT`: the same registry for the main engine, which
    /// trusts plain HTTP on loopback only.
    pub fn registry_push(&self) -> &str {
        &self.env["RIG_REGISTRY_PUSH"]
    }

    /// The controller's address on the rig's switch (registry, postgres).
    pub fn controller_addr(&self) -> &str {
        &self.env["RIG_CONTROLLER_ADDR"]
    }

    /// `postgresql://postgres@ADDR:PORT/postgres` when up with `--postgres`.
    pub fn pg_url(&self) -> Option<&str> {
        self.env.get("RIG_PG").map(String::as_str)
    }

    pub fn ssh_config(&self) -> PathBuf {
        self.env["RIG_SSH_CONFIG"].clone().into()
    }

    /// Client certificates for the engines' TLS port (DOCKER_CERT_PATH).
    pub fn cert_path(&self) -> PathBuf {
        self.env["RIG_DOCKER_CERT_PATH"].clone().into()
    }

    /// PATH with the rig's `ssh` wrapper first, for `ssh://` DOCKER_HOSTs.
    pub fn path_env(&self) -> String {
        format!(
            "{}:{}",
            self.dir().join("bin").display(),
            std::env::var("PATH").unwrap_or_default()
        )
    }

    /// `scripts/rig CMD DIR ARGS…`.
    pub fn rig(&self, cmd: &str, args: &[&str]) -> Output {
        run(Command::new(rig_script())
            .arg(cmd)
            .arg(self.dir())
            .args(args))
    }

    pub fn rig_ok(&self, cmd: &str, args: &[&str]) -> String {
        rig_ok(self.dir(), cmd, args)
    }

    /// Copies images from the main engine into every host's engine.
    pub fn load(&self, images: &[&str]) {
        self.rig_ok("load", images);
    }

    pub fn cut(&self, host: &str) {
        self.rig_ok("cut", &[host]);
    }

    pub fn heal(&self, host: &str) {
        self.rig_ok("heal", &[host]);
    }

    pub fn kill_dockerd(&self, host: &str) {
        self.rig_ok("kill-dockerd", &[host]);
    }

    pub fn start_dockerd(&self, host: &str) {
        self.rig_ok("start-dockerd", &[host]);
    }

    pub fn reload_nginx(&self, host: &str) {
        self.rig_ok("reload-nginx", &[host]);
    }

    /// The docker CLI against a host's engine over its unix socket.
    pub fn docker(&self, host: &str, args: &[&str]) -> Output {
        run(docker_main()
            .env("DOCKER_HOST", &self.host(host).docker_unix)
            .args(args))
    }

    /// The docker CLI against a host's engine over TCP (mutual TLS unless
    /// the rig is up with `--plain-tcp`).
    pub fn docker_tcp(&self, host: &str, args: &[&str]) -> Output {
        let h = self.host(host);
        let mut c = docker_main();
        c.env("DOCKER_HOST", &h.docker_tcp);
        if h.tls {
            c.env("DOCKER_TLS_VERIFY", "1")
                .env("DOCKER_CERT_PATH", self.cert_path());
        }
        run(c.args(args))
    }

    /// Asserts success; stdout trimmed.
    pub fn docker_ok(&self, host: &str, args: &[&str]) -> String {
        ok(&format!("{host}: docker {args:?}"), self.docker(host, args))
    }

    /// A command on a host over ssh, as root, with the rig's key.
    pub fn ssh(&self, host: &str, command: &str) -> Output {
        run(Command::new("ssh")
            .arg("-F")
            .arg(self.ssh_config())
            .arg(host)
            .arg(command))
    }

    /// `scripts/rig down`; asserts it left nothing. Drop does the same
    /// without asserting.
    pub fn down(&mut self) {
        self.is_down = true;
        self.rig_ok("down", &[]);
    }
}

impl Drop for Rig {
    fn drop(&mut self) {
        if std::thread::panicking() {
            print_logs(self.dir());
        }
        if !self.is_down {
            let o = self.rig("down", &[]);
            if !o.status.success() {
                eprintln!(
                    "scripts/rig down {} failed: {}",
                    self.dir().display(),
                    String::from_utf8_lossy(&o.stderr)
                );
            }
        }
    }
}

/// The last lines of every rig log: what a failed CI run needs to show.
fn print_logs(dir: &Path) {
    let mut logs: Vec<PathBuf> = std::fs::read_dir(dir.join("logs"))
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .collect();
    logs.sort();
    for l in logs {
        let text = std::fs::read_to_string(&l).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        let tail = &lines[lines.len().saturating_sub(15)..];
        if !tail.is_empty() {
            eprintln!("--- {}\n{}", l.display(), tail.join("\n"));
        }
    }
}

pub fn rig_ok(dir: &Path, cmd: &str, args: &[&str]) -> String {
    let o = run(Command::new(rig_script()).arg(cmd).arg(dir).args(args));
    ok(&format!("scripts/rig {cmd} {} {args:?}", dir.display()), o)
}

fn ok(what: &str, o: Output) -> String {
    assert!(
        o.status.success(),
        "{what} exited {:?}:\n{}{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

/// The docker CLI aimed at the machine's own engine, whatever a test's
/// environment says.
pub fn docker_main() -> Command {
    let mut c = Command::new("docker");
    for v in [
        "DOCKER_HOST",
        "DOCKER_TLS_VERIFY",
        "DOCKER_CERT_PATH",
        "DOCKER_CONTEXT",
    ] {
        c.env_remove(v);
    }
    c
}

/// What a rig must never touch, as seen from outside: the machine's
/// `docker0`, the identity of its engine, and its containers.
#[derive(Debug, Clone, PartialEq)]
pub struct MainEngine {
    /// `ip -d link show docker0` and its IPv4 address; None when it does not exist.
    pub docker0: Option<String>,
    /// The engine's ID and its daemon's start (a restart changes the pid).
    pub engine: String,
    /// id → "name state started-at" of containers not made by a webdock
    /// test (`webdock.project` label). Other checkouts' suites create and
    /// remove containers at any time on this shared engine, so "as before"
    /// means: none that stayed has changed.
    pub containers: BTreeMap<String, String>,
    pub networks: Vec<String>,
}

impl MainEngine {
    pub fn snapshot() -> MainEngine {
        let docker0 = Path::new("/sys/class/net/docker0").exists().then(|| {
            let link = run(Command::new("ip").args(["-o", "link", "show", "docker0"]));
            let addr = run(Command::new("ip").args(["-o", "-4", "addr", "show", "docker0"]));
            // the carrier (linkdown, NO-CARRIER) follows the main engine's
            // containers coming and going; the identity does not
            let link = String::from_utf8_lossy(&link.stdout)
                .split_whitespace()
                .filter(|w| w.contains(':') || w.starts_with('<'))
                .map(|w| {
                    w.replace("NO-CARRIER,", "")
                        .replace(",LOWER_UP", "")
                        .replace("LOWER_UP,", "")
                })
                .collect::<Vec<_>>()
                .join(" ");
            let addr = String::from_utf8_lossy(&addr.stdout)
                .split_whitespace()
                .find(|w| w.contains('/'))
                .unwrap_or_default()
                .to_string();
            format!("{link} {addr}")
        });
        let engine = ok(
            "docker info",
            run(docker_main().args(["info", "--format", "{{.ID}}"])),
        );
        let pid = std::fs::read_to_string("/var/run/docker.pid").unwrap_or_default();
        let ids = ok(
            "docker ps",
            run(docker_main().args(["ps", "-aq", "--no-trunc"])),
        );
        let mut containers = BTreeMap::new();
        for id in ids.split_whitespace() {
            let o = run(docker_main().args([
                "inspect",
                "--format",
                "{{index .Config.Labels \"webdock.project\"}}|{{.Name}} {{.State.Status}} {{.State.StartedAt}}",
                id,
            ]));
            let text = String::from_utf8_lossy(&o.stdout).trim().to_string();
            // gone between ps and inspect, or a webdock test's own; a
            // `webdock build` step's container (another checkout building
            // at the same time) runs, exits and goes by itself
            if let Some(("", rest)) = text.split_once('|') {
                if !rest.starts_with("/webdock-build-") {
                    containers.insert(id.to_string(), rest.to_string());
                }
            }
        }
        let networks = ok(
            "docker network ls",
            run(docker_main().args(["network", "ls", "-q", "--no-trunc"])),
        );
        let mut networks: Vec<String> = networks.split_whitespace().map(str::to_owned).collect();
        networks.sort();
        MainEngine {
            docker0,
            engine: format!("{engine} pid {}", pid.trim()),
            containers,
            networks,
        }
    }

    /// Panics naming whatever differs from `before`.
    pub fn assert_unchanged_since(&self, before: &MainEngine) {
        assert_eq!(self.docker0, before.docker0, "docker0 changed");
        assert_eq!(self.engine, before.engine, "the main engine restarted");
        // Every container that was there and still is, is as it was (not
        // stopped or restarted). One that is gone was removed by its owner:
        // the rig never calls the main engine but to `docker save`, and
        // cannot remove one; a sentinel (`Sentinel`) covers the case of
        // a container killed by mistake.
        for (id, was) in &before.containers {
            if let Some(now) = self.containers.get(id) {
                assert_eq!(now, was, "the main engine's container {id} changed");
            }
        }
        for n in &before.networks {
            assert!(
                self.networks.contains(n),
                "the main engine's network {n} is gone"
            );
        }
    }
}

/// A container of the test's own on the main engine, started before a rig
/// and checked after its `down`: the rig's teardown kills by namespace,
/// cgroup and command line, and must not hit anything of the machine's.
pub struct Sentinel {
    pub name: String,
    started: String,
}

impl Sentinel {
    /// `image` must have `sleep` (e.g. `scripts/rig tiny-image`).
    pub fn start(image: &str, name: &str) -> Sentinel {
        let o = run(docker_main().args([
            "run",
            "-d",
            "--stop-timeout",
            "1",
            "--name",
            name,
            image,
            "sleep",
            "3600",
        ]));
        ok(&format!("docker run {name}"), o);
        let started = Self::state(name);
        Sentinel {
            name: name.to_string(),
            started,
        }
    }

    fn state(name: &str) -> String {
        ok(
            "docker inspect",
            run(docker_main().args([
                "inspect",
                "--format",
                "{{.State.Status}} {{.State.Pid}} {{.State.StartedAt}}",
                name,
            ])),
        )
    }

    /// Panics unless the sentinel still runs, the same process as at start.
    pub fn assert_untouched(&self) {
        let now = Self::state(&self.name);
        assert!(self.started.starts_with("running "), "{}", self.started);
        assert_eq!(
            now, self.started,
            "the main engine's container {} was disturbed",
            self.name
        );
    }
}

impl Drop for Sentinel {
    fn drop(&mut self) {
        let _ = docker_main().args(["rm", "-f", &self.name]).output();
    }
}
