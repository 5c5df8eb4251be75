//! Commands run inside a running container, through the engine: how a
//! remote host's live link is read and flipped and its sockets probed
//! without a shell on that host (a TLS-only engine is enough).

use std::pin::Pin;

use futures_util::{Stream, StreamExt};

use super::{api, ExecOutput, Result};

pub(super) async fn run(
    d: &bollard::Docker,
    container: &str,
    cmd: &[String],
) -> Result<ExecOutput> {
    let cfg = bollard::exec::CreateExecOptions {
        cmd: Some(cmd.to_vec()),
        attach_stdout: Some(true),
        attach_stderr: Some(true),
        user: Some("root".to_string()),
        ..Default::default()
    };
    let id = d
        .create_exec(container, cfg)
        .await
        .map_err(api("exec in", container))?
        .id;
    let opts = bollard::exec::StartExecOptions {
        detach: false,
        ..Default::default()
    };
    let mut output = String::new();
    match d
        .start_exec(&id, Some(opts))
        .await
        .map_err(api("exec", container))?
    {
        bollard::exec::StartExecResults::Attached { output: mut s, .. } => {
            while let Some(item) = s.next().await {
                output.push_str(&item.map_err(api("exec output", container))?.to_string());
            }
        }
        bollard::exec::StartExecResults::Detached => {}
    }
    let i = d
        .inspect_exec(&id)
        .await
        .map_err(api("inspect exec", container))?;
    Ok(ExecOutput {
        code: i.exit_code.unwrap_or(-1),
        output,
    })
}

/// Starts `cmd` (as root) attached: its stdin and output are our open
/// connection, so it ends when the session is dropped or we die.
pub(super) async fn session(
    d: &bollard::Docker,
    container: &str,
    cmd: &[String],
) -> Result<Session> {
    let cfg = bollard::exec::CreateExecOptions {
        cmd: Some(cmd.to_vec()),
        attach_stdin: Some(true),
        attach_stdout: Some(true),
        attach_stderr: Some(true),
        user: Some("root".to_string()),
        ..Default::default()
    };
    let id = d
        .create_exec(container, cfg)
        .await
        .map_err(api("exec in", container))?
        .id;
    let opts = bollard::exec::StartExecOptions {
        detach: false,
        ..Default::default()
    };
    match d
        .start_exec(&id, Some(opts))
        .await
        .map_err(api("exec", container))?
    {
        bollard::exec::StartExecResults::Attached { output, input } => Ok(Session::new(
            input,
            Box::pin(output.map(|item| {
                item.map(|o| o.into_bytes().to_vec())
                    .map_err(|e| e.to_string())
            })),
        )),
        bollard::exec::StartExecResults::Detached => Ok(Session::new(
            Box::pin(tokio::io::sink()),
            Box::pin(futures_util::stream::empty()),
        )),
    }
}

/// What a session prints, chunk by chunk; an error ends it.
pub type SessionOutput = Pin<Box<dyn Stream<Item = std::result::Result<Vec<u8>, String>> + Send>>;

/// A command running in a container with our connection as its stdin and
/// stdout: lines go in, lines come back. Dropping it closes its stdin.
pub struct Session {
    input: Pin<Box<dyn tokio::io::AsyncWrite + Send>>,
    output: SessionOutput,
    pending: Vec<u8>,
    ended: bool,
}

impl Session {
    pub fn new(input: Pin<Box<dyn tokio::io::AsyncWrite + Send>>, output: SessionOutput) -> Self {
        Session {
            input,
            output,
            pending: Vec::new(),
            ended: false,
        }
    }

    /// Writes `line` and a newline, flushed.
    pub async fn send(&mut self, line: &str) -> std::io::Result<()> {
        use tokio::io::AsyncWriteExt;
        self.input.write_all(format!("{line}\n").as_bytes()).await?;
        self.input.flush().await
    }

    /// The next line it printed (without its newline); `Ok(None)` once it
    /// has ended (its last words, unterminated, come first).
    pub async fn line(&mut self) -> std::result::Result<Option<String>, String> {
        loop {
            if let Some(i) = self.pending.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = self.pending.drain(..=i).collect();
                let text = String::from_utf8_lossy(&line[..i]);
                return Ok(Some(text.trim_end_matches('\r').to_string()));
            }
            if self.ended {
                if self.pending.is_empty() {
                    return Ok(None);
                }
                let rest = std::mem::take(&mut self.pending);
                return Ok(Some(String::from_utf8_lossy(&rest).into_owned()));
            }
            match self.output.next().await {
                Some(Ok(chunk)) => self.pending.extend_from_slice(&chunk),
                Some(Err(e)) => return Err(e),
                None => self.ended = true,
            }
        }
    }
}

/// A command kept running in a container for as long as this value lives:
/// its stdin is our open connection, so it ends when we drop it or die.
pub struct Held {
    _input: std::pin::Pin<Box<dyn tokio::io::AsyncWrite + Send>>,
    _output: std::pin::Pin<
        Box<
            dyn futures_util::Stream<
                    Item = std::result::Result<
                        bollard::container::LogOutput,
                        bollard::errors::Error,
                    >,
                > + Send,
        >,
    >,
}

impl super::Docker {
    /// Runs `cmd` (as root) with our connection as its stdin and waits for
    /// it to print a line: `held` keeps it running and returns it; anything
    /// else (or its end) is returned as the refusal, with what it printed.
    pub async fn hold(
        &self,
        container: &str,
        cmd: &[String],
    ) -> Result<std::result::Result<Held, String>> {
        let d = &self.inner;
        let cfg = bollard::exec::CreateExecOptions {
            cmd: Some(cmd.to_vec()),
            attach_stdin: Some(true),
            attach_stdout: Some(true),
            attach_stderr: Some(true),
            user: Some("root".to_string()),
            ..Default::default()
        };
        let id = d
            .create_exec(container, cfg)
            .await
            .map_err(api("exec in", container))?
            .id;
        let opts = bollard::exec::StartExecOptions {
            detach: false,
            ..Default::default()
        };
        match d
            .start_exec(&id, Some(opts))
            .await
            .map_err(api("exec", container))?
        {
            bollard::exec::StartExecResults::Attached { mut output, input } => {
                let mut said = String::new();
                while let Some(item) = output.next().await {
                    said.push_str(&item.map_err(api("exec output", container))?.to_string());
                    if said.lines().any(|l| l.trim() == "held") {
                        return Ok(Ok(Held {
                            _input: input,
                            _output: output,
                        }));
                    }
                }
                Ok(Err(said))
            }
            bollard::exec::StartExecResults::Detached => Ok(Err("detached".into())),
        }
    }
}
