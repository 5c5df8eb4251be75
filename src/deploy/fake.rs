//! A recording, in-memory [`Engine`] for orchestration-order tests.
//!
//! It keeps containers and images in maps, refuses a second container with
//! the same name (as Docker does), logs every call, and on starting a portal
//! serves the health endpoint on the color's host socket so the real health
//! code runs against it.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::engine::{
    ContainerInfo, ContainerSpec, Engine, EngineError, ExecOutput, ImageInfo, Result, Session,
};

#[derive(Default)]
pub struct Fake {
    pub calls: Mutex<Vec<String>>,
    pub containers: Mutex<HashMap<String, (ContainerSpec, bool)>>,
    pub images: Mutex<HashMap<String, ImageInfo>>,
    /// Exit code of release containers.
    pub release_exit: Mutex<i64>,
    /// Release containers never end: a wait on one times out.
    pub release_hangs: Mutex<bool>,
    /// Exit code of backup (and other one-off) containers.
    pub backup_exit: Mutex<i64>,
    /// Health answers name this release instead of the container's tag.
    pub health_release: Mutex<Option<String>>,
    /// While a release container runs, this image takes over this
    /// reference: a concurrent `build TAG` or `pull TAG` mid-promote.
    pub retag_during_release: Mutex<Option<(String, ImageInfo)>>,
    /// Sessions run here, as local processes, with a container's
    /// `/webdock/...` paths under this directory; their pids.
    pub exec_root: Mutex<Option<PathBuf>>,
    pub session_pids: Mutex<Vec<u32>>,
    /// Runs this program instead of a session's own (with its arguments).
    pub session_program: Mutex<Option<PathBuf>>,
    next_id: Mutex<u32>,
}

impl Fake {
    pub fn image(&self, repo: &str, tag: &str, djobs: &str) {
        let labels = HashMap::from([
            ("webdock.tag".to_string(), tag.to_string()),
            ("webdock.djobs".to_string(), djobs.to_string()),
        ]);
        let id = format!("sha256:{tag}");
        let info = ImageInfo {
            id,
            labels,
            repo_tags: vec![format!("{repo}:{tag}")],
            created: 0,
            repo_digests: vec![],
        };
        self.images
            .lock()
            .unwrap()
            .insert(format!("{repo}:{tag}"), info);
    }
    /// A container that some earlier command left behind, running or not.
    pub fn leave(&self, spec: ContainerSpec, running: bool) {
        self.containers
            .lock()
            .unwrap()
            .insert(spec.name.clone(), (spec, running));
    }
    fn log(&self, s: String) {
        self.calls.lock().unwrap().push(s);
    }
    pub fn calls(&self) -> Vec<String> {
        self.calls.lock().unwrap().clone()
    }
    /// A session run on this machine: the command as given, its
    /// `/webdock/...` arguments moved under `exec_root`, its stdin and
    /// stdout the session's (it is killed when the session is dropped).
    fn local_session(&self, cmd: &[String]) -> Session {
        let root = self.exec_root.lock().unwrap().clone();
        let args: Vec<String> = cmd[1..]
            .iter()
            .map(|a| match (&root, a.strip_prefix("/webdock/")) {
                (Some(r), Some(rest)) => r.join(rest).display().to_string(),
                _ => a.clone(),
            })
            .collect();
        let program = self.session_program.lock().unwrap().clone();
        let program = program.unwrap_or_else(|| PathBuf::from(&cmd[0]));
        let mut child = tokio::process::Command::new(program)
            .args(&args)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("a local session starts");
        if let Some(pid) = child.id() {
            self.session_pids.lock().unwrap().push(pid);
        }
        let stdin = child.stdin.take().unwrap();
        let stdout = child.stdout.take().unwrap();
        let output = futures_util::stream::unfold((stdout, child), |(mut out, child)| async move {
            let mut buf = vec![0u8; 4096];
            match out.read(&mut buf).await {
                Ok(0) | Err(_) => None,
                Ok(n) => {
                    buf.truncate(n);
                    Some((Ok(buf), (out, child)))
                }
            }
        });
        Session::new(Box::pin(stdin), Box::pin(output))
    }

