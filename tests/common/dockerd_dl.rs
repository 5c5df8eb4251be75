//! The delivery tests' "other machines": a private Docker engine that starts
//! empty, and a real registry (Debian's `docker-registry`, distribution 2.8)
//! on a free loopback port with a config and storage of its own.
//!
//! `PrivateDockerd` is a copy of the one in `tests/djobs.rs` (kept in its
//! own file so that a later move of that one to `tests/common/` merges
//! cleanly). Its state, exec root, socket, cgroup parent and bridge are its
//! own; iptables, masquerading and forwarding are off. Never
//! `--bridge=none`: dockerd then deletes the host's `docker0`.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::{free_port, run, which};

fn ip(args: &[&str]) {
    let o = run(Command::new("ip").args(args));
    assert!(
        o.status.success(),
        "ip {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

pub fn docker0_exists() -> bool {
    Path::new("/sys/class/net/docker0").exists()
}

fn wait_until(secs: u64, what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

pub struct PrivateDockerd {
    pub dir: PathBuf,
    bridge: String,
    child: Option<Child>,
}

impl PrivateDockerd {
    pub fn start(dir: &Path) -> PrivateDockerd {
        assert!(
            unsafe { libc::geteuid() } == 0,
            "this test runs a private dockerd and needs root"
        );
        assert!(
            which("dockerd").is_some() && which("ip").is_some() && which("fuse-overlayfs").is_some(),
            "this test runs a private dockerd: it needs dockerd, ip (iproute2) and fuse-overlayfs on PATH"
        );
        std::fs::create_dir_all(dir).unwrap();
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64;
        let r = (t ^ std::process::id() as u64) & 0xffffff;
        let bridge = format!("wddl{r:06x}");
        let routes = String::from_utf8_lossy(&run(Command::new("ip").args(["-4", "route"])).stdout)
            .into_owned();
        let subnet = (0..250u64)
            .map(|i| format!("10.232.{}", (r + i) % 250 + 1))
            .find(|s| !routes.contains(&format!("{s}.")))
            .expect("a free 10.232.x.0/24");
        ip(&["link", "add", "name", &bridge, "type", "bridge"]);
        let mut d = PrivateDockerd {
            dir: dir.to_path_buf(),
            bridge,
            child: None,
        };
        ip(&["addr", "add", &format!("{subnet}.1/24"), "dev", &d.bridge]);
        ip(&["link", "set", &d.bridge, "up"]);
        std::fs::write(dir.join("daemon.json"), "{}\n").unwrap();
        d.launch();
        d
    }

    pub fn sock(&self) -> PathBuf {
        self.dir.join("docker.sock")
    }

    pub fn host(&self) -> String {
        format!("unix://{}", self.sock().display())
    }

    fn launch(&mut self) {
        let d = self.dir.display().to_string();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("dockerd.log"))
            .unwrap();
        let child = Command::new("dockerd")
            .args(["--config-file", &format!("{d}/daemon.json")])
            .args(["--data-root", &format!("{d}/root")])
            .args(["--exec-root", &format!("{d}/exec")])
            .args(["--pidfile", &format!("{d}/dockerd.pid")])
            .args(["-H", &self.host()])
            .args(["--bridge", &self.bridge])
            .args(["--iptables=false", "--ip-masq=false", "--ip-forward=false"])
            .args([
                "--userland-proxy=false",
                "--storage-driver",
                "fuse-overlayfs",
            ])
            .args(["--cgroup-parent", &format!("/{}", self.bridge)])
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start dockerd");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(st) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!(
                    "the private dockerd exited with {st}:\n{}",
                    std::fs::read_to_string(self.dir.join("dockerd.log")).unwrap_or_default()
                );
            }
            if self.cli(&["version"]).status.success() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the private dockerd did not answer"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn cli(&self, args: &[&str]) -> std::process::Output {
        run(Command::new("docker")
            .env("DOCKER_HOST", self.host())
            .args(args))
    }

    /// `docker image inspect -f FORMAT REF` on this engine, None if missing.
    pub fn inspect(&self, reference: &str, format: &str) -> Option<String> {
        let o = self.cli(&["image", "inspect", "-f", format, reference]);
        o.status
            .success()
            .then(|| String::from_utf8_lossy(&o.stdout).trim().to_owned())
    }

    /// Processes started for this daemon: their command lines name its directory.
    fn leftovers(&self) -> Vec<i32> {
        let me = self.dir.display().to_string();
        let mut pids = Vec::new();
        for e in std::fs::read_dir("/proc").unwrap().flatten() {
            let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
                continue;
            };
            let cmdline = std::fs::read(e.path().join("cmdline")).unwrap_or_default();
            if String::from_utf8_lossy(&cmdline).contains(&me) {
                pids.push(pid);
            }
        }
        pids
    }
}

