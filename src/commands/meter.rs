//! Progress of a push, pull or ship, one shape for every verb that moves
//! an image (`build --push`, `pull`, `ship`, and `promote`'s delivery step):
//! on a terminal a live bar of bytes and layers, otherwise a plain line per
//! change of a layer's state, and with `--json` one event per change (see
//! docs/json.md). From `promote` every line and event names its host.

use std::collections::{BTreeMap, HashSet};

use serde_json::json;

use crate::delivery::LayerSeen;
use crate::engine::Progress;
use crate::out::{Out, Transfer};

pub fn mb(b: u64) -> String {
    format!("{:.1} MB", b as f64 / 1e6)
}

/// A layer as a push or pull reports it.
#[derive(Default)]
struct Layer {
    current: u64,
    total: Option<u64>,
    done: bool,
}

/// Push and pull progress (`kind` is `push` or `pull`).
pub struct Meter {
    out: Out,
    kind: &'static str,
    host: Option<String>,
    seen: HashSet<(String, String)>,
    layers: BTreeMap<String, Layer>,
    bar: Option<Transfer>,
}

/// A layer's state that means its bytes are all there.
fn finished(status: &str) -> bool {
    matches!(
        status,
        "Pushed"
            | "Layer already exists"
            | "Download complete"
            | "Pull complete"
            | "Already exists"
    )
}

impl Meter {
    pub fn new(out: Out, kind: &'static str, host: Option<&str>) -> Meter {
        let prefix = match host {
            Some(h) => format!("{h}: {kind}"),
            None => kind.to_string(),
        };
        Meter {
            out,
            kind,
            host: host.map(str::to_owned),
            seen: HashSet::new(),
            layers: BTreeMap::new(),
            bar: out.transfer(&prefix, true),
        }
    }

    fn prefix(&self) -> String {
        match &self.host {
            Some(h) => format!("{h}: {}", self.kind),
            None => self.kind.to_string(),
        }
    }

    pub fn see(&mut self, p: Progress) {
        if !p.layer.is_empty() {
            let l = self.layers.entry(p.layer.clone()).or_default();
            // Extracting counts the same bytes again: only transfers count.
            if matches!(p.status.as_str(), "Downloading" | "Pushing") {
                l.current = p.current.unwrap_or(l.current);
                l.total = p.total.or(l.total);
            }
            if finished(&p.status) {
                l.done = true;
                l.current = l.total.unwrap_or(l.current);
            }
        }
        if let (Some(bar), true) = (&self.bar, self.layers.is_empty()) {
            // A push names no layers (bollard drops the id): its bytes only.
            if let (Some(c), Some(t)) = (p.current, p.total) {
                bar.update(c, t, p.status.clone());
            }
        } else if let Some(bar) = &self.bar {
            let done = self.layers.values().map(|l| l.current).sum();
            let total = self.layers.values().map(|l| l.total.unwrap_or(0)).sum();
            let complete = self.layers.values().filter(|l| l.done).count();
            bar.update(
                done,
                total,
                format!("{complete}/{} layers", self.layers.len()),
            );
        }
        // Byte updates repeat the status; report each (layer, status) once.
        if !self.seen.insert((p.layer.clone(), p.status.clone())) {
            return;
        }
        if self.out.json {
            let mut e = json!({ "layer": p.layer, "status": p.status, "current": p.current, "total": p.total });
            if let Some(h) = &self.host {
                e["host"] = h.as_str().into();
            }
            self.out.event(self.kind, e);
        } else if self.bar.is_none() {
            let line = if p.layer.is_empty() {
                format!("{}: {}", self.prefix(), p.status)
            } else {
                let size = p.total.map(|t| format!(" ({})", mb(t))).unwrap_or_default();
                format!("{} {}: {}{size}", self.prefix(), p.layer, p.status)
            };
            self.out.progress(&line);
        }
    }
}

/// Ship progress: a bar of layers on a terminal, else a line (or a
/// `ship-layer` event) per layer as the stream reaches it.
pub struct ShipMeter {
    out: Out,
    host: Option<String>,
    bar: Option<Transfer>,
    seen: u64,
    sent: u64,
}

impl ShipMeter {
    pub fn new(out: Out, host: Option<&str>) -> ShipMeter {
        let prefix = match host {
            Some(h) => format!("{h}: ship"),
            None => "ship".into(),
        };
        ShipMeter {
            out,
            host: host.map(str::to_owned),
            bar: out.transfer(&prefix, false),
            seen: 0,
            sent: 0,
        }
    }

    pub fn layer(&mut self, l: &LayerSeen, total: usize) {
        self.seen += 1;
        if l.sent {
            self.sent += l.bytes;
        }
        if self.out.json {
            let mut e = json!({ "position": l.position, "layers": total, "bytes": l.bytes, "sent": l.sent });
            if let Some(h) = &self.host {
                e["host"] = h.as_str().into();
            }
            self.out.event("ship-layer", e);
        } else if let Some(bar) = &self.bar {
            bar.update(
                self.seen,
                total as u64,
                format!("layers, {} sent", mb(self.sent)),
            );
        } else {
            let pos = l.position.map_or("?".into(), |p| (p + 1).to_string());
            let what = if l.sent {
                "sending"
            } else {
                "skipped (the target has it)"
            };
            let host = self
                .host
                .as_ref()
                .map(|h| format!("{h}: "))
                .unwrap_or_default();
            self.out.progress(&format!(
                "{host}layer {pos}/{total} {}: {what}",
                mb(l.bytes)
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(layer: &str, status: &str, current: Option<u64>, total: Option<u64>) -> Progress {
        Progress {
            layer: layer.into(),
            status: status.into(),
            current,
            total,
        }
    }

    #[test]
    fn a_pull_counts_transferred_bytes_and_finished_layers_once() {
        let tty = Out {
            json: false,
            tty: true,
            color: false,
        };
        let mut m = Meter::new(tty, "pull", Some("web1"));
        assert!(m.bar.is_some(), "a terminal gets a live bar");
        m.see(p("a", "Pulling fs layer", None, None));
        m.see(p("a", "Downloading", Some(10), Some(100)));
        m.see(p("b", "Already exists", None, None));
        m.see(p("a", "Downloading", Some(60), Some(100)));
        // extracting reports the same bytes again: not counted twice
        m.see(p("a", "Extracting", Some(100), Some(100)));
        assert_eq!(m.layers["a"].current, 60);
        m.see(p("a", "Pull complete", None, None));
        assert_eq!(
            (
                m.layers["a"].current,
                m.layers["a"].done,
                m.layers["b"].done
            ),
            (100, true, true)
        );
        assert_eq!(m.prefix(), "web1: pull");
        drop(m);
        let plain = Meter::new(Out::plain(), "push", None);
        assert!(plain.bar.is_none(), "no bar without a terminal");
    }
}
