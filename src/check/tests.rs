//! The verdicts of `check::evaluate`, one table of observed states.

use super::*;

fn worker(name: &str) -> WorkerSeen {
    WorkerSeen {
        name: format!("djob {name}"),
        host: None,
        unseen: vec![],
        label: name.into(),
        running: true,
        tag: Some("2".into()),
        restarts: 0,
        uptime_s: Some(5 * HOUR),
        watchdog_kills: 0,
        heartbeat: None,
    }
}

fn site(name: Option<&str>) -> HostSeen {
    HostSeen {
        name: name.map(str::to_owned),
        unreachable: None,
        live_tag: Some("2".into()),
        live_answers: Ok(()),
    }
}

fn fine() -> CheckInput {
    CheckInput {
        project: "shop".into(),
        hosts: vec![(site(None), true)],
        workers: vec![worker("billing")],
        portals: vec![("portal blue".into(), 0, Some(5 * HOUR))],
        idle_portal: Some(("1".into(), 60)),
        idle_portal_warn: Duration::from_secs(7 * 24 * 3600),
        disks: vec![("/var/lib/webdock".into(), 40.0)],
        disk_warn_pct: 90.0,
    }
}

#[test]
fn verdicts() {
    type Case = (&'static str, fn(&mut CheckInput), State, &'static str);
    let cases: Vec<Case> = vec![
        ("all fine", |_| {}, State::Ok, "live 2 and answering"),
        (
            "portal down",
            |i| i.hosts[0].0.live_answers = Err("502".into()),
            State::Critical,
            "does not answer: 502",
        ),
        (
            "nothing live",
            |i| i.hosts[0].0.live_tag = None,
            State::Critical,
            "nothing is live",
        ),
        (
            "djob stopped",
            |i| i.workers[0].running = false,
            State::Critical,
            "djob billing is not running",
        ),
        (
            "stale heartbeat",
            |i| i.workers[0].heartbeat = Some((Some(200), Duration::from_secs(60))),
            State::Critical,
            "has not beaten for 200s",
        ),
        (
            "unreadable heartbeat",
            |i| i.workers[0].heartbeat = Some((None, Duration::from_secs(60))),
            State::Unknown,
            "its heartbeat cannot be read",
        ),
        (
            "no beat yet, just started",
            |i| {
                i.workers[0].heartbeat = Some((None, Duration::from_secs(60)));
                i.workers[0].uptime_s = Some(4)
            },
            State::Ok,
            "'billing_heartbeat_age'=4s;;60",
        ),
        (
            "an old beat from before a restart",
            |i| {
                i.workers[0].heartbeat = Some((Some(200), Duration::from_secs(60)));
                i.workers[0].uptime_s = Some(2)
            },
            State::Ok,
            "'billing_heartbeat_age'=2s;;60",
        ),
        (
            "killed by its watchdog",
            |i| i.workers[0].watchdog_kills = 1,
            State::Warning,
            "1 kill(s) by its heartbeat watchdog",
        ),
        (
            "fresh heartbeat",
            |i| i.workers[0].heartbeat = Some((Some(3), Duration::from_secs(60))),
            State::Ok,
            "answering",
        ),
        (
            "recent restart",
            |i| {
                i.workers[0].restarts = 2;
                i.workers[0].uptime_s = Some(30)
            },
            State::Warning,
            "restarted in the last hour",
        ),
        (
            "old restart",
            |i| i.workers[0].restarts = 2,
            State::Ok,
            "answering",
        ),
        (
            "portal restarted",
            |i| i.portals[0] = ("portal blue".into(), 1, Some(20)),
            State::Warning,
            "portal blue restarted in the last hour",
        ),
        (
            "half promote",
            |i| i.workers[0].tag = Some("1".into()),
            State::Warning,
            "a promote did not finish",
        ),
        (
            "old idle portal",
            |i| i.idle_portal = Some(("1".into(), 8 * 24 * 3600)),
            State::Warning,
            "beside the live one",
        ),
        (
            "disk full",
            |i| i.disks[0].1 = 97.0,
            State::Warning,
            "97% full",
        ),
    ];
    for (what, change, state, text) in cases {
        let mut i = fine();
        change(&mut i);
        let v = evaluate(&i);
        assert_eq!(v.state, state, "{what}: {v}");
        assert!(v.to_string().contains(text), "{what}: {v}");
    }
}

#[test]
fn the_worst_state_wins_and_perfdata_follows_the_bar() {
    let mut i = fine();
    i.disks[0].1 = 97.0;
    i.workers[0].running = false;
    i.workers[0].heartbeat = Some((Some(3), Duration::from_secs(60)));
    let v = evaluate(&i);
    assert_eq!(v.state, State::Critical);
    assert_eq!(v.state.exit_code(), 2);
    let line = v.to_string();
    assert!(
        line.starts_with("WEBDOCK CRITICAL - shop: djob billing is not running (+1 lesser) | "),
        "{line}"
    );
    assert!(line.contains("'billing_heartbeat_age'=3s;;60"), "{line}");
    assert!(line.contains("'live_answers'=1;;1:"), "{line}");
    assert_eq!(
        unknown("cannot reach the Docker engine\nhint: x")
            .state
            .exit_code(),
        3
    );
}

#[test]
fn a_fleet_names_each_host_and_never_guesses_one_fine() {
    let mut i = fine();
    i.hosts = vec![
        (site(Some("web1")), true),
        (site(Some("web2")), true),
        (site(Some("web3")), false),
    ];
    i.workers[0].host = Some("web3".into());
    let v = evaluate(&i);
    assert_eq!(v.state, State::Ok, "{v}");
    let line = v.to_string();
    assert!(line.contains("answering on 2 host(s)"), "{line}");
    assert!(line.contains("'live_answers'=2;;2:"), "{line}");
    assert!(line.contains("'hosts_unreachable'=0;;0"), "{line}");

    let mut stopped = i.clone();
    stopped.workers[0].running = false;
    let v = evaluate(&stopped);
    assert_eq!(v.state, State::Critical, "{v}");
    assert!(
        v.summary.contains("djob billing on web3 is not running"),
        "{v}"
    );

    let mut nginx = i.clone();
    nginx.hosts[1].0.live_answers = Err("502".into());
    let v = evaluate(&nginx);
    assert_eq!(v.state, State::Critical, "{v}");
    assert!(
        v.summary
            .contains("web2: the live release 2 does not answer"),
        "{v}"
    );
    assert!(v.to_string().contains("'live_answers'=1;;2:"), "{v}");

    // web3 does not answer: CRITICAL naming it; its djob is unknown,
    // not assumed running or stopped
    let mut down = i.clone();
    down.hosts[2].0.unreachable = Some("connection refused".into());
    down.workers[0].running = false;
    down.workers[0].unseen = vec!["web3".into()];
    let v = evaluate(&down);
    assert_eq!(v.state, State::Critical, "{v}");
    assert!(v.summary.contains("web3: cannot be reached"), "{v}");
    assert!(!v.summary.contains("is not running"), "{v}");
    assert!(
        v.problems
            .iter()
            .any(|p| p.state == State::Unknown && p.message.contains("not seen running")),
        "{v:?}"
    );
    assert!(v.to_string().contains("'hosts_unreachable'=1;;0"), "{v}");
}
