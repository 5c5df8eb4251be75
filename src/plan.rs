//! Decisions as pure functions over plain data: given what is running and
//! what is wanted, what should happen. No Docker, no filesystem: these are
//! unit-tested exhaustively, and the commands only carry them out.

use std::collections::{BTreeMap, HashSet};

use crate::engine::{ContainerInfo, ImageInfo};
use crate::roles::{Color, LABEL_COLOR, LABEL_DJOB, LABEL_ROLE, LABEL_TAG};

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

/// Something on the host that needs a person's attention.
pub fn warnings(
    containers: &[ContainerInfo],
    live: Option<Color>,
    djobs: &[String],
    cron_enabled: bool,
    image_repo: &str,
) -> Vec<String> {
    let mut w = Vec::new();
    let role = |c: &ContainerInfo| c.label(LABEL_ROLE).unwrap_or("").to_string();
    if let Some(color) = live {
        let portal = containers
            .iter()
            .find(|c| role(c) == "portal" && c.label(LABEL_COLOR) == Some(color.as_str()));
        match portal {
            None => w.push(format!("live link points at {color}, but there is no {color} portal container: the site is down\nhint: webdock rollback, or webdock promote TAG")),
            Some(c) if !c.running => w.push(format!("live link points at {color}, but {} is {}: the site is down\nhint: webdock rollback, or webdock restart portal", c.name, c.state)),
            _ => {}
        }
    }
    for c in containers {
        if let Some(tag) = c.label(LABEL_TAG) {
            let want = format!("{image_repo}:{tag}");
            if c.image != want {
                w.push(format!(
                    "{} runs image {} but is labelled {want}",
                    c.name, c.image
                ));
            }
        }
    }
    // Workers on another tag than the live portal: a promote or rollback
    // stopped between its flip and its workers (a crash, a failed djob).
    let live_tag = live.and_then(|color| {
        containers
            .iter()
            .find(|c| role(c) == "portal" && c.label(LABEL_COLOR) == Some(color.as_str()))
            .and_then(|c| c.label(LABEL_TAG))
    });
    if let Some(lt) = live_tag {
        for c in containers
            .iter()
            .filter(|c| matches!(role(c).as_str(), "djob" | "cron"))
        {
            if let Some(t) = c.label(LABEL_TAG).filter(|t| *t != lt) {
                w.push(format!("{} runs {t} but {lt} is live: a promote or rollback did not finish\nhint: webdock promote {lt}", c.name));
            }
        }
    }
    // Two containers of one djob (or cron) running: the guarantee is broken.
    let mut running: BTreeMap<String, Vec<&str>> = BTreeMap::new();
    for c in containers.iter().filter(|c| c.running) {
        let key = match role(c).as_str() {
            "djob" => format!("djob {}", c.label(LABEL_DJOB).unwrap_or("?")),
            "cron" => "cron".into(),
            _ => continue,
        };
        running.entry(key).or_default().push(&c.name);
    }
    for (k, names) in running {
        if names.len() > 1 {
            w.push(format!(
                "{k} runs in {} containers at once: {}",
                names.len(),
                names.join(", ")
            ));
        }
    }
    if live.is_some() {
        for d in djobs {
            let c = containers
                .iter()
                .find(|c| role(c) == "djob" && c.label(LABEL_DJOB) == Some(d.as_str()));
            match c {
                None => w.push(format!(
                    "djob {d} has no container\nhint: webdock start djob {d}"
                )),
                Some(c) if !c.running => w.push(format!(
                    "djob {d} is {} ({})\nhint: webdock logs djob {d}; webdock restart djob {d}",
                    c.state, c.name
                )),
                // Docker counts a crash-looping container as running (also
                // between restarts): its restart count is what tells.
                Some(c) if c.restart_count > 0 => w.push(format!(
                    "djob {d} exited on its own and was restarted {} time(s) ({}, {})\nhint: webdock logs djob {d}; webdock restart djob {d}",
                    c.restart_count, c.state, c.name
                )),
                _ => {}
            }
        }
        if cron_enabled && !containers.iter().any(|c| role(c) == "cron" && c.running) {
            w.push("cron is not running\nhint: webdock start cron".into());
        }
    }
    w
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn c(name: &str, labels: &[(&str, &str)], running: bool) -> ContainerInfo {
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
            log: Default::default(),
        }
    }

    #[test]
    fn idle_is_the_other_color() {
        assert_eq!(idle_color(None), Color::Blue);
        assert_eq!(idle_color(Some(Color::Blue)), Color::Green);
        assert_eq!(idle_color(Some(Color::Green)), Color::Blue);
    }

    #[test]
    fn prune_keeps_newest_and_protected() {
        let img = |tag: &str, created| ImageInfo {
            id: tag.into(),
            labels: HashMap::new(),
            repo_tags: vec![format!("app:{tag}")],
            created,
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

    #[test]
    fn warns_on_down_site_two_djobs_and_wrong_image() {
        let p = c(
            "p-portal-blue",
            &[
                (LABEL_ROLE, "portal"),
                (LABEL_COLOR, "blue"),
                (LABEL_TAG, "1"),
            ],
            false,
        );
        let d1 = c(
            "p-djob-billing",
            &[
                (LABEL_ROLE, "djob"),
                (LABEL_DJOB, "billing"),
                (LABEL_TAG, "1"),
            ],
            true,
        );
        let d2 = c(
            "p-djob-billing-old",
            &[
                (LABEL_ROLE, "djob"),
                (LABEL_DJOB, "billing"),
                (LABEL_TAG, "1"),
            ],
            true,
        );
        let mut wrong = c("p-cron", &[(LABEL_ROLE, "cron"), (LABEL_TAG, "2")], true);
        wrong.image = "app:1".into();
        let w = warnings(
            &[p, d1, d2, wrong],
            Some(Color::Blue),
            &["billing".into(), "fax".into()],
            true,
            "app",
        );
        let all = w.join("\n");
        assert!(all.contains("the site is down"), "{all}");
        assert!(all.contains("djob billing runs in 2 containers"), "{all}");
        assert!(all.contains("djob fax has no container"), "{all}");
        assert!(all.contains("p-cron runs image app:1"), "{all}");
        let mut looping = c(
            "p-djob-fax",
            &[(LABEL_ROLE, "djob"), (LABEL_DJOB, "fax"), (LABEL_TAG, "1")],
            true,
        );
        looping.restart_count = 3;
        let w = warnings(&[looping], Some(Color::Blue), &["fax".into()], false, "app");
        assert!(
            w.iter()
                .any(|w| w.contains("djob fax exited on its own and was restarted 3 time(s)")),
            "{w:?}"
        );
        let portal = c(
            "p-portal-blue",
            &[
                (LABEL_ROLE, "portal"),
                (LABEL_COLOR, "blue"),
                (LABEL_TAG, "2"),
            ],
            true,
        );
        let behind = c(
            "p-djob-fax",
            &[(LABEL_ROLE, "djob"), (LABEL_DJOB, "fax"), (LABEL_TAG, "1")],
            true,
        );
        let w = warnings(
            &[portal, behind],
            Some(Color::Blue),
            &["fax".into()],
            false,
            "app",
        );
        assert!(
            w.iter()
                .any(|w| w.contains("p-djob-fax runs 1 but 2 is live")),
            "{w:?}"
        );
        let healthy = c(
            "p-portal-blue",
            &[
                (LABEL_ROLE, "portal"),
                (LABEL_COLOR, "blue"),
                (LABEL_TAG, "1"),
            ],
            true,
        );
        assert!(warnings(&[healthy], Some(Color::Blue), &[], false, "app").is_empty());
    }
}
