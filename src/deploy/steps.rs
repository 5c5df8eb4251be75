//! The steps of a deploy: their names (shared by the code, the kill points
//! of the crash tests and docs/json.md), their timing for history, and the
//! events they print.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::out::Out;

/// A step of promote, rollback or a portal restart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    Check,
    Backup,
    Release,
    StartPortal,
    Health,
    Flip,
    Verify,
    Workers,
    Prune,
}

/// The kill point inside the release step, while webdock waits on the
/// release command (not a step of its own: it has no events).
pub const RELEASE_WAIT: &str = "release-wait";

impl Step {
    /// Every step, in the order a promote runs them.
    pub const ALL: [Step; 9] = [
        Step::Check,
        Step::Backup,
        Step::Release,
        Step::StartPortal,
        Step::Health,
        Step::Flip,
        Step::Verify,
        Step::Workers,
        Step::Prune,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Step::Check => "check",
            Step::Backup => "backup",
            Step::Release => "release",
            Step::StartPortal => "start-portal",
            Step::Health => "health",
            Step::Flip => "flip",
            Step::Verify => "verify",
            Step::Workers => "workers",
            Step::Prune => "prune",
        }
    }
}

/// Test builds stop dead (SIGKILL, no cleanup) at the step named by
/// `WEBDOCK_KILL_AT`, to prove that every crash point is recoverable, and
/// wait at the step named by `WEBDOCK_HOLD_AT=<step>=<file>` until the file
/// exists, so a test can break something at that exact moment. Release
/// builds ignore both.
pub fn killpoint(name: &str) {
    if !cfg!(debug_assertions) {
        return;
    }
    if std::env::var("WEBDOCK_KILL_AT").is_ok_and(|v| v == name) {
        eprintln!("webdock: killed at {name} (WEBDOCK_KILL_AT)");
        // SAFETY: sending a signal to ourselves.
        unsafe { libc::kill(libc::getpid(), libc::SIGKILL) };
    }
    if let Some((step, file)) = std::env::var("WEBDOCK_HOLD_AT")
        .ok()
        .as_deref()
        .and_then(|v| v.split_once('='))
    {
        if step == name {
            eprintln!("webdock: held at {name} until {file} exists (WEBDOCK_HOLD_AT)");
            while !std::path::Path::new(file).exists() {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
}

/// The steps done so far and their durations, for the history line.
pub struct StepLog {
    out: Out,
    /// In a fleet, the host every event names.
    host: Option<String>,
    done: std::sync::Mutex<Vec<(String, f64)>>,
}

impl StepLog {
    pub fn new(out: Out, host: Option<String>) -> StepLog {
        StepLog {
            out,
            host,
            done: Default::default(),
        }
    }

    fn with_host(&self, mut extra: Value) -> Value {
        if let (Some(h), Some(m)) = (&self.host, extra.as_object_mut()) {
            m.insert("host".into(), json!(h));
        }
        extra
    }

    /// Each step done so far with its seconds, in order.
    pub fn done(&self) -> Vec<(String, f64)> {
        self.done.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub fn begin(&self, step: Step) -> Instant {
        self.out
            .step(step.as_str(), "start", self.with_host(json!({})));
        Instant::now()
    }

    /// Records the step as done, prints it, then passes its kill point.
    pub fn end(&self, step: Step, t: Instant, extra: Value) {
        let secs = t.elapsed().as_secs_f64();
        self.done
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((step.as_str().to_string(), secs));
        let mut extra = extra;
        if let Some(m) = extra.as_object_mut() {
            m.insert("seconds".into(), json!((secs * 1000.0).round() / 1000.0));
        }
        self.out.step(step.as_str(), "done", self.with_host(extra));
        killpoint(step.as_str());
    }

    pub fn fail(&self, step: Step, e: &anyhow::Error) {
        self.out.step(
            step.as_str(),
            "failed",
            json!({ "error": format!("{e:#}") }),
        );
    }

    /// Runs `f` as `step`: done with the fields it returns, or failed with
    /// its error, printed once either way.
    pub async fn run<T>(
        &self,
        step: Step,
        f: impl std::future::Future<Output = anyhow::Result<(T, Value)>>,
    ) -> anyhow::Result<T> {
        let t = self.begin(step);
        match f.await {
            Ok((v, extra)) => {
                self.end(step, t, extra);
                Ok(v)
            }
            Err(e) => {
                self.fail(step, &e);
                Err(e)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Step;

    /// docs/json.md's row for the `step` field names every step, in order.
    #[test]
    fn json_md_lists_every_step() {
        let doc = include_str!("../../docs/json.md");
        let row = doc
            .lines()
            .find(|l| l.starts_with("| `step` | string |"))
            .expect("docs/json.md has a row for the step field");
        let documented: Vec<&str> = row
            .split('|')
            .nth(3)
            .unwrap()
            .split(',')
            .map(|s| s.trim().trim_matches('`'))
            .collect();
        let code: Vec<&str> = Step::ALL.iter().map(|s| s.as_str()).collect();
        assert_eq!(documented, code);
    }
}
