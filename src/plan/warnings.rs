//! What on a host needs a person's attention, as `status` shows it.

use std::collections::{BTreeMap, HashMap};

use super::Observed;
use crate::engine::ContainerInfo;
#[cfg(test)]
use crate::roles::{Color, LABEL_COLOR};
use crate::roles::{LABEL_DJOB, LABEL_ROLE, LABEL_TAG};

/// Something on the host that needs a person's attention.
/// `current` maps each tag in use to the id its image has now: a container
/// created from an earlier build of the same tag runs other code.
pub fn warnings(
    obs: &Observed,
    djobs: &[String],
    cron_enabled: bool,
    image_repo: &str,
    current: &HashMap<String, String>,
) -> Vec<String> {
    let mut w = Vec::new();
    let containers = &obs.containers;
    let live = obs.live;
    let role = |c: &ContainerInfo| c.label(LABEL_ROLE).unwrap_or("").to_string();
    if let Some(color) = live {
        match obs.portal(color) {
            None => w.push(format!("live link points at {color}, but there is no {color} portal container: the site is down\nhint: webdock promote TAG, the tag that was live (webdock history); rollback cannot tell the live release")),
            Some(c) if !c.running => w.push(format!("live link points at {color}, but {} is {}: the site is down\nhint: webdock rollback, or webdock restart portal", c.name, c.state)),
            _ => {}
        }
    }
    for c in containers {
        if let Some(tag) = c.label(LABEL_TAG) {
            let want = format!("{image_repo}:{tag}");
            // A release creates its containers from the image id it checked.
            if c.image != want && c.image != c.image_id {
                w.push(format!(
                    "{} runs image {} but is labelled {want}",
                    c.name, c.image
                ));
            }
        }
    }
    for c in containers {
        let Some(tag) = c.label(LABEL_TAG) else {
            continue;
        };
        if let Some(now) = current.get(tag).filter(|now| **now != c.image_id) {
            w.push(format!(
                "{} runs an earlier build of {tag} ({} ≠ {}): the tag was rebuilt since\nhint: webdock promote {tag} releases the current build",
                c.name,
                short_id(&c.image_id),
                short_id(now)
            ));
        }
    }
    // Workers on another tag than the live portal: a promote or rollback
    // stopped between its flip and its workers (a crash, a failed djob).
    if let Some(lt) = obs.live_tag() {
        for c in obs.workers() {
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
            match obs.djob(d) {
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
        if cron_enabled && !obs.cron().is_some_and(|c| c.running) {
            w.push("cron is not running\nhint: webdock start cron".into());
        }
    }
    w
}

fn short_id(id: &str) -> &str {
    let id = id.strip_prefix("sha256:").unwrap_or(id);
    &id[..id.len().min(12)]
}

#[cfg(test)]
mod tests {
    use super::super::testing::c;
    use super::*;

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
            &Observed::new(vec![p, d1, d2, wrong], Some(Color::Blue)),
            &["billing".into(), "fax".into()],
            true,
            "app",
            &HashMap::new(),
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
        let w = warnings(
            &Observed::new(vec![looping], Some(Color::Blue)),
            &["fax".into()],
            false,
            "app",
            &HashMap::new(),
        );
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
            &Observed::new(vec![portal, behind], Some(Color::Blue)),
            &["fax".into()],
            false,
            "app",
            &HashMap::new(),
        );
        assert!(
            w.iter()
                .any(|w| w.contains("p-djob-fax runs 1 but 2 is live")),
            "{w:?}"
        );
        let rebuilt: HashMap<String, String> = [("2".to_string(), "sha256:new".to_string())].into();
        let w = warnings(
            &Observed::new(
                vec![c(
                    "p-portal-blue",
                    &[
                        (LABEL_ROLE, "portal"),
                        (LABEL_COLOR, "blue"),
                        (LABEL_TAG, "2"),
                    ],
                    true,
                )],
                Some(Color::Blue),
            ),
            &[],
            false,
            "app",
            &rebuilt,
        );
        assert!(
            w.iter().any(|w| w.contains("runs an earlier build of 2")),
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
        assert!(warnings(
            &Observed::new(vec![healthy], Some(Color::Blue)),
            &[],
            false,
            "app",
            &HashMap::new()
        )
        .is_empty());
    }
}
