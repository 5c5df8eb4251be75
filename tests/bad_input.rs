//! The bad-input corpus (tests/corpus/, see its README): every malformed
//! config, tag and djob name is refused with exit code 2 and an `error:` line
//! naming the input (plus at most one `hint:` line), without a panic, before
//! Docker is reached and before any directory is made. Configs whose commands
//! hold shell metacharacters are valid: they are data, and the djob scripts
//! generated from them quote every word. The fuzz corpora (fuzz/corpus/) run
//! through the same parsers here, so every input the fuzzer kept is a
//! regression test that needs no fuzzer.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Component, Path, PathBuf};
use std::process::{Command, Output};

use webdock::config::Config;
use webdock::names::{check_env_name, check_repository, check_simple_name, Tag};

mod common;

/// The files of one corpus directory, sorted by name: (name, bytes).
fn corpus(dir: &str) -> Vec<(String, Vec<u8>)> {
    let dir = common::repo_root().join(dir);
    let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("corpus {}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file() && p.file_name() != Some(OsStr::new("README.md")))
        .map(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read(&p).unwrap())
        })
        .collect();
    files.sort();
    assert!(!files.is_empty(), "corpus {} is empty", dir.display());
    files
}

/// Configs too big to keep in git, made here: 5 MB in each place a parser
/// could be slow or echo the whole input back, and nesting deep enough to
/// overflow a recursive parser's stack.
fn generated_configs() -> Vec<(String, Vec<u8>)> {
    const MB5: usize = 5 << 20;
    let head =
        "project = \"corpus\"\nsocket_root = \"@ROOT@/run\"\nstate_root = \"@ROOT@/state\"\n";
    let deep = 100_000;
    let cases = [
        ("huge-comment", "# x\n".repeat(MB5 / 4)),
        (
            "huge-project-name",
            format!("project = \"{}\"\n", "a".repeat(MB5)),
        ),
        (
            "huge-unknown-key",
            format!("{head}{} = 1\n", "k".repeat(MB5)),
        ),
        (
            "huge-image",
            format!("{head}image = \"{}\"\n", "a".repeat(MB5)),
        ),
        (
            "huge-env-key",
            format!("{head}[env]\n{} = \"1\"\n", "K;".repeat(MB5 / 2)),
        ),
        (
            "huge-volume",
            format!("{head}volumes = [\"{}:/data\"]\n", "$".repeat(MB5)),
        ),
        (
            "huge-number",
            format!("{head}keep_images = {}\n", "9".repeat(MB5)),
        ),
        (
            "huge-duration",
            format!("{head}[health]\ntimeout = \"{}s\"\n", "9".repeat(MB5)),
        ),
        (
            "huge-line-count",
            format!("{head}{}\nkeep_images = 1\n", "\n".repeat(MB5)),
        ),
        (
            "deep-array",
            format!("{head}x = {}{}\n", "[".repeat(deep), "]".repeat(deep)),
        ),
        (
            "deep-inline-table",
            format!("{head}x = {}1{}\n", "{a=".repeat(deep), "}".repeat(deep)),
        ),
        (
            "deep-known-key",
            format!("{head}volumes = {}{}\n", "[".repeat(deep), "]".repeat(deep)),
        ),
        (
            "deep-dotted-table",
            format!("{head}[{}]\n", vec!["a"; deep].join(".")),
        ),
    ];
    cases
        .into_iter()
        .map(|(n, t)| (format!("{n} (generated)"), t.into_bytes()))
        .collect()
}

/// `# want: TEXT` on a corpus config's first line: the error must hold TEXT.
fn want(text: &[u8]) -> Option<String> {
    let first = text.split(|&b| b == b'\n').next()?;
    let w = first.strip_prefix(b"# want: ")?;
    Some(String::from_utf8(w.to_vec()).expect("want line is UTF-8"))
}

fn with_root(text: &[u8], root: &Path) -> Vec<u8> {
    let root = root.as_os_str().as_bytes();
    let mut out = Vec::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.windows(6).position(|w| w == b"@ROOT@") {
        out.extend_from_slice(&rest[..i]);
        out.extend_from_slice(root);
        rest = &rest[i + 6..];
    }
    out.extend_from_slice(rest);
    out
}

