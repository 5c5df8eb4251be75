//! A watcher that samples a count (running daemons of a djob, read from
//! this machine's process table) every 20 ms in a thread through a whole
//! test, and keeps the highest count seen: "never two, at any instant".

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

pub struct Watcher {
    stop: Arc<AtomicBool>,
    max: Arc<AtomicUsize>,
    handle: Option<thread::JoinHandle<()>>,
}

impl Watcher {
    pub fn start(count: impl Fn() -> usize + Send + 'static) -> Watcher {
        let stop = Arc::new(AtomicBool::new(false));
        let max = Arc::new(AtomicUsize::new(0));
        let (s, m) = (stop.clone(), max.clone());
        let handle = thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                m.fetch_max(count(), Ordering::Relaxed);
                thread::sleep(Duration::from_millis(20));
            }
        });
        Watcher {
            stop,
            max,
            handle: Some(handle),
        }
    }

    /// The highest count seen so far.
    pub fn max(&self) -> usize {
        self.max.load(Ordering::Relaxed)
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}
