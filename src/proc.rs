//! Runs external programs (mmdebstrap, pip, git, nginx) the one way webdock
//! does it: arguments as a vector (never through a shell), output captured
//! and logged at debug, and a non-zero exit turned into an error that carries
//! the command line and the tail of its stderr.

use std::ffi::OsStr;
use std::path::Path;
use std::process::Command;

#[derive(Debug, thiserror::Error)]
pub enum ProcError {
    #[error("cannot run {program}: {cause}{}", hint.as_deref().map(|h| format!("\nhint: {h}")).unwrap_or_default())]
    Spawn {
        program: String,
        cause: std::io::Error,
        hint: Option<String>,
    },
    #[error("`{command}` exited with {code}: {stderr}")]
    Failed {
        command: String,
        code: String,
        stderr: String,
    },
}

/// Runs `program args..` and returns its stdout. `hint` is shown when the
/// program is missing (for example which package provides it).
pub fn run<I, S>(
    program: &str,
    args: I,
    cwd: Option<&Path>,
    hint: Option<&str>,
) -> Result<String, ProcError>
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    run_env(program, args, cwd, &[], hint)
}

/// [`run`] with extra environment variables.
pub fn run_env<I, S>(
    program: &str,
    args: I,
    cwd: Option<&Path>,
    env: &[(&str, &str)],
    hint: Option<&str>,
) -> Result<String, ProcError>
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let args: Vec<_> = args.into_iter().map(|a| a.as_ref().to_owned()).collect();
    let shown = std::iter::once(program.to_string())
        .chain(args.iter().map(|a| a.to_string_lossy().into_owned()))
        .collect::<Vec<_>>()
        .join(" ");
    let mut cmd = Command::new(program);
    cmd.args(&args).envs(env.iter().copied());
    if let Some(d) = cwd {
        cmd.current_dir(d);
    }
    tracing::debug!(command = %shown, "running");
    let out = cmd.output().map_err(|cause| ProcError::Spawn {
        program: program.into(),
        cause,
        hint: hint.map(str::to_owned),
    })?;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    tracing::debug!(command = %shown, status = %out.status, stdout = %stdout.trim_end(), stderr = %stderr.trim_end(), "finished");
    if !out.status.success() {
        let tail: Vec<&str> = stderr.lines().rev().take(8).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        return Err(ProcError::Failed {
            command: shown,
            code: out
                .status
                .code()
                .map(|c| c.to_string())
                .unwrap_or_else(|| "a signal".into()),
            stderr: tail.join(" | "),
        });
    }
    Ok(stdout)
}
