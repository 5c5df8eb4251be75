//! Decisions as pure functions over plain data: given what is running on a
//! host and what is wanted, what should happen. No Docker, no filesystem:
//! these are unit-tested with tables, and `deploy` only carries them out.
//!
//! [`Observed`] is a host as webdock sees it: its project's containers and
//! where its live link points. Every question about "what is live" is
//! answered here, once.

mod decide;
pub mod fleet;
pub mod placement;
mod release;
mod warnings;
mod workers;

use std::collections::HashSet;

pub use decide::*;
pub use release::*;
pub use warnings::warnings;
pub use workers::*;

use crate::engine::{ContainerInfo, ImageInfo};
use crate::roles::{Color, LABEL_COLOR, LABEL_DJOB, LABEL_ROLE, LABEL_TAG};

/// What runs on one host for a project, and where its live link points.
#[derive(Debug, Clone, Default)]
pub struct Observed {
    pub containers: Vec<ContainerInfo>,
    pub live: Option<Color>,
}

impl Observed {
    pub fn new(containers: Vec<ContainerInfo>, live: Option<Color>) -> Observed {
        Observed { containers, live }
    }

    fn by_role<'a>(&'a self, role: &'a str) -> impl Iterator<Item = &'a ContainerInfo> + 'a {
        self.containers
            .iter()
            .filter(move |c| c.label(LABEL_ROLE) == Some(role))
    }

    /// The portal container of `color`, in whatever state.
    pub fn portal(&self, color: Color) -> Option<&ContainerInfo> {
        self.by_role("portal")
            .find(|c| c.label(LABEL_COLOR) == Some(color.as_str()))
    }

    /// The portal the live link points at, in whatever state.
    pub fn live_portal(&self) -> Option<&ContainerInfo> {
        self.portal(self.live?)
    }

    /// The one definition of the live tag: the tag label of the portal the
    /// live link points at.
    pub fn live_tag(&self) -> Option<&str> {
        self.live_portal()?.label(LABEL_TAG)
    }

    /// The live portal, if it is running: what a promote may skip to.
    pub fn running_live_portal(&self) -> Option<&ContainerInfo> {
        self.live_portal().filter(|c| c.running)
    }

    /// Cron and djob containers.
    pub fn workers(&self) -> impl Iterator<Item = &ContainerInfo> {
        self.containers
            .iter()
            .filter(|c| matches!(c.label(LABEL_ROLE), Some("djob" | "cron")))
    }

    pub fn cron(&self) -> Option<&ContainerInfo> {
        self.by_role("cron").next()
    }

    pub fn djob(&self, name: &str) -> Option<&ContainerInfo> {
        self.by_role("djob")
            .find(|c| c.label(LABEL_DJOB) == Some(name))
    }

    /// Every tag a container still runs: never pruned.
    pub fn tags_in_use(&self) -> HashSet<String> {
        self.containers
            .iter()
            .filter_map(|c| c.label(LABEL_TAG).map(str::to_owned))
            .collect()
    }
}

/// Which color a promote starts: the one the live link does not point at.
pub fn idle_color(live: Option<Color>) -> Color {
    live.map(Color::other).unwrap_or(Color::Blue)
}

/// Image references to remove: tags of `repo` beyond the newest `keep`,
/// never one in `protect` (the live and previous tags, and anything a
/// container still uses).
pub fn images_to_prune(
    repo: &str,
    images: &[ImageInfo],
    keep: usize,
    protect: &HashSet<String>,
) -> Vec<String> {
    let mut tagged: Vec<(i64, String)> = images
        .iter()
        .flat_map(|i| {
            i.repo_tags
                .iter()
                .filter(|rt| rt.split_once(':').is_some_and(|(r, _)| r == repo))
                .map(move |rt| (i.created, rt.clone()))
        })
        .collect();
    tagged.sort_by(|a, b| b.0.cmp(&a.0).then(b.1.cmp(&a.1)));
    tagged
        .into_iter()
        .skip(keep)
        .filter(|(_, rt)| !protect.contains(rt.split_once(':').map(|x| x.1).unwrap_or_default()))
        .map(|(_, rt)| rt)
        .collect()
}

/// Fixtures shared by the plan's table tests.
#[cfg(test)]
pub(crate) mod testing {
    use std::collections::HashMap;

    use crate::engine::ContainerInfo;
    use crate::roles::LABEL_TAG;

    pub fn c(name: &str, labels: &[(&str, &str)], running: bool) -> ContainerInfo {
        let labels: HashMap<String, String> = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let tag = labels.get(LABEL_TAG).cloned().unwrap_or_default();
        ContainerInfo {
            id: name.into(),
            name: name.into(),
            image: format!("app:{tag}"),
            labels,
            running,
            state: if running {
                "running".into()
            } else {
                "exited".into()
            },
            started_at: None,
            restart_count: 0,
            image_id: format!("sha256:{tag}"),
            stop_timeout: None,
            log: Default::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::testing::c;
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn idle_is_the_other_color() {
        assert_eq!(idle_color(None), Color::Blue);
        assert_eq!(idle_color(Some(Color::Blue)), Color::Green);
        assert_eq!(idle_color(Some(Color::Green)), Color::Blue);
    }

    #[test]
    fn one_live_tag_whatever_the_portal_state() {
        let p = |color: &str, tag: &str, running| {
            c(
                &format!("p-portal-{color}"),
                &[
                    (LABEL_ROLE, "portal"),
                    (LABEL_COLOR, color),
                    (LABEL_TAG, tag),
                ],
                running,
            )
        };
        let cases = [
            (
                vec![p("blue", "1", true), p("green", "2", true)],
                Some(Color::Green),
                Some("2"),
                true,
            ),
            (
                vec![p("blue", "1", false)],
                Some(Color::Blue),
                Some("1"),
                false,
            ),
            (vec![p("blue", "1", true)], None, None, false),
            (vec![p("blue", "1", true)], Some(Color::Green), None, false),
        ];
        for (containers, live, tag, running) in cases {
            let o = Observed::new(containers, live);
            assert_eq!(o.live_tag(), tag, "{o:?}");
            assert_eq!(o.running_live_portal().is_some(), running, "{o:?}");
        }
    }

    #[test]
    fn prune_keeps_newest_and_protected() {
        let img = |tag: &str, created| ImageInfo {
            id: tag.into(),
            labels: HashMap::new(),
            repo_tags: vec![format!("app:{tag}")],
            created,
            repo_digests: vec![],
        };
        let images = vec![
            img("1", 1),
            img("2", 2),
            img("3", 3),
            img("4", 4),
            img("5", 5),
        ];
        let protect: HashSet<String> = ["1".to_string()].into();
        assert_eq!(
            images_to_prune("app", &images, 3, &protect),
            vec!["app:2".to_string()]
        );
        assert!(images_to_prune("other", &images, 1, &HashSet::new()).is_empty());
    }
}
