//! Which nginx config actually serves this host, and does it proxy to us?
//!
//! `webdock doctor` used to read `nginx -T` with the compiled-in default
//! config, which on a machine whose serving nginx was started with its own
//! `-c FILE` (as `scripts/demo` does) checks a config nobody loaded and
//! reports a missing include that is in fact there. So the config to check
//! is found the way the running server found it: the `-c` (and `-p`) of each
//! running nginx master in our mount namespace, read from `/proc/PID/cmdline`
//! (nginx rewrites it to `nginx: master process <argv>`), else the compiled
//! default. `[proxy] nginx_conf` in webdock.toml names it outright.
//!
//! Parsing a master's command line and judging an `nginx -T` dump are pure
//! functions; the `/proc` scan and running `nginx -T` (through `proc`) are
//! the only I/O.

use std::path::{Path, PathBuf};

use crate::config::Config;
use crate::proc::{self, ProcError};

/// A running nginx master and how to make `nginx -T` read what it loaded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Master {
    pub pid: u32,
    /// The binary it runs (`/proc/PID/exe`), when readable.
    pub exe: Option<PathBuf>,
    /// Its `-c`, if given; None means the compiled-in default.
    pub conf: Option<String>,
    /// Its `-p`, if given.
    pub prefix: Option<String>,
}

impl Master {
    /// `nginx -T` arguments that read the config this master loaded.
    pub fn dump_args(&self) -> Vec<String> {
        dump_args(self.conf.as_deref(), self.prefix.as_deref())
    }

    /// `master pid 123, -c /etc/nginx/nginx.conf` for messages.
    pub fn describe(&self) -> String {
        format!(
            "master pid {}, {}",
            self.pid,
            self.conf
                .as_deref()
                .map(|c| format!("-c {c}"))
                .unwrap_or_else(|| "default config".into())
        )
    }
}

pub fn dump_args(conf: Option<&str>, prefix: Option<&str>) -> Vec<String> {
    let mut a = vec!["-T".to_string()];
    if let Some(p) = prefix {
        a.extend(["-p".into(), p.into()]);
    }
    if let Some(c) = conf {
        a.extend(["-c".into(), c.into()]);
    }
    a
}

/// From a `/proc/PID/cmdline`, the `-c` and `-p` of an nginx *master*
/// (None for anything else, workers included). nginx replaces its argv with
/// one NUL-terminated title, `nginx: master process <original argv joined
/// by spaces>`, so arguments are split on whitespace: a config path with a
/// space in it cannot be told apart, and is better named in `[proxy]
/// nginx_conf`.
pub fn parse_master(cmdline: &[u8]) -> Option<(Option<String>, Option<String>)> {
    let text = String::from_utf8_lossy(cmdline);
    let title = text.split('\0').next().unwrap_or_default();
    let argv = title.strip_prefix("nginx: master process ")?;
    let words: Vec<&str> = argv.split_whitespace().collect();
    let (mut conf, mut prefix) = (None, None);
    let mut i = 1; // words[0] is the program
    while i < words.len() {
        let w = words[i];
        let take = |flag: &str, i: &mut usize| -> Option<String> {
            if w == flag {
                *i += 1;
                words.get(*i).map(|s| s.to_string())
            } else {
                w.strip_prefix(flag)
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned)
            }
        };
        if let Some(c) = take("-c", &mut i) {
            conf = Some(c);
        } else if let Some(p) = take("-p", &mut i) {
            prefix = Some(p);
        }
        i += 1;
    }
    Some((conf, prefix))
}

