//! Where cron and each djob run across the fleet, and how one moves:
//! stop-first across hosts, never guessing that a host it cannot reach is
//! dead.
//!
//! A worker's placement is an ordered list of hosts (`hosts = ["work1",
//! "web2"]`): the first is where it runs, the rest are standbys. With
//! `failover = "auto"` a container runs on every listed host and the lease
//! (inside each container) lets exactly one of them run the daemon; with
//! `manual` (the default) one container runs, on one host.

/// One host, as the controller sees the worker's container there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seen {
    /// The host did not answer: it may still run the worker.
    Unreachable(String),
    Absent,
    /// `started`: when its container last started (RFC 3339, comparable
    /// as text): of two running copies, the newer is the one webdock
    /// placed last (a failover away from a host that was cut off).
    Present {
        running: bool,
        started: String,
    },
}

/// What to do with one worker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Move {
    /// Nothing may change: the reason names the host and the worker.
    Refuse(String),
    /// Stop and remove it on `remove` (every one confirmed gone), then
    /// create it on `start`.
    Go {
        remove: Vec<String>,
        start: Vec<String>,
    },
}

/// The worker's placement, from the config.
#[derive(Debug, Clone, Copy)]
pub struct Placement<'a> {
    /// `cron` or `djob billing`, for messages.
    pub who: &'a str,
    pub hosts: &'a [String],
    pub auto: bool,
}

