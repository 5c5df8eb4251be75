//! `ssh://` engines over ONE ssh connection per host.
//!
//! bollard's own ssh transport starts a new ssh master (a full handshake)
//! for every pooled HTTP connection. A fleet command opens several
//! connections per host at once, and sshd drops unauthenticated connections
//! beyond `MaxStartups` (default 10:30:100) at random: under load a
//! `docker create` failed with "client error (Connect)" in CI. Here one
//! master connection per host carries every HTTP connection as its own
//! channel (`docker system dial-stdio`), at most [`CHANNELS`] at once (sshd's
//! `MaxSessions` defaults to 10), and a channel that cannot be opened is
//! retried on a fresh master: a failed connect never sent the request, so a
//! retry cannot repeat one.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use hyper_util::client::legacy::connect::{Connected, Connection};
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use openssh::{ControlPersist, Session, SessionBuilder, Stdio};
use tokio::sync::{Mutex, OwnedSemaphorePermit, Semaphore};

/// Channels open at once on one host's ssh connection (sshd allows 10).
const CHANNELS: usize = 8;
/// Attempts to open a channel, a fresh master between them.
const ATTEMPTS: u32 = 4;

#[derive(Clone)]
pub(super) struct SshConnector {
    dest: Arc<str>,
    session: Arc<Mutex<Option<Arc<Session>>>>,
    channels: Arc<Semaphore>,
}

impl SshConnector {
    fn new(dest: &str) -> Self {
        SshConnector {
            dest: dest.into(),
            session: Arc::new(Mutex::new(None)),
            channels: Arc::new(Semaphore::new(CHANNELS)),
        }
    }

    async fn master(&self, fresh: bool) -> Result<Arc<Session>, openssh::Error> {
        let mut s = self.session.lock().await;
        if fresh {
            *s = None;
        }
        if let Some(s) = s.as_ref() {
            return Ok(s.clone());
        }
        let mut b = SessionBuilder::default();
        b.connect_timeout(Duration::from_secs(15))
            .server_alive_interval(Duration::from_secs(15))
            // webdock may exit without dropping the session: the master
            // then leaves by itself once idle, never lingers.
            .control_persist(ControlPersist::IdleFor(
                std::num::NonZeroUsize::new(20).expect("not zero"),
            ));
        let (b, dest) = b.resolve(&self.dest);
        let new = Arc::new(Session::new_process_mux(b.launch_master(dest).await?));
        *s = Some(new.clone());
        Ok(new)
    }

    async fn channel(self) -> Result<SshStream, openssh::Error> {
        let permit = self
            .channels
            .clone()
            .acquire_owned()
            .await
            .expect("the semaphore is never closed");
        let mut last = None;
        for attempt in 0..ATTEMPTS {
            if attempt > 0 {
                tokio::time::sleep(Duration::from_millis(200 << attempt)).await;
            }
            let session = match self.master(attempt > 0).await {
                Ok(s) => s,
                Err(e) => {
                    last = Some(e);
                    continue;
                }
            };
            match session
                .arc_command("docker")
                .arg("system")
                .arg("dial-stdio")
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .spawn()
                .await
            {
                Ok(mut child) => {
                    let (Some(stdin), Some(stdout)) = (child.stdin().take(), child.stdout().take())
                    else {
                        continue;
                    };
                    return Ok(SshStream {
                        _child: child,
                        _permit: permit,
                        stdin: Some(TokioIo::new(stdin)),
                        stdout: TokioIo::new(stdout),
                    });
                }
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| {
            openssh::Error::ChildIo(io::Error::other("no stdio from docker system dial-stdio"))
        }))
    }
}

impl tower_service::Service<hyper::Uri> for SshConnector {
    type Response = SshStream;
    type Error = openssh::Error;
    type Future = Pin<Box<dyn Future<Output = Result<SshStream, openssh::Error>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _: hyper::Uri) -> Self::Future {
        Box::pin(self.clone().channel())
    }
}

/// One HTTP connection: a `docker system dial-stdio` channel.
pub(super) struct SshStream {
    _child: openssh::Child<Arc<Session>>,
    _permit: OwnedSemaphorePermit,
    stdin: Option<TokioIo<openssh::ChildStdin>>,
    stdout: TokioIo<openssh::ChildStdout>,
}

impl SshStream {
    fn stdin(self: Pin<&mut Self>) -> io::Result<Pin<&mut TokioIo<openssh::ChildStdin>>> {
        self.get_mut()
            .stdin
            .as_mut()
            .map(Pin::new)
            .ok_or_else(|| io::ErrorKind::BrokenPipe.into())
    }
}

impl hyper::rt::Read for SshStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stdout).poll_read(cx, buf)
    }
}

impl hyper::rt::Write for SshStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.stdin()?.poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.stdin()?.poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.as_mut().stdin()?.poll_shutdown(cx))?;
        drop(self.get_mut().stdin.take());
        Poll::Ready(Ok(()))
    }
}

impl Connection for SshStream {
    fn connected(&self) -> Connected {
        Connected::new()
    }
}

/// A bollard client for `ssh://DEST` over one shared ssh connection.
pub(super) fn connect(dest: &str, timeout: u64) -> Result<bollard::Docker, super::BollardError> {
    let client = Client::builder(TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(30))
        .build(SshConnector::new(dest));
    bollard::Docker::connect_with_custom_transport(
        move |req: bollard::BollardRequest| {
            let client = client.clone();
            async move { Ok(client.request(req).await?) }
        },
        Some(format!("ssh://{dest}")),
        timeout,
        bollard::API_DEFAULT_VERSION,
    )
}
