//! The remote flip against its real loop (`FLIP_LOOP`, run here by the
//! fake engine, its `/webdock/...` paths in a temp dir).

use std::path::{Path, PathBuf};

use super::*;
use crate::deploy::fake::Fake;
use crate::layout::Layout;
use crate::plan::fleet::{after_flip, AfterFlip, FlipOutcome};

fn remote<'a>(fake: &'a Fake, root: &Path) -> Host<&'a Fake> {
    *fake.exec_root.lock().unwrap() = Some(root.to_path_buf());
    Host {
        name: "web2".into(),
        engine: fake,
        layout: Layout::new(Path::new("/srv/run"), Path::new("/srv/state"), "shop"),
        public_url: None,
        reach: Reach::Engine,
        project: "shop".into(),
        roles: vec!["portal".into()],
    }
}

fn link(root: &Path) -> Option<PathBuf> {
    std::fs::read_link(root.join("live.d/shop")).ok()
}

#[tokio::test]
async fn a_prepared_flip_moves_the_link_only_when_sent_and_answers_after_it() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("live.d")).unwrap();
    let fake = Fake::default();
    let host = remote(&fake, dir.path());
    let p = host.prepare_flip(Color::Green).await.unwrap();
    // Ready, and nothing moved yet: the loop waits for its line.
    assert_eq!(link(dir.path()), None);
    host.flip(&p).await.unwrap();
    // Answered only after the rename: the link is there when flip returns.
    assert_eq!(link(dir.path()), Some(PathBuf::from("/srv/run/shop/green")));
    assert!(!dir.path().join("live.d/.shop.tmp").exists());
    // The same loop flips again (a flip back).
    let back = PreparedFlip {
        to: Color::Blue,
        session: p.session,
    };
    host.flip(&back).await.unwrap();
    assert_eq!(link(dir.path()), Some(PathBuf::from("/srv/run/shop/blue")));
    let calls = fake.calls();
    assert_eq!(
        calls
            .iter()
            .filter(|c| c.starts_with("exec-session"))
            .count(),
        1,
        "one loop started in the prepare phase, none at the flip: {calls:?}"
    );
}

#[tokio::test]
async fn a_dead_flip_loop_fails_the_flip_and_moves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("live.d")).unwrap();
    let fake = Fake::default();
    let host = remote(&fake, dir.path());
    host.flip_now(Color::Blue).await.unwrap();
    let p = host.prepare_flip(Color::Green).await.unwrap();
    let pid = *fake.session_pids.lock().unwrap().last().unwrap();
    unsafe { libc::kill(pid as i32, libc::SIGKILL) };
    // let it die before the line is written
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let e = host.flip(&p).await.unwrap_err();
    assert!(e.to_string().starts_with("web2: "), "{e}");
    assert_eq!(link(dir.path()), Some(PathBuf::from("/srv/run/shop/blue")));
}

#[tokio::test]
async fn a_flip_without_an_answer_failed_and_may_have_happened_so_it_is_flipped_back() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("live.d")).unwrap();
    // A loop that takes the line and dies without a word.
    let mute = dir.path().join("mute");
    std::fs::write(&mute, "#!/bin/sh\necho ready\nread x\nexit 0\n").unwrap();
    std::fs::set_permissions(&mute, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let fake = Fake::default();
    *fake.session_program.lock().unwrap() = Some(mute);
    let host = remote(&fake, dir.path());
    let p = host.prepare_flip(Color::Green).await.unwrap();
    let r = host.flip(&p).await;
    let e = r.as_ref().unwrap_err();
    assert!(e.may_have_flipped(), "{e}");
    assert!(e.to_string().contains("no answer"), "{e}");
    // The fleet's rule: it failed, and it is among the hosts flipped back.
    let outcomes = [
        FlipOutcome {
            host: "web1".into(),
            flipped: maybe_flipped(&Ok(())),
            result: Ok(()),
        },
        FlipOutcome {
            host: "web2".into(),
            flipped: maybe_flipped(&r),
            result: Err(e.to_string()),
        },
    ];
    assert_eq!(
        after_flip(&outcomes),
        AfterFlip::FlipBack {
            hosts: vec!["web1".into(), "web2".into()],
            failed: vec!["web2".into()],
        }
    );
}

#[tokio::test]
async fn a_refused_rename_is_a_failed_flip_that_did_not_happen() {
    let dir = tempfile::tempdir().unwrap();
    // no live.d: the symlink cannot be made
    let fake = Fake::default();
    let host = remote(&fake, dir.path());
    let p = host.prepare_flip(Color::Green).await.unwrap();
    let e = host.flip(&p).await.unwrap_err();
    assert!(!e.may_have_flipped(), "{e}");
    assert!(e.to_string().contains("did not move"), "{e}");
}
