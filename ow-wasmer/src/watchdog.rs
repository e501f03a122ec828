//! One thread that interrupts activations past their deadline.
//!
//! wasmer's `Interrupter::interrupt` is ignored while the store is not
//! running wasm (during a host call it is recorded, between calls it is
//! dropped), so an expired activation is interrupted again on every tick
//! until it ends. A shared ticker costs nothing per activation but a lock,
//! unlike a thread per activation.
//!
//! A guest blocked in a WASI call (a long `poll_oneoff` sleep) runs no wasm
//! to interrupt: its WASI process is also sent `SIGKILL` once, which wasix's
//! blocking calls watch for (its asyncify poller) and turn into an exit.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};
use wasmer::Interrupter;
use wasmer_wasix::WasiProcess;
use wasmer_wasix::wasmer_wasix_types::wasi::Signal;

const TICK: Duration = Duration::from_millis(5);

struct Watch {
    id: u64,
    deadline: Instant,
    interrupter: Interrupter,
    fired: Arc<AtomicBool>,
    /// The activation's WASI process, signalled once at the deadline.
    process: Option<WasiProcess>,
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

    /// Also stop `process` at the deadline (a guest waiting in a WASI call).
    pub(crate) fn also_kill(&self, process: WasiProcess) {
        let mut list = self.watches.list.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(watch) = list.iter_mut().find(|w| w.id == self.id) {
            watch.process = Some(process);
        }
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
                    let mut list = watches.list.lock().unwrap_or_else(|e| e.into_inner());
                    for w in list.iter_mut().filter(|w| w.deadline <= now) {
                        w.fired.store(true, Ordering::SeqCst);
                        w.interrupter.interrupt();
                        if let Some(process) = w.process.take() {
                            process.signal_process(Signal::Sigkill);
                        }
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
            // A limit past what the clock holds never fires.
            deadline: Instant::now()
                .checked_add(limit)
                .unwrap_or_else(|| Instant::now() + Duration::from_secs(u32::MAX.into())),
            interrupter,
            fired: Arc::clone(&fired),
            process: None,
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
