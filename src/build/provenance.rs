//! What the image says about where it came from: the release tag, the
//! app's git revision and a creation time that repeats for repeated builds
//! of the same commit, as labels and an `ENV`.

use std::collections::HashMap;
use std::path::Path;

use crate::config::Config;
use crate::names::Tag;
use crate::proc;

const DOCKERFILE: &str = include_str!("../../dockerfiles/webdocker.Dockerfile");

/// What the image says about where it came from.
pub struct Provenance {
    pub revision: String,
    pub created: String,
}

/// git commit of the app (with `-dirty` when it has changes) and a creation
/// time that repeats for repeated builds of the same inputs, so a rebuild
/// with no change is the same image: `SOURCE_DATE_EPOCH`, else the commit
/// time of a clean checkout, else `fallback` (the build passes the newest
/// time among the app's files: stable while nothing is edited).
pub fn provenance(app: &Path, fallback: impl FnOnce() -> String) -> Provenance {
    let git = |args: &[&str]| {
        proc::run("git", args, Some(app), None)
            .ok()
            .map(|s| s.trim().to_string())
    };
    let commit = git(&["rev-parse", "HEAD"]).filter(|s| !s.is_empty());
    let dirty = git(&["status", "--porcelain", "--", "."]).is_some_and(|s| !s.is_empty());
    let revision = match &commit {
        Some(c) if dirty => format!("{c}-dirty"),
        Some(c) => c.clone(),
        None => "unknown".into(),
    };
    let from_epoch = std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .and_then(|s| s.parse::<i64>().ok())
        .and_then(|s| time::OffsetDateTime::from_unix_timestamp(s).ok())
        .map(crate::clock::rfc3339);
    let created = from_epoch
        .or_else(|| {
            if commit.is_some() && !dirty {
                git(&["log", "-1", "--format=%cI"])
            } else {
                None
            }
        })
        .unwrap_or_else(fallback);
    Provenance { revision, created }
}

/// Build arguments the Dockerfile reads.
pub fn build_args(base: &str) -> HashMap<String, String> {
    HashMap::from([("BASE_IMAGE".into(), base.into())])
}

/// Labels of the image: who it is (`webdock.tag`, which promote checks, and
/// `webdock.djobs`, the djobs baked in) and the OCI provenance labels.
pub fn labels(cfg: &Config, tag: &Tag, p: &Provenance) -> Vec<(String, String)> {
    vec![
        (crate::roles::LABEL_TAG.into(), tag.to_string()),
        (
            crate::roles::LABEL_DJOBS.into(),
            cfg.djobs
                .iter()
                .map(|d| d.name.as_str())
                .collect::<Vec<_>>()
                .join(","),
        ),
        ("org.opencontainers.image.version".into(), tag.to_string()),
        (
            "org.opencontainers.image.revision".into(),
            p.revision.clone(),
        ),
        ("org.opencontainers.image.created".into(), p.created.clone()),
    ]
}

/// The Dockerfile sent to the engine: the project's, plus the release as an
/// `ENV` and one `LABEL` line, with literal values. No ARG steps to carry
/// them: every step costs a layer commit (seconds on a busy engine), and the
/// build API's own `labels` parameter adds one LABEL step per label.
pub fn dockerfile_with_labels(tag: &Tag, labels: &[(String, String)]) -> String {
    let quote = |v: &str| {
        format!(
            "\"{}\"",
            v.replace('\\', "\\\\")
                .replace('"', "\\\"")
                .replace('\n', " ")
        )
    };
    let parts: Vec<String> = labels
        .iter()
        .map(|(k, v)| format!("{k}={}", quote(v)))
        .collect();
    format!(
        "{}\nENV WEBDOCK_RELEASE={}\nLABEL {}\n",
        DOCKERFILE.trim_end(),
        quote(tag.as_str()),
        parts.join(" \\\n      ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_one_literal_step_with_quotes_escaped() {
        let tag = Tag::parse("1.0").unwrap();
        let labels = [("a.b".into(), "1.0".into()), ("c".into(), "x\"y\\z".into())];
        let d = dockerfile_with_labels(&tag, &labels);
        let tail: Vec<&str> = d.lines().rev().take(3).collect();
        assert_eq!(
            tail,
            [
                r#"      c="x\"y\\z""#,
                r#"LABEL a.b="1.0" \"#,
                r#"ENV WEBDOCK_RELEASE="1.0""#
            ]
        );
        assert_eq!(d.lines().filter(|l| l.starts_with("LABEL ")).count(), 1);
    }
}