/// nginx masters running in our mount namespace. A container's nginx is a
/// master too, visible from the host, but its `-c` names a file inside the
/// container; its mount namespace differs, so it is left out. When a
/// namespace cannot be read (another user's process), the master is kept.
pub fn running_masters() -> Vec<Master> {
    let ours = std::fs::read_link("/proc/self/ns/mnt").ok();
    let mut out = Vec::new();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return out;
    };
    for e in dir.flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(cmdline) = std::fs::read(e.path().join("cmdline")) else {
            continue;
        };
        let Some((conf, prefix)) = parse_master(&cmdline) else {
            continue;
        };
        let ns = std::fs::read_link(e.path().join("ns/mnt")).ok();
        if ours.is_some() && ns.is_some() && ns != ours {
            continue;
        }
        out.push(Master {
            pid,
            exe: std::fs::read_link(e.path().join("exe")).ok(),
            conf,
            prefix,
        });
    }
    out.sort_by_key(|m| m.pid);
    out
}

/// `nginx -T` with these arguments: the whole config as loaded, includes
/// expanded.
pub fn dump(program: &Path, args: &[String]) -> Result<String, ProcError> {
    proc::run(
        &program.to_string_lossy(),
        args,
        None,
        Some("apt-get install nginx"),
    )
}

/// What an `nginx -T` dump says about proxying to `live_sock`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// A `proxy_pass` to the live socket, and no upstream `keepalive`.
    Proxies,
    /// It proxies, but an upstream `keepalive` would keep connections to the
    /// old color alive past a flip.
    Keepalive,
    /// Nothing proxies to the live socket.
    Missing,
}

/// Judges a dump; comments are ignored, so a commented-out include or a
/// snippet quoted in a comment does not count.
pub fn judge(dump: &str, live_sock: &str) -> Verdict {
    let lines = || {
        dump.lines()
            .map(|l| l.split('#').next().unwrap_or_default().trim())
            .filter(|l| !l.is_empty())
    };
    let proxies = lines().any(|l| l.starts_with("proxy_pass") && l.contains(live_sock));
    if !proxies {
        return Verdict::Missing;
    }
    let keepalive = lines().any(|l| {
        l.split_whitespace()
            .next()
            .is_some_and(|w| w == "keepalive")
    });
    if keepalive {
        Verdict::Keepalive
    } else {
        Verdict::Proxies
    }
}

/// One line of `doctor`: ok, or a problem with its fix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub ok: bool,
    pub what: String,
    pub fix: String,
}

impl Finding {
    fn ok(what: String) -> Finding {
        Finding {
            ok: true,
            what,
            fix: String::new(),
        }
    }
    fn problem(what: String, fix: String) -> Finding {
        Finding {
            ok: false,
            what: what.replace('\n', " "),
            fix,
        }
    }
}

