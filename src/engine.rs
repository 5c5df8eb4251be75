//! The only module that talks to Docker.
//!
//! Everything webdock asks of the engine goes through [`Engine`], a narrow
//! trait that the orchestration code is generic over: the real
//! implementation, [`Docker`], speaks the Engine API through bollard (version
//! negotiated, since Debian's engine is API 1.41), and unit tests of the
//! orchestration order use a recording fake. Calls that can outlast bollard's
//! response-header timeout (stopping a container with a long grace) carry
//! their own deadline.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use bollard::query_parameters as q;
use futures_util::{Stream, StreamExt};

pub use bollard::errors::Error as BollardError;

mod connect;
mod exec;

pub use connect::Target;
pub use exec::Held;

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
    /// Prepares a command to run in a running container (as root) and
    /// returns its id: starting it later is one short round trip.
    async fn exec_prepare(&self, container: &str, cmd: &[String]) -> Result<String>;
    /// Runs a prepared command to its end: its exit code and output.
    async fn exec_start(&self, id: &str) -> Result<ExecOutput>;
    /// Prepares and runs a command in one go.
    async fn exec(&self, container: &str, cmd: &[String]) -> Result<ExecOutput> {
        let id = self.exec_prepare(container, cmd).await?;
        self.exec_start(&id).await
    }
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

impl Docker {
    /// Connects (DOCKER_HOST, unix:// or tcp://, else the local socket) and negotiates the API
    /// version, so newer bollard works against an older engine.
    pub async fn connect() -> Result<Docker> {
        let d = bollard::Docker::connect_with_defaults().map_err(EngineError::Connect)?;
        let d = d.with_timeout(Duration::from_secs(CLIENT_TIMEOUT));
        let d = d.negotiate_version().await.map_err(EngineError::Connect)?;
        Ok(Docker { inner: d })
    }

    pub fn api_version(&self) -> String {
        let v = self.inner.client_version();
        format!("{}.{}", v.major_version, v.minor_version)
    }

    pub async fn server_version(&self) -> Result<String> {
        let v = self
            .inner
            .version()
            .await
            .map_err(api("version", "engine"))?;
        Ok(format!(
            "{} (API {})",
            v.version.unwrap_or_default(),
            v.api_version.unwrap_or_default()
        ))
    }

    /// Builds from a tar stream with the classic builder; returns the image id.
    pub async fn build_image<S>(
        &self,
        context: S,
        tag: &str,
        build_args: HashMap<String, String>,
        no_cache: bool,
        mut on_event: impl FnMut(BuildEvent),
    ) -> Result<String>
    where
        S: Stream<Item = std::result::Result<bytes::Bytes, std::io::Error>> + Send + 'static,
    {
        let opts = q::BuildImageOptions {
            dockerfile: "Dockerfile".into(),
            t: Some(tag.into()),
            rm: true,
            forcerm: true,
            nocache: no_cache,
            buildargs: Some(build_args),
            version: q::BuilderVersion::BuilderV1,
            ..Default::default()
        };
        let mut stream =
            self.inner
                .build_image(opts, None, Some(bollard::body_try_stream(context)));
        let mut id = None;
        while let Some(item) = stream.next().await {
            let info = item.map_err(|e| match e {
                BollardError::DockerStreamError { error } => EngineError::Build(error),
                e => EngineError::Api {
                    op: "build",
                    target: tag.into(),
                    cause: e,
                },
            })?;
            if let Some(aux) = info.aux.and_then(|a| a.id) {
                id = Some(aux);
            }
            if let Some(s) = info.stream {
                for line in s.lines().map(str::trim_end).filter(|l| !l.is_empty()) {
                    if line.starts_with("Step ") {
                        on_event(BuildEvent::Step(line.to_owned()));
                    } else if line.contains("Using cache") {
                        on_event(BuildEvent::CacheHit);
                    } else {
                        on_event(BuildEvent::Output(line.to_owned()));
                    }
                }
            }
        }
        match id {
            Some(id) => Ok(id),
            None => {
                // Old engines only print "Successfully built <id>"; ask instead.
                let img = self.inspect_image(tag).await?;
                img.map(|i| i.id)
                    .ok_or_else(|| EngineError::Build(format!("{tag} missing after build")))
            }
        }
    }