impl Drop for PrivateDockerd {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let ids = self.cli(&["ps", "-aq"]);
            let ids: Vec<String> = String::from_utf8_lossy(&ids.stdout)
                .split_whitespace()
                .map(str::to_owned)
                .collect();
            if !ids.is_empty() {
                let mut args = vec!["rm".to_string(), "-f".to_string()];
                args.extend(ids);
                let _ = Command::new("docker")
                    .env("DOCKER_HOST", self.host())
                    .args(&args)
                    .output();
            }
            unsafe { libc::kill(c.id() as i32, libc::SIGTERM) };
            let deadline = Instant::now() + Duration::from_secs(60);
            while c.try_wait().unwrap().is_none() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
        for pid in self.leftovers() {
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
        std::thread::sleep(Duration::from_millis(300));
        let me = self.dir.display().to_string();
        let mut mounts: Vec<String> = std::fs::read_to_string("/proc/self/mountinfo")
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.split_whitespace().nth(4).map(str::to_owned))
            .filter(|m| m.starts_with(&me))
            .collect();
        mounts.sort_by_key(|m| std::cmp::Reverse(m.len()));
        for m in mounts {
            let _ = Command::new("umount").args(["-l", &m]).output();
        }
        let _ = Command::new("ip")
            .args(["link", "del", &self.bridge])
            .output();
        for ctl in std::fs::read_dir("/sys/fs/cgroup")
            .into_iter()
            .flatten()
            .flatten()
        {
            let _ = std::fs::remove_dir(ctl.path().join(&self.bridge));
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A registry of the test's own: `docker-registry serve` on
/// 127.0.0.1:<free port> (Docker speaks plain HTTP to loopback registries
/// without any engine setting), its storage in the test's directory.
pub struct TestRegistry {
    pub addr: String,
    pub dir: PathBuf,
    child: Child,
}

impl TestRegistry {
    pub fn start(dir: &Path) -> TestRegistry {
        let bin = which("docker-registry").unwrap_or_else(|| {
            panic!(
                "these tests need Debian's docker-registry (distribution 2.8): run scripts/setup"
            )
        });
        std::fs::create_dir_all(dir.join("storage")).unwrap();
        let port = free_port();
        let addr = format!("127.0.0.1:{port}");
        let conf = dir.join("config.yml");
        std::fs::write(
            &conf,
            format!(
                "version: 0.1\nlog:\n  level: warn\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: {addr}\n",
                dir.join("storage").display()
            ),
        )
        .unwrap();
        let log = std::fs::File::create(dir.join("registry.log")).unwrap();
        let child = Command::new(bin)
            .arg("serve")
            .arg(&conf)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start docker-registry");
        let r = TestRegistry {
            addr,
            dir: dir.to_path_buf(),
            child,
        };
        wait_until(30, "the test registry to listen", || {
            std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        r
    }

    /// Bytes the registry stores (its blobs).
    pub fn stored_bytes(&self) -> u64 {
        fn walk(p: &Path) -> u64 {
            std::fs::read_dir(p)
                .into_iter()
                .flatten()
                .flatten()
                .map(|e| {
                    let m = e.metadata().unwrap();
                    if m.is_dir() {
                        walk(&e.path())
                    } else {
                        m.len()
                    }
                })
                .sum()
        }
        walk(&self.dir.join("storage"))
    }

    pub fn stop(&mut self) {
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let _ = self.child.wait();
    }
}

impl Drop for TestRegistry {
    fn drop(&mut self) {
        self.stop();
    }
}