    fn info(name: &str, spec: &ContainerSpec, running: bool) -> ContainerInfo {
        ContainerInfo {
            id: format!("id-{name}"),
            name: name.into(),
            image: spec.image.clone(),
            labels: spec.labels.clone(),
            running,
            state: if running {
                "running".into()
            } else {
                "exited".into()
            },
            started_at: None,
            restart_count: 0,
            image_id: format!(
                "sha256:{}",
                spec.labels.get("webdock.tag").cloned().unwrap_or_default()
            ),
            stop_timeout: Some(spec.stop_timeout),
            log: spec.log.clone().unwrap_or_default(),
        }
    }
}

fn serve_health(sock: PathBuf, release: String) {
    let _ = std::fs::remove_file(&sock);
    let l = tokio::net::UnixListener::bind(&sock).expect("bind fake portal socket");
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = l.accept().await else {
                return;
            };
            let release = release.clone();
            tokio::spawn(async move {
                let mut buf = [0u8; 2048];
                let _ = s.read(&mut buf).await;
                let body = format!("ok {release}");
                let r = format!("HTTP/1.1 200 OK\r\nX-Release: {release}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len());
                let _ = s.write_all(r.as_bytes()).await;
            });
        }
    });
}

impl Engine for Fake {
    async fn inspect_image(&self, reference: &str) -> Result<Option<ImageInfo>> {
        let images = self.images.lock().unwrap();
        Ok(images
            .get(reference)
            .or_else(|| images.values().find(|i| i.id == reference))
            .cloned())
    }
    async fn list_images(&self, _repository: &str) -> Result<Vec<ImageInfo>> {
        Ok(self.images.lock().unwrap().values().cloned().collect())
    }
    async fn remove_image(&self, reference: &str) -> Result<()> {
        self.log(format!("rmi {reference}"));
        self.images.lock().unwrap().remove(reference);
        Ok(())
    }
    async fn list_containers(&self, _project: &str) -> Result<Vec<ContainerInfo>> {
        let mut v: Vec<_> = self
            .containers
            .lock()
            .unwrap()
            .iter()
            .map(|(n, (s, r))| Fake::info(n, s, *r))
            .collect();
        v.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(v)
    }
    async fn inspect_container(&self, name: &str) -> Result<Option<ContainerInfo>> {
        Ok(self
            .containers
            .lock()
            .unwrap()
            .get(name)
            .map(|(s, r)| Fake::info(name, s, *r)))
    }
    async fn create_container(&self, spec: &ContainerSpec) -> Result<String> {
        self.log(format!("create {}", spec.name));
        let mut cs = self.containers.lock().unwrap();
        if cs.contains_key(&spec.name) {
            return Err(EngineError::Build(format!(
                "Conflict. The container name {} is already in use",
                spec.name
            )));
        }
        cs.insert(spec.name.clone(), (spec.clone(), false));
        let mut id = self.next_id.lock().unwrap();
        *id += 1;
        Ok(format!("id{id}"))
    }
    async fn start_container(&self, name: &str) -> Result<()> {
        self.log(format!("start {name}"));
        let spec = {
            let mut cs = self.containers.lock().unwrap();
            let c = cs.get_mut(name).expect("start of a created container");
            c.1 = true;
            c.0.clone()
        };
        if spec.labels.get("webdock.role").map(String::as_str) == Some("portal") {
            let dir = spec
                .binds
                .iter()
                .find_map(|b| b.strip_suffix(":/run/webdock/sock"))
                .expect("portal socket bind");
            let release = self
                .health_release
                .lock()
                .unwrap()
                .clone()
                .unwrap_or_else(|| spec.labels["webdock.tag"].clone());
            serve_health(PathBuf::from(dir).join("nginx.sock"), release);
        }
        Ok(())
    }
    async fn stop_container(&self, name: &str, _grace: Duration) -> Result<()> {
        if let Some(c) = self.containers.lock().unwrap().get_mut(name) {
            self.calls.lock().unwrap().push(format!("stop {name}"));
            c.1 = false;
        }
        Ok(())
    }
    async fn set_restart(&self, name: &str, always: bool) -> Result<()> {
        self.log(format!(
            "restart-policy {name} {}",
            if always { "always" } else { "no" }
        ));
        Ok(())
    }
    async fn remove_container(&self, name: &str) -> Result<()> {
        if self.containers.lock().unwrap().remove(name).is_some() {
            self.log(format!("remove {name}"));
        }
        Ok(())
    }
    async fn wait_container(&self, name: &str, deadline: Duration) -> Result<i64> {
        self.log(format!("wait {name}"));
        if name.contains("-release-") {
            if let Some((r, i)) = self.retag_during_release.lock().unwrap().take() {
                self.images.lock().unwrap().insert(r, i);
            }
            if *self.release_hangs.lock().unwrap() {
                return Err(EngineError::Timeout {
                    op: "wait",
                    target: name.into(),
                    secs: deadline.as_secs(),
                });
            }
            return Ok(*self.release_exit.lock().unwrap());
        }
        if name.contains("-backup-") || name.contains("-verify-") {
            return Ok(*self.backup_exit.lock().unwrap());
        }
        std::future::pending().await
    }
    async fn logs_tail(&self, name: &str, _lines: usize) -> Result<String> {
        self.log(format!("logs {name}"));
        Ok(format!("logs of {name}\n"))
    }
    async fn exec(&self, container: &str, cmd: &[String]) -> Result<ExecOutput> {
        self.log(format!("exec {container} {}", cmd.join(" ")));
        Ok(ExecOutput::default())
    }
    async fn exec_session(&self, container: &str, cmd: &[String]) -> Result<Session> {
        self.log(format!("exec-session {container} {}", cmd[0]));
        Ok(self.local_session(cmd))
    }
    async fn follow_output(&self, name: &str, on_line: &mut dyn FnMut(&str)) -> Result<()> {
        self.log(format!("follow {name}"));
        on_line(&format!("output of {name}"));
        Ok(())
    }
}