/// Runs webdock with Docker pointed at a socket that does not exist, so
/// reaching the engine at all would fail with exit 1, not 2.
fn webdock(dir: &Path, args: &[&OsStr]) -> Output {
    Command::new(common::bin())
        .current_dir(dir)
        .env(
            "DOCKER_HOST",
            format!("unix://{}/no-docker.sock", dir.display()),
        )
        .env_remove("WEBDOCK_CONFIG")
        .env_remove("WEBDOCK_LOG")
        .args(args)
        .output()
        .unwrap()
}

/// The CLI's contract for bad input; `Err` says how it was broken.
fn refused_cleanly(o: &Output, names: &str) -> Result<(), String> {
    let err = String::from_utf8_lossy(&o.stderr);
    let lines: Vec<&str> = err.lines().collect();
    let first = lines.first().copied().unwrap_or_default();
    if err.contains("panicked") {
        return Err(format!("panicked: {err}"));
    }
    if o.status.code() != Some(2) {
        return Err(format!("exit {:?}, wanted 2: {err}", o.status.code()));
    }
    if !first.starts_with("error: ") {
        return Err(format!("first line is not `error: ...`: {err}"));
    }
    if !first.contains(names) {
        return Err(format!("first line does not name {names}: {err}"));
    }
    if first.chars().any(char::is_control) {
        return Err(format!("control characters reach the terminal: {first:?}"));
    }
    if lines.len() > 2 || lines.get(1).is_some_and(|l| !l.starts_with("hint: ")) {
        return Err(format!("more than an error and a hint: {err}"));
    }
    if first.len() > 1000 {
        return Err(format!("error line of {} bytes", first.len()));
    }
    if !o.stdout.is_empty() {
        return Err(format!("stdout: {}", String::from_utf8_lossy(&o.stdout)));
    }
    Ok(())
}

