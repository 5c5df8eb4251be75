//! Where a container's output goes, and how much of it the host keeps.
//!
//! A stock Debian engine ships no `daemon.json`: every container then logs
//! to json-file with no size limit, and a chatty djob fills
//! `/var/lib/docker` over weeks. So webdock sets the log driver on every
//! container it creates, defaulting to a bounded json-file (`max-size` 10m,
//! `max-file` 3: at most 30 MB per container), whatever the engine's
//! defaults. `[logging]` in webdock.toml changes it for all roles, and a
//! `logging` table in `[portal]`, `[cron]` or `[djobs.NAME]` for one role.
//!
//! Options of json-file and local (the drivers whose files webdock and
//! `docker logs` read back) are checked at load, since the engine would
//! otherwise refuse them only at container create, mid-promote.

use std::collections::BTreeMap;

use serde::Deserialize;

pub use crate::engine::LogConfig;

pub const DEFAULT_DRIVER: &str = "json-file";
pub const DEFAULT_MAX_SIZE: &str = "10m";
pub const DEFAULT_MAX_FILE: &str = "3";

/// A `logging` table as written.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct LogSettings {
    pub driver: Option<String>,
    pub options: Option<BTreeMap<String, OptValue>>,
}

/// Docker takes option values as strings; TOML lets people write
/// `max-file = 3`.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(untagged)]
pub enum OptValue {
    Str(String),
    Int(i64),
    Bool(bool),
}

impl OptValue {
    fn text(&self) -> String {
        match self {
            OptValue::Str(s) => s.clone(),
            OptValue::Int(i) => i.to_string(),
            OptValue::Bool(b) => b.to_string(),
        }
    }
}

/// The bounded default options of a driver that writes files on the host.
fn default_options(driver: &str) -> BTreeMap<String, String> {
    match driver {
        "json-file" | "local" => BTreeMap::from([
            ("max-size".into(), DEFAULT_MAX_SIZE.into()),
            ("max-file".into(), DEFAULT_MAX_FILE.into()),
        ]),
        _ => BTreeMap::new(),
    }
}

/// A role's log config: its own table over the global one, over the
/// default. A table that names a driver and no options gets that driver's
/// bounded defaults (json-file, local) or none (any other driver); options
/// without a driver apply to the inherited driver. `options = {}` means the
/// engine's own defaults for that driver.
pub fn resolve(global: Option<&LogSettings>, role: Option<&LogSettings>) -> LogConfig {
    let mut driver = DEFAULT_DRIVER.to_string();
    let mut options = default_options(&driver);
    for layer in [global, role].into_iter().flatten() {
        if let Some(d) = &layer.driver {
            if *d != driver {
                options = default_options(d);
            }
            driver = d.clone();
        }
        if let Some(o) = &layer.options {
            options = o.iter().map(|(k, v)| (k.clone(), v.text())).collect();
        }
    }
    LogConfig { driver, options }
}

fn is_size(v: &str) -> bool {
    let v = v.trim().to_ascii_lowercase();
    let digits = v.trim_end_matches(|c: char| c.is_ascii_alphabetic());
    let unit = &v[digits.len()..];
    !digits.is_empty()
        && digits.chars().all(|c| c.is_ascii_digit())
        && matches!(unit, "" | "b" | "k" | "kb" | "m" | "mb" | "g" | "gb")
}

/// Refuses what the engine would refuse at container create.
pub fn check(key: &str, l: &LogConfig) -> Result<(), String> {
    let d = &l.driver;
    if d.is_empty()
        || !d
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':' | '/'))
    {
        return Err(format!("{key}.driver {d:?} is not a log driver name"));
    }
    for (k, v) in &l.options {
        if k.contains('\0') || v.contains('\0') {
            return Err(format!("{key}.options {k:?} holds a NUL byte"));
        }
    }
    let known: &[&str] = match d.as_str() {
        "json-file" => &[
            "max-size",
            "max-file",
            "compress",
            "labels",
            "labels-regex",
            "env",
            "env-regex",
            "tag",
        ],
        "local" => &["max-size", "max-file", "compress"],
        "none" => &[],
        _ => return Ok(()),
    };
    for (k, v) in &l.options {
        if !known.contains(&k.as_str()) {
            return Err(format!(
                "{key}.options: unknown option {k:?} for driver {d} (known: {})",
                known.join(", ")
            ));
        }
        match k.as_str() {
            "max-size" if !is_size(v) => {
                return Err(format!(
                    "{key}.options max-size {v:?} is not a size like 10m"
                ))
            }
            "max-file" if v.parse::<u32>().map_or(true, |n| n < 1) => {
                return Err(format!(
                    "{key}.options max-file {v:?} must be a whole number of at least 1"
                ))
            }
            "compress" if !matches!(v.as_str(), "true" | "false") => {
                return Err(format!(
                    "{key}.options compress {v:?} must be true or false"
                ))
            }
            _ => {}
        }
    }
    if d == "json-file" && l.options.contains_key("max-file") && !l.options.contains_key("max-size")
    {
        return Err(format!("{key}.options max-file needs max-size"));
    }
    Ok(())
}

