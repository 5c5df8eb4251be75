//! Every path of a project on a host, and nothing else.
//!
//! The diagram in docs/architecture.md names these paths; this module is the
//! one place that spells them, so that a host with other roots (a test's temp
//! dirs, a fleet host's overrides) changes one value, not a dozen joins.

use std::path::{Path, PathBuf};

use crate::roles::{Color, Role, SOCKET_FILE};

/// `<socket_root>/<project>` and `<state_root>/<project>` and what lies in them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    socket_dir: PathBuf,
    state_dir: PathBuf,
    links_dir: PathBuf,
    project: String,
}

impl Layout {
    pub fn new(socket_root: &Path, state_root: &Path, project: &str) -> Layout {
        Layout {
            socket_dir: socket_root.join(project),
            state_dir: state_root.join(project),
            // `.` is not allowed in a project name: no project's state
            // directory can collide with it.
            links_dir: state_root.join("live.d"),
            project: project.to_string(),
        }
    }

    /// `/var/lib/webdock/live.d`: one live link per project, on disk that
    /// survives a reboot (0755: the host nginx traverses it).
    pub fn links_dir(&self) -> &Path {
        &self.links_dir
    }

    /// `/run/webdock/<project>`: holds `blue/`, `green/` and the `live` link.
    pub fn socket_dir(&self) -> &Path {
        &self.socket_dir
    }

    /// `/var/lib/webdock/<project>`: locks, history, the live record.
    pub fn state_dir(&self) -> &Path {
        &self.state_dir
    }

    /// The symlink the host nginx resolves on every connect:
    /// `<state_root>/live.d/<project>` → `<socket_root>/<project>/<color>`.
    /// It lives beside the state, not in the socket root (often tmpfs):
    /// after a reboot the engine restarts the portals, their socket
    /// directories come back at the same paths, and the link still points
    /// at the color that was live.
    pub fn live_link(&self) -> PathBuf {
        self.links_dir.join(&self.project)
    }

    /// Where a flip builds the new link before renaming it over the live one.
    pub fn live_tmp(&self) -> PathBuf {
        self.links_dir.join(format!(".{}.tmp", self.project))
    }

    /// Where versions before 0.2 kept the link (`<socket_dir>/live`, a
    /// relative link to `blue` or `green`): kept in step while it exists, so
    /// a host nginx still including the old snippet keeps working.
    pub fn legacy_live_link(&self) -> PathBuf {
        self.socket_dir.join("live")
    }

    /// The socket path the host nginx proxies to.
    pub fn live_socket(&self) -> PathBuf {
        self.live_link().join(SOCKET_FILE)
    }

    /// A color's socket directory, bind-mounted into its portal container.
    pub fn color_dir(&self, c: Color) -> PathBuf {
        self.socket_dir.join(c.as_str())
    }

    pub fn socket(&self, c: Color) -> PathBuf {
        self.color_dir(c).join(SOCKET_FILE)
    }

    /// A djob's heartbeat directory, bind-mounted into its container: the
    /// daemon touches `beat` in it, the watchdog appends to `kills`.
    pub fn heartbeat_dir(&self, djob: &str) -> PathBuf {
        self.socket_dir.join("djobs").join(djob)
    }

    /// The fleet-wide deploy lock (a `flock`) on the lock host, beside the
    /// live links, and the record of who holds it.
    pub fn fleet_lock(&self) -> PathBuf {
        self.links_dir.join(format!(".{}.lock", self.project))
    }

    pub fn fleet_lock_holder(&self) -> PathBuf {
        self.links_dir.join(format!(".{}.holder", self.project))
    }

    pub fn deploy_lock(&self) -> PathBuf {
        self.state_dir.join("deploy.lock")
    }

    /// The per-role lock that serializes replacements of one cron or djob.
    pub fn role_lock(&self, role: &Role) -> PathBuf {
        match role {
            Role::Djob(n) => self.state_dir.join(format!("djob-{n}.lock")),
            _ => self.state_dir.join(format!("{}.lock", role.kind())),
        }
    }

    pub fn history(&self) -> PathBuf {
        self.state_dir.join("history.jsonl")
    }

    /// The record of the backups made before release commands.
    pub fn backups(&self) -> PathBuf {
        self.state_dir.join("backups.json")
    }

    /// Scratch files of the preflight write and link checks.
    pub fn write_check(&self) -> PathBuf {
        self.state_dir.join(".webdock-write-check")
    }

    pub fn link_check(&self) -> PathBuf {
        self.socket_dir.join(".webdock-link-check")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_of_the_diagram() {
        let l = Layout::new(
            Path::new("/run/webdock"),
            Path::new("/var/lib/webdock"),
            "shop",
        );
        assert_eq!(
            l.live_socket(),
            Path::new("/var/lib/webdock/live.d/shop/nginx.sock")
        );
        assert_eq!(
            l.socket(Color::Green),
            Path::new("/run/webdock/shop/green/nginx.sock")
        );
        assert_eq!(
            l.deploy_lock(),
            Path::new("/var/lib/webdock/shop/deploy.lock")
        );
        assert_eq!(
            l.role_lock(&Role::Djob("billing".into())),
            Path::new("/var/lib/webdock/shop/djob-billing.lock")
        );
        assert_eq!(
            l.role_lock(&Role::Cron),
            Path::new("/var/lib/webdock/shop/cron.lock")
        );
        assert_eq!(
            l.history(),
            Path::new("/var/lib/webdock/shop/history.jsonl")
        );
        assert_eq!(
            l.fleet_lock(),
            Path::new("/var/lib/webdock/live.d/.shop.lock")
        );
    }
}