/// Fails with every broken case at once, so one run shows the whole picture.
fn report(what: &str, failures: Vec<String>) {
    assert!(
        failures.is_empty(),
        "{} {what} broke the contract:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

fn entries(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn bad_configs_exit_2_naming_the_file_and_create_nothing() {
    let mut failures = Vec::new();
    let all = corpus("tests/corpus/config")
        .into_iter()
        .chain(generated_configs());
    for (name, text) in all {
        let d = tempfile::tempdir().unwrap();
        // A space and a quote in the path: the error must still name it.
        let cfg = d.path().join("my app's webdock.toml");
        std::fs::write(&cfg, with_root(&text, d.path())).unwrap();
        let o = webdock(
            d.path(),
            &["-c".as_ref(), cfg.as_os_str(), "status".as_ref()],
        );
        let err = String::from_utf8_lossy(&o.stderr);
        let mut r = refused_cleanly(&o, &cfg.display().to_string());
        if let (Ok(()), Some(w)) = (&r, want(&text)) {
            if !err.lines().next().unwrap_or_default().contains(&w) {
                r = Err(format!("error lacks {w:?}: {err}"));
            }
        }
        if r.is_ok() && entries(d.path()) != ["my app's webdock.toml"] {
            r = Err(format!("left {:?} behind", entries(d.path())));
        }
        if let Err(e) = r {
            failures.push(format!("{name}: {e}"));
        }
    }
    report("configs", failures);
}

#[test]
fn a_config_that_cannot_be_read_exits_2_naming_it() {
    let d = tempfile::tempdir().unwrap();
    let dir_not_file = d.path().join("a dir");
    std::fs::create_dir(&dir_not_file).unwrap();
    let unreadable = d.path().join("$(id);.toml");
    std::fs::write(&unreadable, "project = \"x\"\n").unwrap();
    std::fs::set_permissions(&unreadable, std::fs::Permissions::from_mode(0o000)).unwrap();
    let mut cases = vec![
        d.path().join("missing.toml"),
        dir_not_file,
        d.path().join("`id`/webdock.toml"),
    ];
    // root reads any file whatever its mode.
    if std::fs::read(&unreadable).is_err() {
        cases.push(unreadable);
    }
    let mut failures = Vec::new();
    for path in cases {
        let o = webdock(
            d.path(),
            &["-c".as_ref(), path.as_os_str(), "status".as_ref()],
        );
        if let Err(e) = refused_cleanly(&o, &path.display().to_string()) {
            failures.push(format!("{}: {e}", path.display()));
        }
    }
    report("unreadable configs", failures);
}

/// A config that parses, roots in the temp dir, and whose app is missing:
/// if a verb ran past its argument check, the error would be about the app.
fn good_config(dir: &Path) -> PathBuf {
    let cfg = dir.join("webdock.toml");
    std::fs::write(
        &cfg,
        format!(
            "project = \"corpus\"\napp = \"missing\"\nsocket_root = \"{0}/run\"\nstate_root = \"{0}/state\"\n[djobs.billing]\ncommand = [\"python\", \"manage.py\", \"billing\"]\n",
            dir.display()
        ),
    )
    .unwrap();
    cfg
}

#[test]
fn bad_tags_exit_2_naming_the_tag() {
    let d = tempfile::tempdir().unwrap();
    let cfg = good_config(d.path());
    let mut failures = Vec::new();
    for (name, tag) in corpus("tests/corpus/tag") {
        if tag.contains(&0) || std::str::from_utf8(&tag).is_err() {
            continue; // see nul_and_non_utf8_arguments_exit_2
        }
        for verb in ["build", "promote"] {
            let o = webdock(
                d.path(),
                &[
                    "-c".as_ref(),
                    cfg.as_os_str(),
                    verb.as_ref(),
                    OsStr::from_bytes(&tag),
                ],
            );
            // Debug-quoted, as the message shows it: control characters escaped.
            let shown = format!("tag {:?}", String::from_utf8_lossy(&tag));
            if let Err(e) = refused_cleanly(&o, &shown) {
                failures.push(format!("{verb} {name}: {e}"));
            }
        }
    }
    assert_eq!(
        entries(d.path()),
        ["webdock.toml"],
        "a bad tag made something"
    );
    report("tags", failures);
}

#[test]
fn unknown_djob_names_exit_2_naming_the_djob() {
    let d = tempfile::tempdir().unwrap();
    let cfg = good_config(d.path());
    let mut failures = Vec::new();
    for (name, djob) in corpus("tests/corpus/djob") {
        if djob.contains(&0) || std::str::from_utf8(&djob).is_err() {
            continue; // see nul_and_non_utf8_arguments_exit_2
        }
        for verb in ["restart", "stop", "start"] {
            // `--` so that `-x` is a name, not an option.
            let args = [
                "-c".as_ref(),
                cfg.as_os_str(),
                verb.as_ref(),
                "djob".as_ref(),
                "--".as_ref(),
                OsStr::from_bytes(&djob),
            ];
            let o = webdock(d.path(), &args);
            let shown = format!("djob {:?}", String::from_utf8_lossy(&djob));
            if let Err(e) = refused_cleanly(&o, &shown) {
                failures.push(format!("{verb} djob {name}: {e}"));
            }
        }
    }
    assert_eq!(
        entries(d.path()),
        ["webdock.toml"],
        "a bad djob name made something"
    );
    report("djob names", failures);
}

/// A NUL byte cannot be in an argument at all, and clap refuses a non-UTF-8
/// argument itself, before webdock sees it: exit 2 and `error: invalid
/// UTF-8`, followed by clap's usage lines rather than a hint, and without
/// naming the argument.
#[test]
fn nul_and_non_utf8_arguments_exit_2() {
    let d = tempfile::tempdir().unwrap();
    let cfg = good_config(d.path());
    let odd = [&b"v1\xff"[..], b"\xc3\x28", b"\xed\xa0\x80"];
    for arg in odd {
        for verb in [&["build"][..], &["promote"], &["restart", "djob", "--"]] {
            let mut args: Vec<&OsStr> = vec!["-c".as_ref(), cfg.as_os_str()];
            args.extend(verb.iter().map(OsStr::new));
            args.push(OsStr::from_bytes(arg));
            let o = webdock(d.path(), &args);
            let err = String::from_utf8_lossy(&o.stderr);
            assert_eq!(o.status.code(), Some(2), "{verb:?} {arg:?}: {err}");
            assert!(
                err.starts_with("error: invalid UTF-8"),
                "{verb:?} {arg:?}: {err}"
            );
            assert!(!err.contains("panicked"), "{err}");
        }
    }
    let nul = Command::new(common::bin())
        .arg("build")
        .arg("v1\0x")
        .output();
    assert!(nul.is_err(), "an argument with a NUL byte was passed");
    assert_eq!(entries(d.path()), ["webdock.toml"]);
}

/// Runs `f`, turning a panic into a message that names the input.
fn no_panic<T>(what: &str, f: impl FnOnce() -> T) -> Result<T, String> {
    catch_unwind(AssertUnwindSafe(f)).map_err(|p| {
        let msg = p
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_default();
        format!("{what}: panicked: {msg}")
    })
}

const PATH: &str = "/srv/app/webdock.toml";

/// The properties the `config_parse` fuzz target checks, for one input.
fn check_config(name: &str, data: &[u8]) -> Result<Option<Config>, String> {
    let text = String::from_utf8_lossy(data);
    match no_panic(name, || Config::parse(Path::new(PATH), &text))? {
        Err(e) => {
            let msg = e.to_string();
            if !msg.starts_with(&format!("config {PATH}")) || msg.chars().any(char::is_control) {
                return Err(format!(
                    "{name}: not one printable line naming the file: {msg:?}"
                ));
            }
            Ok(None)
        }
        Ok(cfg) => {
            let inside =
                |p: &Path| !p.is_absolute() && !p.components().any(|c| c == Component::ParentDir);
            if !cfg.socket_root.is_absolute()
                || !cfg.state_root.is_absolute()
                || !inside(&cfg.requirements)
                || !cfg.crontab.as_deref().is_none_or(inside)
            {
                return Err(format!("{name}: accepted a path it must refuse: {cfg:?}"));
            }
            for d in &cfg.djobs {
                let script = webdock::build::djob_run_script(d);
                let argv = script.lines().last().unwrap_or_default();
                if quoted_words(argv) != Some(d.command.len()) || script.lines().count() != 6 {
                    return Err(format!(
                        "{name}: djob {} script not fully quoted: {script:?}",
                        d.name
                    ));
                }
            }
            Ok(Some(cfg))
        }
    }
}

/// How many words a line holds if every word is one double-quoted string
/// (with `\` escapes) and words are separated by single spaces; None if any
/// character stands outside quotes, where execline would interpret it.
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

/// `^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$`, by hand, as in the `tag_parse` fuzz target.
fn docker_tag(s: &str) -> bool {
    let b = s.as_bytes();
    let first = |c: u8| c.is_ascii_alphanumeric() || c == b'_';
    let rest = |c: u8| first(c) || c == b'.' || c == b'-';
    !b.is_empty() && b.len() <= 128 && first(b[0]) && b[1..].iter().all(|&c| rest(c))
}

/// The properties the `tag_parse` fuzz target checks, for one input.
fn check_name(name: &str, data: &[u8]) -> Result<bool, String> {
    let s = String::from_utf8_lossy(data);
    let tag = no_panic(name, || Tag::parse(&s))?;
    // Only that they return: the corpus decides what they accept.
    let _ = no_panic(name, || {
        (
            check_simple_name(&s),
            check_repository(&s),
            check_env_name(&s),
        )
    })?;
    if tag.is_ok() != docker_tag(&s) {
        return Err(format!(
            "{name}: Tag::parse({s:?}) = {tag:?} disagrees with Docker's grammar"
        ));
    }
    Ok(tag.is_ok())
}

#[test]
fn the_parsers_refuse_the_whole_corpus_without_panicking() {
    let mut failures = Vec::new();
    let kept = corpus("tests/corpus/config");
    let kept_count = kept.len();
    for (i, (name, data)) in kept.into_iter().chain(generated_configs()).enumerate() {
        let data = with_root(&data, Path::new("/tmp/corpus"));
        // Parsed lossily, a stray byte in a comment is a U+FFFD and harmless:
        // only `load` must refuse what is not UTF-8.
        let utf8 = std::str::from_utf8(&data).is_ok();
        match check_config(&name, &data) {
            Ok(Some(_)) if utf8 => failures.push(format!("config {name}: accepted")),
            Ok(_) => {}
            Err(e) => failures.push(e),
        }
        // `load` adds the UTF-8 check and must refuse the same inputs (the
        // big generated ones are all UTF-8, and the binary test loads them).
        if i >= kept_count {
            continue;
        }
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("webdock.toml");
        std::fs::write(&p, &data).unwrap();
        match no_panic(&name, || Config::load(&p)) {
            Ok(Ok(_)) => failures.push(format!("config {name}: load accepted it")),
            Ok(Err(_)) => {}
            Err(e) => failures.push(e),
        }
    }
    for (name, data) in corpus("tests/corpus/tag") {
        match check_name(&name, &data) {
            Ok(true) => failures.push(format!("tag {name}: accepted")),
            Ok(false) => {}
            Err(e) => failures.push(e),
        }
    }
    for (name, data) in corpus("tests/corpus/djob") {
        let s = String::from_utf8_lossy(&data);
        if check_simple_name(&s).is_ok() {
            failures.push(format!("djob {name}: accepted as a name"));
        }
    }
    report("corpus inputs", failures);
}

#[test]
fn shell_metacharacters_in_commands_are_data_and_djob_scripts_quote_them() {
    let d = tempfile::tempdir().unwrap();
    let mut failures = Vec::new();
    for (name, text) in corpus("tests/corpus/config-ok") {
        let cfg = match check_config(&name, &with_root(&text, d.path())) {
            Ok(Some(cfg)) => cfg,
            Ok(None) => {
                failures.push(format!("{name}: refused a valid config"));
                continue;
            }
            Err(e) => {
                failures.push(e);
                continue;
            }
        };
        for dj in &cfg.djobs {
            let script = webdock::build::djob_run_script(dj);
            for unquoted in script.split('"').step_by(2) {
                if unquoted.contains(['$', '`', ';', '|', '&', '{', '}']) {
                    failures.push(format!(
                        "{name}: djob {} script has {unquoted:?} outside quotes",
                        dj.name
                    ));
                }
            }
        }
        // The binary accepts it too: nginx-snippet loads the config and
        // touches neither Docker nor the roots.
        let p = d.path().join("webdock.toml");
        std::fs::write(&p, with_root(&text, d.path())).unwrap();
        let o = webdock(
            d.path(),
            &["-c".as_ref(), p.as_os_str(), "nginx-snippet".as_ref()],
        );
        if !o.status.success() {
            failures.push(format!(
                "{name}: nginx-snippet failed: {}",
                String::from_utf8_lossy(&o.stderr)
            ));
        }
    }
    assert_eq!(
        entries(d.path()),
        ["webdock.toml"],
        "loading a config made something"
    );
    report("valid configs", failures);
}

/// Every input the fuzzer kept: the `config_parse` and `tag_parse` targets'
/// properties, without the fuzzer.
#[test]
fn fuzz_corpora_hold_the_fuzz_targets_properties() {
    let mut failures = Vec::new();
    for (name, data) in corpus("fuzz/corpus/config_parse") {
        if let Err(e) = check_config(&format!("config_parse/{name}"), &data) {
            failures.push(e);
        }
    }
    for (name, data) in corpus("fuzz/corpus/tag_parse") {
        if let Err(e) = check_name(&format!("tag_parse/{name}"), &data) {
            failures.push(e);
        }
    }
    report("fuzz corpus inputs", failures);
}

/// Bad env files, and a good one readable by others: each is bad config.
#[test]
fn env_file_corpus_is_refused_as_bad_config() {
    let mut failures = Vec::new();
    let cases = corpus("tests/corpus/env-file")
        .into_iter()
        .map(|(n, data)| (n, data, 0o600))
        .chain([("mode 0644".to_string(), b"A=1\n".to_vec(), 0o644)])
        .chain([("mode 0660".to_string(), b"A=1\n".to_vec(), 0o660)]);
    for (name, data, mode) in cases {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("secrets.env");
        std::fs::write(&p, &data).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
        let r = match no_panic(&name, || webdock::roles::read_env_file(&p)) {
            Ok(r) => r,
            Err(e) => {
                failures.push(e);
                continue;
            }
        };
        match r {
            Ok(_) => failures.push(format!("{name}: accepted")),
            Err(e) => {
                let msg = format!("{e:#}");
                if !e.chain().any(|c| c.is::<webdock::Usage>()) {
                    failures.push(format!("{name}: not a usage error (exit 1, not 2): {msg}"));
                }
                let first = msg.lines().next().unwrap_or_default();
                let hint = msg.lines().nth(1).is_none_or(|l| l.starts_with("hint: "));
                if !first.contains(&p.display().to_string()) || msg.lines().count() > 2 || !hint {
                    failures.push(format!("{name}: not one line naming the file: {msg:?}"));
                }
            }
        }
    }
    report("env files", failures);
}
