//! The zero-failed-requests guarantee: constant GET and POST traffic over
//! keep-alive connections through the host nginx across 10 consecutive
//! promotes. The test asserts counts, never times.

use std::io::{BufReader, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

mod common;
use common::*;

#[derive(Default)]
struct Counts {
    ok: AtomicU64,
    non_2xx: AtomicU64,
    failed: AtomicU64,
    errors: Mutex<Vec<String>>,
    tags: Mutex<std::collections::BTreeMap<String, u64>>,
}

fn client(port: u16, id: usize, stop: Arc<AtomicBool>, c: Arc<Counts>) {
    let mut conn: Option<(TcpStream, BufReader<TcpStream>)> = None;
    let mut n = 0u64;
    while !stop.load(Ordering::Relaxed) {
        if conn.is_none() {
            match TcpStream::connect(("127.0.0.1", port)) {
                Ok(s) => {
                    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
                    let r = BufReader::new(s.try_clone().unwrap());
                    conn = Some((s, r));
                }
                Err(e) => {
                    c.failed.fetch_add(1, Ordering::Relaxed);
                    c.errors
                        .lock()
                        .unwrap()
                        .push(format!("client {id}: connect: {e}"));
                    std::thread::sleep(Duration::from_millis(10));
                    continue;
                }
            }
        }
        let (s, r) = conn.as_mut().unwrap();
        n += 1;
        let req = if n.is_multiple_of(2) {
            let body = format!("payload {id} {n}");
            format!("POST /echo/ HTTP/1.1\r\nHost: localhost\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n{body}", body.len())
        } else {
            "GET /health/ HTTP/1.1\r\nHost: localhost\r\n\r\n".to_string()
        };
        let res = s.write_all(req.as_bytes()).and_then(|_| read_response(r));
        match res {
            Ok(resp) => {
                if (200..300).contains(&resp.status) {
                    c.ok.fetch_add(1, Ordering::Relaxed);
                    if let Some(t) = resp.header("X-Release") {
                        *c.tags.lock().unwrap().entry(t.to_string()).or_default() += 1;
                    }
                } else {
                    c.non_2xx.fetch_add(1, Ordering::Relaxed);
                    c.errors.lock().unwrap().push(format!(
                        "client {id}: HTTP {} {}",
                        resp.status,
                        resp.text().chars().take(200).collect::<String>()
                    ));
                }
                if resp
                    .header("Connection")
                    .is_some_and(|v| v.eq_ignore_ascii_case("close"))
                {
                    conn = None;
                }
            }
            Err(e) => {
                c.failed.fetch_add(1, Ordering::Relaxed);
                c.errors
                    .lock()
                    .unwrap()
                    .push(format!("client {id}: request {n}: {e}"));
                conn = None;
            }
        }
    }
}

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
