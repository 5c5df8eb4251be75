//! Ctrl-C and SIGTERM while webdock waits for a release command.
//!
//! A migration must never be killed halfway, and webdock dying must not
//! look like "the migration failed". The migration runs in its own
//! container, outside webdock's process group, so it survives webdock
//! whatever happens; what a signal needs is a truthful last word: where the
//! migration goes on and how to follow or resume it. While an [`Interrupts`]
//! lives, SIGINT and SIGTERM only set a flag that the wait polls; dropping
//! it puts back what was there before (normally: die at once), so the rest
//! of a promote behaves as it always did.

use std::sync::atomic::{AtomicI32, Ordering};
use std::time::Duration;

static CAUGHT: AtomicI32 = AtomicI32::new(0);

extern "C" fn on_signal(sig: libc::c_int) {
    // Only an atomic store: async-signal-safe.
    CAUGHT.store(sig, Ordering::SeqCst);
}

const SIGNALS: [libc::c_int; 2] = [libc::SIGINT, libc::SIGTERM];

pub struct Interrupts {
    old: Vec<(libc::c_int, libc::sigaction)>,
}

impl Interrupts {
    /// From now until the drop, SIGINT and SIGTERM are caught.
    pub fn catch() -> Interrupts {
        CAUGHT.store(0, Ordering::SeqCst);
        let mut old = Vec::new();
        for sig in SIGNALS {
            // SAFETY: plain sigaction(2) with a handler that only stores
            // an atomic; the previous action is kept to restore it.
            unsafe {
                let mut new: libc::sigaction = std::mem::zeroed();
                new.sa_sigaction = on_signal as extern "C" fn(libc::c_int) as usize;
                libc::sigemptyset(&mut new.sa_mask);
                new.sa_flags = libc::SA_RESTART;
                let mut prev: libc::sigaction = std::mem::zeroed();
                if libc::sigaction(sig, &new, &mut prev) == 0 {
                    old.push((sig, prev));
                }
            }
        }
        Interrupts { old }
    }

    /// Resolves with the signal's name once one arrived.
    pub async fn caught(&self) -> &'static str {
        loop {
            match CAUGHT.load(Ordering::SeqCst) {
                0 => tokio::time::sleep(Duration::from_millis(50)).await,
                libc::SIGINT => return "SIGINT (Ctrl-C)",
                _ => return "SIGTERM",
            }
        }
    }
}

impl Drop for Interrupts {
    fn drop(&mut self) {
        for (sig, prev) in &self.old {
            // SAFETY: restores the action saved in `catch`.
            unsafe { libc::sigaction(*sig, prev, std::ptr::null_mut()) };
        }
    }
}
