//! Shared pieces of the end-to-end tests: a per-test project (unique name,
//! its own temp socket/state/data directories, its containers removed on
//! drop), a private host nginx on 127.0.0.1 that includes the project's
//! `webdock nginx-snippet`, images of the example app built once per machine
//! and shared by tests, and small HTTP clients over TCP and unix sockets.
//! `dockerd` is a private Docker daemon for tests that restart an engine;
//! `rig` drives the fleet test rig (`scripts/rig`): several hosts, each with
//! its own engine, nginx and sshd, in network namespaces.
//!
//! A test that needs something the machine lacks (Docker, nginx) fails with
//! a message saying what is missing; it never passes silently.
#![allow(dead_code)]

pub mod dockerd;
pub mod dockerd_dl;
pub mod fleet;
pub mod freeze;
pub mod load;
pub mod rig;
pub mod watch;

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The test images' repository. `WEBDOCK_E2E_IMAGE` at build time gives a
/// second checkout (a worktree) images of its own, so two checkouts can run
/// their suites side by side on one engine without rebuilding each other's.
pub const IMAGE: &str = match option_env!("WEBDOCK_E2E_IMAGE") {
    Some(s) => s,
    None => "webdock-e2e",
};

pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_webdock"))
}

fn rand_suffix() -> String {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!(
        "{:06x}",
        (t as u64 ^ (std::process::id() as u64).rotate_left(20)) & 0xffffff
    )
}

/// Runs a command, panicking with its output when it cannot be started.
pub fn run(cmd: &mut Command) -> Output {
    cmd.output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"))
}

pub fn docker(args: &[&str]) -> Output {
    run(Command::new("docker").args(args))
}

pub fn docker_ok(args: &[&str]) -> String {
    let o = docker(args);
    assert!(
        o.status.success(),
        "docker {args:?} failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

pub fn require_docker() {
    let o = Command::new("docker")
        .args(["info", "--format", "{{.ServerVersion}}"])
        .output();
    match o {
        Ok(o) if o.status.success() => {}
        Ok(o) => panic!(
            "these tests need a running Docker engine: `docker info` failed: {}",
            String::from_utf8_lossy(&o.stderr)
        ),
        Err(e) => panic!("these tests need the docker CLI and a running engine: {e}"),
    }
}

/// A file lock across test processes (images are shared by all tests).
pub struct FileLock(std::fs::File);
impl FileLock {
    pub fn take(name: &str) -> FileLock {
        let f = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(std::env::temp_dir().join(name))
            .unwrap();
        use std::os::unix::io::AsRawFd;
        assert_eq!(unsafe { libc_flock(f.as_raw_fd(), 2) }, 0);
        FileLock(f)
    }
}
extern "C" {
    #[link_name = "flock"]
    fn libc_flock(fd: i32, op: i32) -> i32;
}

fn image_exists(reference: &str) -> bool {
    docker(&["image", "inspect", reference]).status.success()
}

/// The example app's front-end asset step, as in its webdock.toml: its
/// pages link the bundle, so every config that builds it needs this.
pub const EXAMPLE_ASSETS: &str = r#"[build.assets]
inputs = ["frontend"]
output = "frontend-dist"
commands = [
  ["esbuild", "frontend/app.js", "--bundle", "--minify", "--log-level=warning", "--outfile=frontend-dist/portal/app.js"],
  ["sassc", "--style", "compressed", "frontend/app.scss", "frontend-dist/portal/app.css"],
]
"#;

/// A config that builds the example app (or a copy) into `webdock-e2e`.
pub fn build_config(dir: &Path, app: &Path) -> PathBuf {
    let p = dir.join("build.toml");
    std::fs::write(
        &p,
        format!(
            "project = \"e2ebuild\"\nimage = \"{IMAGE}\"\napp = \"{}\"\ncrontab = \"crontab\"\n[djobs.billing]\ncommand = [\"python\", \"manage.py\", \"djob\", \"billing\"]\n[djobs.email2fax]\ncommand = [\"python\", \"manage.py\", \"djob\", \"email2fax\"]\n{EXAMPLE_ASSETS}",
            app.display()
        ),
    )
    .unwrap();
    p
}

/// `webdock-e2e:TAG` of the example app, built (or confirmed from cache) once per test process.
pub fn ensure_image(tag: &str) -> String {
    ensure_variant(tag, |_| {})
}

/// `webdock-e2e:TAG` of a modified copy of the example app.
pub fn ensure_variant(tag: &str, modify: impl FnOnce(&Path)) -> String {
    build_variant(tag, modify, "")
}

/// Builds `webdock-e2e:TAG` from a copy of the example app changed by
/// `modify`, with `extra_config` appended to the build config (more djobs),
/// once per test process.
fn build_variant(tag: &str, modify: impl FnOnce(&Path), extra_config: &str) -> String {
    require_docker();
    let reference = format!("{IMAGE}:{tag}");
    // Built (or found all-cached, in about a second) once per test process:
    // an image left by an earlier run of older code is never trusted as is.
    static DONE: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());
    let mut done = DONE.lock().unwrap_or_else(|e| e.into_inner());
    if done.contains(&reference) && image_exists(&reference) {
        return reference;
    }
    let _l = FileLock::take(&format!("{IMAGE}-images.lock"));
    let tmp = tempfile::tempdir().unwrap();
    let app = tmp.path().join("app");
    copy_dir(&repo_root().join("examples/portal"), &app);
    modify(&app);
    let cfg = build_config(tmp.path(), &app);
    if !extra_config.is_empty() {
        let mut text = std::fs::read_to_string(&cfg).unwrap();
        text.push_str(extra_config);
        text.push('\n');
        std::fs::write(&cfg, text).unwrap();
    }
    // A fixed creation time: the same code gives the same image id, so a
    // rebuild never moves the tag under a running test of another process.
    let o = run(Command::new(bin())
        .args(["-c"])
        .arg(&cfg)
        .args(["build", tag])
        .env("SOURCE_DATE_EPOCH", "1767225600"));
    assert!(
        o.status.success(),
        "building {reference} failed:\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    done.push(reference.clone());
    reference
}

pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let name = e.file_name();
        if name == "__pycache__" || name == "staticfiles" {
            continue;
        }
        let dst = to.join(&name);
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &dst);
        } else {
            std::fs::copy(e.path(), &dst).unwrap();
        }
    }
}

