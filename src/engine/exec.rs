//! Commands run inside a running container, through the engine: how a
//! remote host's live link is read and flipped and its sockets probed
//! without a shell on that host (a TLS-only engine is enough).

use futures_util::StreamExt;

use super::{api, ExecOutput, Result};

pub(super) async fn prepare(
    d: &bollard::Docker,
    container: &str,
    cmd: &[String],
) -> Result<String> {
    let cfg = bollard::exec::CreateExecOptions {
        cmd: Some(cmd.to_vec()),
        attach_stdout: Some(true),
        attach_stderr: Some(true),
        user: Some("root".to_string()),
        ..Default::default()
    };
    let r = d
        .create_exec(container, cfg)
        .await
        .map_err(api("exec in", container))?;
    Ok(r.id)
}

pub(super) async fn start(d: &bollard::Docker, id: &str) -> Result<ExecOutput> {
    let opts = bollard::exec::StartExecOptions {
        detach: false,
        ..Default::default()
    };
    let mut output = String::new();
    match d
        .start_exec(id, Some(opts))
        .await
        .map_err(api("exec", id))?
    {
        bollard::exec::StartExecResults::Attached { output: mut s, .. } => {
            while let Some(item) = s.next().await {
                output.push_str(&item.map_err(api("exec output", id))?.to_string());
            }
        }
        bollard::exec::StartExecResults::Detached => {}
    }
    let i = d.inspect_exec(id).await.map_err(api("inspect exec", id))?;
    Ok(ExecOutput {
        code: i.exit_code.unwrap_or(-1),
        output,
    })
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
