//! Invariant 2 under fire: at no instant do two containers of one djob (or
//! two crons) run on the host: through 20 on-call restarts at once, restarts
//! racing promotes, a webdock killed half-way through a replacement, and a
//! Docker daemon restarted under running djobs.
//!
//! Three witnesses, each sound on its own:
//! - a poller lists the engine's containers every few milliseconds and counts
//!   the running ones per djob: the check the on-call person would make, but
//!   it can miss an overlap shorter than its period;
//! - the engine's event stream: no process of a container exists before its
//!   `create` event or after its last `die` (the kernel reaps every process
//!   of the container's pid namespace before the engine reports it dead), so
//!   if those windows of the containers of one djob are disjoint, their
//!   processes never overlapped, however short the gap;
//! - the djob's own heartbeat log (`start`, `beat` every 0.2 s, `stop` on
//!   SIGTERM, each line fsynced with the writer's hostname, pid and time):
//!   the working lives of its processes must be disjoint. A process killed
//!   without a `stop` line is bounded by its container's `die` event.
//!
//! Tests assert counts and orders, never durations. The durations they see
//! (how long the djob was down per restart) are printed, for
//! docs/benchmarks.md: run with `--nocapture` to see them.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bollard::query_parameters as q;
use futures_util::StreamExt;

mod common;
use common::dockerd::{docker0_exists, PrivateDockerd};
use common::*;

// ---------------------------------------------------------------------------
// Witness 1 and 2: the poller and the engine's event stream
// ---------------------------------------------------------------------------

/// One container event of the project, in the order the engine published it.
#[derive(Debug, Clone)]
struct Ev {
    ns: i64,
    action: String,
    id: String,
    /// `djob NAME` or `cron`; None for portals and release containers.
    key: Option<String>,
}

#[derive(Debug, Default)]
struct WatchReport {
    snapshots: u64,
    poll_errors: u64,
    /// Per key, the most containers the poller ever saw running at once.
    max_running: BTreeMap<String, usize>,
    /// Snapshots that saw two containers of one key running.
    doubles: Vec<String>,
    /// Containers running at the first snapshot: (key, id).
    initially_running: Vec<(String, String)>,
    events: Vec<Ev>,
}

/// Polls and streams the engine (the shared one, or a private daemon's
/// socket) from its own thread until [`Watch::finish`].
struct Watch {
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<WatchReport>>,
}

fn key_of(labels: &HashMap<String, String>) -> Option<String> {
    match labels.get("webdock.role").map(String::as_str) {
        Some("djob") => Some(format!(
            "djob {}",
            labels
                .get("webdock.djob")
                .map(String::as_str)
                .unwrap_or("?")
        )),
        Some("cron") => Some("cron".into()),
        _ => None,
    }
}

fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as i64
}

fn docker_time(ns: i64) -> String {
    format!("{}.{:09}", ns / 1_000_000_000, ns % 1_000_000_000)
}

async fn connect(socket: Option<&Path>) -> bollard::Docker {
    let d = match socket {
        Some(s) => bollard::Docker::connect_with_unix(
            s.to_str().unwrap(),
            120,
            bollard::API_DEFAULT_VERSION,
        ),
        None => bollard::Docker::connect_with_local_defaults(),
    }
    .expect("a Docker client");
    d.negotiate_version()
        .await
        .expect("the Docker engine answers")
}

