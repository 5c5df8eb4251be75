//! The digest a promote pinned is the digest it runs, even when the tag
//! moves under it: regression tests for the race between the delivery
//! (which tags `<image>:TAG` before the deploy lock) and a concurrent
//! `build TAG`, `pull TAG` or delivery that retags it.

use std::path::Path;

use super::fake::Fake;
use super::*;
use crate::engine::ImageInfo;
use crate::host::Host;

fn cfg(root: &Path) -> Config {
    let text = format!(
        "project = \"demo\"\nimage = \"app\"\nsocket_root = \"{}\"\nstate_root = \"{}\"\n\
         [health]\nconsecutive = 1\ninterval = \"1ms\"\ndeadline = \"5s\"\n\
         [cron]\nsettle = \"1ms\"\n\
         [djobs.billing]\ncommand = [\"billing\"]\nsettle = \"1ms\"\n",
        root.join("run").display(),
        root.join("state").display()
    );
    Config::parse(&root.join("webdock.toml"), &text).unwrap()
}

fn pulled(f: &Fake, digest: &str) {
    f.image("app", "2", "billing");
    f.images
        .lock()
        .unwrap()
        .get_mut("app:2")
        .unwrap()
        .repo_digests = vec![format!("reg:5000/app@{digest}")];
}

fn other_bytes() -> ImageInfo {
    ImageInfo {
        id: "sha256:other".into(),
        labels: [
            ("webdock.tag".to_string(), "2".to_string()),
            ("webdock.djobs".to_string(), "billing".to_string()),
        ]
        .into(),
        repo_tags: vec!["app:2".into()],
        created: 1,
        repo_digests: vec!["reg:5000/app@sha256:moved".into()],
    }
}

#[tokio::test]
async fn a_tag_retagged_before_the_lock_is_refused_naming_the_pin() {
    let d = tempfile::tempdir().unwrap();
    let c = cfg(d.path());
    let f = Fake::default();
    pulled(&f, "sha256:pinned");
    // between the delivery and the lock, `pull 2` brought other bytes
    f.images
        .lock()
        .unwrap()
        .insert("app:2".into(), other_bytes());
    let h = Host::local(&c, &f);
    let mut dep = Deployer::new(&c, &h, Out::plain()).unwrap();
    dep.digest = Some("sha256:pinned".into());
    let err = dep
        .promote(&Tag::parse("2").unwrap(), Intent::Promote)
        .await
        .unwrap_err();
    let msg = format!("{err:#}");
    assert!(
        msg.contains("app:2 no longer carries sha256:pinned") && msg.contains("sha256:other"),
        "{msg}"
    );
    assert!(
        !f.calls().iter().any(|c| c.starts_with("create")),
        "nothing created: {:?}",
        f.calls()
    );
}

#[tokio::test]
async fn containers_run_the_checked_image_when_the_tag_moves_mid_promote() {
    let d = tempfile::tempdir().unwrap();
    let c = cfg(d.path());
    let f = Fake::default();
    pulled(&f, "sha256:pinned");
    // while the release command runs, `build 2` retags app:2
    *f.retag_during_release.lock().unwrap() = Some(("app:2".into(), other_bytes()));
    let h = Host::local(&c, &f);
    let mut dep = Deployer::new(&c, &h, Out::plain()).unwrap();
    dep.digest = Some("sha256:pinned".into());
    dep.promote(&Tag::parse("2").unwrap(), Intent::Promote)
        .await
        .unwrap();
    assert_eq!(
        f.images.lock().unwrap()["app:2"].id,
        "sha256:other",
        "the tag did move"
    );
    let images: Vec<(String, String)> = f
        .containers
        .lock()
        .unwrap()
        .values()
        .map(|(s, _)| (s.name.clone(), s.image.clone()))
        .collect();
    assert_eq!(images.len(), 3, "portal, cron, billing: {images:?}");
    for (name, image) in images {
        assert_eq!(image, "sha256:2", "{name} runs the checked image");
    }
}
