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