/// A private nginx on 127.0.0.1 playing the host nginx: it includes the
/// project's snippet, and workers run as `nobody` like a real host's.
pub struct Nginx {
    pub port: u16,
    child: Child,
    pub dir: PathBuf,
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Nginx {
    /// `server_body` goes inside the `server { }` block.
    pub fn start(dir: &Path, server_body: &str, extra_servers: &str) -> Nginx {
        let nginx = which("nginx").unwrap_or_else(|| panic!("these tests need nginx on the host (apt-get install nginx-light); .ci/run installs it"));
        let port = free_port();
        let tmp = dir.join("nginx");
        std::fs::create_dir_all(&tmp).unwrap();
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o777)).unwrap();
        let conf = tmp.join("nginx.conf");
        let t = tmp.display();
        std::fs::write(
            &conf,
            format!(
                "worker_processes 2;\nuser nobody nogroup;\npid {t}/nginx.pid;\nerror_log {t}/error.log warn;\nevents {{ worker_connections 1024; }}\nhttp {{\n  access_log off;\n  client_body_temp_path {t}/body;\n  proxy_temp_path {t}/proxy;\n  fastcgi_temp_path {t}/fastcgi;\n  uwsgi_temp_path {t}/uwsgi;\n  scgi_temp_path {t}/scgi;\n  keepalive_requests 100000;\n  server {{\n    listen 127.0.0.1:{port};\n{server_body}\n  }}\n{extra_servers}\n}}\n"
            ),
        )
        .unwrap();
        let child = Command::new(nginx)
            .args(["-e", &format!("{t}/error.log"), "-c"])
            .arg(&conf)
            .args(["-g", "daemon off;"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start nginx");
        let n = Nginx {
            port,
            child,
            dir: tmp,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "nginx did not listen on {port}: {}",
                std::fs::read_to_string(n.dir.join("error.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        n
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        // SIGTERM, not SIGKILL: a killed master leaves its workers running,
        // still listening on the port.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let _ = self.child.wait();
    }
}

pub fn which(prog: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|d| Path::new(d).join(prog))
        .find(|p| p.is_file())
}

/// One test's project: unique name, own dirs, cleaned up on drop.
pub struct Project {
    pub dir: tempfile::TempDir,
    pub name: String,
    pub config: PathBuf,
    pub nginx: Option<Nginx>,
}

impl Project {
    /// `hint` is a few letters naming the test. `extra` is appended to the config.
    pub fn new(hint: &str, extra: &str) -> Project {
        require_docker();
        let dir = tempfile::Builder::new()
            .prefix("webdock-e2e-")
            .tempdir()
            .unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let name = format!("{}-{}", hint, rand_suffix());
        let config = dir.path().join("webdock.toml");
        let p = Project {
            dir,
            name,
            config,
            nginx: None,
        };
        p.write_config(extra);
        p
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn data(&self) -> PathBuf {
        self.path().join("data")
    }

    pub fn write_config(&self, extra: &str) {
        let d = self.path().display();
        let public = self
            .nginx
            .as_ref()
            .map(|n| format!("public_url = \"{}\"\n", n.url("/health/")))
            .unwrap_or_default();
        let text = format!(
            r#"project = "{name}"
image = "{IMAGE}"
app = "{app}"
crontab = "crontab"
socket_root = "{d}/run"
state_root = "{d}/state"
volumes = ["{d}/data:/data"]
keep_images = 100
[env]
DJANGO_ALLOWED_HOSTS = "localhost,127.0.0.1"
DJANGO_SECRET_KEY = "test-not-secret"
[portal]
processes = 2
stop_grace = "10s"
{public}[health]
consecutive = 3
interval = "100ms"
deadline = "90s"
[cron]
stop_grace = "5s"
[djobs.billing]
command = ["python", "manage.py", "djob", "billing"]
stop_grace = "5s"
[djobs.email2fax]
command = ["python", "manage.py", "djob", "email2fax"]
stop_grace = "5s"
{extra}
"#,
            name = self.name,
            app = repo_root().join("examples/portal").display(),
        );
        // `extra` may re-open a table: a later [release] or [djobs.x] wins by
        // being the only one; callers avoid duplicates.
        std::fs::write(&self.config, text).unwrap();
    }

    /// Starts the host nginx with the project's snippet and rewrites the
    /// config so promote verifies through it.
    pub fn with_nginx(&mut self, extra: &str) -> &Nginx {
        let snippet = self.webdock(&["nginx-snippet"]);
        assert!(
            snippet.status.success(),
            "nginx-snippet: {}",
            String::from_utf8_lossy(&snippet.stderr)
        );
        let snip = self.path().join("webdock-snippet.conf");
        std::fs::write(&snip, &snippet.stdout).unwrap();
        let n = Nginx::start(self.path(), &format!("    include {};", snip.display()), "");
        self.nginx = Some(n);
        self.write_config(extra);
        self.nginx.as_ref().unwrap()
    }

    pub fn cmd(&self) -> Command {
        let mut c = Command::new(bin());
        c.arg("-c").arg(&self.config);
        c
    }

    pub fn webdock(&self, args: &[&str]) -> Output {
        run(self.cmd().args(args))
    }

    /// Runs webdock and asserts success, returning stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let o = self.webdock(args);
        assert!(
            o.status.success(),
            "webdock {args:?} exited {:?}\nstdout: {}\nstderr: {}",
            o.status.code(),
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    pub fn status_json(&self) -> serde_json::Value {
        serde_json::from_str(&self.ok(&["status", "--json"])).expect("status --json is JSON")
    }

    /// The color the live link points at (`blue` or `green`).
    pub fn live_link(&self) -> Option<String> {
        std::fs::read_link(self.live_link_path())
            .ok()
            .and_then(|p| p.file_name().map(|f| f.to_string_lossy().into_owned()))
    }

    /// `<state_root>/live.d/<project>`: the link the host nginx resolves.
    pub fn live_link_path(&self) -> PathBuf {
        self.path().join("state").join("live.d").join(&self.name)
    }

    pub fn container_name(&self, role: &str) -> String {
        format!("{}-{role}", self.name)
    }

    /// Names of this project's containers (running or not).
    pub fn containers(&self) -> Vec<String> {
        let out = docker_ok(&[
            "ps",
            "-a",
            "--filter",
            &format!("label=webdock.project={}", self.name),
            "--format",
            "{{.Names}}",
        ]);
        let mut v: Vec<String> = out
            .lines()
            .map(str::to_owned)
            .filter(|l| !l.is_empty())
            .collect();
        v.sort();
        v
    }

    pub fn history_lines(&self) -> Vec<serde_json::Value> {
        let p = self
            .path()
            .join("state")
            .join(&self.name)
            .join("history.jsonl");
        std::fs::read_to_string(p)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).expect("history line is JSON"))
            .collect()
    }
}

impl Drop for Project {
    fn drop(&mut self) {
        let ids = docker(&[
            "ps",
            "-aq",
            "--filter",
            &format!("label=webdock.project={}", self.name),
        ]);
        let ids: Vec<String> = String::from_utf8_lossy(&ids.stdout)
            .lines()
            .map(str::to_owned)
            .collect();
        if !ids.is_empty() {
            let mut args = vec!["rm".to_string(), "-f".to_string()];
            args.extend(ids);
            let _ = Command::new("docker").args(&args).output();
        }
    }
}

/// A parsed HTTP response.
#[derive(Debug, Clone)]
pub struct Resp {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Reads one HTTP/1.x response (Content-Length or read-to-close bodies).
pub fn read_response(r: &mut impl std::io::BufRead) -> std::io::Result<Resp> {
    let mut line = String::new();
    r.read_line(&mut line)?;
    if line.is_empty() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            "connection closed before a response",
        ));
    }
    let status: u16 = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("bad status line {line:?}")))?;
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        r.read_line(&mut h)?;
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.push((k.trim().to_string(), v.trim().to_string()));
        }
    }
    let len = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse::<usize>().ok());
    let chunked = headers
        .iter()
        .any(|(k, v)| k.eq_ignore_ascii_case("transfer-encoding") && v.contains("chunked"));
    let mut body = Vec::new();
    if let Some(n) = len {
        body.resize(n, 0);
        r.read_exact(&mut body)?;
    } else if chunked {
        loop {
            let mut sz = String::new();
            r.read_line(&mut sz)?;
            let n = usize::from_str_radix(sz.trim(), 16).map_err(std::io::Error::other)?;
            let mut chunk = vec![0; n + 2];
            r.read_exact(&mut chunk)?;
            if n == 0 {
                break;
            }
            body.extend_from_slice(&chunk[..n]);
        }
    } else {
        r.read_to_end(&mut body)?;
    }
    Ok(Resp {
        status,
        headers,
        body,
    })
}

