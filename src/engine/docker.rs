//! The `Engine` seam carried out with bollard.

use std::collections::HashMap;
use std::time::Duration;

use bollard::query_parameters as q;
use futures_util::StreamExt;

use super::*;

pub(super) fn not_found(e: &BollardError) -> bool {
    matches!(
        e,
        BollardError::DockerResponseServerError {
            status_code: 404,
            ..
        }
    )
}

pub(super) fn to_info(c: bollard::models::ContainerInspectResponse) -> ContainerInfo {
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

    async fn exec(&self, container: &str, cmd: &[String]) -> Result<ExecOutput> {
        exec::run(&self.inner, container, cmd).await
    }

    async fn exec_session(&self, container: &str, cmd: &[String]) -> Result<Session> {
        exec::session(&self.inner, container, cmd).await
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

    async fn follow_output(&self, name: &str, on_line: &mut dyn FnMut(&str)) -> Result<()> {
        self.follow_lines(name, on_line).await
    }
}
