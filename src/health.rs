//! Is a color ready for traffic? Probes over its unix socket.
//!
//! Waiting for the socket uses inotify (notify) on the color's directory, not
//! a sleep loop. A probe is a real HTTP request through the container's nginx
//! and uwsgi to Django, with an explicit `Host` header (Django checks
//! ALLOWED_HOSTS; hyperlocal would otherwise send a hex-encoded path), a
//! per-request timeout and no connection pooling. Healthy means N
//! consecutive 2xx answers that name the expected release in `X-Release`:
//! one lucky answer is not enough, and an old container answering on a
//! reused socket is not the new release.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use hyperlocal::{UnixConnector, Uri as UnixUri};

use crate::config::Health;

#[derive(Debug, thiserror::Error)]
pub enum HealthError {
    #[error("socket {path} did not appear within {secs} s")]
    NoSocket { path: PathBuf, secs: u64 },
    #[error("cannot watch {path}: {message}")]
    Watch { path: PathBuf, message: String },
    #[error("not healthy within {secs} s after {attempts} probes of {what}: last answer: {last}")]
    Deadline {
        what: String,
        secs: u64,
        attempts: u32,
        last: String,
    },
}

/// One answer.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub release: Option<String>,
    pub body: String,
}

impl Answer {
    pub fn names(&self, tag: &str) -> bool {
        (200..300).contains(&self.status) && self.release.as_deref() == Some(tag)
    }
    pub fn describe(&self) -> String {
        format!(
            "HTTP {} X-Release={} {:?}",
            self.status,
            self.release.as_deref().unwrap_or("(none)"),
            self.body.chars().take(120).collect::<String>()
        )
    }
}

/// Waits until `path` exists, watching its directory.
pub async fn wait_socket(path: &Path, deadline: Duration) -> Result<(), HealthError> {
    use notify::Watcher;
    let dir = path.parent().expect("socket has a directory").to_path_buf();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let mut watcher = notify::recommended_watcher(move |ev: notify::Result<notify::Event>| {
        let _ = tx.send(ev);
    })
    .map_err(|e| HealthError::Watch {
        path: dir.clone(),
        message: e.to_string(),
    })?;
    watcher
        .watch(&dir, notify::RecursiveMode::NonRecursive)
        .map_err(|e| HealthError::Watch {
            path: dir.clone(),
            message: e.to_string(),
        })?;
    // Checked after the watch is in place, so a socket made in between is seen.
    if path.exists() {
        return Ok(());
    }
    let wait = async {
        while let Some(ev) = rx.recv().await {
            if let Ok(ev) = ev {
                if ev.paths.iter().any(|p| p == path) && path.exists() {
                    return;
                }
            }
        }
    };
    tokio::time::timeout(deadline, wait)
        .await
        .map_err(|_| HealthError::NoSocket {
            path: path.into(),
            secs: deadline.as_secs(),
        })
}

async fn read(resp: hyper::Response<hyper::body::Incoming>) -> Result<Answer, String> {
    let status = resp.status().as_u16();
    let release = resp
        .headers()
        .get("x-release")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let body = resp
        .into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?
        .to_bytes();
    Ok(Answer {
        status,
        release,
        body: String::from_utf8_lossy(&body[..body.len().min(512)]).into_owned(),
    })
}

/// One GET over a unix socket.
pub async fn probe_unix(
    socket: &Path,
    host: &str,
    path: &str,
    timeout: Duration,
) -> Result<Answer, String> {
    let uri: hyper::Uri = UnixUri::new(socket, path).into();
    let req = hyper::Request::get(uri).header(hyper::header::HOST, host);
    get(
        UnixConnector,
        req.header("user-agent", "webdock-health"),
        timeout,
    )
    .await
}

/// One GET to a plain-HTTP URL (the host nginx).
pub async fn probe_url(url: &str, timeout: Duration) -> Result<Answer, String> {
    let uri: hyper::Uri = url.parse().map_err(|e| format!("bad url {url:?}: {e}"))?;
    let req = hyper::Request::get(uri).header("user-agent", "webdock-verify");
    let connector = hyper_util::client::legacy::connect::HttpConnector::new();
    get(connector, req, timeout).await
}

/// Sends one request on a fresh, unpooled connection, bounded by `timeout`.
async fn get<C>(
    connector: C,
    req: hyper::http::request::Builder,
    timeout: Duration,
) -> Result<Answer, String>
where
    C: hyper_util::client::legacy::connect::Connect + Clone + Send + Sync + 'static,
{
    let client: Client<C, Empty<Bytes>> = Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(0)
        .build(connector);
    let req = req.body(Empty::new()).map_err(|e| e.to_string())?;
    let answer = async { read(client.request(req).await.map_err(|e| e.to_string())?).await };
    match tokio::time::timeout(timeout, answer).await {
        Ok(r) => r,
        Err(_) => Err(format!("no answer within {} ms", timeout.as_millis())),
    }
}