/// One request over a fresh unix-socket connection.
pub fn unix_get(sock: &Path, path: &str, extra_headers: &str) -> std::io::Result<Resp> {
    let mut s = std::os::unix::net::UnixStream::connect(sock)?;
    s.set_read_timeout(Some(Duration::from_secs(30)))?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n{extra_headers}\r\n"
    )?;
    read_response(&mut std::io::BufReader::new(s))
}

/// One request over a fresh TCP connection.
pub fn http_get(port: u16, path: &str) -> std::io::Result<Resp> {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(30)))?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    )?;
    read_response(&mut std::io::BufReader::new(s))
}

/// Polls `f` until it returns Some, or panics after `secs` with `what`.
pub fn wait_for<T>(secs: u64, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {secs} s waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `webdock-e2e:TAG` of the example app built with more djobs than the
/// default two: `extra_djobs` is TOML appended to the build config, e.g.
/// `[djobs.quitter]\ncommand = ["python", "-c", "..."]`. A djob's command is
/// baked into the image (its s6 run script and the `webdock.djobs` label), so
/// the build config's command is the one that runs, whatever the project's
/// config says. Built (or confirmed from cache) once per test process.
pub fn ensure_variant_djobs(tag: &str, extra_djobs: &str) -> String {
    build_variant(tag, |_| {}, extra_djobs)
}

/// Runs webdock with `args` held at kill point `step` (test builds only),
/// does `act` there, then releases it; its stderr is returned.
pub fn held_at(p: &Project, args: &[&str], step: &str, act: impl FnOnce()) -> Output {
    use std::io::BufRead;
    let gate = p.path().join(format!("gate-{step}"));
    let mut child = p
        .cmd()
        .args(args)
        .env("WEBDOCK_HOLD_AT", format!("{step}={}", gate.display()))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    let reader = std::thread::spawn(move || {
        let mut all = String::new();
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            let _ = tx.send(line.clone());
            all.push_str(&line);
            all.push('\n');
        }
        all
    });
    let want = format!("held at {step}");
    loop {
        match rx.recv_timeout(std::time::Duration::from_secs(180)) {
            Ok(l) if l.contains(&want) => break,
            Ok(_) => {}
            Err(e) => panic!("{args:?} never reached {step}: {e}"),
        }
    }
    act();
    std::fs::write(&gate, "").unwrap();
    let status = child.wait().unwrap();
    let err = reader.join().unwrap();
    Output {
        status,
        stdout: vec![],
        stderr: err.into_bytes(),
    }
}
