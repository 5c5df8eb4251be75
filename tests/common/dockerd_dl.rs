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
/// The password of [`TestRegistry::start_with_auth`]'s user `ci`.
pub const AUTH_PASSWORD: &str = "webdock-test-pw";

pub struct TestRegistry {
    pub addr: String,
    pub dir: PathBuf,
    child: Child,
}

impl TestRegistry {
    pub fn start(dir: &Path) -> TestRegistry {
        TestRegistry::start_with(dir, "")
    }

    /// A registry that wants basic auth: user `ci`, password [`AUTH_PASSWORD`]
    /// (htpasswd with a bcrypt hash made for the tests, cost 5).
    pub fn start_with_auth(dir: &Path) -> TestRegistry {
        std::fs::create_dir_all(dir).unwrap();
        let file = dir.join("htpasswd");
        std::fs::write(
            &file,
            "ci:$2b$05$jYIJPfnnbSRcydN3wGqQxeyLIxakihAxN4Q6rFxzitcJG4s77LQ6S\n",
        )
        .unwrap();
        TestRegistry::start_with(
            dir,
            &format!(
                "auth:\n  htpasswd:\n    realm: webdock-test\n    path: {}\n",
                file.display()
            ),
        )
    }

    fn start_with(dir: &Path, extra: &str) -> TestRegistry {
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
                "version: 0.1\nlog:\n  level: warn\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: {addr}\n{extra}",
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
