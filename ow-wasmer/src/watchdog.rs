//! One thread that interrupts activations past their deadline.
//!
//! wasmer's `Interrupter::interrupt` is ignored while the store is not
//! running wasm (during a host call it is recorded, between calls it is
//! dropped), so an expired activation is interrupted again on every tick
//! until it ends. A shared ticker costs nothing per activation but a lock,
//! unlike a thread per activation.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};
use wasmer::Interrupter;

const TICK: Duration = Duration::from_millis(5);

struct Watch {
    id: u64,
    deadline: Instant,
    interrupter: Interrupter,
    fired: Arc<AtomicBool>,
}

#[derive(Default)]
struct Watches {
    list: Mutex<Vec<Watch>>,
    next_id: AtomicU64,
}

/// Handle to the watchdog thread; the thread ends when this is dropped.
pub(crate) struct Watchdog {
    watches: Arc<Watches>,
}

/// Registration of one activation; dropping it stops the watch.
pub(crate) struct Guard {
    watches: Arc<Watches>,
    id: u64,
    fired: Arc<AtomicBool>,
}

impl Guard {
    /// Whether the deadline passed and the activation was interrupted.
    pub(crate) fn fired(&self) -> bool {
        self.fired.load(Ordering::SeqCst)
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        let mut list = self.watches.list.lock().unwrap_or_else(|e| e.into_inner());
        list.retain(|w| w.id != self.id);
    }
}

impl Watchdog {
    pub(crate) fn start() -> std::io::Result<Self> {
        let watches = Arc::new(Watches::default());
        let weak: Weak<Watches> = Arc::downgrade(&watches);
        std::thread::Builder::new()
            .name("wasmer-watchdog".into())
            .spawn(move || {
                loop {
                    std::thread::sleep(TICK);
                    let Some(watches) = weak.upgrade() else {
                        return;
                    };
                    let now = Instant::now();
                    let list = watches.list.lock().unwrap_or_else(|e| e.into_inner());
                    for w in list.iter().filter(|w| w.deadline <= now) {
                        w.fired.store(true, Ordering::SeqCst);
                        w.interrupter.interrupt();
                    }
                }
            })?;
        Ok(Self { watches })
    }

    /// Another handle to the same watchdog thread.
    pub(crate) fn clone_handle(&self) -> Self {
        Self {
            watches: Arc::clone(&self.watches),
        }
    }

    /// Interrupt the store behind `interrupter` after `limit`, until the guard drops.
    pub(crate) fn watch(&self, interrupter: Interrupter, limit: Duration) -> Guard {
        let id = self.watches.next_id.fetch_add(1, Ordering::Relaxed);
        let fired = Arc::new(AtomicBool::new(false));
        let watch = Watch {
            id,
            deadline: Instant::now() + limit,
            interrupter,
            fired: Arc::clone(&fired),
        };
        self.watches
            .list
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(watch);
        Guard {
            watches: Arc::clone(&self.watches),
            id,
            fired,
        }
    }
}