/// Does this config let the container's log grow without limit on the
/// host's disk? json-file without `max-size` does. local is bounded by its
/// own defaults (100 MB). Other drivers send logs elsewhere (journald,
/// syslog, a collector), or nowhere (none).
pub fn unbounded(l: &LogConfig) -> bool {
    l.driver == "json-file" && l.options.get("max-size").is_none_or(|s| s.trim() == "-1")
}

/// Drivers `docker logs` (and `webdock logs`) can read back without the
/// engine's dual logging: the others need Docker 20.10's local cache,
/// which a daemon.json may turn off.
pub fn readable(driver: &str) -> bool {
    matches!(driver, "json-file" | "local" | "journald")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(driver: Option<&str>, opts: Option<&[(&str, &str)]>) -> LogSettings {
        LogSettings {
            driver: driver.map(str::to_owned),
            options: opts.map(|o| {
                o.iter()
                    .map(|(k, v)| (k.to_string(), OptValue::Str(v.to_string())))
                    .collect()
            }),
        }
    }

    #[test]
    fn the_default_is_a_bounded_json_file() {
        let l = resolve(None, None);
        assert_eq!(l.driver, "json-file");
        assert_eq!(l.options["max-size"], "10m");
        assert_eq!(l.options["max-file"], "3");
        assert!(!unbounded(&l));
        assert_eq!(check("logging", &l), Ok(()));
    }

    #[test]
    fn a_role_overrides_the_global_table() {
        let g = s(None, Some(&[("max-size", "50m"), ("max-file", "2")]));
        assert_eq!(resolve(Some(&g), None).options["max-size"], "50m");
        // another driver without options: that driver's defaults
        let r = s(Some("journald"), None);
        let l = resolve(Some(&g), Some(&r));
        assert_eq!((l.driver.as_str(), l.options.len()), ("journald", 0));
        // options alone keep the inherited driver
        let r = s(None, Some(&[("max-size", "1m")]));
        let l = resolve(Some(&g), Some(&r));
        assert_eq!(l.driver, "json-file");
        assert_eq!(l.options.len(), 1);
        // local without options: bounded defaults too
        assert_eq!(
            resolve(Some(&s(Some("local"), None)), None).options["max-file"],
            "3"
        );
        // options = {} is the engine's default: unbounded for json-file
        let l = resolve(Some(&s(Some("json-file"), Some(&[]))), None);
        assert!(unbounded(&l));
    }

    #[test]
    fn bad_options_are_refused_naming_the_key() {
        let bad = [
            (s(None, Some(&[("max-size", "ten")])), "max-size \"ten\""),
            (
                s(None, Some(&[("max-size", "1m"), ("max-file", "0")])),
                "max-file",
            ),
            (
                s(None, Some(&[("max-fil", "2")])),
                "unknown option \"max-fil\"",
            ),
            (s(None, Some(&[("max-file", "2")])), "needs max-size"),
            (s(Some("bad driver"), None), "not a log driver"),
            (s(Some("local"), Some(&[("compress", "yes")])), "compress"),
        ];
        for (settings, needle) in bad {
            let e = check("djobs.x.logging", &resolve(Some(&settings), None)).unwrap_err();
            assert!(
                e.contains(needle) && e.starts_with("djobs.x.logging"),
                "{e}"
            );
        }
        let fine = s(
            Some("syslog"),
            Some(&[("syslog-address", "udp://1.2.3.4:514")]),
        );
        assert_eq!(check("logging", &resolve(Some(&fine), None)), Ok(()));
        assert!(is_size("512k") && is_size("1GB") && !is_size("m") && !is_size("-1"));
    }
}
