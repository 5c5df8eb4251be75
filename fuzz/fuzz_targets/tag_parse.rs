//! Any string as a release tag, a project or djob name, an image repository
//! or an env key: the checkers must return, never panic, and `Tag::parse`
//! must accept exactly Docker's tag grammar `^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$`
//! (checked by a second, independent reading of it here).
#![no_main]

use libfuzzer_sys::fuzz_target;
use webdock::names::{check_env_name, check_repository, check_simple_name, Tag};

fuzz_target!(|data: &[u8]| {
    let s = String::from_utf8_lossy(data);
    let tag = Tag::parse(&s);
    assert_eq!(
        tag.is_ok(),
        docker_tag(&s),
        "Tag::parse({s:?}) = {tag:?} disagrees with Docker's grammar"
    );
    if let Ok(t) = tag {
        assert_eq!(t.as_str(), s);
    }
    if check_simple_name(&s).is_ok() {
        // Project and djob names are a subset of tags: they become tags'
        // neighbours in container names, labels and paths.
        assert!(
            s.len() <= 32
                && s.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'),
            "{s:?}"
        );
        assert!(!s.starts_with('-'), "{s:?}");
    }
    if check_repository(&s).is_ok() {
        assert!(
            !s.contains(':') && !s.contains("..") && !s.starts_with('/'),
            "{s:?}"
        );
    }
    if check_env_name(&s).is_ok() {
        assert!(
            !s.contains('=') && !s.as_bytes()[0].is_ascii_digit(),
            "{s:?}"
        );
    }
});

/// `^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$`, by hand.
fn docker_tag(s: &str) -> bool {
    let b = s.as_bytes();
    let first = |c: u8| c.is_ascii_alphanumeric() || c == b'_';
    let rest = |c: u8| first(c) || c == b'.' || c == b'-';
    !b.is_empty() && b.len() <= 128 && first(b[0]) && b[1..].iter().all(|&c| rest(c))
}
