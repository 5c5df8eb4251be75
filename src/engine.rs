//! The only module that talks to Docker.
//!
//! Everything webdock asks of the engine goes through [`Engine`], a narrow
//! trait that the orchestration code is generic over: the real
//! implementation, [`Docker`], speaks the Engine API through bollard (version
//! negotiated, since Debian's engine is API 1.41), and unit tests of the
//! orchestration order use a recording fake. Calls that can outlast bollard's
//! response-header timeout (stopping a container with a long grace) carry
//! their own deadline.

mod follow;

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

pub use bollard::errors::Error as BollardError;

mod connect;
mod exec;
mod ssh;

pub use connect::Target;
pub use exec::{Held, Session, SessionOutput};

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("cannot reach the Docker engine: {0}\nhint: is dockerd running, and may this user open /var/run/docker.sock?")]
    Connect(BollardError),
    #[error("docker {op} {target}: {cause}")]
    Api {
        op: &'static str,
        target: String,
        cause: BollardError,
    },
    #[error("docker {op} {target}: no answer within {secs} s")]
    Timeout {
        op: &'static str,
        target: String,
        secs: u64,
    },
    #[error("image build failed: {0}")]
    Build(String),
}

pub type Result<T> = std::result::Result<T, EngineError>;

fn api<'a>(op: &'static str, target: &'a str) -> impl FnOnce(BollardError) -> EngineError + 'a {
    move |cause| EngineError::Api {
        op,
        target: target.to_owned(),
        cause,
    }
}

/// What webdock needs to know of an image.
#[derive(Debug, Clone)]
pub struct ImageInfo {
    pub id: String,
    pub labels: HashMap<String, String>,
    pub repo_tags: Vec<String>,
    pub created: i64,
    /// `<registry>/<image>@sha256:…` for each registry it was pushed to or
    /// pulled from: how `status` names the digest a container runs.
    pub repo_digests: Vec<String>,
}

/// What webdock needs to know of a container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerInfo {
    pub id: String,
    pub name: String,
    pub image: String,
    pub labels: HashMap<String, String>,
    pub running: bool,
    /// created | running | exited | restarting | dead | ...
    pub state: String,
    pub started_at: Option<String>,
    pub restart_count: i64,
    /// The id (`sha256:…`) of the image it was created from: a tag that
    /// was rebuilt since names another id.
    pub image_id: String,
    /// Its own stop timeout, as created (the role's grace then).
    pub stop_timeout: Option<Duration>,
    /// The log driver and options the engine applied (its defaults merged
    /// in at create).
    pub log: LogConfig,
}

/// A container's log driver and its options, as the engine takes them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogConfig {
    pub driver: String,
    pub options: BTreeMap<String, String>,
}

impl ContainerInfo {
    pub fn label(&self, k: &str) -> Option<&str> {
        self.labels.get(k).map(String::as_str)
    }
}

#[derive(Debug, Clone, Default)]
pub struct ContainerSpec {
    pub name: String,
    pub image: String,
    pub env: Vec<String>,
    pub labels: HashMap<String, String>,
    pub binds: Vec<String>,
    pub cmd: Option<Vec<String>>,
    /// Replaces the image's entrypoint (`/init`): the proxy helper of a
    /// remote host runs a plain `sleep` as root.
    pub entrypoint: Option<Vec<String>>,
    pub user: Option<String>,
    pub stop_timeout: Duration,
    /// Restart policy `always` (long-running roles): the container comes
    /// back after the engine restarts, even after an engine crash, where
    /// Docker 20.10 records running containers as stopped by hand and
    /// `unless-stopped` would leave the whole project down. A deliberate
    /// stop turns the policy off first (`set_restart`).
    pub restart_always: bool,
    /// None: the engine's default driver and options.
    pub log: Option<LogConfig>,
}

/// A line of progress from a build or an import.
#[derive(Debug, Clone)]
pub enum BuildEvent {
    Step(String),
    Output(String),
    CacheHit,
}

#[allow(async_fn_in_trait)]
pub trait Engine {
    async fn inspect_image(&self, reference: &str) -> Result<Option<ImageInfo>>;
    async fn list_images(&self, repository: &str) -> Result<Vec<ImageInfo>>;
    async fn remove_image(&self, reference: &str) -> Result<()>;
    async fn list_containers(&self, project: &str) -> Result<Vec<ContainerInfo>>;
    async fn inspect_container(&self, name: &str) -> Result<Option<ContainerInfo>>;
    async fn create_container(&self, spec: &ContainerSpec) -> Result<String>;
    async fn start_container(&self, name: &str) -> Result<()>;
    /// SIGTERM, up to `grace`, then SIGKILL. Missing or stopped is fine.
    async fn stop_container(&self, name: &str, grace: Duration) -> Result<()>;
    /// Switches the restart policy between `always` and `no`; a missing
    /// container is fine.
    async fn set_restart(&self, name: &str, always: bool) -> Result<()>;
    /// Force-remove; a missing container is fine.
    async fn remove_container(&self, name: &str) -> Result<()>;
    /// Wait for exit, returning the exit code.
    async fn wait_container(&self, name: &str, deadline: Duration) -> Result<i64>;
    async fn logs_tail(&self, name: &str, lines: usize) -> Result<String>;
    /// Each line of a container's output from its start, then as it comes,
    /// until it stops: for waiting on one an earlier webdock started.
    async fn follow_output(&self, name: &str, on_line: &mut dyn FnMut(&str)) -> Result<()>;
    /// Runs a command in a running container (as root) to its end: its
    /// exit code and output.
    async fn exec(&self, container: &str, cmd: &[String]) -> Result<ExecOutput>;
    /// Starts a command in a running container (as root) that reads lines
    /// from our connection and answers on it, for as long as the session
    /// lives: what a remote host's flip is made ready with, so that the
    /// flip itself is one line each way.
    async fn exec_session(&self, container: &str, cmd: &[String]) -> Result<Session>;
}

/// What a command run in a container said and how it ended.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExecOutput {
    pub code: i64,
    pub output: String,
}

pub struct Docker {
    inner: bollard::Docker,
}

const CLIENT_TIMEOUT: u64 = 900;

/// An image's layers and history (oldest first), from inspect and history.
#[derive(Debug, Clone)]
pub struct ImageLayers {
    pub id: String,
    pub diff_ids: Vec<String>,
    pub labels: HashMap<String, String>,
    /// `<repo>@sha256:…` for each registry it was pushed to or pulled from.
    pub repo_digests: Vec<String>,
    /// Empty from `image_brief`.
    pub history: Vec<HistoryItem>,
}

#[derive(Debug, Clone)]
pub struct HistoryItem {
    pub created: i64,
    pub created_by: String,
    pub comment: String,
    pub size: i64,
}

mod docker;
mod images;

use docker::not_found;

// ---------------------------------------------------------------------------
// Delivery across engines (push, pull by digest, resolve, ship): its own file.
// ---------------------------------------------------------------------------

mod delivery;
mod ship;
pub use delivery::{Access, DeliveryError, Progress, ShipReport};
