//! The flip of a host's live link: symlink to a temp name, `rename(2)`
//! over the link, fsync of its directory, on the host itself.
//!
//! Locally these are the controller's own syscalls (`proxy::flip`). On a
//! host of `[hosts]` they are made by a small Python loop started in the
//! `<project>-proxy` helper during the prepare phase ([`FLIP_LOOP`]): it
//! reads a color per line from our connection, flips, and answers
//! `flipped <color>` only after the rename and the fsync. The flip phase
//! then costs one line each way per host: no exec to create or start, no
//! process to spawn. The loop's stdin is our open connection, so when the
//! controller exits or dies the loop reads the end of its input and exits;
//! nothing is left that could flip later.
//!
//! A flip whose answer never came (the loop, its helper or its engine
//! died, or the answer is late) is a failed flip, and one that may have
//! happened: the fleet flips such a host back with the others.

use std::time::Duration;

use tokio::sync::Mutex;

use super::{Host, HostError, Reach, IN_LINKS};
use crate::engine::{Engine, Session};
use crate::proxy;
use crate::roles::Color;

/// The loop run in the helper. Arguments: the link, its temp name, their
/// directory, the blue and the green color directories (host paths: the
/// link is read by the host's nginx). `-I -S`: no site packages, no
/// environment, only `os` and `sys`, so it starts fast.
pub(super) const FLIP_LOOP: &str = r#"import os, sys
link, tmp, d, blue, green = sys.argv[1:6]
dirs = {"blue": blue, "green": green}
print("ready", flush=True)
while True:
    line = sys.stdin.readline()
    if not line:
        break
    color = line.strip()
    target = dirs.get(color)
    if target is None:
        print("failed: not a color: %r" % color[:40], flush=True)
        continue
    try:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        os.symlink(target, tmp)
        os.rename(tmp, link)
    except OSError as e:
        print("failed: %s" % e, flush=True)
        continue
    try:
        fd = os.open(d, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError as e:
        print("unsynced: %s" % e, flush=True)
        continue
    print("flipped " + color, flush=True)
"#;

/// How long the loop may take to start (Python, under load).
const READY_WITHIN: Duration = Duration::from_secs(30);
/// How long a flip's answer may take before the flip counts as failed
/// (and as one that may have happened).
const ANSWER_WITHIN: Duration = Duration::from_secs(10);

/// A flip made ready before the flip phase.
pub struct PreparedFlip {
    pub to: Color,
    /// The loop in the helper (remote hosts); `None`: local syscalls.
    session: Option<Mutex<Session>>,
}

impl std::fmt::Debug for PreparedFlip {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PreparedFlip")
            .field("to", &self.to)
            .field("held", &self.session.is_some())
            .finish()
    }
}

impl HostError {
    /// Whether a failed flip may still have moved the link: the color was
    /// sent, but no answer said it did not. Such a host is flipped back.
    pub fn may_have_flipped(&self) -> bool {
        matches!(self, HostError::Flip { maybe: true, .. })
    }
}

/// Whether a host's link may point at the new color after `r`.
pub fn maybe_flipped(r: &Result<(), HostError>) -> bool {
    r.as_ref()
        .map_or_else(HostError::may_have_flipped, |()| true)
}

impl<E: Engine> Host<E> {
    fn flip_err(&self, maybe: bool, what: String) -> HostError {
        HostError::Flip {
            host: self.name.clone(),
            maybe,
            what,
        }
    }

    /// Makes the flip to `to` ready: on a remote host the flip loop is
    /// started in the helper now and has said it is ready, so the flip is
    /// one line each way.
    pub async fn prepare_flip(&self, to: Color) -> Result<PreparedFlip, HostError> {
        let session = match self.reach {
            Reach::Local => None,
            Reach::Engine => Some(Mutex::new(self.start_loop().await?)),
        };
        Ok(PreparedFlip { to, session })
    }

    async fn start_loop(&self) -> Result<Session, HostError> {
        let name = |p: std::path::PathBuf| {
            p.file_name()
                .map(|f| f.to_string_lossy().into_owned())
                .unwrap_or_default()
        };
        let cmd: Vec<String> = vec![
            "python3".into(),
            "-I".into(),
            "-S".into(),
            "-c".into(),
            FLIP_LOOP.into(),
            format!("{IN_LINKS}/{}", name(self.layout.live_link())),
            format!("{IN_LINKS}/{}", name(self.layout.live_tmp())),
            IN_LINKS.into(),
            self.layout.color_dir(Color::Blue).display().to_string(),
            self.layout.color_dir(Color::Green).display().to_string(),
        ];
        let mut s = self.engine.exec_session(&self.helper_name(), &cmd).await?;
        let mut said = Vec::new();
        let ready = tokio::time::timeout(READY_WITHIN, async {
            loop {
                match s.line().await {
                    Ok(Some(l)) if l.trim() == "ready" => return Ok(()),
                    Ok(Some(l)) => said.push(l),
                    Ok(None) => return Err("it ended".to_string()),
                    Err(e) => return Err(e),
                }
            }
        })
        .await
        .unwrap_or_else(|_| Err(format!("no answer within {} s", READY_WITHIN.as_secs())));
        match ready {
            Ok(()) => Ok(s),
            Err(why) => Err(self.flip_err(
                false,
                format!(
                    "the flip loop in {} did not start ({why}): {}",
                    self.helper_name(),
                    said.join(" | ")
                ),
            )),
        }
    }

    /// Carries out a prepared flip: symlink, rename over the link, fsync
    /// of its directory, on the host itself. `Ok` only once the host said
    /// all three were done.
    pub async fn flip(&self, f: &PreparedFlip) -> Result<(), HostError> {
        let Some(session) = &f.session else {
            return Ok(proxy::flip(&self.layout, f.to)?);
        };
        let mut s = session.lock().await;
        if let Err(e) = s.send(f.to.as_str()).await {
            return Err(self.flip_err(false, format!("the flip to {} was not sent: {e}", f.to)));
        }
        let mut said = Vec::new();
        let answer = tokio::time::timeout(ANSWER_WITHIN, async {
            loop {
                match s.line().await {
                    Ok(Some(l)) => {
                        let l = l.trim().to_string();
                        if l.starts_with("flipped ")
                            || l.starts_with("failed:")
                            || l.starts_with("unsynced:")
                        {
                            return Some(l);
                        }
                        said.push(l);
                    }
                    Ok(None) | Err(_) => return None,
                }
            }
        })
        .await
        .ok()
        .flatten();
        match answer {
            Some(l) if l == format!("flipped {}", f.to) => Ok(()),
            Some(l) if l.starts_with("failed:") => Err(self.flip_err(
                false,
                format!("the flip to {} failed, the link did not move: {l}", f.to),
            )),
            Some(l) => Err(self.flip_err(
                true,
                format!("the flip to {} is not known to be durable: {l}", f.to),
            )),
            None => Err(self.flip_err(
                true,
                format!(
                    "no answer to the flip to {} within {} s (the flip loop, its helper or the engine is gone){}",
                    f.to,
                    ANSWER_WITHIN.as_secs(),
                    if said.is_empty() {
                        String::new()
                    } else {
                        format!(": {}", said.join(" | "))
                    }
                ),
            )),
        }
    }

    /// Prepares and carries out a flip at once (a flip back, a rollback).
    pub async fn flip_now(&self, to: Color) -> Result<(), HostError> {
        let f = self.prepare_flip(to).await?;
        self.flip(&f).await
    }
}

#[cfg(test)]
#[path = "flip_tests.rs"]
mod tests;
