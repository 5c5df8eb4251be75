//! `Docker`'s own methods beyond the `Engine` seam: connecting to the local
//! engine, and what only `build`, `logs` and delivery use (import, build
//! containers, the archive endpoint, commit, load, image layers, tag).

use std::collections::HashMap;
use std::time::Duration;

use bollard::query_parameters as q;
use futures_util::{Stream, StreamExt};

use super::*;

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

    /// What a container changed against its image: (path, kind) with kind
    /// 0 modified, 1 added, 2 deleted, as `docker diff` shows them.
    pub async fn changes(&self, container: &str) -> Result<Vec<(String, u8)>> {
        let got = self
            .inner
            .container_changes(container)
            .await
            .map_err(api("diff", container))?;
        Ok(got
            .unwrap_or_default()
            .into_iter()
            .map(|c| (c.path, c.kind as u8))
            .collect())
    }

    /// The start of the archive of `path` (at least `enough` bytes, or all
    /// of it when shorter), and whether that is all of it. Enough to read
    /// the first entry's header (a directory's owner and mode) without
    /// having the engine send everything below it.
    pub async fn download_head(
        &self,
        container: &str,
        path: &str,
        enough: usize,
    ) -> Result<(Vec<u8>, bool)> {
        let opts = q::DownloadFromContainerOptions { path: path.into() };
        let mut s = self.inner.download_from_container(container, Some(opts));
        let mut out = Vec::new();
        while let Some(chunk) = s.next().await {
            out.extend_from_slice(&chunk.map_err(api("copy from", container))?);
            if out.len() >= enough {
                return Ok((out, false));
            }
        }
        Ok((out, true))
    }

    /// `docker load` of an image archive read as a stream (a base image's
    /// few hundred megabytes are never held in memory).
    pub async fn load_image_stream<S>(&self, archive: S) -> Result<()>
    where
        S: Stream<Item = std::result::Result<bytes::Bytes, std::io::Error>> + Send + 'static,
    {
        let opts = q::ImportImageOptions {
            quiet: true,
            ..Default::default()
        };
        let mut s = self.inner.import_image_stream(opts, archive, None);
        while let Some(item) = s.next().await {
            item.map_err(|e| match e {
                BollardError::DockerStreamError { error } => EngineError::Build(error),
                e => api("load", "image")(e),
            })?;
        }
        Ok(())
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
