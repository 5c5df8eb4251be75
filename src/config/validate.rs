//! One rule per function: checks the parser does not make itself.

use std::path::{Path, PathBuf};

/// `http://HOST[:PORT]/...`: checked at load, not after a flip.
pub(super) fn check_public_url(u: &str) -> Result<(), String> {
    let url = u.parse::<hyper::Uri>().ok();
    if !u.starts_with("http://") || url.is_none_or(|url| url.host().is_none()) {
        return Err(format!("{u:?} must be an http:// URL"));
    }
    Ok(())
}

/// An error message as one short, printable line. The parser's messages echo
/// the offending key or value as written, so a control character in it would
/// reach the terminal raw (an escape sequence, a fake second line), and a
/// 5 MB value would make a 5 MB error: control characters are escaped and the
/// middle of a long message is cut, keeping what (the start) and why (the end).
pub(crate) fn one_line(message: &str) -> String {
    const KEEP: usize = 150;
    let chars: Vec<char> = message
        .chars()
        .flat_map(|c| match c {
            '\n' => vec![' '],
            c if c.is_control() => c.escape_default().collect(),
            c => vec![c],
        })
        .collect();
    if chars.len() <= 2 * KEEP + 5 {
        return chars.into_iter().collect();
    }
    let head: String = chars[..KEEP].iter().collect();
    let tail: String = chars[chars.len() - KEEP..].iter().collect();
    format!("{head} ... {tail}")
}

/// A path inside the app directory: relative, no `..`.
pub(super) fn inside(p: &Path, key: &str) -> Result<PathBuf, String> {
    if p.is_absolute()
        || p.components()
            .any(|c| matches!(c, std::path::Component::ParentDir))
    {
        return Err(format!(
            "{key} {p:?} must be a relative path inside the app directory (no '..')"
        ));
    }
    Ok(p.to_path_buf())
}

pub(super) fn check_command(key: &str, cmd: &[String], may_be_empty: bool) -> Result<(), String> {
    if cmd.is_empty() && !may_be_empty {
        return Err(format!(
            "{key} is empty: give the program and its arguments as a list"
        ));
    }
    if cmd.iter().any(|a| a.contains('\0')) {
        return Err(format!("{key} holds a NUL byte"));
    }
    if cmd.first().is_some_and(|p| p.is_empty()) {
        return Err(format!("{key} starts with an empty program name"));
    }
    Ok(())
}

/// `SOURCE:/container/path[:ro|:rw]` where SOURCE is an absolute host path or
/// a named volume.
pub(super) fn check_volume(v: &str) -> Result<(), String> {
    if v.contains('\0') {
        return Err("holds a NUL byte".into());
    }
    let parts: Vec<&str> = v.split(':').collect();
    let (src, dst) = match parts.as_slice() {
        [s, d] | [s, d, "ro" | "rw"] => (*s, *d),
        _ => return Err("must be SOURCE:/path or SOURCE:/path:ro".into()),
    };
    if !dst.starts_with('/') || dst.split('/').any(|c| c == "..") {
        return Err(format!(
            "target {dst:?} must be an absolute path without '..'"
        ));
    }
    if src.starts_with('/') {
        if src.split('/').any(|c| c == "..") {
            return Err(format!("source {src:?} must not hold '..'"));
        }
    } else if src.is_empty()
        || !src
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
    {
        return Err(format!(
            "source {src:?} must be an absolute host path or a volume name"
        ));
    }
    Ok(())
}
