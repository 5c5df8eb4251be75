//! Destinations: `-d NAME` merges `webdock.NAME.toml` over `webdock.toml`.
//!
//! Staging and production run the same project from one config with a few
//! keys changed (hosts, public URL, env file). The overlay is merged into
//! the base as TOML tables (a table merges key by key, any other value,
//! arrays included, replaces) *before* the schema sees it, so the merged
//! file passes exactly the validation a single file does. The schema's
//! errors point into the merged text, which no user wrote: they are mapped
//! back to the overlay's (or else the base's) file and line by the key they
//! name. Each destination keeps its own state (`Config::state_name`).

use std::path::{Path, PathBuf};

use toml::{Table, Value};

use super::{Config, ConfigError};

/// `dir/webdock.toml` + `staging` → `dir/webdock.staging.toml`.
pub fn overlay_path(base: &Path, name: &str) -> PathBuf {
    let stem = base
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "webdock".into());
    base.with_file_name(format!("{stem}.{name}.toml"))
}

/// The destinations that have an overlay beside `base`, sorted.
pub fn siblings(base: &Path) -> Vec<String> {
    let stem = base
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let dir = match base.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let f = e.file_name().to_string_lossy().into_owned();
            let name = f.strip_prefix(&format!("{stem}."))?.strip_suffix(".toml")?;
            crate::names::check_simple_name(name).ok()?;
            Some(name.to_owned())
        })
        .collect();
    names.sort();
    names
}

/// The config for `dest` (None: the base file alone).
pub fn load(base: &Path, dest: Option<&str>) -> Result<Config, ConfigError> {
    let Some(name) = dest else {
        return Config::load(base);
    };
    let invalid = |path: &Path, message: String| ConfigError::Invalid {
        path: path.into(),
        message,
    };
    crate::names::check_simple_name(name)
        .map_err(|e| invalid(base, format!("destination {name:?} {e}")))?;
    let overlay = overlay_path(base, name);
    let base_text = read(base)?;
    let over_text = std::fs::read_to_string(&overlay).map_err(|e| {
        invalid(
            &overlay,
            format!(
                "destination {name}: {e}\nhint: create {} with the keys that differ from {}",
                overlay.display(),
                base.display()
            ),
        )
    })?;
    let mut merged = table(base, &base_text)?;
    merge(&mut merged, table(&overlay, &over_text)?);
    let text = toml::to_string(&merged).map_err(|e| invalid(&overlay, e.to_string()))?;
    let mut cfg = Config::parse(base, &text)
        .map_err(|e| blame(e, &text, (&overlay, &over_text), (base, &base_text)))?;
    if cfg.project == "live" && name == "d" {
        return Err(invalid(
            &overlay,
            "destination \"d\" of project \"live\" would share the live.d directory".into(),
        ));
    }
    cfg.destination = Some(name.to_owned());
    Ok(cfg)
}

fn read(path: &Path) -> Result<String, ConfigError> {
    std::fs::read_to_string(path).map_err(|cause| ConfigError::Read {
        path: path.into(),
        cause,
    })
}

fn table(path: &Path, text: &str) -> Result<Table, ConfigError> {
    text.parse::<Table>().map_err(|e| ConfigError::Parse {
        path: path.into(),
        line: line_of(text, e.span().map_or(0, |s| s.start)),
        message: super::one_line(e.message()),
    })
}

fn line_of(text: &str, at: usize) -> usize {
    text[..at.min(text.len())].matches('\n').count() + 1
}

/// Tables merge key by key; every other value of the overlay replaces.
fn merge(base: &mut Table, overlay: Table) {
    for (k, v) in overlay {
        match (base.get_mut(&k), v) {
            (Some(Value::Table(b)), Value::Table(o)) => merge(b, o),
            (_, v) => {
                base.insert(k, v);
            }
        }
    }
}