    /// `docker import`: a root filesystem tarball becomes an image.
    pub async fn import_rootfs<S>(
        &self,
        rootfs: S,
        repo: &str,
        tag: &str,
        changes: Vec<String>,
    ) -> Result<()>
    where
        S: Stream<Item = std::result::Result<bytes::Bytes, std::io::Error>> + Send + 'static,
    {
        let opts = q::CreateImageOptions {
            from_src: Some("-".into()),
            repo: Some(repo.into()),
            tag: Some(tag.into()),
            changes,
            ..Default::default()
        };
        let target = format!("{repo}:{tag}");
        let mut s =
            self.inner
                .create_image(Some(opts), Some(bollard::body_try_stream(rootfs)), None);
        while let Some(item) = s.next().await {
            item.map_err(api("import", &target))?;
        }
        Ok(())
    }

    /// Follow a container's output (for `webdock logs -f`).
    pub fn follow_logs(
        &self,
        name: &str,
        follow: bool,
        tail: &str,
    ) -> impl Stream<Item = std::result::Result<bollard::container::LogOutput, BollardError>> + '_
    {
        let opts = q::LogsOptions {
            follow,
            stdout: true,
            stderr: true,
            tail: tail.into(),
            ..Default::default()
        };
        self.inner.logs(name, Some(opts))
    }

    // ---- the build's own calls (only `build` uses them) ----

    /// A one-off build container: no network, root, `cmd` instead of the
    /// image's entrypoint, labelled `webdock.build` so a leftover is findable.
    pub async fn create_build_container(
        &self,
        name: &str,
        image: &str,
        cmd: Vec<String>,
        env: Vec<String>,
        workdir: &str,
    ) -> Result<String> {
        let body = bollard::models::ContainerCreateBody {
            image: Some(image.into()),
            cmd: Some(cmd),
            entrypoint: Some(vec![]),
            env: Some(env),
            user: Some("0:0".into()),
            working_dir: Some(workdir.into()),
            labels: Some(HashMap::from([("webdock.build".into(), "1".into())])),
            host_config: Some(bollard::models::HostConfig {
                network_mode: Some("none".into()),
                ..Default::default()
            }),
            ..Default::default()
        };
        let opts = q::CreateContainerOptions {
            name: Some(name.into()),
            ..Default::default()
        };
        let r = self
            .inner
            .create_container(Some(opts), body)
            .await
            .map_err(api("create", name))?;
        Ok(r.id)
    }

    /// Unpacks a tar into a container's filesystem at `path`.
    pub async fn upload(&self, container: &str, path: &str, tar: bytes::Bytes) -> Result<()> {
        let opts = q::UploadToContainerOptions {
            path: path.into(),
            ..Default::default()
        };
        self.inner
            .upload_to_container(container, Some(opts), bollard::body_full(tar))
            .await
            .map_err(api("copy into", container))
    }

    /// A tar of `path` in a container's filesystem.
    pub async fn download(&self, container: &str, path: &str) -> Result<Vec<u8>> {
        let opts = q::DownloadFromContainerOptions { path: path.into() };
        let mut s = self.inner.download_from_container(container, Some(opts));
        let mut out = Vec::new();
        while let Some(chunk) = s.next().await {
            out.extend_from_slice(&chunk.map_err(api("copy from", container))?);
        }
        Ok(out)
    }

