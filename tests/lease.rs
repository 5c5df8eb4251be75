//! The djob lease (issue 13 parts 3, 4, 6) on the rig with a real
//! PostgreSQL: the example app on PostgreSQL, billing under `[lease]`, a
//! test-held psql session as the "other holder". Billing starts only once the
//! lease is held; a frozen holder's daemon never writes with its stale epoch
//! (killed by its holder, or refused by the fence); a PostgreSQL restart
//! stops billing and brings back exactly one daemon with a higher epoch.

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, ChildStdout, Command, Output, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

mod common;
use common::rig::Rig;
use common::*;

use webdock::lease;

/// The lease window of the test project: short, so that takeovers are quick.
const WINDOW: u64 = 4;

/// A project on one rig host with its PostgreSQL as the app's database and
/// the lease's.
struct Project {
    _dir: tempfile::TempDir,
    config: PathBuf,
    name: String,
}

impl Project {
    fn new(rig: &Rig, host: &str) -> Project {
        let dir = tempfile::Builder::new()
            .prefix("wdlease-")
            .tempdir()
            .unwrap();
        std::fs::set_permissions(
            dir.path(),
            std::os::unix::fs::PermissionsExt::from_mode(0o755),
        )
        .unwrap();
        let d = dir.path().display().to_string();
        let pg = rig.pg_url().expect("the rig is up with --postgres");
        let env = dir.path().join("app.env");
        std::fs::write(
            &env,
            format!("DATABASE_URL={pg}\nLEASE_DATABASE_URL={pg}\n"),
        )
        .unwrap();
        std::fs::set_permissions(&env, std::os::unix::fs::PermissionsExt::from_mode(0o600))
            .unwrap();
        let name = format!("le{}", rig.id);
        let h = rig.host(host);
        let c = rig.cert_path();
        let tls = if h.tls {
            format!(
                "tls = {{ ca = \"{c}/ca.pem\", cert = \"{c}/cert.pem\", key = \"{c}/key.pem\" }}\n",
                c = c.display()
            )
        } else {
            String::new()
        };
        let text = format!(
            r#"project = "{name}"
image = "{IMAGE}"
app = "{app}"
crontab = "crontab"
env_file = "app.env"
socket_root = "{d}/ctl/run"
state_root = "{d}/ctl/state"
volumes = ["{d}/data:/data"]
[env]
DJANGO_ALLOWED_HOSTS = "*"
DJANGO_SECRET_KEY = "test-not-secret"
[lease]
postgres = "LEASE_DATABASE_URL"
window = "{WINDOW}s"
[portal]
processes = 2
stop_grace = "10s"
[health]
consecutive = 3
interval = "100ms"
deadline = "60s"
[cron]
stop_grace = "5s"
[djobs.billing]
command = ["python", "manage.py", "djob", "billing"]
stop_grace = "5s"
[hosts.{host}]
engine = "{engine}"
{tls}roles = ["portal", "worker"]
public_url = "{url}/health/"
socket_root = "{d}/{host}/run"
state_root = "{d}/{host}/state"
"#,
            app = repo_root().join("examples/portal").display(),
            engine = h.docker_tcp,
            url = h.nginx_url,
        );
        let config = dir.path().join("webdock.toml");
        std::fs::write(&config, text).unwrap();
        let p = Project {
            _dir: dir,
            config,
            name,
        };
        let snip = p.ok(rig, &["nginx-snippet", "--host", host]);
        std::fs::write(&h.nginx_include, snip).unwrap();
        rig.reload_nginx(host);
        p
    }

    fn webdock(&self, rig: &Rig, args: &[&str]) -> Output {
        run(Command::new(bin())
            .arg("-c")
            .arg(&self.config)
            .env("PATH", rig.path_env())
            .args(args))
    }

