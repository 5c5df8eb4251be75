//! Where output goes: stdout is for data (an image id, a table, JSON lines
//! with `--json`), stderr for progress and logs. Progress is a live line on a
//! terminal and plain lines otherwise; `--json` turns progress into events
//! with a documented shape (`docs/json.md`).

use std::io::{IsTerminal, Write};

use serde_json::{json, Value};

#[derive(Debug, Clone, Copy)]
pub struct Out {
    pub json: bool,
    pub tty: bool,
}

impl Out {
    pub fn new(json: bool) -> Out {
        Out {
            json,
            tty: std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none(),
        }
    }

    /// A progress line for people; an `{"event":"progress"}` object in JSON mode.
    pub fn progress(&self, msg: &str) {
        if self.json {
            self.event("progress", json!({ "message": msg }));
        } else if self.tty {
            eprintln!("\x1b[2m·\x1b[0m {msg}");
        } else {
            eprintln!("{msg}");
        }
    }

    /// A step boundary: `{"event":"step","step":..,"status":"start"|"done"|"failed",..}`.
    pub fn step(&self, step: &str, status: &str, extra: Value) {
        if self.json {
            let mut v = json!({ "step": step, "status": status });
            if let (Some(m), Value::Object(e)) = (v.as_object_mut(), extra) {
                m.extend(e);
            }
            self.event("step", v);
        } else if status != "start" {
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
            let mark = if status == "done" { "✓" } else { "✗" };
            if self.tty {
                eprintln!("{mark} {step}{detail}");
            } else {
                eprintln!("{step}: {status}{detail}");
            }
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
