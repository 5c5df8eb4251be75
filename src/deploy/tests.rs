//! Orchestration order, against the recording fake engine and a real
//! filesystem (temp dirs) and real health probes over unix sockets.

use std::path::Path;

use super::fake::Fake;
use super::*;
use crate::history::Intent;
use crate::host::Host;
use crate::proxy;

fn cfg(root: &Path) -> Config {
    let text = format!(
        r#"project = "demo"
image = "app"
socket_root = "{run}"
state_root = "{state}"
[health]
consecutive = 2
interval = "1ms"
deadline = "5s"
[cron]
settle = "1ms"
[djobs.billing]
command = ["python", "manage.py", "djob", "billing"]
settle = "1ms"
"#,
        run = root.join("run").display(),
        state = root.join("state").display()
    );
    Config::parse(&root.join("webdock.toml"), &text).unwrap()
}

fn out() -> Out {
    Out::plain()
}

fn pos(calls: &[String], what: &str) -> usize {
    calls
        .iter()
        .position(|c| c == what)
        .unwrap_or_else(|| panic!("no call {what:?} in {calls:#?}"))
}

fn rpos(calls: &[String], what: &str) -> usize {
    calls
        .iter()
        .rposition(|c| c == what)
        .unwrap_or_else(|| panic!("no call {what:?} in {calls:#?}"))
}

#[tokio::test]
async fn first_promote_runs_release_then_portal_then_flip_then_workers() {
    let d = tempfile::tempdir().unwrap();
    let c = cfg(d.path());
    let f = Fake::default();
    f.image("app", "1.0.0", "billing");
    let h = Host::local(&c, &f);
    let cx = Deployer::new(&c, &h, out()).unwrap();
    cx.promote(&Tag::parse("1.0.0").unwrap(), Intent::Promote)
        .await
        .unwrap();
    let calls = f.calls();
    assert!(pos(&calls, "start demo-release-1.0.0") < pos(&calls, "create demo-portal-blue"));
    assert!(pos(&calls, "remove demo-release-1.0.0") < pos(&calls, "create demo-portal-blue"));
    assert!(pos(&calls, "start demo-portal-blue") < pos(&calls, "create demo-djob-billing"));
    assert_eq!(proxy::live(&c.layout()).unwrap(), Some(Color::Blue));
    let (h, _) = history::read(&c.layout().history()).unwrap();
    assert_eq!(h.len(), 1);
    assert_eq!(h[0].outcome, crate::history::Outcome::Ok);
    assert!(h[0].steps.iter().any(|(s, _)| s == "flip"));
}

#[tokio::test]
async fn second_promote_replaces_workers_stop_first_and_keeps_old_color_warm() {
    let d = tempfile::tempdir().unwrap();
    let c = cfg(d.path());
    let f = Fake::default();
    f.image("app", "1", "billing");
    f.image("app", "2", "billing");
    let h = Host::local(&c, &f);
    let cx = Deployer::new(&c, &h, out()).unwrap();
    cx.promote(&Tag::parse("1").unwrap(), Intent::Promote)
        .await
        .unwrap();
    cx.promote(&Tag::parse("2").unwrap(), Intent::Promote)
        .await
        .unwrap();
    let calls = f.calls();
    for name in ["demo-djob-billing", "demo-cron"] {
        let stop = pos(&calls, &format!("stop {name}"));
        let remove = pos(&calls, &format!("remove {name}"));
        let create = rpos(&calls, &format!("create {name}"));
        assert!(
            stop < remove && remove < create,
            "{name}: stop {stop}, remove {remove}, create {create}"
        );
    }
    assert_eq!(proxy::live(&c.layout()).unwrap(), Some(Color::Green));
    let cs = f.containers.lock().unwrap();
    assert!(
        cs["demo-portal-blue"].1,
        "previous color stays running for rollback"
    );
    assert_eq!(cs["demo-djob-billing"].0.labels["webdock.tag"], "2");
}

