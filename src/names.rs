//! Names that reach Docker, the filesystem or a container's environment.
//!
//! Every one of them is checked here, before anything runs, so that a bad tag
//! or djob name is refused with a message naming it instead of surfacing later
//! as an engine error half-way through a deploy. These are pure functions: the
//! fuzz targets and the bad-input corpus test call them directly.

use std::fmt;

/// Why a name was refused. The caller adds which input it was.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("is empty")]
    Empty,
    #[error("is {len} characters long (at most {max})")]
    TooLong { len: usize, max: usize },
    #[error("must start with {expected}")]
    BadStart { expected: &'static str },
    #[error("contains {ch:?}, allowed are {allowed}")]
    BadChar { ch: char, allowed: &'static str },
}

/// A Docker image tag: `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}` (Docker's grammar).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(transparent)]
pub struct Tag(String);

impl Tag {
    pub fn parse(s: &str) -> Result<Tag, NameError> {
        check(
            s,
            128,
            |c| c.is_ascii_alphanumeric() || c == '_',
            "a letter, digit or '_'",
            |c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'),
            "letters, digits, '_', '.' and '-'",
        )?;
        Ok(Tag(s.to_owned()))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Tag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::str::FromStr for Tag {
    type Err = NameError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Tag::parse(s)
    }
}

impl<'de> serde::Deserialize<'de> for Tag {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Tag::parse(&s).map_err(|e| serde::de::Error::custom(format!("tag {s:?} {e}")))
    }
}

/// A project or djob name: it becomes part of container names, label values,
/// lock file names and socket directories, so it is kept to a small, safe
/// alphabet: `[a-z0-9][a-z0-9-]{0,31}`.
pub fn check_simple_name(s: &str) -> Result<(), NameError> {
    check(
        s,
        32,
        |c| c.is_ascii_lowercase() || c.is_ascii_digit(),
        "a lowercase letter or digit",
        |c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-',
        "lowercase letters, digits and '-'",
    )
}

/// An image repository name as used locally: lowercase path components
/// separated by '/', each `[a-z0-9]+([._-][a-z0-9]+)*` (Docker's grammar,
/// without a registry host since webdock never pushes).
pub fn check_repository(s: &str) -> Result<(), NameError> {
    if s.is_empty() {
        return Err(NameError::Empty);
    }
    if s.len() > 255 {
        return Err(NameError::TooLong {
            len: s.len(),
            max: 255,
        });
    }
    if s.contains("..") || s.contains("--.") || s.split('/').any(|p| p.ends_with(['.', '_', '-'])) {
        return Err(NameError::BadChar {
            ch: '.',
            allowed: "separators ('.', '_', '-') only between letters or digits",
        });
    }
    for part in s.split('/') {
        check(
            part,
            255,
            |c| c.is_ascii_lowercase() || c.is_ascii_digit(),
            "a lowercase letter or digit (each '/'-separated part)",
            |c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-'),
            "lowercase letters, digits, '.', '_', '-' and '/'",
        )?;
    }
    Ok(())
}

/// An environment variable name: `[A-Za-z_][A-Za-z0-9_]*`.
pub fn check_env_name(s: &str) -> Result<(), NameError> {
    check(
        s,
        256,
        |c| c.is_ascii_alphabetic() || c == '_',
        "a letter or '_'",
        |c| c.is_ascii_alphanumeric() || c == '_',
        "letters, digits and '_'",
    )
}

fn check(
    s: &str,
    max: usize,
    first_ok: impl Fn(char) -> bool,
    first_desc: &'static str,
    rest_ok: impl Fn(char) -> bool,
    rest_desc: &'static str,
) -> Result<(), NameError> {
    let mut chars = s.chars();
    let Some(first) = chars.next() else {
        return Err(NameError::Empty);
    };
    let len = s.chars().count();
    if len > max {
        return Err(NameError::TooLong { len, max });
    }
    if !first_ok(first) {
        return Err(NameError::BadStart {
            expected: first_desc,
        });
    }
    if let Some(ch) = chars.find(|c| !rest_ok(*c)) {
        return Err(NameError::BadChar {
            ch,
            allowed: rest_desc,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_follow_docker_grammar() {
        for ok in ["3.46.0", "v1", "_x", "a-b_c.d", &"a".repeat(128)] {
            assert!(Tag::parse(ok).is_ok(), "{ok} should be a tag");
        }
        assert_eq!(Tag::parse(""), Err(NameError::Empty));
        assert_eq!(
            Tag::parse("-x"),
            Err(NameError::BadStart {
                expected: "a letter, digit or '_'"
            })
        );
        assert!(matches!(
            Tag::parse("../x"),
            Err(NameError::BadStart { .. })
        ));
        assert!(matches!(
            Tag::parse("a b"),
            Err(NameError::BadChar { ch: ' ', .. })
        ));
        assert!(matches!(
            Tag::parse("a/b"),
            Err(NameError::BadChar { ch: '/', .. })
        ));
        assert_eq!(
            Tag::parse(&"a".repeat(129)),
            Err(NameError::TooLong { len: 129, max: 128 })
        );
        assert!(matches!(Tag::parse("é"), Err(NameError::BadStart { .. })));
    }

    #[test]
    fn simple_names_are_lowercase_and_short() {
        assert!(check_simple_name("billing").is_ok());
        assert!(check_simple_name("email2fax").is_ok());
        assert!(check_simple_name("Billing").is_err());
        assert!(check_simple_name("a_b").is_err());
        assert!(check_simple_name("-a").is_err());
        assert!(check_simple_name("a;rm -rf /").is_err());
        assert!(check_simple_name(&"a".repeat(33)).is_err());
    }

    #[test]
    fn repositories() {
        assert!(check_repository("webdock-demo").is_ok());
        assert!(check_repository("acme/portal").is_ok());
        assert!(check_repository("Acme").is_err());
        assert!(check_repository("a//b").is_err());
        assert!(check_repository("a:b").is_err());
        assert!(check_repository("a..b").is_err());
        assert!(check_repository("a-").is_err());
    }
}
