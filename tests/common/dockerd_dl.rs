//! The delivery tests' registry: Debian's `docker-registry` (distribution
//! 2.8) on a free loopback port with a config and storage of its own. Their
//! "other machine" is the shared private engine of `tests/common/dockerd.rs`.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

#[allow(unused_imports)]
pub use super::dockerd::{docker0_exists, PrivateDockerd};
#[allow(unused_imports)]
use super::{free_port, run, wait_for, which};

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
        wait_for(30, "the test registry to listen", || {
            std::net::TcpStream::connect(("127.0.0.1", port))
                .is_ok()
                .then_some(())
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
