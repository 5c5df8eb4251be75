//! The lock's tests: a second taker, a reader, a holder in another process.

use super::*;

#[test]
fn second_taker_is_refused_with_the_holder_named_and_drop_frees() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("deploy.lock");
    let me = Holder::me("promote", Some("1.0.0"));
    let l = Lock::try_acquire(&p, "project demo", &me).unwrap();
    let e = Lock::try_acquire(&p, "project demo", &Holder::me("rollback", None)).unwrap_err();
    match &e {
        LockError::Held { holder, .. } => assert_eq!(holder, &me),
        other => panic!("{other:?}"),
    }
    assert!(e.to_string().contains("promote 1.0.0"), "{e}");
    assert_eq!(holder(&p), Some(me));
    drop(l);
    assert_eq!(holder(&p), None);
    Lock::try_acquire(&p, "project demo", &Holder::me("rollback", None)).unwrap();
}

#[test]
fn looking_at_a_lock_never_takes_it() {
    // `watch webdock status` must not make a promote's attempt fail:
    // while a reader looks, the lock stays free for a taker.
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("deploy.lock");
    let l = Lock::try_acquire(&p, "x", &Holder::me("promote", None)).unwrap();
    drop(l);
    let f = File::open(&p).unwrap();
    assert_eq!(holder(&p), None);
    assert_eq!(flock_owner(&f), None);
    // a taker right after (and during) a look succeeds
    let _l = Lock::try_acquire(&p, "x", &Holder::me("promote", None)).unwrap();
    assert_eq!(flock_owner(&f), Some(std::process::id()));
}

/// A test that spawns a process forks this test process, and the
/// child holds a copy of every open file until its exec, the lock
/// files of other tests included: a taker in that instant is refused
/// by its own process's lock. Only within one process (the tests run
/// as threads), never between two webdocks.
static FORKS: std::sync::Mutex<()> = std::sync::Mutex::new(());

#[test]
fn a_reader_in_a_tight_loop_never_fails_a_taker() {
    // Regression (issue 16 item 8): `status` took the lock shared for
    // an instant, and a promote's non-blocking attempt in that instant
    // was refused. Alone in a process of its own: another test's spawn
    // forks this process, and the child holds a copy of the lock file
    // until its exec (see FORKS), which refuses a taker here.
    const NAME: &str = "lock::tests::a_reader_in_a_tight_loop_never_fails_a_taker";
    if !crate::own_process::is_child(NAME) {
        return crate::own_process::run(NAME, ":", &[]);
    }
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("deploy.lock");
    drop(Lock::try_acquire(&p, "x", &Holder::me("promote", None)).unwrap());
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let reader = {
        let (p, stop) = (p.clone(), stop.clone());
        std::thread::spawn(move || {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let _ = holder(&p);
            }
        })
    };
    let refused = (0..3000)
        .filter(|_| Lock::try_acquire(&p, "x", &Holder::me("promote", None)).is_err())
        .count();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    reader.join().unwrap();
    assert_eq!(refused, 0, "takers refused while a reader looked");
}

#[test]
fn another_process_holding_the_lock_is_found_in_its_fdinfo() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("deploy.lock");
    std::fs::write(&p, "").unwrap();
    let no_forks = FORKS.lock().unwrap_or_else(|e| e.into_inner());
    // --no-fork: flock(1) execs sleep itself, so one process holds it
    let mut child = std::process::Command::new("flock")
        .args(["-x", "--no-fork"])
        .arg(&p)
        .args(["sleep", "5"])
        .spawn()
        .expect("util-linux flock");
    drop(no_forks);
    let f = File::open(&p).unwrap();
    let mut found = None;
    for _ in 0..100 {
        found = fdinfo_owner(&p);
        if found.is_some() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let by_proc_locks = flock_owner(&f);
    let _ = child.kill();
    let _ = child.wait();
    let pid = found.expect("the holder is found in /proc/PID/fdinfo");
    assert!(pid > 0);
    assert_eq!(pid, child.id());
    if let Some(q) = by_proc_locks {
        assert_eq!(q, pid);
    }
    assert_eq!(fdinfo_owner(&p), None, "released with its holder");
}

#[test]
fn a_dead_holders_record_is_never_named_for_a_live_holder() {
    // Regression (issue 16 item 8): the lock file keeps the last holder's
    // record after it exits. Another process (which writes no record)
    // holding the flock must be named, never the dead pid of the record.
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("deploy.lock");
    let no_forks = FORKS.lock().unwrap_or_else(|e| e.into_inner());
    let mut gone = std::process::Command::new("true").spawn().unwrap();
    gone.wait().unwrap();
    let dead = Holder {
        pid: gone.id(),
        command: "promote".into(),
        tag: Some("1.0.0".into()),
        started: "2026-12-01T00:00:00Z".into(),
    };
    std::fs::write(&p, serde_json::to_string(&dead).unwrap()).unwrap();
    let mut child = std::process::Command::new("flock")
        .args(["-x", "--no-fork"])
        .arg(&p)
        .args(["sleep", "20"])
        .spawn()
        .expect("util-linux flock");
    drop(no_forks);
    let live = child.id();
    wait_held_by(&p, live);
    let e = Lock::try_acquire(&p, "project demo", &Holder::me("promote", None)).unwrap_err();
    let seen = holder(&p);
    let _ = child.kill();
    let _ = child.wait();
    let msg = e.to_string();
    assert!(
        msg.contains(&format!("pid {live}")),
        "names the live holder: {msg}"
    );
    assert!(!msg.contains(&format!("pid {} ", dead.pid)), "{msg}");
    assert!(
        !msg.contains("promote 1.0.0"),
        "the dead record is not shown: {msg}"
    );
    assert_eq!(
        seen.map(|h| h.pid),
        Some(live),
        "status names the live holder"
    );
}

/// Waits until `pid` holds the flock on `path` (a spawned process may not
/// have run yet on a busy machine).
fn wait_held_by(path: &Path, pid: u32) {
    for _ in 0..500 {
        if fdinfo_owner(path) == Some(pid) {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    panic!("pid {pid} never took the lock on {}", path.display());
}

#[test]
fn proc_locks_lines() {
    let t = "1: FLOCK  ADVISORY  WRITE 4242 00:2e:1234 0 EOF\n2: FLOCK  ADVISORY  READ 7 00:2e:99 0 EOF\n3: -> FLOCK  ADVISORY  WRITE 8 00:2e:1234 0 EOF\n";
    assert_eq!(owner_in(t, "00:2e:1234"), Some(4242));
    assert_eq!(owner_in(t, "00:2e:99"), None);
    assert_eq!(owner_in(t, "00:2e:5"), None);
}