    /// Commits a container's changes as `repo:tag`; the comment is what
    /// `docker history` shows beside the layer. Returns the image id.
    pub async fn commit(
        &self,
        container: &str,
        repo: &str,
        tag: &str,
        comment: &str,
    ) -> Result<String> {
        let opts = q::CommitContainerOptions {
            container: Some(container.into()),
            repo: Some(repo.into()),
            tag: Some(tag.into()),
            comment: Some(comment.into()),
            pause: false,
            ..Default::default()
        };
        let r = self
            .inner
            .commit_container(opts, bollard::models::ContainerConfig::default())
            .await
            .map_err(api("commit", container))?;
        Ok(r.id)
    }

    /// `docker load` of an image archive (manifest.json, config, layers).
    /// The engine skips any layer it already has without opening its file.
    pub async fn load_image(&self, archive: bytes::Bytes) -> Result<()> {
        let opts = q::ImportImageOptions {
            quiet: true,
            ..Default::default()
        };
        let mut s = self
            .inner
            .import_image(opts, bollard::body_full(archive), None);
        while let Some(item) = s.next().await {
            item.map_err(|e| match e {
                BollardError::DockerStreamError { error } => EngineError::Build(error),
                e => api("load", "image")(e),
            })?;
        }
        Ok(())
    }

    /// The layers (diff ids, oldest first) and history of an image, for
    /// writing the config of an image on top of it.
    pub async fn image_layers(&self, reference: &str) -> Result<Option<ImageLayers>> {
        let i = match self.inner.inspect_image(reference).await {
            Ok(i) => i,
            Err(e) if not_found(&e) => return Ok(None),
            Err(e) => return Err(api("inspect image", reference)(e)),
        };
        let mut history = self
            .inner
            .image_history(reference)
            .await
            .map_err(api("history", reference))?;
        history.reverse();
        Ok(Some(ImageLayers {
            id: i.id.unwrap_or_default(),
            diff_ids: i.root_fs.and_then(|r| r.layers).unwrap_or_default(),
            labels: i.config.and_then(|c| c.labels).unwrap_or_default(),
            repo_digests: i.repo_digests.unwrap_or_default(),
            history: history
                .into_iter()
                .map(|h| HistoryItem {
                    created: h.created,
                    created_by: h.created_by,
                    comment: h.comment,
                    size: h.size,
                })
                .collect(),
        }))
    }

    /// Points `repo:tag` at an image.
    pub async fn tag(&self, image: &str, repo: &str, tag: &str) -> Result<()> {
        let opts = q::TagImageOptions {
            repo: Some(repo.into()),
            tag: Some(tag.into()),
        };
        self.inner
            .tag_image(image, Some(opts))
            .await
            .map_err(api("tag", image))
    }
}

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

fn not_found(e: &BollardError) -> bool {
    matches!(
        e,
        BollardError::DockerResponseServerError {
            status_code: 404,
            ..
        }
    )
}

fn to_info(c: bollard::models::ContainerInspectResponse) -> ContainerInfo {
    let state = c.state.unwrap_or_default();
    let cfg = c.config.unwrap_or_default();
    let stop_timeout = cfg
        .stop_timeout
        .and_then(|t| u64::try_from(t).ok())
        .map(Duration::from_secs);
    let log = c
        .host_config
        .and_then(|h| h.log_config)
        .map(|l| LogConfig {
            driver: l.typ.unwrap_or_default(),
            options: l.config.unwrap_or_default().into_iter().collect(),
        })
        .unwrap_or_default();
    ContainerInfo {
        id: c.id.unwrap_or_default(),
        name: c
            .name
            .unwrap_or_default()
            .trim_start_matches('/')
            .to_owned(),
        image: cfg.image.unwrap_or_default(),
        labels: cfg.labels.unwrap_or_default(),
        running: state.running.unwrap_or(false),
        state: state.status.map(|s| s.to_string()).unwrap_or_default(),
        started_at: state.started_at,
        restart_count: c.restart_count.unwrap_or(0),
        image_id: c.image.unwrap_or_default(),
        stop_timeout,
        log,
    }
}

