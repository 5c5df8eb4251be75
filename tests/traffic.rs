//! The zero-failed-requests guarantee: constant GET and POST traffic over
//! keep-alive connections through the host nginx across 10 consecutive
//! promotes. The test asserts counts, never times.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

mod common;
use common::load::{client, Counts};
use common::*;

#[test]
fn ten_promotes_under_constant_keepalive_traffic_fail_no_request() {
    ensure_image("1.0.0");
    ensure_image("1.0.1");
    let mut p = Project::new("traffic", "");
    p.with_nginx("");
    p.ok(&["promote", "1.0.0"]);
    let port = p.nginx.as_ref().unwrap().port;
    let stop = Arc::new(AtomicBool::new(false));
    let counts = Arc::new(Counts::default());
    let clients: Vec<_> = (0..8)
        .map(|i| {
            let (s, c) = (stop.clone(), counts.clone());
            std::thread::spawn(move || client(port, i, s, c))
        })
        .collect();
    let mut before = 0;
    for i in 0..10u32 {
        let tag = if i.is_multiple_of(2) {
            "1.0.1"
        } else {
            "1.0.0"
        };
        p.ok(&["promote", tag]);
        // every promote moves the traffic: the new tag is what answers now
        let r = http_get(port, "/health/").unwrap();
        assert_eq!(r.header("X-Release"), Some(tag), "after promote {i}");
        let now = counts.ok.load(Ordering::Relaxed);
        assert!(now > before, "traffic kept flowing during promote {i}");
        before = now;
    }
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        c.join().unwrap();
    }
    let (ok, non2xx, failed) = (
        counts.ok.load(Ordering::Relaxed),
        counts.non_2xx.load(Ordering::Relaxed),
        counts.failed.load(Ordering::Relaxed),
    );
    let tags = counts.tags.lock().unwrap().clone();
    eprintln!("requests ok={ok} non-2xx={non2xx} failed={failed} by tag={tags:?}");
    let errors = counts.errors.lock().unwrap();
    assert_eq!(
        failed,
        0,
        "failed connections/requests: {:?}",
        &errors[..errors.len().min(20)]
    );
    assert_eq!(
        non2xx,
        0,
        "non-2xx answers: {:?}",
        &errors[..errors.len().min(20)]
    );
    assert!(ok >= 1000, "enough traffic to mean something: {ok}");
    assert!(
        tags.get("1.0.0").copied().unwrap_or(0) > 0 && tags.get("1.0.1").copied().unwrap_or(0) > 0,
        "{tags:?}"
    );
    assert_eq!(p.history_lines().len(), 11);
}
