//! `history.jsonl`: one JSON object per promote, rollback or portal restart.
//!
//! Append-only: each entry is one `write(2)` with O_APPEND followed by an
//! fsync, so a crash can at worst leave a torn *last* line, never damage an
//! earlier one. Readers skip (and report) a line that does not parse.

use std::io::Write;
use std::path::Path;

use serde::{Deserialize, Serialize};

/// Why a deploy ran: the mode that travels through the orchestration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Intent {
    Promote,
    Rollback,
    /// The live tag into the idle color, then the flip; no release
    /// command, workers untouched.
    RestartPortal,
}

impl Intent {
    pub fn as_str(self) -> &'static str {
        match self {
            Intent::Promote => "promote",
            Intent::Rollback => "rollback",
            Intent::RestartPortal => "restart-portal",
        }
    }

    /// Moves traffic to another release (a portal restart does not).
    pub fn is_release(self) -> bool {
        !matches!(self, Intent::RestartPortal)
    }
}

impl std::fmt::Display for Intent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How a deploy ended; on disk `"ok"` or `"failed: <first line>"`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Ok,
    Failed(String),
}

impl Outcome {
    pub fn is_ok(&self) -> bool {
        matches!(self, Outcome::Ok)
    }
}

impl Serialize for Outcome {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Outcome::Ok => s.serialize_str("ok"),
            Outcome::Failed(why) => s.serialize_str(&format!("failed: {why}")),
        }
    }
}

impl<'de> Deserialize<'de> for Outcome {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Ok(match s.as_str() {
            "ok" => Outcome::Ok,
            other => Outcome::Failed(other.strip_prefix("failed: ").unwrap_or(other).to_string()),
        })
    }
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Outcome::Ok => f.write_str("ok"),
            Outcome::Failed(why) => write!(f, "failed: {why}"),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Entry {
    pub action: Intent,
    pub who: String,
    pub when: String,
    pub tag: String,
    pub from_tag: Option<String>,
    pub from_color: Option<String>,
    pub to_color: Option<String>,
    /// Step name and its duration in seconds, in order.
    pub steps: Vec<(String, f64)>,
    pub seconds: f64,
    pub outcome: Outcome,
    /// The backup taken before this release's release command.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup: Option<String>,
    /// A release across several hosts: each host's colors and steps.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hosts: Vec<HostRecord>,
    /// Hosts left out with `--skip-host`: they are behind.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub skipped: Vec<String>,
    /// Milliseconds between the first and the last host's flip.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flip_window_ms: Option<f64>,
    /// The manifest digest (`sha256:…`) the release ran, resolved once
    /// from the registry at its start; absent without a registry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
}

/// One host's part of a fleet release.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct HostRecord {
    pub host: String,
    pub from_color: Option<String>,
    pub to_color: Option<String>,
    pub steps: Vec<(String, f64)>,
    /// Empty when this host did its part.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Who ran the command: `$SUDO_USER`, else `$USER`, else the uid.
pub fn who() -> String {
    std::env::var("SUDO_USER")
        .or_else(|_| std::env::var("USER"))
        .unwrap_or_else(|_| format!("uid {}", unsafe { libc::getuid() }))
}

pub fn append(file: &Path, e: &Entry) -> std::io::Result<()> {
    let mut line = serde_json::to_vec(e).map_err(std::io::Error::other)?;
    line.push(b'\n');
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .read(true)
        .open(file)?;
    // After a torn write the file does not end in a newline: start a fresh
    // line so the torn fragment cannot swallow this entry.
    let len = f.metadata()?.len();
    if len > 0 {
        use std::io::{Read, Seek, SeekFrom};
        let mut last = [0u8; 1];
        f.seek(SeekFrom::Start(len - 1))?;
        f.read_exact(&mut last)?;
        if last[0] != b'\n' {
            line.insert(0, b'\n');
        }
    }
    f.write_all(&line)?;
    f.sync_data()
}

/// All readable entries, oldest first, and the number of lines skipped.
pub fn read(file: &Path) -> std::io::Result<(Vec<Entry>, usize)> {
    let text = match std::fs::read_to_string(file) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((vec![], 0)),
        Err(e) => return Err(e),
    };
    let mut out = Vec::new();
    let mut bad = 0;
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        match serde_json::from_str(line) {
            Ok(e) => out.push(e),
            Err(_) => bad += 1,
        }
    }
    Ok((out, bad))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(tag: &str) -> Entry {
        Entry {
            action: Intent::Promote,
            who: "ci".into(),
            when: "2026-11-22T00:00:00Z".into(),
            tag: tag.into(),
            from_tag: None,
            from_color: None,
            to_color: Some("blue".into()),
            steps: vec![("flip".into(), 0.001)],
            seconds: 1.5,
            outcome: Outcome::Ok,
            backup: None,
            hosts: vec![],
            skipped: vec![],
            flip_window_ms: None,
            digest: None,
        }
    }

    #[test]
    fn a_torn_last_line_never_costs_earlier_entries() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("history.jsonl");
        append(&p, &entry("1")).unwrap();
        append(&p, &entry("2")).unwrap();
        // a crash in the middle of a write
        std::fs::OpenOptions::new()
            .append(true)
            .open(&p)
            .unwrap()
            .write_all(b"{\"action\":\"prom")
            .unwrap();
        let (es, bad) = read(&p).unwrap();
        assert_eq!(
            es.iter().map(|e| e.tag.as_str()).collect::<Vec<_>>(),
            ["1", "2"]
        );
        assert_eq!(bad, 1);
        append(&p, &entry("3")).unwrap();
        let (es, bad) = read(&p).unwrap();
        assert_eq!(
            es.iter().map(|e| e.tag.as_str()).collect::<Vec<_>>(),
            ["1", "2", "3"]
        );
        assert_eq!(bad, 1);
    }
}

#[cfg(test)]
mod outcome_tests {
    use super::*;

    #[test]
    fn outcome_and_intent_keep_their_strings_on_disk() {
        for (o, s) in [
            (Outcome::Ok, "\"ok\""),
            (Outcome::Failed("health".into()), "\"failed: health\""),
        ] {
            assert_eq!(serde_json::to_string(&o).unwrap(), s);
            assert_eq!(serde_json::from_str::<Outcome>(s).unwrap(), o);
        }
        assert_eq!(
            serde_json::to_string(&Intent::RestartPortal).unwrap(),
            "\"restart-portal\""
        );
    }
}
