//! Keep-alive GET and POST traffic for the zero-failed-requests tests:
//! client threads that count every answer and every failure.

use std::io::{BufReader, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::read_response;

#[derive(Default)]
pub struct Counts {
    pub ok: AtomicU64,
    pub non_2xx: AtomicU64,
    pub failed: AtomicU64,
    pub errors: Mutex<Vec<String>>,
    pub tags: Mutex<std::collections::BTreeMap<String, u64>>,
}

pub fn client(port: u16, id: usize, stop: Arc<AtomicBool>, c: Arc<Counts>) {
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

/// `n` clients on `port` until the returned flag is set; join the handles.
pub fn start(
    port: u16,
    n: usize,
) -> (
    Arc<AtomicBool>,
    Arc<Counts>,
    Vec<std::thread::JoinHandle<()>>,
) {
    let stop = Arc::new(AtomicBool::new(false));
    let counts = Arc::new(Counts::default());
    let handles = (0..n)
        .map(|i| {
            let (stop, counts) = (stop.clone(), counts.clone());
            std::thread::spawn(move || client(port, i, stop, counts))
        })
        .collect();
    (stop, counts, handles)
}
