//! `[backup]`: a copy of the database before every release command, made
//! by the new image in a one-off container, and how to prove a copy
//! restores. Kept apart from the rest of the config because its keys only
//! matter to the release phase and to `webdock backup(s)`.

use std::time::Duration;

use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Backup {
    /// Writes one backup to `{file}` (also `$WEBDOCK_BACKUP_FILE`); empty
    /// means no backups.
    #[serde(default)]
    pub command: Vec<String>,
    /// Where the backups live inside the container: on the data volume.
    #[serde(default = "d_dir")]
    pub dir: String,
    /// The end of each backup's file name (`.sqlite3`, `.dump`).
    #[serde(default = "d_suffix")]
    pub suffix: String,
    /// How many backups stay; older ones are removed after a new one.
    #[serde(default = "d_keep")]
    pub keep: usize,
    #[serde(default = "d_timeout", with = "humantime_serde")]
    pub timeout: Duration,
    /// `backup --verify`: restores `{file}` into `{scratch}` ...
    #[serde(default)]
    pub restore: Vec<String>,
    /// ... then checks `{scratch}`.
    #[serde(default)]
    pub verify: Vec<String>,
    /// The scratch database: a path in the one-off container for SQLite,
    /// a database name for PostgreSQL.
    #[serde(default = "d_scratch")]
    pub scratch: String,
}

fn d_dir() -> String {
    "/data/backups".into()
}
fn d_suffix() -> String {
    ".backup".into()
}
fn d_keep() -> usize {
    5
}
fn d_timeout() -> Duration {
    Duration::from_secs(600)
}
fn d_scratch() -> String {
    "/tmp/webdock-scratch".into()
}

impl Default for Backup {
    fn default() -> Self {
        Backup {
            command: vec![],
            dir: d_dir(),
            suffix: d_suffix(),
            keep: d_keep(),
            timeout: d_timeout(),
            restore: vec![],
            verify: vec![],
            scratch: d_scratch(),
        }
    }
}

impl Backup {
    pub fn enabled(&self) -> bool {
        !self.command.is_empty()
    }

    /// Each rule in turn; the message names the key.
    pub fn check(&self) -> Result<(), String> {
        for (key, cmd) in [
            ("backup.command", &self.command),
            ("backup.restore", &self.restore),
            ("backup.verify", &self.verify),
        ] {
            super::check_command(key, cmd, true)?;
        }
        if !self.dir.starts_with('/')
            || self.dir.split('/').any(|c| c == "..")
            || self.dir.chars().any(char::is_control)
        {
            return Err(format!(
                "backup.dir {:?} must be an absolute path in the container, without '..'",
                self.dir
            ));
        }
        if !self
            .suffix
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
        {
            return Err(format!(
                "backup.suffix {:?} may hold only letters, digits, '.', '_' and '-'",
                self.suffix
            ));
        }
        if self.keep == 0 {
            return Err("backup.keep must be at least 1".into());
        }
        if self.timeout.is_zero() {
            return Err("backup.timeout must not be 0".into());
        }
        if self.scratch.is_empty() || self.scratch.chars().any(char::is_control) {
            return Err(format!(
                "backup.scratch {:?} is not a path or name",
                self.scratch
            ));
        }
        Ok(())
    }
}

/// Fills `{file}`, `{scratch}`, `{tag}` in each argument.
pub fn fill(cmd: &[String], vars: &[(&str, &str)]) -> Vec<String> {
    cmd.iter()
        .map(|a| {
            vars.iter()
                .fold(a.clone(), |a, (k, v)| a.replace(&format!("{{{k}}}"), v))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use std::path::Path;

    fn parse(t: &str) -> Result<Config, String> {
        Config::parse(Path::new("/srv/app/webdock.toml"), t).map_err(|e| e.to_string())
    }

    #[test]
    fn backup_keys_default_and_are_checked() {
        let c = parse("project = \"d\"\n").unwrap();
        assert!(!c.backup.enabled());
        assert_eq!(c.backup.keep, 5);
        let c =
            parse("project = \"d\"\n[backup]\ncommand = [\"b\", \"{file}\"]\nkeep = 2\n").unwrap();
        assert!(c.backup.enabled());
        for (text, needle) in [
            ("keep = 0", "backup.keep"),
            ("dir = \"data\"", "backup.dir"),
            ("dir = \"/data/../etc\"", "backup.dir"),
            ("suffix = \"/x\"", "backup.suffix"),
            ("command = [\"\"]", "backup.command"),
            ("verify = [\"a\\u0000\"]", "backup.verify"),
            ("kep = 3", "kep"),
        ] {
            let e = parse(&format!("project = \"d\"\n[backup]\n{text}\n")).unwrap_err();
            assert!(e.contains(needle), "{text}: {e}");
        }
    }

    #[test]
    fn placeholders_are_filled_in_every_argument() {
        let cmd = ["sh", "-c", "cp {file} {scratch}.{tag}"].map(String::from);
        assert_eq!(
            fill(
                &cmd,
                &[("file", "/b/1.db"), ("scratch", "/tmp/s"), ("tag", "1")]
            ),
            ["sh", "-c", "cp /b/1.db /tmp/s.1"]
        );
    }
}
