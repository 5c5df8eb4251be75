//! Freezing a container's processes without the cgroup freezer.
//!
//! `docker pause` uses the cgroup v1 freezer, which gives up ("unable to
//! freeze") when a process sits in uninterruptible I/O, as processes of a
//! container that is just starting on fuse-overlayfs often do while both
//! cores are busy: a fault test then fails for a reason of its own. SIGSTOP
//! from the host always holds: the container's processes are ordinary
//! processes of the host, which root may signal by their host pids.

use std::time::{Duration, Instant};

use super::docker_ok;

/// Host pids and command names of a container's processes.
pub fn container_processes(container: &str) -> Vec<(i32, String)> {
    docker_ok(&["top", container, "-eo", "pid,comm"])
        .lines()
        .skip(1)
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            Some((w.next()?.parse().ok()?, w.next()?.to_string()))
        })
        .collect()
}

fn stopped(pid: i32) -> bool {
    // /proc/PID/stat: "pid (comm) S ..."; T = stopped (by a signal)
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            s.rsplit_once(')')
                .map(|(_, r)| r.trim_start().starts_with('T'))
        })
        .unwrap_or(true) // gone counts as not answering either
}

/// SIGSTOPs every process of `container` whose command is `comm` until
/// they all are stopped and no new one appears (a master caught while
/// forking its workers). Returns the pids stopped.
pub fn sigstop(container: &str, comm: &str) -> Vec<i32> {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut last: Vec<i32> = Vec::new();
    loop {
        let mut pids: Vec<i32> = container_processes(container)
            .into_iter()
            .filter(|(_, c)| c == comm)
            .map(|(p, _)| p)
            .collect();
        pids.sort();
        for &p in &pids {
            unsafe { libc::kill(p, libc::SIGSTOP) };
        }
        std::thread::sleep(Duration::from_millis(100));
        if !pids.is_empty() && pids == last && pids.iter().all(|&p| stopped(p)) {
            return pids;
        }
        assert!(
            Instant::now() < deadline,
            "could not stop the {comm} processes of {container}: {pids:?}"
        );
        last = pids;
    }
}
