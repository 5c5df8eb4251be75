//! Any bytes as `webdock.toml`: `Config::parse` must return, never panic or
//! overflow the stack, and its answer must keep the CLI's contract. An
//! error is one printable line that names the file; an accepted config has
//! only absolute roots, keeps requirements and crontab inside the app, and
//! turns every djob command into an execline script whose argv words are all
//! quoted (no shell, and no word that execline itself would interpret).
#![no_main]

use std::path::{Component, Path};

use libfuzzer_sys::fuzz_target;
use webdock::config::Config;

const PATH: &str = "/srv/app/webdock.toml";

fuzz_target!(|data: &[u8]| {
    // `Config::load` refuses non-UTF-8 before parsing; the lossy text still
    // lets the fuzzer reach the parser with whatever else the bytes hold.
    let text = String::from_utf8_lossy(data);
    match Config::parse(Path::new(PATH), &text) {
        Err(e) => {
            let msg = e.to_string();
            assert!(
                msg.starts_with(&format!("config {PATH}")),
                "error does not name the file: {msg:?}"
            );
            assert!(
                !msg.chars().any(char::is_control),
                "error is not one printable line: {msg:?}"
            );
        }
        Ok(cfg) => {
            assert!(cfg.socket_root.is_absolute() && cfg.state_root.is_absolute());
            for p in [Some(&cfg.requirements), cfg.crontab.as_ref()]
                .into_iter()
                .flatten()
            {
                assert!(
                    !p.is_absolute() && !p.components().any(|c| c == Component::ParentDir),
                    "{p:?} escapes the app"
                );
            }
            for d in &cfg.djobs {
                let script = webdock::build::djob_run_script(d);
                let argv = script.lines().last().unwrap_or_default();
                assert_eq!(
                    quoted_words(argv),
                    Some(d.command.len()),
                    "djob {} argv line not fully quoted: {argv:?}",
                    d.name
                );
                assert_eq!(script.lines().count(), 6, "{script:?}");
            }
        }
    }
});

/// How many words a line holds if every word is one double-quoted string
/// (with `\` escapes) and words are separated by single spaces; None if any
/// character stands outside quotes.
fn quoted_words(line: &str) -> Option<usize> {
    let mut chars = line.chars();
    let mut words = 0;
    loop {
        match chars.next() {
            None => return Some(words),
            Some('"') => {}
            Some(_) => return None,
        }
        loop {
            match chars.next()? {
                '\\' => {
                    chars.next()?;
                }
                '"' => break,
                _ => {}
            }
        }
        words += 1;
        match chars.next() {
            None => return Some(words),
            Some(' ') => {}
            Some(_) => return None,
        }
    }
}