impl Watch {
    fn start(project: &str, socket: Option<&Path>) -> Watch {
        let stop = Arc::new(AtomicBool::new(false));
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let (project, socket) = (project.to_string(), socket.map(Path::to_path_buf));
        let st = stop.clone();
        let handle = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(watch(project, socket, st, ready_tx))
        });
        ready_rx
            .recv_timeout(Duration::from_secs(60))
            .expect("the watcher took its first snapshot");
        Watch {
            stop,
            handle: Some(handle),
        }
    }

    fn finish(mut self) -> WatchReport {
        self.stop.store(true, Ordering::SeqCst);
        self.handle.take().unwrap().join().expect("watcher thread")
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

async fn watch(
    project: String,
    socket: Option<PathBuf>,
    stop: Arc<AtomicBool>,
    ready: std::sync::mpsc::Sender<()>,
) -> WatchReport {
    let docker = connect(socket.as_deref()).await;
    let label = format!("webdock.project={project}");
    // Events from a second before the start: the subscription itself
    // starts a little after this line, and the engine replays its buffer.
    let t0 = now_ns() - 1_000_000_000;
    let report = Mutex::new(WatchReport::default());
    let poller = async {
        let opts = q::ListContainersOptions {
            all: true,
            filters: Some(HashMap::from([("label".to_string(), vec![label.clone()])])),
            ..Default::default()
        };
        let mut first = true;
        while !stop.load(Ordering::SeqCst) {
            match docker.list_containers(Some(opts.clone())).await {
                Ok(list) => {
                    let mut running: BTreeMap<String, Vec<String>> = BTreeMap::new();
                    for c in &list {
                        let live = matches!(
                            c.state.as_ref().map(|s| s.to_string()).as_deref(),
                            Some("running" | "restarting" | "paused")
                        );
                        let key = c.labels.as_ref().and_then(key_of);
                        if let (true, Some(k)) = (live, key) {
                            running
                                .entry(k)
                                .or_default()
                                .push(c.id.clone().unwrap_or_default());
                        }
                    }
                    let mut r = report.lock().unwrap();
                    r.snapshots += 1;
                    for (k, ids) in &running {
                        let m = r.max_running.entry(k.clone()).or_default();
                        *m = (*m).max(ids.len());
                        if ids.len() > 1 {
                            let at = now_ns();
                            r.doubles.push(format!("{k} at {at}: {ids:?}"));
                        }
                        if first {
                            for id in ids {
                                r.initially_running.push((k.clone(), id.clone()));
                            }
                        }
                    }
                    if first {
                        first = false;
                        let _ = ready.send(());
                    }
                }
                // A restarting private daemon: keep trying.
                Err(_) => report.lock().unwrap().poll_errors += 1,
            }
            tokio::time::sleep(Duration::from_millis(3)).await;
        }
    };
    let mut seen: HashSet<(i64, String, String)> = HashSet::new();
    let mut events: Vec<Ev> = Vec::new();
    let mut record = |m: bollard::models::EventMessage, events: &mut Vec<Ev>| {
        let action = m.action.unwrap_or_default();
        if !matches!(action.as_str(), "create" | "start" | "die" | "destroy") {
            return;
        }
        let actor = m.actor.unwrap_or_default();
        let id = actor.id.unwrap_or_default();
        let ns = m.time_nano.unwrap_or_default();
        if seen.insert((ns, id.clone(), action.clone())) {
            let key = actor.attributes.as_ref().and_then(key_of);
            events.push(Ev {
                ns,
                action,
                id,
                key,
            });
        }
    };
    let streamer = async {
        let mut since = t0;
        while !stop.load(Ordering::SeqCst) {
            let opts = q::EventsOptions {
                since: Some(docker_time(since)),
                until: None,
                filters: Some(HashMap::from([
                    ("type".to_string(), vec!["container".to_string()]),
                    ("label".to_string(), vec![label.clone()]),
                ])),
            };
            let mut s = docker.events(Some(opts));
            loop {
                tokio::select! {
                    item = s.next() => match item {
                        Some(Ok(m)) => {
                            since = since.max(m.time_nano.unwrap_or(since));
                            record(m, &mut events);
                        }
                        // the daemon went away: subscribe again once it is back
                        _ => break,
                    },
                    _ = tokio::time::sleep(Duration::from_millis(50)) => {}
                }
                if stop.load(Ordering::SeqCst) {
                    break;
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        // Whatever the engine published up to now and the stream had not
        // delivered yet.
        let opts = q::EventsOptions {
            since: Some(docker_time(since)),
            until: Some(docker_time(now_ns())),
            filters: Some(HashMap::from([
                ("type".to_string(), vec!["container".to_string()]),
                ("label".to_string(), vec![label.clone()]),
            ])),
        };
        let mut s = docker.events(Some(opts));
        while let Some(Ok(m)) = s.next().await {
            record(m, &mut events);
        }
    };
    tokio::join!(poller, streamer);
    let mut r = report.into_inner().unwrap();
    r.events = events;
    r
}

/// The engine's side of "never two": every container of `key` that ran in
/// the observation gets the window from its `create` event (or the dawn of
/// time, if it was created before) to its last `die` (or the end of time, if
/// it was still up at the end). The windows must be disjoint. Returns how
/// many containers of `key` ran.
fn check_engine(r: &WatchReport, key: &str) -> usize {
    assert!(
        r.doubles.iter().all(|d| !d.starts_with(&format!("{key} "))),
        "the poller saw two {key} containers running at once: {:?}",
        r.doubles
    );
    #[derive(Default, Debug)]
    struct W {
        create: Option<usize>,
        last_start: Option<usize>,
        last_die: Option<usize>,
        initially: bool,
    }
    let mut ws: BTreeMap<&str, W> = BTreeMap::new();
    for (k, id) in &r.initially_running {
        if k == key {
            ws.entry(id).or_default().initially = true;
        }
    }
    // Positions in the stream order the engine published in: causally
    // ordered (a container's `die` is published before it can be removed,
    // and webdock creates the next one only after that removal).
    for (i, e) in r.events.iter().enumerate() {
        if e.key.as_deref() != Some(key) {
            continue;
        }
        let w = ws.entry(&e.id).or_default();
        match e.action.as_str() {
            "create" => w.create = Some(i),
            "start" => w.last_start = Some(i),
            "die" => w.last_die = Some(i),
            _ => {}
        }
    }
    let mut windows: Vec<(usize, usize, &str)> = ws
        .iter()
        .filter(|(_, w)| w.last_start.is_some() || w.last_die.is_some() || w.initially)
        .map(|(id, w)| {
            let lo = w.create.map(|c| c + 1).unwrap_or(0);
            let hi = match (w.last_start, w.last_die) {
                (Some(s), Some(d)) if d > s => d,
                (None, Some(d)) => d,
                _ => usize::MAX,
            };
            (lo, hi, *id)
        })
        .collect();
    windows.sort();
    for pair in windows.windows(2) {
        let ((_, hi, a), (lo, _, b)) = (pair[0], pair[1]);
        assert!(
            hi < lo,
            "{key}: container {} was created (event {lo}) before {} died (event {hi}): two could have run at once\nevents: {:#?}",
            &b[..12],
            &a[..12],
            r.events.iter().filter(|e| e.key.as_deref() == Some(key)).collect::<Vec<_>>()
        );
    }
    windows.len()
}

// ---------------------------------------------------------------------------
// Witness 3: the heartbeat log
// ---------------------------------------------------------------------------

/// One process's working life, from `$WEBDOCK_DATA/logs/djob-NAME.log`.
#[derive(Debug, Clone)]
struct Life {
    host: String,
    pid: u32,
    start: i64,
    last: i64,
    stop: Option<i64>,
}

fn lives(path: &Path) -> Vec<Life> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        // no process has got as far as its first line yet
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => panic!("reading the heartbeat log {}: {e}", path.display()),
    };
    let mut out: Vec<Life> = Vec::new();
    // The open life of each (hostname, pid). A container restarted by its
    // restart policy keeps its hostname and may reuse a pid: a `start` line
    // always opens a new life.
    let mut open: HashMap<(String, u32), usize> = HashMap::new();
    for line in text.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        let [event, host, pid, ns] = f[..] else {
            panic!("bad heartbeat line {line:?} in {}", path.display())
        };
        let (pid, ns): (u32, i64) = (pid.parse().unwrap(), ns.parse().unwrap());
        let k = (host.to_string(), pid);
        match (event, open.get(&k)) {
            ("start", _) | (_, None) => {
                open.insert(k, out.len());
                out.push(Life {
                    host: host.into(),
                    pid,
                    start: ns,
                    last: ns,
                    stop: (event == "stop").then_some(ns),
                });
            }
            ("beat", Some(&i)) => out[i].last = out[i].last.max(ns),
            ("stop", Some(&i)) => {
                out[i].last = out[i].last.max(ns);
                out[i].stop = Some(ns);
                open.remove(&k);
            }
            _ => panic!("unknown heartbeat event in {line:?}"),
        }
    }
    out.sort_by_key(|l| l.start);
    out
}

/// The lives must follow one another. A life ends at its `stop` line; one
/// without (a process killed) ends at the latest at the first `die` event of
/// its container after its last line. Returns the gaps between a `stop` and
/// the next `start` in milliseconds: how long the djob did no work.
fn check_lives(name: &str, lives: &[Life], events: &[Ev]) -> Vec<f64> {
    let mut gaps = Vec::new();
    let mut latest_end = i64::MIN;
    let mut latest_who = String::new();
    for (i, l) in lives.iter().enumerate() {
        assert!(
            l.start > latest_end,
            "djob {name}: {}/{} started at {} while {latest_who} was still at work (until {latest_end}): two at once\nlives: {lives:#?}",
            l.host,
            l.pid,
            l.start
        );
        if i > 0 && latest_end != i64::MIN {
            gaps.push((l.start - latest_end) as f64 / 1e6);
        }
        let end = match l.stop {
            Some(s) => s,
            None if i + 1 == lives.len() => i64::MAX, // still running
            None => events
                .iter()
                .filter(|e| e.action == "die" && e.id.starts_with(&l.host) && e.ns >= l.last)
                .map(|e| e.ns)
                .min()
                .unwrap_or_else(|| {
                    panic!(
                        "djob {name}: {}/{} has no stop line and its container has no die event after {}: cannot bound its life\nlives: {lives:#?}",
                        l.host, l.pid, l.last
                    )
                }),
        };
        if end > latest_end {
            latest_end = end;
            latest_who = format!("{}/{}", l.host, l.pid);
        }
    }
    gaps
}

fn heartbeat_log(p: &Project, djob: &str) -> PathBuf {
    p.data().join("logs").join(format!("djob-{djob}.log"))
}

/// Every witness for one djob; returns the heartbeat gaps.
fn never_two(p: &Project, r: &WatchReport, djob: &str) -> Vec<f64> {
    let key = format!("djob {djob}");
    assert!(
        r.max_running.get(&key).copied().unwrap_or(0) <= 1,
        "{:?}",
        r.doubles
    );
    check_engine(r, &key);
    check_lives(djob, &lives(&heartbeat_log(p, djob)), &r.events)
}

// ---------------------------------------------------------------------------
// Running webdock
// ---------------------------------------------------------------------------

struct Run {
    pid: u32,
    code: Option<i32>,
    signal: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Run {
    fn show(&self) -> String {
        format!(
            "pid {} exit {:?} signal {:?}\nstdout: {}\nstderr: {}",
            self.pid, self.code, self.signal, self.stdout, self.stderr
        )
    }
}

fn spawn(cmd: &mut Command) -> Child {
    cmd.stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn webdock")
}

/// Waits for `c`, killing it (and failing) if it hangs.
fn collect(mut c: Child) -> Run {
    let pid = c.id();
    let deadline = Instant::now() + Duration::from_secs(300);
    while c.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = c.kill();
            let o = c.wait_with_output().unwrap();
            panic!(
                "webdock pid {pid} hung for 300 s\nstderr: {}",
                String::from_utf8_lossy(&o.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let o = c.wait_with_output().unwrap();
    Run {
        pid,
        code: o.status.code(),
        signal: o.status.signal(),
        stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
    }
}

/// A restart either replaced the djob (exit 0, `--json` report: returns its
/// down time in ms) or was refused because another webdock held the djob's
/// lock (exit 1 naming that holder, which must be one of `holders`: pid →
/// command).
fn check_restart(r: &Run, djob: &str, holders: &HashMap<u32, &str>) -> Option<u64> {
    match r.code {
        Some(0) => {
            let v: serde_json::Value = serde_json::from_str(r.stdout.trim())
                .unwrap_or_else(|e| panic!("restart --json printed no JSON ({e}): {}", r.show()));
            assert_eq!(v["role"], format!("djob {djob}"), "{}", r.show());
            assert_eq!(v["action"], "replaced", "{}", r.show());
            Some(v["down_ms"].as_u64().expect("down_ms"))
        }
        Some(1) => {
            let what = format!("djob {djob} is locked by pid ");
            let at = r.stderr.find(&what).unwrap_or_else(|| {
                panic!("a refused restart must name the lock holder: {}", r.show())
            });
            let rest = &r.stderr[at + what.len()..];
            let (pid, rest) = rest.split_once(' ').unwrap();
            let pid: u32 = pid.parse().unwrap();
            let command = rest
                .trim_start_matches('(')
                .split_whitespace()
                .next()
                .unwrap();
            match holders.get(&pid) {
                Some(c) => assert_eq!(*c, command, "holder {pid} named wrongly: {}", r.show()),
                None => panic!(
                    "the named holder {pid} is none of the webdocks this test ran: {}",
                    r.show()
                ),
            }
            assert!(
                r.stderr.contains("hint: wait for it to finish"),
                "{}",
                r.show()
            );
            None
        }
        _ => panic!(
            "restart djob {djob} neither completed nor named the holder: {}",
            r.show()
        ),
    }
}

/// On-call restarts of one djob fired every `every` from a thread until
/// [`Storm::finish`].
struct Storm {
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<Vec<Run>>>,
}

impl Storm {
    fn start(p: &Project, djob: &str, every: Duration) -> Storm {
        let stop = Arc::new(AtomicBool::new(false));
        let (st, config, djob) = (stop.clone(), p.config.clone(), djob.to_string());
        let handle = std::thread::spawn(move || {
            let mut waiting = Vec::new();
            while !st.load(Ordering::SeqCst) {
                let c = spawn(
                    Command::new(bin())
                        .arg("-c")
                        .arg(&config)
                        .args(["--json", "restart", "djob", &djob]),
                );
                waiting.push(std::thread::spawn(move || collect(c)));
                std::thread::sleep(every);
            }
            waiting.into_iter().map(|h| h.join().unwrap()).collect()
        });
        Storm {
            stop,
            handle: Some(handle),
        }
    }

    fn finish(mut self) -> Vec<Run> {
        self.stop.store(true, Ordering::SeqCst);
        self.handle.take().unwrap().join().unwrap()
    }
}

impl Drop for Storm {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

fn median_max(v: &[f64]) -> String {
    if v.is_empty() {
        return "-".into();
    }
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    format!(
        "median {:.0} ms, max {:.0} ms",
        s[s.len() / 2],
        s[s.len() - 1]
    )
}

fn djob_row(st: &serde_json::Value, name: &str) -> serde_json::Value {
    st["djobs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["name"] == name)
        .unwrap_or_else(|| panic!("no djob {name} in status: {st}"))
        .clone()
}

/// Waits until the heartbeat log of `djob` has a life started after `after`
/// that has beaten at least twice: the daemon is at work.
fn wait_working(p: &Project, djob: &str, after: i64) {
    wait_for(120, &format!("djob {djob} to beat"), || {
        lives(&heartbeat_log(p, djob))
            .iter()
            .any(|l| l.start > after && l.stop.is_none() && l.last - l.start > 300_000_000)
            .then_some(())
    });
}

// ---------------------------------------------------------------------------
// The tests
// ---------------------------------------------------------------------------

#[test]
fn twenty_restarts_at_once_never_run_two_billings() {
    ensure_image("1.0.0");
    let p = Project::new("dj20", "");
    p.ok(&["promote", "1.0.0"]);
    let email2fax = djob_row(&p.status_json(), "email2fax")["id"].clone();
    wait_working(&p, "billing", 0);
    let w = Watch::start(&p.name, None);
    let mut runs = Vec::new();
    let mut winners = Vec::new();
    for _round in 0..3 {
        let t = now_ns();
        let children: Vec<Child> = (0..20)
            .map(|_| spawn(p.cmd().args(["--json", "restart", "djob", "billing"])))
            .collect();
        let round: Vec<Run> = children.into_iter().map(collect).collect();
        winners.push(round.iter().filter(|r| r.code == Some(0)).count());
        runs.extend(round);
        // A restart returns once the container stayed up; the app may still
        // be booting. Let it get to work, so every process leaves a life.
        wait_working(&p, "billing", t);
    }
    let report = w.finish();
    let holders: HashMap<u32, &str> = runs.iter().map(|r| (r.pid, "restart")).collect();
    let downs: Vec<f64> = runs
        .iter()
        .filter_map(|r| check_restart(r, "billing", &holders))
        .map(|d| d as f64)
        .collect();
    assert!(
        winners.iter().all(|&n| n >= 1),
        "every round of 20 has a winner: {winners:?}"
    );
    // Each completed restart started one new process, and each round's got
    // to work (a second winner in a round may kill the first's new process
    // before it boots: no life then).
    let gaps = never_two(&p, &report, "billing");
    let l = lives(&heartbeat_log(&p, "billing"));
    assert!(
        l.len() <= 1 + downs.len() && l.len() > winners.len(),
        "{} lives, {} completed restarts: {l:#?}",
        l.len(),
        downs.len()
    );
    assert!(l[..l.len() - 1].iter().all(|l| l.stop.is_some()), "{l:#?}");
    let st = p.status_json();
    let b = djob_row(&st, "billing");
    assert_eq!(b["state"], "running", "{st}");
    assert_eq!(b["tag"], "1.0.0", "{st}");
    assert_eq!(b["restarts"], 0, "{st}");
    assert_eq!(
        djob_row(&st, "email2fax")["id"],
        email2fax,
        "email2fax untouched: {st}"
    );
    assert!(st["warnings"].as_array().unwrap().is_empty(), "{st}");
    eprintln!(
        "20 restarts at once, 3 rounds: winners per round {winners:?}; webdock's down time {}; heartbeat gap stop→start {}; poller {} snapshots",
        median_max(&downs),
        median_max(&gaps),
        report.snapshots
    );
}

#[test]
fn restarts_racing_six_promotes_never_run_two_of_a_djob() {
    ensure_image("1.0.0");
    ensure_image("1.0.1");
    let p = Project::new("djprom", "");
    p.ok(&["promote", "1.0.0"]);
    wait_working(&p, "billing", 0);
    let w = Watch::start(&p.name, None);
    let storm = Storm::start(&p, "billing", Duration::from_millis(400));
    let mut promotes = Vec::new();
    // one promote under the storm, then five back to back
    for tag in ["1.0.1", "1.0.0", "1.0.1", "1.0.0", "1.0.1", "1.0.0"] {
        let r = collect(spawn(p.cmd().args(["promote", tag])));
        assert_eq!(r.code, Some(0), "promote {tag}: {}", r.show());
        promotes.push(r);
    }
    let runs = storm.finish();
    // Restarts every 400 ms often kill a billing before it has booted (no
    // harm: it did no work). Let the last one get to work, so the heartbeat
    // witness has a life on both sides of the storm.
    let t = now_ns();
    wait_working(&p, "billing", t - 600_000_000_000);
    let report = w.finish();
    let mut holders: HashMap<u32, &str> = runs.iter().map(|r| (r.pid, "restart")).collect();
    holders.extend(promotes.iter().map(|r| (r.pid, "promote")));
    let downs: Vec<f64> = runs
        .iter()
        .filter_map(|r| check_restart(r, "billing", &holders))
        .map(|d| d as f64)
        .collect();
    let by_promote = runs
        .iter()
        .filter(|r| r.code == Some(1) && r.stderr.contains("(promote "))
        .count();
    let gaps = never_two(&p, &report, "billing");
    let fax_gaps = never_two(&p, &report, "email2fax");
    let billing_lives = lives(&heartbeat_log(&p, "billing")).len();
    assert!(billing_lives >= 2, "{billing_lives}");
    assert!(report.max_running.get("cron").copied().unwrap_or(0) <= 1);
    check_engine(&report, "cron");
    let st = p.status_json();
    for d in st["djobs"].as_array().unwrap() {
        assert_eq!(d["state"], "running", "{st}");
        assert_eq!(d["tag"], "1.0.0", "{st}");
    }
    assert_eq!(st["cron"]["tag"], "1.0.0", "{st}");
    assert!(p.history_lines().iter().all(|e| e["outcome"] == "ok"));
    eprintln!(
        "storm of {} restarts over 6 promotes: {} completed, {} refused by a promote, {} by another restart; restart down time {}; {billing_lives} billing processes got to work, gaps {}; email2fax gaps (promotes) {}; poller {} snapshots",
        runs.len(),
        downs.len(),
        by_promote,
        runs.len() - downs.len() - by_promote,
        median_max(&downs),
        median_max(&gaps),
        median_max(&fax_gaps),
        report.snapshots
    );
}

#[test]
fn a_webdock_killed_mid_replacement_leaves_the_djob_down_and_the_next_command_finishes() {
    ensure_image("1.0.0");
    ensure_image("1.0.1");
    let p = Project::new("djkill", "");
    p.ok(&["promote", "1.0.0"]);
    let w = Watch::start(&p.name, None);

    // restart, killed after the old container is removed
    let r = collect(spawn(
        p.cmd()
            .args(["restart", "djob", "billing"])
            .env("WEBDOCK_KILL_AT", "replace-removed:djob billing"),
    ));
    assert_eq!(r.signal, Some(9), "{}", r.show());
    let st = p.status_json();
    let b = djob_row(&st, "billing");
    assert_eq!(b["state"], "absent", "{st}");
    let warnings = st["warnings"].to_string();
    assert!(
        warnings.contains("djob billing has no container")
            && warnings.contains("webdock start djob billing"),
        "{st}"
    );
    assert!(st["lock"].is_null(), "a killed holder leaves no lock: {st}");
    let out = p.ok(&["--json", "restart", "djob", "billing"]);
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert!(v["old"].is_null(), "nothing to replace: {v}");
    wait_working(&p, "billing", 0);

    // promote, killed after it removed billing; the others are cut wherever
    // they were
    let r = collect(spawn(
        p.cmd()
            .args(["promote", "1.0.1"])
            .env("WEBDOCK_KILL_AT", "replace-removed:djob billing"),
    ));
    assert_eq!(r.signal, Some(9), "{}", r.show());
    let st = p.status_json();
    assert_eq!(st["live"]["tag"], "1.0.1", "the flip happened before: {st}");
    assert_eq!(djob_row(&st, "billing")["state"], "absent", "{st}");
    assert!(st["lock"].is_null(), "{st}");
    let t = now_ns();
    let err = String::from_utf8_lossy(&p.webdock(&["promote", "1.0.1"]).stderr).into_owned();
    assert!(
        err.contains("already serves 1.0.1"),
        "the re-run skips to the workers: {err}"
    );
    let st = p.status_json();
    for d in st["djobs"].as_array().unwrap() {
        assert_eq!(
            (&d["state"], &d["tag"]),
            (&"running".into(), &"1.0.1".into()),
            "{st}"
        );
    }
    assert_eq!(st["cron"]["tag"], "1.0.1", "{st}");
    assert!(st["warnings"].as_array().unwrap().is_empty(), "{st}");
    wait_working(&p, "billing", t);

    // cron, killed after its old container is removed; `start` brings it back
    let r = collect(spawn(
        p.cmd()
            .args(["restart", "cron"])
            .env("WEBDOCK_KILL_AT", "replace-removed:cron"),
    ));
    assert_eq!(r.signal, Some(9), "{}", r.show());
    let st = p.status_json();
    assert_eq!(st["cron"]["state"], "absent", "{st}");
    assert!(
        st["warnings"].to_string().contains("cron is not running"),
        "{st}"
    );
    p.ok(&["start", "cron"]);
    assert_eq!(p.status_json()["cron"]["state"], "running");

    let report = w.finish();
    never_two(&p, &report, "billing");
    never_two(&p, &report, "email2fax");
    check_engine(&report, "cron");
    assert!(
        report.max_running.values().all(|&n| n <= 1),
        "{:?}",
        report.doubles
    );
}

#[test]
fn unknown_djob_names_and_a_djob_that_exits_at_once_get_clear_errors() {
    ensure_image("1.0.0");
    ensure_variant_djobs(
        "djob-quitter",
        "[djobs.quitter]\ncommand = [\"python\", \"-c\", \"import sys; print('quitter: cannot reach the fax gateway', flush=True); sys.exit(3)\"]\n",
    );
    let p = Project::new(
        "djbad",
        // settle: long enough to see it die even on a loaded machine,
        // where python alone can take seconds to start
        "[djobs.quitter]\ncommand = [\"python\", \"-c\", \"configured in the image\"]\nstop_grace = \"5s\"\nsettle = \"20s\"\n",
    );
    for verb in ["restart", "stop", "start"] {
        let o = p.webdock(&[verb, "djob", "biling"]);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{verb}: {err}");
        assert!(
            err.contains("unknown djob \"biling\"") && err.contains("billing, email2fax, quitter"),
            "{verb}: {err}"
        );
    }
    assert!(p.containers().is_empty(), "bad input changes nothing");
    // an image built without quitter is refused for this config
    let o = p.webdock(&["promote", "1.0.0"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("has no djob \"quitter\""), "{err}");
    assert!(p.containers().is_empty());

    let o = p.webdock(&["promote", "djob-quitter"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("djob quitter"), "the djob is named: {err}");
    assert!(err.contains("did not stay up"), "{err}");
    assert!(
        err.contains("cannot reach the fax gateway"),
        "its last log lines: {err}"
    );
    assert!(
        err.contains("the portal already serves djob-quitter"),
        "{err}"
    );
    let st = p.status_json();
    assert_eq!(
        st["live"]["tag"], "djob-quitter",
        "traffic stays on the new portal: {st}"
    );
    assert_eq!(djob_row(&st, "billing")["state"], "running", "{st}");
    let last = p.history_lines().pop().unwrap();
    assert!(
        last["outcome"].as_str().unwrap().starts_with("failed"),
        "{last}"
    );

    let o = p.webdock(&["restart", "djob", "quitter"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.contains("djob quitter did not stay up")
            && err.contains("cannot reach the fax gateway"),
        "{err}"
    );
    let st = p.status_json();
    let q = djob_row(&st, "quitter");
    assert!(
        q["state"] != "running" || q["restarts"].as_i64().unwrap() > 0,
        "status shows the failing djob: {q}"
    );
    assert!(
        st["warnings"].to_string().contains("djob quitter"),
        "status warns about the failing djob: {st}"
    );
    let text = p.ok(&["status"]);
    assert!(text.contains("quitter"), "{text}");
}

// ---------------------------------------------------------------------------
// A Docker daemon restarted under running djobs
// ---------------------------------------------------------------------------

fn wd(p: &Project, d: &PrivateDockerd, args: &[&str]) -> std::process::Output {
    run(p.cmd().env("DOCKER_HOST", d.host()).args(args))
}

fn wd_ok(p: &Project, d: &PrivateDockerd, args: &[&str]) -> String {
    let o = wd(p, d, args);
    assert!(
        o.status.success(),
        "webdock {args:?} exited {:?}\nstderr: {}",
        o.status.code(),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// The live portal, cron and every djob run, and status has no warning;
/// Err carries what status said.
fn all_up(p: &Project, d: &PrivateDockerd) -> Result<(), String> {
    let o = wd(p, d, &["status", "--json"]);
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    let Ok(st) = serde_json::from_slice::<serde_json::Value>(&o.stdout) else {
        return Err(said);
    };
    let up = |v: &serde_json::Value| v["state"] == "running";
    let live_up = st["portals"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|p| p["live"] == true && up(p));
    let djobs_up = st["djobs"].as_array().is_some_and(|d| d.iter().all(up));
    let quiet = st["warnings"].as_array().is_some_and(|w| w.is_empty());
    if live_up && up(&st["cron"]) && djobs_up && quiet {
        Ok(())
    } else {
        Err(said)
    }
}

fn all_up_within(p: &Project, d: &PrivateDockerd, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if all_up(p, d).is_ok() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    false
}

/// Waits until the live portal, cron and every djob run, one container each.
fn wait_all_up(p: &Project, d: &PrivateDockerd, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        let last = match all_up(p, d) {
            Ok(()) => return,
            Err(said) => said,
        };
        if Instant::now() > deadline {
            let ps = d.cli(&["ps", "-a"]);
            let log = std::fs::read_to_string(d.dir.join("dockerd.log")).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(40).collect();
            panic!(
                "timed out waiting for {what}\nlast status: {last}\ndocker ps -a:\n{}\ndockerd.log (newest first):\n{}",
                String::from_utf8_lossy(&ps.stdout),
                tail.join("\n")
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn a_docker_daemon_restarted_under_running_djobs_leaves_one_of_each() {
    let image = ensure_image("1.0.0");
    let docker0 = docker0_exists();
    let p = Project::new("djdmn", "");
    let mut d = PrivateDockerd::start(&p.path().join("pd"));
    d.load(&image);
    wd_ok(&p, &d, &["promote", "1.0.0"]);
    let w = Watch::start(&p.name, Some(&d.sock()));
    wait_working(&p, "billing", 0);

    // 1. a clean restart: the engine stops every container with its stop
    // timeout, then starts them again (restart policy always)
    let t = now_ns();
    d.signal(libc::SIGTERM);
    d.launch();
    wait_all_up(&p, &d, "every role back after a clean daemon restart");
    wait_working(&p, "billing", t);

    // 2. a crash: the containers outlive the daemon under their shims. The
    // new daemon (live-restore off) stops them, and Docker 20.10 then counts
    // them as stopped by hand (moby sets HasBeenManuallyStopped when it
    // kills outside a shutdown): `unless-stopped` would leave the project
    // down. webdock's restart policy is `always`, so the engine brings every
    // role back by itself, one of each.
    let beats = |p: &Project| lives(&heartbeat_log(p, "billing")).last().map(|l| l.last);
    d.signal(libc::SIGKILL);
    let before = beats(&p);
    std::thread::sleep(Duration::from_secs(2));
    let beat_while_down = beats(&p) > before;
    let t = now_ns();
    d.launch();
    let engine_restarted = all_up_within(&p, &d, Duration::from_secs(60));
    assert!(
        engine_restarted,
        "after a daemon crash the engine restarts every role by itself (restart policy always)"
    );
    wait_working(&p, "billing", t);

    // 3. the daemon is restarted in the middle of an on-call restart:
    // whatever the restart had done by then, the next one finishes the job
    let pending = spawn(
        p.cmd()
            .env("DOCKER_HOST", d.host())
            .args(["restart", "djob", "billing"]),
    );
    wait_for(60, "the old billing to be stopped", || {
        lives(&heartbeat_log(&p, "billing"))
            .last()
            .and_then(|l| l.stop)
    });
    d.signal(libc::SIGTERM);
    let cut = collect(pending);
    assert!(
        matches!(cut.code, Some(0 | 1)),
        "a restart whose daemon went away exits 0 or 1: {}",
        cut.show()
    );
    d.launch();
    let t = now_ns();
    wd_ok(&p, &d, &["restart", "djob", "billing"]);
    wait_all_up(&p, &d, "every role up after the next restart");
    wait_working(&p, "billing", t);

    let report = w.finish();
    let gaps = never_two(&p, &report, "billing");
    never_two(&p, &report, "email2fax");
    check_engine(&report, "cron");
    assert!(
        report.max_running.values().all(|&n| n <= 1),
        "{:?}",
        report.doubles
    );
    let names = String::from_utf8_lossy(&d.cli(&["ps", "-a", "--format", "{{.Names}}"]).stdout)
        .into_owned();
    let mut names: Vec<&str> = names.lines().collect();
    names.sort();
    let n = &p.name;
    let want = vec![
        format!("{n}-cron"),
        format!("{n}-djob-billing"),
        format!("{n}-djob-email2fax"),
        format!("{n}-portal-blue"),
    ];
    assert_eq!(names, want, "one container per role");
    assert_eq!(
        docker0_exists(),
        docker0,
        "the shared engine's bridge docker0 must survive the private daemon"
    );
    eprintln!(
        "daemon restarts: after a crash the engine restarted the roles itself: {engine_restarted}; billing beat while the daemon was dead: {beat_while_down}; the restart cut by a daemon restart exited {:?}; billing gaps {}; poller {} snapshots, {} failed while the daemon was down",
        cut.code,
        median_max(&gaps),
        report.snapshots,
        report.poll_errors
    );
}