#[tokio::test]
async fn failed_health_leaves_traffic_and_removes_the_new_container() {
    let d = tempfile::tempdir().unwrap();
    let mut c = cfg(d.path());
    c.health.deadline = std::time::Duration::from_millis(500);
    c.health.timeout = std::time::Duration::from_millis(200);
    let f = Fake::default();
    f.image("app", "1", "billing");
    f.image("app", "2", "billing");
    let h = Host::local(&c, &f);
    let cx = Deployer::new(&c, &h, out()).unwrap();
    cx.promote(&Tag::parse("1").unwrap(), Intent::Promote)
        .await
        .unwrap();
    *f.health_release.lock().unwrap() = Some("1".into()); // the new color answers as the old release
    let e = cx
        .promote(&Tag::parse("2").unwrap(), Intent::Promote)
        .await
        .unwrap_err();
    assert!(
        format!("{e:#}").contains("failed its health check"),
        "{e:#}"
    );
    assert_eq!(proxy::live(&c.layout()).unwrap(), Some(Color::Blue));
    assert!(!f
        .containers
        .lock()
        .unwrap()
        .contains_key("demo-portal-green"));
    assert_eq!(
        f.containers.lock().unwrap()["demo-djob-billing"].0.labels["webdock.tag"],
        "1"
    );
}

#[tokio::test]
async fn failed_release_changes_nothing() {
    let d = tempfile::tempdir().unwrap();
    let c = cfg(d.path());
    let f = Fake::default();
    f.image("app", "1", "billing");
    *f.release_exit.lock().unwrap() = 3;
    let h = Host::local(&c, &f);
    let cx = Deployer::new(&c, &h, out()).unwrap();
    let e = cx
        .promote(&Tag::parse("1").unwrap(), Intent::Promote)
        .await
        .unwrap_err();
    assert!(format!("{e:#}").contains("exited with 3"), "{e:#}");
    assert!(!f
        .calls()
        .iter()
        .any(|c| c.contains("portal") || c.contains("djob")));
    assert_eq!(proxy::live(&c.layout()).unwrap(), None);
}

#[tokio::test]
async fn mislabelled_or_missing_image_is_refused_before_any_change() {
    let d = tempfile::tempdir().unwrap();
    let c = cfg(d.path());
    let f = Fake::default();
    f.image("app", "1", "");
    let h = Host::local(&c, &f);
    let cx = Deployer::new(&c, &h, out()).unwrap();
    let e = cx
        .promote(&Tag::parse("1").unwrap(), Intent::Promote)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("no djob \"billing\""), "{e}");
    let e = cx
        .promote(&Tag::parse("9").unwrap(), Intent::Promote)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("app:9 not found"), "{e}");
    f.images
        .lock()
        .unwrap()
        .get_mut("app:1")
        .unwrap()
        .labels
        .insert("webdock.tag".into(), "7".into());
    let e = cx
        .promote(&Tag::parse("1").unwrap(), Intent::Promote)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("mislabelled"), "{e}");
    assert!(f.calls().is_empty(), "{:?}", f.calls());
}

#[tokio::test]
async fn rollback_flips_to_the_warm_color_without_starting_a_portal() {
    let d = tempfile::tempdir().unwrap();
    let c = cfg(d.path());
    let f = Fake::default();
    f.image("app", "1", "billing");
    f.image("app", "2", "billing");
    let h = Host::local(&c, &f);
    let cx = Deployer::new(&c, &h, out()).unwrap();
    cx.promote(&Tag::parse("1").unwrap(), Intent::Promote)
        .await
        .unwrap();
    cx.promote(&Tag::parse("2").unwrap(), Intent::Promote)
        .await
        .unwrap();
    let before = f.calls().len();
    let tag = cx.rollback().await.unwrap();
    assert_eq!(tag.as_str(), "1");
    assert_eq!(proxy::live(&c.layout()).unwrap(), Some(Color::Blue));
    let after = &f.calls()[before..];
    assert!(!after.iter().any(|c| c.contains("portal")), "{after:?}");
    assert_eq!(
        f.containers.lock().unwrap()["demo-djob-billing"].0.labels["webdock.tag"],
        "1"
    );
}

#[tokio::test]
async fn promote_after_a_crash_past_the_flip_only_finishes_the_workers() {
    let d = tempfile::tempdir().unwrap();
    let c = cfg(d.path());
    let f = Fake::default();
    f.image("app", "1", "billing");
    let h = Host::local(&c, &f);
    let cx = Deployer::new(&c, &h, out()).unwrap();
    cx.promote(&Tag::parse("1").unwrap(), Intent::Promote)
        .await
        .unwrap();
    // crash after the flip: the djob is gone
    f.containers.lock().unwrap().remove("demo-djob-billing");
    let before = f.calls().len();
    cx.promote(&Tag::parse("1").unwrap(), Intent::Promote)
        .await
        .unwrap();
    let after = &f.calls()[before..];
    assert!(
        !after
            .iter()
            .any(|c| c.contains("portal") || c.contains("release")),
        "{after:?}"
    );
    assert!(after.contains(&"create demo-djob-billing".to_string()));
}