impl Engine for Docker {
    async fn inspect_image(&self, reference: &str) -> Result<Option<ImageInfo>> {
        match self.inner.inspect_image(reference).await {
            Ok(i) => Ok(Some(ImageInfo {
                id: i.id.unwrap_or_default(),
                labels: i.config.and_then(|c| c.labels).unwrap_or_default(),
                repo_tags: i.repo_tags.unwrap_or_default(),
                created: 0,
                repo_digests: i.repo_digests.unwrap_or_default(),
            })),
            Err(e) if not_found(&e) => Ok(None),
            Err(e) => Err(api("inspect image", reference)(e)),
        }
    }

    async fn list_images(&self, repository: &str) -> Result<Vec<ImageInfo>> {
        let filters = HashMap::from([("reference".to_string(), vec![repository.to_string()])]);
        let opts = q::ListImagesOptions {
            filters: Some(filters),
            ..Default::default()
        };
        let list = self
            .inner
            .list_images(Some(opts))
            .await
            .map_err(api("list images", repository))?;
        Ok(list
            .into_iter()
            .map(|i| ImageInfo {
                id: i.id,
                labels: i.labels,
                repo_tags: i.repo_tags,
                created: i.created,
                repo_digests: i.repo_digests,
            })
            .collect())
    }

    async fn remove_image(&self, reference: &str) -> Result<()> {
        match self
            .inner
            .remove_image(reference, None::<q::RemoveImageOptions>, None)
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if not_found(&e) => Ok(()),
            Err(e) => Err(api("remove image", reference)(e)),
        }
    }

    async fn list_containers(&self, project: &str) -> Result<Vec<ContainerInfo>> {
        let filters = HashMap::from([(
            "label".to_string(),
            vec![format!("webdock.project={project}")],
        )]);
        let opts = q::ListContainersOptions {
            all: true,
            filters: Some(filters),
            ..Default::default()
        };
        let list = self
            .inner
            .list_containers(Some(opts))
            .await
            .map_err(api("list containers", project))?;
        let mut out = Vec::new();
        for c in list {
            let Some(id) = c.id else { continue };
            // Inspect for start time and restart count; a container removed
            // in between is simply gone.
            if let Some(info) = self.inspect_container(&id).await? {
                out.push(info);
            }
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    async fn inspect_container(&self, name: &str) -> Result<Option<ContainerInfo>> {
        match self
            .inner
            .inspect_container(name, None::<q::InspectContainerOptions>)
            .await
        {
            Ok(c) => Ok(Some(to_info(c))),
            Err(e) if not_found(&e) => Ok(None),
            Err(e) => Err(api("inspect container", name)(e)),
        }
    }

    async fn create_container(&self, spec: &ContainerSpec) -> Result<String> {
        let host = bollard::models::HostConfig {
            binds: Some(spec.binds.clone()),
            init: Some(false),
            restart_policy: spec
                .restart_always
                .then_some(bollard::models::RestartPolicy {
                    name: Some(bollard::models::RestartPolicyNameEnum::ALWAYS),
                    maximum_retry_count: None,
                }),
            log_config: spec
                .log
                .as_ref()
                .map(|l| bollard::models::HostConfigLogConfig {
                    typ: Some(l.driver.clone()),
                    config: Some(l.options.clone().into_iter().collect()),
                }),
            ..Default::default()
        };
        let body = bollard::models::ContainerCreateBody {
            image: Some(spec.image.clone()),
            env: Some(spec.env.clone()),
            labels: Some(spec.labels.clone()),
            cmd: spec.cmd.clone(),
            entrypoint: spec.entrypoint.clone(),
            user: spec.user.clone(),
            stop_timeout: Some(spec.stop_timeout.as_secs() as i64),
            host_config: Some(host),
            ..Default::default()
        };
        let opts = q::CreateContainerOptions {
            name: Some(spec.name.clone()),
            ..Default::default()
        };
        let r = self
            .inner
            .create_container(Some(opts), body)
            .await
            .map_err(api("create", &spec.name))?;
        Ok(r.id)
    }

    async fn start_container(&self, name: &str) -> Result<()> {
        self.inner
            .start_container(name, None::<q::StartContainerOptions>)
            .await
            .map_err(api("start", name))
    }

    async fn stop_container(&self, name: &str, grace: Duration) -> Result<()> {
        let opts = q::StopContainerOptions {
            t: Some(grace.as_secs().max(1) as i32),
            signal: None,
        };
        let limit = grace + Duration::from_secs(30);
        match tokio::time::timeout(limit, self.inner.stop_container(name, Some(opts))).await {
            Err(_) => Err(EngineError::Timeout {
                op: "stop",
                target: name.into(),
                secs: limit.as_secs(),
            }),
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) if not_found(&e) => Ok(()),
            Ok(Err(BollardError::DockerResponseServerError {
                status_code: 304, ..
            })) => Ok(()),
            Ok(Err(e)) => Err(api("stop", name)(e)),
        }
    }

    async fn set_restart(&self, name: &str, always: bool) -> Result<()> {
        let policy = bollard::models::RestartPolicy {
            name: Some(if always {
                bollard::models::RestartPolicyNameEnum::ALWAYS
            } else {
                bollard::models::RestartPolicyNameEnum::NO
            }),
            maximum_retry_count: None,
        };
        let body = bollard::models::ContainerUpdateBody {
            restart_policy: Some(policy),
            ..Default::default()
        };
        match self.inner.update_container(name, body).await {
            Ok(()) => Ok(()),
            Err(e) if not_found(&e) => Ok(()),
            Err(e) => Err(api("update", name)(e)),
        }
    }

    async fn remove_container(&self, name: &str) -> Result<()> {
        let opts = q::RemoveContainerOptions {
            force: true,
            v: false,
            link: false,
        };
        match self.inner.remove_container(name, Some(opts)).await {
            Ok(()) => Ok(()),
            Err(e) if not_found(&e) => Ok(()),
            // "removal already in progress" is as good as done once it ends
            Err(BollardError::DockerResponseServerError {
                status_code: 409,
                message,
            }) if message.contains("already in progress") => Ok(()),
            Err(e) => Err(api("remove", name)(e)),
        }
    }

    async fn wait_container(&self, name: &str, deadline: Duration) -> Result<i64> {
        let mut s = self
            .inner
            .wait_container(name, None::<q::WaitContainerOptions>);
        let fut = async {
            match s.next().await {
                Some(Ok(r)) => Ok(r.status_code),
                // bollard reports a non-zero exit as an error carrying the code
                Some(Err(BollardError::DockerContainerWaitError { code, .. })) => Ok(code),
                Some(Err(e)) => Err(api("wait", name)(e)),
                None => Ok(0),
            }
        };
        tokio::time::timeout(deadline, fut)
            .await
            .map_err(|_| EngineError::Timeout {
                op: "wait",
                target: name.into(),
                secs: deadline.as_secs(),
            })?
    }

    async fn exec_prepare(&self, container: &str, cmd: &[String]) -> Result<String> {
        exec::prepare(&self.inner, container, cmd).await
    }

    async fn exec_start(&self, id: &str) -> Result<ExecOutput> {
        exec::start(&self.inner, id).await
    }

    async fn logs_tail(&self, name: &str, lines: usize) -> Result<String> {
        let mut s = self.follow_logs(name, false, &lines.to_string());
        let mut out = String::new();
        while let Some(item) = s.next().await {
            match item {
                Ok(l) => out.push_str(&l.to_string()),
                Err(e) if not_found(&e) => break,
                Err(e) => return Err(api("logs", name)(e)),
            }
        }
        Ok(out)
    }
}

// ---------------------------------------------------------------------------
// Delivery across engines (push, pull by digest, resolve, ship): its own file.
// ---------------------------------------------------------------------------

mod delivery;
mod ship;
pub use delivery::{Access, DeliveryError, Progress, ShipReport};
