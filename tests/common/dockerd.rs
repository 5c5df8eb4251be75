//! A private Docker daemon for one test, on the root network namespace:
//! tests that restart or kill an engine cannot use the machine's, which every
//! other test shares. Moved here from `tests/djobs.rs` so that the fleet
//! rig's tests and future ones reuse its lessons (own bridge, never
//! `--bridge=none`, own cgroup parent, leftovers found by command line).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::{run, wait_for, which};
/// A Docker daemon of this test's own, so that restarting it disturbs no
/// other test: every test of this repository shares the machine's engine,
/// whose restart would kill their containers (live-restore is off).
///
/// Its state, exec root, socket and cgroup parent are private, and so is its
/// default bridge: a bridge made for it, with iptables, masquerading and IP
/// forwarding off. Never `--bridge=none`: at startup dockerd then deletes
/// the host's `docker0`, the shared engine's bridge (moby
/// `removeDefaultBridgeInterface`), and every container started after that
/// on the shared engine fails. The test checks `docker0` survives.
pub struct PrivateDockerd {
    pub dir: PathBuf,
    bridge: String,
    child: Option<Child>,
}

pub fn ip(args: &[&str]) {
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

impl PrivateDockerd {
    pub fn start(dir: &Path) -> PrivateDockerd {
        assert!(
            unsafe { libc::geteuid() } == 0,
            "this test runs a private dockerd and needs root"
        );
        assert!(
            which("dockerd").is_some() && which("ip").is_some(),
            "this test runs a private dockerd: it needs dockerd and ip (iproute2) on PATH"
        );
        std::fs::create_dir_all(dir).unwrap();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64;
        let r = (now ^ std::process::id() as u64) & 0xffffff;
        let bridge = format!("wdpd{r:06x}");
        let routes = String::from_utf8_lossy(&run(Command::new("ip").args(["-4", "route"])).stdout)
            .into_owned();
        let subnet = (0..250u64)
            .map(|i| format!("10.231.{}", (r + i) % 250 + 1))
            .find(|s| !routes.contains(&format!("{s}.")))
            .expect("a free 10.231.x.0/24");
        ip(&["link", "add", "name", &bridge, "type", "bridge"]);
        ip(&["addr", "add", &format!("{subnet}.1/24"), "dev", &bridge]);
        ip(&["link", "set", &bridge, "up"]);
        std::fs::write(dir.join("daemon.json"), "{}\n").unwrap();
        let mut d = PrivateDockerd {
            dir: dir.to_path_buf(),
            bridge,
            child: None,
        };
        d.launch();
        d
    }

    pub fn sock(&self) -> PathBuf {
        self.dir.join("docker.sock")
    }

    pub fn host(&self) -> String {
        format!("unix://{}", self.sock().display())
    }

    pub fn launch(&mut self) {
        assert!(self.child.is_none());
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
        wait_for(60, "the private dockerd to answer", || {
            if let Some(st) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!(
                    "the private dockerd exited with {st}:\n{}",
                    std::fs::read_to_string(self.dir.join("dockerd.log")).unwrap_or_default()
                );
            }
            self.cli(&["version"]).status.success().then_some(())
        });
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

    pub fn load(&self, image: &str) {
        let mut save = Command::new("docker")
            .args(["save", image])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let load = Command::new("docker")
            .env("DOCKER_HOST", self.host())
            .args(["load", "-q"])
            .stdin(save.stdout.take().unwrap())
            .output()
            .unwrap();
        assert!(save.wait().unwrap().success());
        assert!(
            load.status.success(),
            "docker load: {}",
            String::from_utf8_lossy(&load.stderr)
        );
    }

    /// SIGTERM (the engine stops its containers, each with its stop
    /// timeout) or SIGKILL (they keep running under their shims), then wait
    /// for the daemon to be gone.
    pub fn signal(&mut self, sig: i32) {
        let mut c = self.child.take().expect("dockerd is running");
        unsafe { libc::kill(c.id() as i32, sig) };
        let deadline = Instant::now() + Duration::from_secs(120);
        while c.try_wait().unwrap().is_none() {
            assert!(
                Instant::now() < deadline,
                "the private dockerd did not exit"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Processes started for this daemon (containerd, shims, fuse-overlayfs):
    /// their command lines name its directory.
    pub fn leftovers(&self) -> Vec<i32> {
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
        if self.child.is_some() {
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
            self.signal(libc::SIGTERM);
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