/// Maps an error about the merged text to the file that wrote the key.
fn blame(e: ConfigError, merged: &str, overlay: (&Path, &str), base: (&Path, &str)) -> ConfigError {
    match e {
        ConfigError::Parse { line, message, .. } => {
            let key = merged.lines().nth(line - 1).and_then(key_of);
            for (path, text) in [overlay, base] {
                if let Some(l) = key.as_deref().and_then(|k| find_key(text, k)) {
                    return ConfigError::Parse {
                        path: path.into(),
                        line: l,
                        message,
                    };
                }
            }
            ConfigError::Invalid {
                path: overlay.0.into(),
                message: format!("(merged over {}) {message}", base.0.display()),
            }
        }
        ConfigError::Invalid { message, .. } => ConfigError::Invalid {
            path: overlay.0.into(),
            message: format!("(merged over {}) {message}", base.0.display()),
        },
        e => e,
    }
}

/// The key a TOML line sets (`key = ...`) or the table it opens (`[a.b]`).
fn key_of(line: &str) -> Option<String> {
    let t = line.trim();
    let k = if let Some(h) = t.strip_prefix('[') {
        h.trim_matches(['[', ']']).rsplit('.').next()?
    } else {
        t.split_once('=')?.0.trim().rsplit('.').next()?
    };
    let k = k.trim().trim_matches(['"', '\'']);
    (!k.is_empty()).then(|| k.to_owned())
}

fn find_key(text: &str, key: &str) -> Option<usize> {
    text.lines()
        .position(|l| key_of(l).as_deref() == Some(key) && !l.trim_start().starts_with('#'))
        .map(|i| i + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn setup(base: &str, over: &str) -> (tempfile::TempDir, PathBuf) {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("webdock.toml");
        std::fs::write(&p, base).unwrap();
        std::fs::write(d.path().join("webdock.prod.toml"), over).unwrap();
        (d, p)
    }

    #[test]
    fn overlay_merges_tables_and_replaces_values() {
        let (_d, p) = setup(
            "project = \"shop\"\nkeep_images = 3\n[health]\npath = \"/up\"\nconsecutive = 2\n",
            "keep_images = 5\n[health]\nconsecutive = 4\n",
        );
        let c = load(&p, Some("prod")).unwrap();
        assert_eq!(c.keep_images, 5);
        assert_eq!((c.health.path.as_str(), c.health.consecutive), ("/up", 4));
        assert_eq!(c.destination.as_deref(), Some("prod"));
        assert_eq!(c.state_name(), "shop.prod");
        assert!(c
            .layout()
            .history()
            .to_string_lossy()
            .contains("/shop.prod/"));
        assert_eq!(load(&p, None).unwrap().state_name(), "shop");
        assert_eq!(siblings(&p), vec!["prod".to_string()]);
    }

    #[test]
    fn errors_name_the_overlay_file_and_line() {
        let (_d, p) = setup(
            "project = \"shop\"\n",
            "# production\n\nkeep_images = 5\nregistri = \"x\"\n",
        );
        let e = load(&p, Some("prod")).unwrap_err().to_string();
        assert!(
            e.contains("webdock.prod.toml:4:") && e.contains("registri"),
            "{e}"
        );
        let (_d, p) = setup(
            "project = \"shop\"\n",
            "[health]\n\nconsecutive = \"many\"\n",
        );
        let e = load(&p, Some("prod")).unwrap_err().to_string();
        assert!(e.contains("webdock.prod.toml:3:"), "{e}");
        let (_d, p) = setup("project = \"shop\"\n", "a = = 1\n");
        let e = load(&p, Some("prod")).unwrap_err().to_string();
        assert!(e.contains("webdock.prod.toml:1:"), "{e}");
        let e = load(&p, Some("nope")).unwrap_err().to_string();
        assert!(
            e.contains("webdock.nope.toml") && e.contains("hint:"),
            "{e}"
        );
        let e = load(&p, Some("Bad")).unwrap_err().to_string();
        assert!(e.contains("destination \"Bad\""), "{e}");
    }
}
