//! Locks that the kernel frees when their holder dies.
//!
//! A deploy lock is an `flock(2)` on a file in the state directory: a killed
//! webdock (SIGKILL, OOM, power loss) can never leave a stale lock behind,
//! unlike a lock *file* whose existence is the lock (Kamal's lock survives
//! Ctrl-C). After taking the lock the holder writes who it is into the file,
//! so a refused command can name the holder's pid, command, tag and start.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("{what} is locked by pid {} ({} {}) since {}\nhint: wait for it to finish; the lock is freed the moment that process exits", holder.pid, holder.command, holder.tag.as_deref().unwrap_or("-"), holder.started)]
    Held { what: String, holder: Holder },
    #[error("{what} is locked by {} (it has not written its name yet)\nhint: wait for it to finish; the lock is freed the moment that process exits", pid.map(|p| format!("pid {p}")).unwrap_or_else(|| "another process".into()))]
    HeldUnknown { what: String, pid: Option<u32> },
    #[error("cannot open lock file {path}: {cause}")]
    Io {
        path: PathBuf,
        cause: std::io::Error,
    },
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Holder {
    pub pid: u32,
    pub command: String,
    pub tag: Option<String>,
    pub started: String,
}

impl Holder {
    pub fn me(command: &str, tag: Option<&str>) -> Holder {
        Holder {
            pid: std::process::id(),
            command: command.into(),
            tag: tag.map(str::to_owned),
            started: crate::clock::now_rfc3339(),
        }
    }
}

/// A held lock; dropping it (or dying) releases it.
#[derive(Debug)]
pub struct Lock {
    file: File,
}

fn open(path: &Path) -> Result<File, LockError> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .map_err(|cause| LockError::Io {
            path: path.into(),
            cause,
        })
}