/// Does the nginx that serves this host proxy to the live socket? Checks
/// `[proxy] nginx_conf` if set, else the config of every running master in
/// our mount namespace (one of them proxying is enough: a host may run
/// several), else, with a problem for the missing server, the default.
pub fn check(cfg: &Config) -> Vec<Finding> {
    let want = cfg.layout().live_socket().display().to_string();
    let mut out = Vec::new();
    let nginx = PathBuf::from("nginx");
    let targets: Vec<(String, PathBuf, Vec<String>)> = match &cfg.proxy.nginx_conf {
        Some(c) => vec![(
            format!("[proxy] nginx_conf {}", c.display()),
            nginx,
            dump_args(Some(&c.to_string_lossy()), None),
        )],
        None => {
            let masters = running_masters();
            if masters.is_empty() {
                out.push(Finding::problem(
                    "no nginx master process is running on this host".into(),
                    "start the host nginx (systemctl start nginx, or nginx -c YOUR.conf)".into(),
                ));
                vec![("the default config".into(), nginx, dump_args(None, None))]
            } else {
                masters
                    .into_iter()
                    .map(|m| {
                        let exe = m
                            .exe
                            .clone()
                            .filter(|e| e.is_file())
                            .unwrap_or(nginx.clone());
                        (m.describe(), exe, m.dump_args())
                    })
                    .collect()
            }
        }
    };
    let mut verdicts = Vec::new();
    let mut errors = Vec::new();
    for (what, program, args) in &targets {
        match dump(program, args) {
            Ok(d) => verdicts.push((what, judge(&d, &want))),
            Err(e) => errors.push(format!("{what}: {e}")),
        }
    }
    let find = |v: Verdict| verdicts.iter().find(|(_, x)| *x == v).map(|(w, _)| w);
    if let Some(w) = find(Verdict::Proxies) {
        out.push(Finding::ok(format!(
            "the host nginx ({w}) proxies to {want}"
        )));
    } else if let Some(w) = find(Verdict::Keepalive) {
        out.push(Finding::problem(
            format!("the host nginx ({w}) has an upstream `keepalive`: cached connections to the old color would outlive a flip"),
            "use the block from webdock nginx-snippet unchanged".into(),
        ));
    } else if verdicts.is_empty() {
        out.push(Finding::problem(
            format!("cannot read the host nginx config: {}", errors.join("; ")),
            "apt-get install nginx; run doctor as a user that may run nginx -T, or set [proxy] nginx_conf".into(),
        ));
    } else {
        let checked: Vec<&str> = verdicts.iter().map(|(w, _)| w.as_str()).collect();
        out.push(Finding::problem(
            format!("the host nginx config does not proxy to {want} (checked {})", checked.join(", ")),
            format!("webdock nginx-snippet > /etc/nginx/snippets/webdock-{}.conf, include it in your server block, nginx -s reload", cfg.project),
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_master_title_gives_its_config_and_prefix() {
        let t = b"nginx: master process /usr/sbin/nginx -c /srv/demo/nginx.conf -g daemon off;\0";
        assert_eq!(
            parse_master(t),
            Some((Some("/srv/demo/nginx.conf".into()), None))
        );
        let t = b"nginx: master process nginx -p /opt/ngx/ -c conf/n.conf\0\0\0";
        assert_eq!(
            parse_master(t),
            Some((Some("conf/n.conf".into()), Some("/opt/ngx/".into())))
        );
        let t = b"nginx: master process nginx -c/etc/x.conf\0";
        assert_eq!(parse_master(t), Some((Some("/etc/x.conf".into()), None)));
        // -g's value is not mistaken for a flag of ours
        let t = b"nginx: master process /usr/sbin/nginx -g daemon on; master_process on;\0";
        assert_eq!(parse_master(t), Some((None, None)));
    }

    #[test]
    fn workers_and_other_programs_are_not_masters() {
        assert_eq!(parse_master(b"nginx: worker process\0\0\0"), None);
        assert_eq!(parse_master(b"/usr/sbin/nginx\0-c\0/x\0"), None);
        assert_eq!(parse_master(b""), None);
    }

    #[test]
    fn dump_args_read_what_the_master_loaded() {
        assert_eq!(dump_args(None, None), ["-T"]);
        assert_eq!(
            dump_args(Some("n.conf"), Some("/p/")),
            ["-T", "-p", "/p/", "-c", "n.conf"]
        );
    }

    #[test]
    fn judging_a_dump() {
        let sock = "/run/webdock/demo/live/nginx.sock";
        let good = format!(
            "# configuration file /etc/nginx/nginx.conf:\nhttp {{ server {{\n  location / {{\n    proxy_pass http://unix:{sock}:;\n    proxy_http_version 1.0;\n    keepalive_timeout 65;\n}} }} }}\n"
        );
        assert_eq!(judge(&good, sock), Verdict::Proxies);
        let ka = format!("{good}upstream u {{ server 127.0.0.1:1; keepalive 8; }}\n");
        let ka = ka.replace("; keepalive", ";\nkeepalive");
        assert_eq!(judge(&ka, sock), Verdict::Keepalive);
        let commented = format!("# proxy_pass http://unix:{sock}:;\nhttp {{ }}\n");
        assert_eq!(judge(&commented, sock), Verdict::Missing);
        assert_eq!(
            judge(&good, "/run/webdock/other/live/nginx.sock"),
            Verdict::Missing
        );
    }
}