/// Where a worker should run next, and what must stop first.
///
/// `seen` is every fleet host with the worker's container there. `to` is a
/// host asked for by name (`failover --to`); otherwise a worker stays where
/// it runs (if that host is still in its list) or goes to the first.
/// `lease_free`: the lease store says no one holds the worker's lease, so a
/// daemon on an unreachable host is already dead (its holder kills it
/// before the server frees the lease); only then may a host that does not
/// answer be passed over.
pub fn place(
    p: Placement<'_>,
    seen: &[(String, Seen)],
    to: Option<&str>,
    lease_free: bool,
) -> Move {
    if let Some(to) = to {
        if !p.hosts.iter().any(|h| h == to) {
            return Move::Refuse(format!(
                "{} cannot run on {to}: its hosts are {}",
                p.who,
                p.hosts.join(", ")
            ));
        }
        if let Some((_, Seen::Unreachable(why))) = seen.iter().find(|(h, _)| h == to) {
            return Move::Refuse(format!(
                "{to} (the host to move {} to) is unreachable: {why}",
                p.who
            ));
        }
    }
    let unreachable: Vec<&(String, Seen)> = seen
        .iter()
        .filter(|(h, s)| matches!(s, Seen::Unreachable(_)) && p.hosts.contains(h))
        .collect();
    if !unreachable.is_empty() && !lease_free {
        let names: Vec<&str> = unreachable.iter().map(|(h, _)| h.as_str()).collect();
        return Move::Refuse(format!(
            "{} may still run on {} (unreachable: {}); not starting it anywhere else\nhint: a host that does not answer is never guessed dead; with [lease], `webdock failover {} --to HOST` moves it once the lease is free",
            p.who,
            names.join(", "),
            unreachable
                .iter()
                .map(|(_, s)| match s {
                    Seen::Unreachable(w) => w.as_str(),
                    _ => "",
                })
                .collect::<Vec<_>>()
                .join("; "),
            p.who
        ));
    }
    let remove: Vec<String> = seen
        .iter()
        .filter(|(_, s)| matches!(s, Seen::Present { .. }))
        .map(|(h, _)| h.clone())
        .collect();
    let reachable = |h: &String| {
        seen.iter()
            .any(|(x, s)| x == h && !matches!(s, Seen::Unreachable(_)))
    };
    let start: Vec<String> = if p.auto {
        // Every listed host runs a container; one named by `--to` first,
        // so that it takes the lease before the standbys start.
        let mut v: Vec<String> = to.map(str::to_string).into_iter().collect();
        v.extend(
            p.hosts
                .iter()
                .filter(|h| reachable(h) && Some(h.as_str()) != to)
                .cloned(),
        );
        v
    } else {
        let here = |want: bool| {
            seen.iter()
                .filter(|(h, _)| p.hosts.contains(h))
                .filter_map(|(h, s)| match s {
                    Seen::Present { running, started } if *running == want => Some((started, h)),
                    _ => None,
                })
                // the newest; among equals, the first in placement order
                .max_by(|a, b| {
                    a.0.cmp(b.0).then_with(|| {
                        let i = |h: &String| p.hosts.iter().position(|x| x == h);
                        i(b.1).cmp(&i(a.1))
                    })
                })
                .map(|(_, h)| h)
        };
        let target = to
            .map(str::to_string)
            .or_else(|| here(true).cloned())
            .or_else(|| here(false).cloned())
            .or_else(|| p.hosts.iter().find(|h| reachable(h)).cloned());
        match target {
            Some(t) => vec![t],
            None => {
                return Move::Refuse(format!(
                    "{} has no reachable host among {}",
                    p.who,
                    p.hosts.join(", ")
                ))
            }
        }
    };
    Move::Go { remove, start }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hosts(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    fn seen(v: &[(&str, Seen)]) -> Vec<(String, Seen)> {
        v.iter().map(|(h, s)| (h.to_string(), s.clone())).collect()
    }

    fn up(started: &str) -> Seen {
        Seen::Present {
            running: true,
            started: started.into(),
        }
    }
    fn down() -> Seen {
        Seen::Present {
            running: false,
            started: String::new(),
        }
    }

    fn go(remove: &[&str], start: &[&str]) -> Move {
        Move::Go {
            remove: hosts(remove),
            start: hosts(start),
        }
    }

    #[test]
    fn a_worker_stays_where_it_runs_and_stops_there_first() {
        let h = hosts(&["work1", "web2"]);
        let p = Placement {
            who: "djob billing",
            hosts: &h,
            auto: false,
        };
        let s = seen(&[("work1", Seen::Absent), ("web2", up("t1"))]);
        assert_eq!(place(p, &s, None, false), go(&["web2"], &["web2"]));
        let s = seen(&[("work1", Seen::Absent), ("web2", Seen::Absent)]);
        assert_eq!(place(p, &s, None, false), go(&[], &["work1"]));
        // Two copies (a host came back after a failover): both stop first,
        // then one starts, on the host that was running it.
        let s = seen(&[("work1", down()), ("web2", up("t1"))]);
        assert_eq!(place(p, &s, None, false), go(&["work1", "web2"], &["web2"]));
        // Two running (a cut host came back after a failover): the one
        // started last is where webdock placed it.
        let s = seen(&[
            ("work1", up("2026-12-05T10:00:00Z")),
            ("web2", up("2026-12-05T10:05:00Z")),
        ]);
        assert_eq!(place(p, &s, None, false), go(&["work1", "web2"], &["web2"]));
        let s = seen(&[
            ("work1", up("2026-12-05T10:09:00Z")),
            ("web2", up("2026-12-05T10:05:00Z")),
        ]);
        assert_eq!(
            place(p, &s, None, false),
            go(&["work1", "web2"], &["work1"])
        );
    }

    #[test]
    fn an_unreachable_host_of_the_worker_refuses_unless_the_lease_is_free() {
        let h = hosts(&["work1", "web2"]);
        let p = Placement {
            who: "djob billing",
            hosts: &h,
            auto: false,
        };
        let s = seen(&[
            ("work1", Seen::Unreachable("timeout".into())),
            ("web2", Seen::Absent),
        ]);
        let Move::Refuse(why) = place(p, &s, None, false) else {
            panic!("guessed work1 dead")
        };
        assert!(
            why.contains("work1") && why.contains("djob billing"),
            "{why}"
        );
        assert!(matches!(place(p, &s, Some("web2"), false), Move::Refuse(_)));
        assert_eq!(place(p, &s, Some("web2"), true), go(&[], &["web2"]));
        // A host outside the worker's list does not hold it up.
        let s = seen(&[("web3", Seen::Unreachable("x".into())), ("work1", up("t1"))]);
        assert_eq!(place(p, &s, None, false), go(&["work1"], &["work1"]));
    }

    #[test]
    fn failover_names_a_listed_reachable_host() {
        let h = hosts(&["work1", "web2"]);
        let p = Placement {
            who: "cron",
            hosts: &h,
            auto: false,
        };
        let s = seen(&[
            ("work1", up("t1")),
            ("web2", Seen::Absent),
            ("web3", Seen::Absent),
        ]);
        assert!(
            matches!(place(p, &s, Some("web3"), false), Move::Refuse(w) if w.contains("work1, web2"))
        );
        assert_eq!(place(p, &s, Some("web2"), false), go(&["work1"], &["web2"]));
        let s = seen(&[
            ("work1", up("t1")),
            ("web2", Seen::Unreachable("refused".into())),
        ]);
        assert!(
            matches!(place(p, &s, Some("web2"), true), Move::Refuse(w) if w.contains("unreachable"))
        );
    }

    #[test]
    fn auto_runs_a_container_on_every_listed_host() {
        let h = hosts(&["work1", "web2"]);
        let p = Placement {
            who: "djob billing",
            hosts: &h,
            auto: true,
        };
        let s = seen(&[
            ("work1", up("t1")),
            ("web2", up("t1")),
            ("web3", Seen::Absent),
        ]);
        assert_eq!(
            place(p, &s, None, false),
            go(&["work1", "web2"], &["work1", "web2"])
        );
        let s = seen(&[("work1", Seen::Unreachable("x".into())), ("web2", up("t1"))]);
        assert!(matches!(place(p, &s, None, false), Move::Refuse(_)));
        assert_eq!(place(p, &s, None, true), go(&["web2"], &["web2"]));
        // failover --to a standby: it starts first, the rest stand by again.
        let s = seen(&[("work1", up("t1")), ("web2", up("t1"))]);
        assert_eq!(
            place(p, &s, Some("web2"), false),
            go(&["work1", "web2"], &["web2", "work1"])
        );
    }
}