fn flock(file: &File, op: libc::c_int) -> std::io::Result<()> {
    // SAFETY: flock on a valid, owned descriptor.
    let r = unsafe { libc::flock(file.as_raw_fd(), op) };
    if r == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

impl Lock {
    /// Takes the lock or fails at once naming the holder.
    pub fn try_acquire(path: &Path, what: &str, me: &Holder) -> Result<Lock, LockError> {
        let mut file = open(path)?;
        if let Err(e) = flock(&file, libc::LOCK_EX | libc::LOCK_NB) {
            if e.raw_os_error() != Some(libc::EWOULDBLOCK) {
                return Err(LockError::Io {
                    path: path.into(),
                    cause: e,
                });
            }
            let pid = flock_owner(&file).or_else(|| fdinfo_owner(path));
            return Err(match read_holder(&mut file, path, pid) {
                Some(holder) => LockError::Held {
                    what: what.into(),
                    holder,
                },
                None => LockError::HeldUnknown {
                    what: what.into(),
                    pid,
                },
            });
        }
        let lock = Lock { file };
        lock.write_holder(me).map_err(|cause| LockError::Io {
            path: path.into(),
            cause,
        })?;
        Ok(lock)
    }

    /// Waits for the lock (used for machine-wide caches, not deploys).
    pub fn acquire_blocking(path: &Path) -> Result<Lock, LockError> {
        let file = open(path)?;
        flock(&file, libc::LOCK_EX).map_err(|cause| LockError::Io {
            path: path.into(),
            cause,
        })?;
        Ok(Lock { file })
    }

    fn write_holder(&self, me: &Holder) -> std::io::Result<()> {
        let mut f = &self.file;
        f.set_len(0)?;
        f.seek(SeekFrom::Start(0))?;
        f.write_all(serde_json::to_string(me).unwrap_or_default().as_bytes())?;
        f.write_all(b"\n")?;
        f.sync_data()
    }
}

/// The holder's record, once it names `pid`: the file keeps the previous
/// holder's record after a release, so a record naming another pid is
/// stale (a dead holder) or not yet overwritten (the holder writes right
/// after locking; it gets a moment).
fn read_holder(file: &mut File, path: &Path, pid: Option<u32>) -> Option<Holder> {
    // Up to 2 s: on a loaded machine the holder may not have run yet.
    for _ in 0..100 {
        let mut s = String::new();
        if file.seek(SeekFrom::Start(0)).is_ok() && file.read_to_string(&mut s).is_ok() {
            if let Ok(h) = serde_json::from_str::<Holder>(s.trim()) {
                let current = match pid {
                    Some(p) => p == h.pid,
                    // /proc/locks did not say: the record's process must
                    // be alive and have the lock file open.
                    None => has_open(h.pid, path),
                };
                if current {
                    return Some(h);
                }
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    // The holder may have released it since our attempt (a busy machine
    // can stall us for seconds): its record is still the truth of that
    // moment, as long as its process is alive. A dead one is never named.
    let mut s = String::new();
    file.seek(SeekFrom::Start(0)).ok()?;
    file.read_to_string(&mut s).ok()?;
    serde_json::from_str::<Holder>(s.trim())
        .ok()
        .filter(|h| h.pid != std::process::id() && Path::new(&format!("/proc/{}", h.pid)).exists())
}

/// Whether process `pid` has `path` open (the holder keeps its lock file
/// open for as long as it holds the lock).
fn has_open(pid: u32, path: &Path) -> bool {
    if pid == std::process::id() {
        return false;
    }
    let Ok(target) = std::fs::canonicalize(path) else {
        return false;
    };
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return false;
    };
    fds.flatten()
        .any(|e| std::fs::read_link(e.path()).is_ok_and(|t| t == target))
}

/// The pid holding a `flock` on `file`, read from `/proc/locks`. Looking
/// takes no lock, so a watcher (`watch webdock status`) can never make a
/// taker's non-blocking attempt fail.
fn flock_owner(file: &File) -> Option<u32> {
    use std::os::unix::fs::MetadataExt;
    let m = file.metadata().ok()?;
    let dev = m.dev();
    let want = format!(
        "{:02x}:{:02x}:{}",
        libc::major(dev),
        libc::minor(dev),
        m.ino()
    );
    let locks = std::fs::read_to_string("/proc/locks").ok()?;
    owner_in(&locks, &want)
}

/// The pid holding a `flock` on `path`, from the `lock:` lines the kernel
/// shows in `/proc/PID/fdinfo` for the descriptor that holds it: asked
/// when `/proc/locks` did not say (seen on a busy machine).
fn fdinfo_owner(path: &Path) -> Option<u32> {
    let target = std::fs::canonicalize(path).ok()?;
    let me = std::process::id();
    for proc_entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let Some(pid) = proc_entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        if pid == me {
            continue;
        }
        let Ok(fds) = std::fs::read_dir(proc_entry.path().join("fd")) else {
            continue;
        };
        for fd in fds.flatten() {
            if std::fs::read_link(fd.path()).is_ok_and(|t| t == target) {
                let info = proc_entry.path().join("fdinfo").join(fd.file_name());
                let text = std::fs::read_to_string(info).unwrap_or_default();
                if text
                    .lines()
                    .any(|l| l.starts_with("lock:") && l.contains("FLOCK") && l.contains("WRITE"))
                {
                    return Some(pid);
                }
            }
        }
    }
    None
}

/// `1: FLOCK  ADVISORY  WRITE 1234 08:01:5678 0 EOF` → 1234 for `08:01:5678`.
fn owner_in(proc_locks: &str, dev_ino: &str) -> Option<u32> {
    proc_locks.lines().find_map(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        // "->" marks a waiter, not a holder.
        if f.len() >= 6 && f[1] == "FLOCK" && f[3] == "WRITE" && f[5] == dev_ino {
            f[4].parse().ok()
        } else {
            None
        }
    })
}

/// Who holds the lock at `path`, if anyone (for `status`); never locks.
pub fn holder(path: &Path) -> Option<Holder> {
    let mut file = File::open(path).ok()?;
    match flock_owner(&file).or_else(|| fdinfo_owner(path)) {
        Some(pid) => Some(read_holder(&mut file, path, Some(pid)).unwrap_or(Holder {
            pid,
            command: "(unknown)".into(),
            tag: None,
            started: "-".into(),
        })),
        // Not in /proc/locks: a record whose process has the file open.
        None => {
            let mut s = String::new();
            file.read_to_string(&mut s).ok()?;
            serde_json::from_str::<Holder>(s.trim())
                .ok()
                .filter(|h| has_open(h.pid, path))
        }
    }
}

#[cfg(test)]
mod tests;