#[tokio::test]
async fn a_djob_dropped_from_the_config_is_removed_by_the_next_promote() {
    let d = tempfile::tempdir().unwrap();
    let c = cfg(d.path());
    let f = Fake::default();
    f.image("app", "1", "billing");
    f.image("app", "2", "billing");
    let h = Host::local(&c, &f);
    let cx = Deployer::new(&c, &h, out()).unwrap();
    cx.promote(&Tag::parse("1").unwrap(), Intent::Promote)
        .await
        .unwrap();
    assert!(f
        .containers
        .lock()
        .unwrap()
        .contains_key("demo-djob-billing"));
    let mut c2 = c.clone();
    c2.djobs.clear();
    c2.cron.enabled = false;
    let h = Host::local(&c2, &f);
    let cx = Deployer::new(&c2, &h, out()).unwrap();
    cx.promote(&Tag::parse("2").unwrap(), Intent::Promote)
        .await
        .unwrap();
    let cs = f.containers.lock().unwrap();
    assert!(!cs.contains_key("demo-djob-billing"), "{:?}", cs.keys());
    assert!(!cs.contains_key("demo-cron"), "{:?}", cs.keys());
}

#[tokio::test]
async fn restart_portal_touches_neither_release_nor_workers() {
    let d = tempfile::tempdir().unwrap();
    let c = cfg(d.path());
    let f = Fake::default();
    f.image("app", "1", "billing");
    let h = Host::local(&c, &f);
    let cx = Deployer::new(&c, &h, out()).unwrap();
    cx.promote(&Tag::parse("1").unwrap(), Intent::Promote)
        .await
        .unwrap();
    let before = f.calls().len();
    cx.promote(&Tag::parse("1").unwrap(), Intent::RestartPortal)
        .await
        .unwrap();
    let after = &f.calls()[before..];
    assert!(
        after.contains(&"start demo-portal-green".to_string()),
        "{after:?}"
    );
    assert!(
        !after
            .iter()
            .any(|c| c.contains("release") || c.contains("djob") || c.contains("cron")),
        "{after:?}"
    );
    assert_eq!(proxy::live(&c.layout()).unwrap(), Some(Color::Green));
}

/// Independent workers are replaced side by side, each still stop-first:
/// with two djobs that settle 1 s each, the worker step costs about one
/// settle, not the sum.
#[tokio::test]
async fn independent_workers_are_replaced_concurrently_each_stop_first() {
    let d = tempfile::tempdir().unwrap();
    let text = format!(
        r#"project = "demo"
image = "app"
socket_root = "{run}"
state_root = "{state}"
[health]
consecutive = 2
interval = "1ms"
deadline = "5s"
[cron]
enabled = false
[djobs.billing]
command = ["billing"]
settle = "1s"
[djobs.fax]
command = ["fax"]
settle = "1s"
"#,
        run = d.path().join("run").display(),
        state = d.path().join("state").display()
    );
    let c = Config::parse(&d.path().join("webdock.toml"), &text).unwrap();
    let f = Fake::default();
    f.image("app", "1", "billing,fax");
    f.image("app", "2", "billing,fax");
    let h = Host::local(&c, &f);
    let cx = Deployer::new(&c, &h, out()).unwrap();
    for tag in ["1", "2"] {
        cx.promote(&Tag::parse(tag).unwrap(), Intent::Promote)
            .await
            .unwrap();
    }
    let calls = f.calls();
    for name in ["demo-djob-billing", "demo-djob-fax"] {
        let stop = pos(&calls, &format!("stop {name}"));
        let remove = pos(&calls, &format!("remove {name}"));
        let create = rpos(&calls, &format!("create {name}"));
        let start = rpos(&calls, &format!("start {name}"));
        assert!(
            stop < remove && remove < create && create < start,
            "{name} stop-first: {calls:#?}"
        );
    }
    // side by side: the fake answers at once, so the step is the settle
    // time, once (the call order alone cannot tell: each replace runs to its
    // settle before the next one starts)
    let (hist, _) = history::read(&c.layout().history()).unwrap();
    let workers = hist[1]
        .steps
        .iter()
        .find(|(s, _)| s == "workers")
        .map(|(_, secs)| *secs)
        .unwrap();
    assert!(
        (1.0..1.8).contains(&workers),
        "the worker step took {workers:.2} s: one settle (1 s), not the sum (2 s)"
    );
}