/// Outcome of a successful health wait.
#[derive(Debug, Clone)]
pub struct Healthy {
    pub probes: u32,
}

/// Probes until `consecutive` answers in a row name `tag`, or the deadline.
pub async fn wait_healthy(socket: &Path, h: &Health, tag: &str) -> Result<Healthy, HealthError> {
    wait_healthy_with(&socket.display().to_string(), h, tag, || {
        probe_unix(socket, &h.host, &h.path, h.timeout)
    })
    .await
}

/// [`wait_healthy`] with any probe: a remote host's socket is probed
/// through its engine.
pub async fn wait_healthy_with<F, Fut>(
    what: &str,
    h: &Health,
    tag: &str,
    mut probe: F,
) -> Result<Healthy, HealthError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<Answer, String>>,
{
    let start = Instant::now();
    let (mut ok, mut probes) = (0u32, 0u32);
    let mut last = String::from("(no probe yet)");
    while start.elapsed() < h.deadline {
        probes += 1;
        match probe().await {
            Ok(a) if a.names(tag) => {
                ok += 1;
                if ok >= h.consecutive {
                    return Ok(Healthy { probes });
                }
                last = a.describe();
            }
            Ok(a) => {
                ok = 0;
                last = a.describe();
            }
            Err(e) => {
                ok = 0;
                last = e;
            }
        }
        tokio::time::sleep(h.interval).await;
    }
    Err(HealthError::Deadline {
        what: what.to_string(),
        secs: h.deadline.as_secs(),
        attempts: probes,
        last,
    })
}

/// Reads what `curl -sS -o /dev/null -D -` printed: the status line and the
/// `X-Release` header of the last response.
pub fn parse_curl_head(out: &str) -> Result<Answer, String> {
    let mut status = None;
    let mut release = None;
    for line in out.lines() {
        let line = line.trim_end();
        if line.starts_with("HTTP/") {
            status = line.split_whitespace().nth(1).and_then(|c| c.parse().ok());
            release = None;
        } else if let Some((k, v)) = line.split_once(':') {
            if k.eq_ignore_ascii_case("x-release") {
                release = Some(v.trim().to_string());
            }
        }
    }
    match status {
        Some(status) => Ok(Answer {
            status,
            release,
            body: String::new(),
        }),
        None => Err(out.lines().last().unwrap_or("no answer").trim().to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn wait_socket_sees_a_file_made_later_and_times_out_otherwise() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("nginx.sock");
        let p2 = p.clone();
        let maker = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(100)).await;
            std::os::unix::net::UnixListener::bind(&p2).unwrap()
        });
        wait_socket(&p, Duration::from_secs(5)).await.unwrap();
        let _l = maker.await.unwrap();
        let e = wait_socket(&d.path().join("never.sock"), Duration::from_millis(200))
            .await
            .unwrap_err();
        assert!(matches!(e, HealthError::NoSocket { .. }));
    }

    #[tokio::test]
    async fn health_needs_the_tag_and_consecutive_answers() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("s.sock");
        let l = tokio::net::UnixListener::bind(&p).unwrap();
        // Answers: wrong tag, right, right, wrong, right, right, right.
        let tags = ["old", "new", "new", "old", "new", "new", "new"];
        tokio::spawn(async move {
            for t in tags.iter().chain(std::iter::repeat(&"new")) {
                let (mut s, _) = l.accept().await.unwrap();
                let mut buf = [0u8; 1024];
                let n = s.read(&mut buf).await.unwrap();
                let req = String::from_utf8_lossy(&buf[..n]).to_lowercase();
                assert!(req.contains("host: example.test"), "{req}");
                let body = format!("ok {t}");
                let resp = format!("HTTP/1.1 200 OK\r\nX-Release: {t}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len());
                s.write_all(resp.as_bytes()).await.unwrap();
            }
        });
        let h = Health {
            path: "/health/".into(),
            host: "example.test".into(),
            consecutive: 3,
            interval: Duration::from_millis(1),
            timeout: Duration::from_secs(2),
            deadline: Duration::from_secs(10),
        };
        let r = wait_healthy(&p, &h, "new").await.unwrap();
        assert_eq!(r.probes, 7, "the streak restarts after a wrong answer");
    }
}
