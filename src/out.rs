//! Where output goes: stdout is for data (an image id, a table, JSON with
//! `--json`), stderr for progress, notes and warnings. Every verb prints
//! through [`Out`]; nothing else in `commands/` writes to the terminal.
//!
//! Progress is a live spinner on a terminal (indicatif), plain lines
//! otherwise, and `{"event": …}` lines with `--json` (shape in
//! `docs/json.md`). A push, pull or ship on a terminal is a live bar of
//! bytes and layers ([`Transfer`]); several (one per host) stack.
//! `NO_COLOR` removes colour only, not the live progress.

use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{LazyLock, Mutex};
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use serde_json::{json, Value};

#[derive(Debug, Clone, Copy)]
pub struct Out {
    pub json: bool,
    /// stderr is a terminal: live progress.
    pub tty: bool,
    /// colour on stderr (a terminal, and `NO_COLOR` unset).
    pub color: bool,
}

/// The spinner of the step in progress (one at a time: steps are sequential
/// within a command).
static SPINNER: Mutex<Option<ProgressBar>> = Mutex::new(None);

fn spinner() -> std::sync::MutexGuard<'static, Option<ProgressBar>> {
    SPINNER.lock().unwrap_or_else(|e| e.into_inner())
}

/// The transfers' bars, and how many are live: lines go above them.
static BARS: LazyLock<MultiProgress> = LazyLock::new(MultiProgress::new);
static LIVE_BARS: AtomicUsize = AtomicUsize::new(0);

/// A live bar of one transfer on a terminal: done of total (bytes, or
/// layers for a ship) and a message (the layers). Cleared when dropped.
pub struct Transfer(ProgressBar);

impl Transfer {
    pub fn update(&self, done: u64, total: u64, msg: String) {
        self.0.set_length(total.max(done));
        self.0.set_position(done);
        self.0.set_message(msg);
    }
}