/// A borrowed engine is an engine: tests give several hosts (or configs)
/// one fake and read its calls afterwards.
impl<T: Engine> Engine for &T {
    async fn inspect_image(&self, reference: &str) -> Result<Option<ImageInfo>> {
        (**self).inspect_image(reference).await
    }
    async fn list_images(&self, repository: &str) -> Result<Vec<ImageInfo>> {
        (**self).list_images(repository).await
    }
    async fn remove_image(&self, reference: &str) -> Result<()> {
        (**self).remove_image(reference).await
    }
    async fn list_containers(&self, project: &str) -> Result<Vec<ContainerInfo>> {
        (**self).list_containers(project).await
    }
    async fn inspect_container(&self, name: &str) -> Result<Option<ContainerInfo>> {
        (**self).inspect_container(name).await
    }
    async fn create_container(&self, spec: &ContainerSpec) -> Result<String> {
        (**self).create_container(spec).await
    }
    async fn start_container(&self, name: &str) -> Result<()> {
        (**self).start_container(name).await
    }
    async fn stop_container(&self, name: &str, grace: Duration) -> Result<()> {
        (**self).stop_container(name, grace).await
    }
    async fn set_restart(&self, name: &str, always: bool) -> Result<()> {
        (**self).set_restart(name, always).await
    }
    async fn remove_container(&self, name: &str) -> Result<()> {
        (**self).remove_container(name).await
    }
    async fn wait_container(&self, name: &str, deadline: Duration) -> Result<i64> {
        (**self).wait_container(name, deadline).await
    }
    async fn logs_tail(&self, name: &str, lines: usize) -> Result<String> {
        (**self).logs_tail(name, lines).await
    }
    async fn exec(&self, container: &str, cmd: &[String]) -> Result<ExecOutput> {
        (**self).exec(container, cmd).await
    }
    async fn exec_session(&self, container: &str, cmd: &[String]) -> Result<Session> {
        (**self).exec_session(container, cmd).await
    }
    async fn follow_output(&self, name: &str, on_line: &mut dyn FnMut(&str)) -> Result<()> {
        (**self).follow_output(name, on_line).await
    }
}