    fn ok(&self, rig: &Rig, args: &[&str]) -> String {
        let o = self.webdock(rig, args);
        assert!(
            o.status.success(),
            "webdock {args:?} exited {:?}\n{}",
            o.status.code(),
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    fn lease(&self) -> String {
        lease::name(&self.name, Some("billing"))
    }

    fn billing(&self) -> String {
        format!("{}-djob-billing", self.name)
    }
}

/// A psql session of the test's own: the "other holder" of the lease.
struct Psql {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: BufReader<ChildStdout>,
}

impl Psql {
    fn open(url: &str) -> Psql {
        let mut child = Command::new("psql")
            .args(["-X", "-q", "-At", "-v", "ON_ERROR_STOP=0", url])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("psql (postgresql-client) is installed");
        let stdin = child.stdin.take();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        Psql {
            child,
            stdin,
            stdout,
        }
    }

    /// Runs `sql` (one statement); its rows, `|`-separated.
    fn q(&mut self, sql: &str) -> Vec<String> {
        let stdin = self.stdin.as_mut().unwrap();
        writeln!(stdin, "{sql};\n\\echo __END__").unwrap();
        stdin.flush().unwrap();
        let mut rows = Vec::new();
        loop {
            let mut line = String::new();
            assert!(self.stdout.read_line(&mut line).unwrap() > 0, "psql exited");
            let line = line.trim_end().to_string();
            if line == "__END__" {
                return rows;
            }
            rows.push(line);
        }
    }

    fn one(&mut self, sql: &str) -> String {
        let rows = self.q(sql);
        assert_eq!(rows.len(), 1, "{sql}: {rows:?}");
        rows.into_iter().next().unwrap()
    }

    /// Takes the lease as the holder does: the lock, then the epoch bump in
    /// one transaction. Waits until the server has freed it. The new epoch.
    fn take(&mut self, name: &str, secs: u64) -> i64 {
        let q = lit(name);
        wait_for(secs, "the lease to be free for the test's session", || {
            (self.one(&lease::TRY_SQL.replace("$1", &q)) == "t").then_some(())
        });
        self.q("BEGIN");
        let e = self.one(
            &lease::BUMP_SQL
                .replace("$1", &q)
                .replace("$2", "'the test'"),
        );
        self.q("COMMIT");
        e.parse().unwrap()
    }

    /// Ends the session, which frees its lock.
    fn close(mut self) {
        drop(self.stdin.take());
        let _ = self.child.wait();
    }
}

impl Drop for Psql {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A SQL string literal.
fn lit(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// (epoch, holder, held) of the lease, through the controller's query.
fn holder(db: &mut Psql, name: &str) -> (i64, String, bool) {
    let row = db.one(&lease::HOLDER_SQL.replace("$1", &lit(name)));
    let f: Vec<&str> = row.split('|').collect();
    (f[0].parse().unwrap_or(0), f[1].to_string(), f[3] == "t")
}

/// Host pids of the billing daemons (`manage.py djob billing`) in the
/// container, and of its lease holder.
fn procs(rig: &Rig, container: &str, what: &str) -> Vec<u32> {
    let o = rig.docker("web1", &["top", container, "-eo", "pid,args"]);
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .skip(1)
        .filter(|l| l.contains(what))
        .filter_map(|l| l.split_whitespace().next()?.parse().ok())
        .collect()
}

fn daemons(rig: &Rig, p: &Project) -> Vec<u32> {
    procs(rig, &p.billing(), "manage.py djob billing")
}

fn holders(rig: &Rig, p: &Project) -> Vec<u32> {
    procs(rig, &p.billing(), "/usr/lib/webdock/lease")
}

fn environ(pid: u32) -> Vec<String> {
    std::fs::read(format!("/proc/{pid}/environ"))
        .unwrap_or_default()
        .split(|b| *b == 0)
        .map(|v| String::from_utf8_lossy(v).into_owned())
        .collect()
}

/// Alive and not a zombie.
fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| {
            let state = s.rsplit(')').next().unwrap_or("").trim_start();
            !state.starts_with('Z') && !state.starts_with('X')
        })
        .unwrap_or(false)
}

/// When a process started, as unix seconds: its age on the boot clock
/// (/proc/PID/stat against /proc/uptime, to the clock tick) before now.
fn started_at(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let uptime: f64 = std::fs::read_to_string("/proc/uptime")
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let wall = now();
    let ticks: f64 = stat
        .rsplit(')')
        .next()
        .unwrap()
        .split_whitespace()
        .nth(19)
        .unwrap()
        .parse()
        .unwrap();
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    wall - (uptime - ticks / hz)
}

fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

fn logs(rig: &Rig, container: &str) -> String {
    let o = rig.docker("web1", &["logs", container]);
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn pg_ctl(rig: &Rig, args: &[&str]) {
    let bin = std::fs::read_dir("/usr/lib/postgresql")
        .unwrap()
        .flatten()
        .map(|e| e.path().join("bin/pg_ctl"))
        .filter(|p| p.exists())
        .max()
        .expect("PostgreSQL's pg_ctl");
    let data = rig.dir().join("pg/data");
    let log = rig.dir().join("logs/postgres.log");
    let o = run(Command::new("runuser")
        .args(["-u", "postgres", "--"])
        .arg(bin)
        .arg("-D")
        .arg(&data)
        .arg("-l")
        .arg(&log)
        .args(args));
    assert!(
        o.status.success(),
        "pg_ctl {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

#[test]
fn billing_runs_only_under_the_lease_and_never_writes_with_a_stale_epoch() {
    ensure_image("1.0.0");
    let rig = Rig::up_with(1, &["--postgres"]);
    rig.load(&[&format!("{IMAGE}:1.0.0")]);
    let pg = rig.pg_url().unwrap().to_string();
    let p = Project::new(&rig, "web1");
    let name = p.lease();
    let mut db = Psql::open(&pg);

    // (a) The lease is held elsewhere before billing ever starts: the
    // container runs, its holder waits, no daemon and no charge.
    db.q(lease::TABLE_SQL);
    let mut other = Psql::open(&pg);
    let e0 = other.take(&name, 10);
    p.ok(&rig, &["promote", "1.0.0"]);
    wait_for(60, "billing's holder to wait for the lease", || {
        logs(&rig, &p.billing())
            .contains("waiting: the lease is held by")
            .then_some(())
    });
    std::thread::sleep(Duration::from_secs(WINDOW + 1));
    assert!(
        daemons(&rig, &p).is_empty(),
        "billing ran without the lease"
    );
    assert_eq!(
        db.one("SELECT count(*) FROM portal_charge"),
        "0",
        "a charge without the lease"
    );
    assert_eq!(holders(&rig, &p).len(), 1);
    // cron holds its own lease
    wait_for(30, "cron to hold its lease", || {
        holder(&mut db, &lease::name(&p.name, None)).2.then_some(())
    });

    let freed = now();
    other.close();
    let pid = wait_for(30, "billing to start once the lease is free", || {
        daemons(&rig, &p).first().copied()
    });
    let took = started_at(pid) - freed;
    eprintln!("lease free → daemon started: {:.0} ms", took * 1000.0);
    let (e1, who, held) = holder(&mut db, &name);
    assert!(held && e1 == e0 + 1, "epoch {e1} after {e0}, held {held}");
    assert!(who.starts_with(&format!("{name}@web1/")), "{who}");
    let env = environ(pid);
    assert!(
        env.contains(&format!("WEBDOCK_LEASE_EPOCH={e1}")),
        "the daemon's environment: {env:?}"
    );
    wait_for(30, "billing to charge", || {
        (db.one("SELECT count(*) FROM portal_charge") != "0").then_some(())
    });
    assert_eq!(
        db.one(&format!(
            "SELECT count(*) FROM portal_charge c, webdock_lease l WHERE l.name = {} AND (c.epoch <> {e1} OR c.created < l.acquired_at)",
            lit(&name)
        )),
        "0",
        "every charge was written under the lease, with its epoch"
    );
    assert_eq!(daemons(&rig, &p), vec![pid], "one daemon");

    // (b) The whole container frozen past the window: the server frees the
    // lease, another holder takes it; thawed, the old daemon is killed by
    // its holder and writes nothing with its stale epoch.
    rig.docker_ok("web1", &["pause", &p.billing()]);
    let paused = Instant::now();
    let mut other = Psql::open(&pg);
    let e2 = other.take(&name, 3 * WINDOW);
    let freed_after = paused.elapsed();
    // the holder's last confirmation came at most window/6 before the pause,
    // and the server frees a full window after answering it
    let earliest = WINDOW as f64 * 5.0 / 6.0 - 0.25;
    assert!(
        freed_after.as_secs_f64() >= earliest,
        "the server freed a frozen holder's lease after {freed_after:?}, before its window"
    );
    assert_eq!(e2, e1 + 1);
    eprintln!(
        "container frozen → lease free for another holder: {:.0} ms (window {WINDOW} s)",
        freed_after.as_secs_f64() * 1000.0
    );
    std::thread::sleep(Duration::from_secs(2));
    rig.docker_ok("web1", &["unpause", &p.billing()]);
    wait_for(20, "the thawed daemon to be killed", || {
        (!alive(pid)).then_some(())
    });
    let stale = format!(
        "SELECT count(*) FROM portal_charge c, webdock_lease l WHERE l.name = {} AND c.epoch < l.epoch AND c.created >= l.acquired_at",
        lit(&name)
    );
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(db.one(&stale), "0", "a charge with a stale epoch");
    wait_for(
        30,
        "the restarted holder to wait for the lease again",
        || {
            (logs(&rig, &p.billing()).contains("lost its lease") && holders(&rig, &p).len() == 1)
                .then_some(())
        },
    );
    assert!(daemons(&rig, &p).is_empty(), "a daemon without the lease");

    // The fence alone: only the holder frozen (SIGSTOP), its daemon goes on
    // and tries to charge after another holder took the lease; the fence
    // refuses it, and it exits (75) on its own.
    let freed = now();
    other.close();
    let pid = wait_for(30, "billing to run again", || {
        daemons(&rig, &p).first().copied()
    });
    eprintln!(
        "lease free → waiting holder's daemon started: {:.0} ms",
        (started_at(pid) - freed) * 1000.0
    );
    let (e3, _, _) = holder(&mut db, &name);
    assert_eq!(e3, e2 + 1);
    let hold = holders(&rig, &p)[0];
    unsafe { libc::kill(hold as i32, libc::SIGSTOP) };
    let mut other = Psql::open(&pg);
    let e4 = other.take(&name, 3 * WINDOW);
    wait_for(10, "the fenced daemon to exit", || {
        (!alive(pid)).then_some(())
    });
    unsafe { libc::kill(hold as i32, libc::SIGCONT) };
    assert!(
        logs(&rig, &p.billing()).contains(&format!("fenced: epoch {e3} is stale, current {e4}")),
        "{}",
        logs(&rig, &p.billing())
    );
    assert_eq!(db.one(&stale), "0", "the fence let a stale charge through");

    // (c) PostgreSQL restarted mid-run: billing stops, then exactly one
    // daemon comes back, with a higher epoch.
    other.close();
    let pid = wait_for(30, "billing to run again", || {
        daemons(&rig, &p).first().copied()
    });
    let (e5, _, _) = holder(&mut db, &name);
    drop(db);
    pg_ctl(&rig, &["restart", "-m", "fast", "-w", "-t", "60"]);
    let restarted = now();
    wait_for(20, "the daemon to stop with the database", || {
        (!alive(pid)).then_some(())
    });
    let mut db = Psql::open(&pg);
    let pid2 = wait_for(60, "billing to come back", || {
        daemons(&rig, &p).first().copied()
    });
    eprintln!(
        "postgres restart → daemon started: {:.0} ms",
        (started_at(pid2) - restarted) * 1000.0
    );
    let (e6, _, held) = holder(&mut db, &name);
    assert!(held && e6 > e5, "epoch {e6} after {e5}");
    assert!(environ(pid2).contains(&format!("WEBDOCK_LEASE_EPOCH={e6}")));
    wait_for(30, "a charge of the new epoch", || {
        (db.one(&format!(
            "SELECT count(*) FROM portal_charge WHERE epoch = {e6}"
        )) != "0")
            .then_some(())
    });
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(daemons(&rig, &p), vec![pid2], "exactly one daemon");
    assert_eq!(holders(&rig, &p).len(), 1, "exactly one holder");
    assert_eq!(db.one(&stale), "0");
    // never twice: one charge per key, and every epoch's charges from one host
    assert_eq!(
        db.one("SELECT count(*) - count(DISTINCT key) FROM portal_charge"),
        "0"
    );
    eprintln!(
        "charges: {}",
        db.q("SELECT epoch, count(*), min(created), max(created) FROM portal_charge GROUP BY epoch ORDER BY epoch")
            .join("; ")
    );
}