impl Drop for Transfer {
    fn drop(&mut self) {
        self.0.finish_and_clear();
        BARS.remove(&self.0);
        LIVE_BARS.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Out {
    pub fn new(json: bool) -> Out {
        Out::decide(
            json,
            std::io::stderr().is_terminal(),
            std::env::var_os("NO_COLOR").is_some(),
        )
    }

    /// The pure part of [`Out::new`]: colour needs a terminal and no
    /// `NO_COLOR`; `NO_COLOR` changes nothing else.
    fn decide(json: bool, tty: bool, no_color: bool) -> Out {
        Out {
            json,
            tty,
            color: tty && !no_color,
        }
    }

    /// A live spinner for steps: a terminal, and not `--json` (which prints
    /// events on stdout instead).
    fn live(&self) -> bool {
        self.tty && !self.json
    }

    /// Plain output for tests and pipes.
    pub fn plain() -> Out {
        Out {
            json: false,
            tty: false,
            color: false,
        }
    }

    fn paint(&self, code: &str, s: &str) -> String {
        if self.color {
            format!("\x1b[{code}m{s}\x1b[0m")
        } else {
            s.to_string()
        }
    }

    /// A line on stderr that does not tear a live spinner or bar.
    fn line(&self, s: &str) {
        match spinner().as_ref() {
            Some(pb) => pb.println(s),
            None if LIVE_BARS.load(Ordering::SeqCst) > 0 => {
                let _ = BARS.println(s);
            }
            None => eprintln!("{s}"),
        }
    }

    /// A live transfer bar labelled `prefix`, on a terminal only (None
    /// with `--json` or without a terminal: the caller prints lines).
    /// `bytes`: the bar counts bytes, else items.
    pub fn transfer(&self, prefix: &str, bytes: bool) -> Option<Transfer> {
        if self.json || !self.tty {
            return None;
        }
        let count = if bytes {
            "{bytes}/{total_bytes}"
        } else {
            "{pos}/{len}"
        };
        let pb = BARS.add(ProgressBar::new(0));
        pb.set_style(
            ProgressStyle::with_template(&format!(
                "{{prefix}} [{{bar:30}}] {count} {{msg}} {{elapsed}}"
            ))
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
        );
        pb.set_prefix(prefix.to_string());
        pb.enable_steady_tick(Duration::from_millis(200));
        LIVE_BARS.fetch_add(1, Ordering::SeqCst);
        Some(Transfer(pb))
    }

    /// A progress line for people; an `{"event":"progress"}` object in JSON mode.
    pub fn progress(&self, msg: &str) {
        if self.json {
            self.event("progress", json!({ "message": msg }));
        } else if self.tty {
            self.line(&format!("{} {msg}", self.paint("2", "·")));
        } else {
            eprintln!("{msg}");
        }
    }

    /// A note for people on stderr (the end of a command, what it did).
    pub fn note(&self, msg: &str) {
        if !self.json {
            self.line(msg);
        }
    }

    /// A warning on stderr, in every mode.
    pub fn warn(&self, msg: &str) {
        self.line(&format!("{} {msg}", self.paint("33", "warning:")));
    }

    /// A line of data on stdout.
    pub fn data(&self, line: &str) {
        let mut o = std::io::stdout().lock();
        let _ = writeln!(o, "{line}");
    }

    /// Raw bytes on stdout as they come (a container's log), flushed; a
    /// closed pipe is an error for the caller (it stops reading).
    pub fn data_bytes(&self, b: &[u8]) -> std::io::Result<()> {
        let mut o = std::io::stdout().lock();
        o.write_all(b)?;
        o.flush()
    }

    /// One compact JSON document on stdout.
    pub fn data_json(&self, v: &Value) {
        self.data(&v.to_string());
    }

    /// One pretty-printed JSON document on stdout.
    pub fn data_pretty(&self, v: &impl serde::Serialize) -> anyhow::Result<()> {
        self.data(&serde_json::to_string_pretty(v)?);
        Ok(())
    }

    /// A step boundary: `{"event":"step","step":..,"status":"start"|"done"|"failed",..}`.
    pub fn step(&self, step: &str, status: &str, extra: Value) {
        if self.json {
            let mut v = json!({ "step": step, "status": status });
            if let (Some(m), Value::Object(e)) = (v.as_object_mut(), extra) {
                m.extend(e);
            }
            self.event("step", v);
            return;
        }
        if status == "start" {
            if self.live() {
                let pb = ProgressBar::new_spinner();
                pb.set_style(
                    ProgressStyle::with_template("{spinner} {msg} {elapsed}")
                        .unwrap_or_else(|_| ProgressStyle::default_spinner()),
                );
                pb.set_message(step.to_string());
                pb.enable_steady_tick(Duration::from_millis(100));
                if let Some(old) = spinner().replace(pb) {
                    old.finish_and_clear();
                }
            }
            return;
        }
        if let Some(pb) = spinner().take() {
            pb.finish_and_clear();
        }
        let detail = match &extra {
            Value::Object(m) if !m.is_empty() => {
                let parts: Vec<String> = m
                    .iter()
                    .map(|(k, v)| match v {
                        Value::String(s) => format!("{k}={s}"),
                        v => format!("{k}={v}"),
                    })
                    .collect();
                format!(" ({})", parts.join(", "))
            }
            _ => String::new(),
        };
        if self.tty {
            let mark = if status == "done" {
                self.paint("32", "✓")
            } else {
                self.paint("31", "✗")
            };
            eprintln!("{mark} {step}{detail}");
        } else {
            eprintln!("{step}: {status}{detail}");
        }
    }

    /// A JSON event line on stdout (JSON mode only).
    pub fn event(&self, kind: &str, body: Value) {
        if !self.json {
            return;
        }
        let mut v = json!({ "event": kind, "time": crate::clock::now_rfc3339() });
        if let (Some(m), Value::Object(b)) = (v.as_object_mut(), body) {
            m.extend(b);
        }
        let mut o = std::io::stdout().lock();
        let _ = writeln!(o, "{v}");
        let _ = o.flush();
    }
}

#[cfg(test)]
mod tests {
    use super::Out;

    #[test]
    fn no_color_removes_colour_only() {
        // (json, tty, NO_COLOR set) -> (live progress, colour)
        let table = [
            ((false, true, false), (true, true)),
            ((false, true, true), (true, false)),
            ((false, false, false), (false, false)),
            ((false, false, true), (false, false)),
            ((true, true, false), (false, true)),
            ((true, true, true), (false, false)),
            ((true, false, false), (false, false)),
            ((true, false, true), (false, false)),
        ];
        for ((json, tty, no_color), (live, color)) in table {
            let out = Out::decide(json, tty, no_color);
            assert_eq!(
                (out.live(), out.color, out.json),
                (live, color, json),
                "json={json} tty={tty} NO_COLOR={no_color}"
            );
        }
    }
}
