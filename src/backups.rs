//! The record of the backups webdock made: `backups.json` in the state
//! directory, one object per backup that still exists, oldest first.
//!
//! The backups themselves live on the data volume, inside the containers'
//! world (a named volume, or a database server for `pg_dump`), where only
//! a container of the image can reach them; this record is how
//! `webdock backups` lists them, how `keep` finds the old ones and how
//! history names the backup that preceded a release. Rewritten whole and
//! atomically (temp file, fsync, rename, fsync of the directory): a crash
//! leaves the old record or the new one, never a torn one.

use std::io::Write;
use std::path::Path;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// `<tag>-<UTC time>`: what history and `webdock backups` call it.
    pub name: String,
    /// Its path inside the container (on the data volume).
    pub file: String,
    /// The release it was taken before, made by that release's image.
    pub tag: String,
    pub when: String,
    pub seconds: f64,
}

#[derive(Debug, thiserror::Error)]
pub enum BackupsError {
    #[error("backup record {path}: {cause}")]
    Io {
        path: std::path::PathBuf,
        cause: std::io::Error,
    },
    #[error("backup record {path} is not valid JSON: {cause}\nhint: move it away; the backups on the data volume stay")]
    Parse {
        path: std::path::PathBuf,
        cause: serde_json::Error,
    },
}

/// `3.46.0-20261204T213927Z`: sorts by tag, then time; unique per second.
pub fn name_for(tag: &str, t: time::OffsetDateTime) -> String {
    let f = time::macros::format_description!("[year][month][day]T[hour][minute][second]Z");
    let t = t.to_offset(time::UtcOffset::UTC);
    format!("{tag}-{}", t.format(&f).unwrap_or_default())
}

pub fn read(path: &Path) -> Result<Vec<Record>, BackupsError> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(vec![]),
        Err(cause) => {
            return Err(BackupsError::Io {
                path: path.into(),
                cause,
            })
        }
    };
    serde_json::from_str(&text).map_err(|cause| BackupsError::Parse {
        path: path.into(),
        cause,
    })
}

pub fn write(path: &Path, records: &[Record]) -> Result<(), BackupsError> {
    let io = |cause| BackupsError::Io {
        path: path.into(),
        cause,
    };
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(io)?;
    let mut text = serde_json::to_vec_pretty(records)
        .map_err(std::io::Error::other)
        .map_err(io)?;
    text.push(b'\n');
    tmp.write_all(&text).map_err(io)?;
    tmp.as_file().sync_all().map_err(io)?;
    tmp.persist(path).map_err(|e| io(e.error))?;
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io)?;
    Ok(())
}

/// The backups beyond the newest `keep`, oldest first: to be removed.
pub fn beyond_keep(records: &[Record], keep: usize) -> Vec<Record> {
    let n = records.len().saturating_sub(keep);
    records[..n].to_vec()
}

/// The newest backup taken before `tag`'s release command.
pub fn newest_for<'a>(records: &'a [Record], tag: &str) -> Option<&'a Record> {
    records.iter().rev().find(|r| r.tag == tag)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(name: &str, tag: &str) -> Record {
        Record {
            name: name.into(),
            file: format!("/data/backups/{name}"),
            tag: tag.into(),
            when: "2026-12-04T21:00:00Z".into(),
            seconds: 0.5,
        }
    }

    #[test]
    fn names_keep_and_newest() {
        let t = time::macros::datetime!(2026-12-04 21:39:27 UTC);
        assert_eq!(name_for("3.46.0", t), "3.46.0-20261204T213927Z");
        let rs = vec![rec("a", "1"), rec("b", "2"), rec("c", "2")];
        assert_eq!(beyond_keep(&rs, 2), vec![rec("a", "1")]);
        assert!(beyond_keep(&rs, 5).is_empty());
        assert_eq!(newest_for(&rs, "2").unwrap().name, "c");
        assert!(newest_for(&rs, "3").is_none());
    }

    #[test]
    fn the_record_round_trips_and_starts_empty() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("backups.json");
        assert!(read(&p).unwrap().is_empty());
        let rs = vec![rec("a", "1"), rec("b", "2")];
        write(&p, &rs).unwrap();
        assert_eq!(read(&p).unwrap(), rs);
        std::fs::write(&p, "{").unwrap();
        assert!(read(&p).unwrap_err().to_string().contains("backups.json"));
    }
}
