//! The engine-wide epoch ticker: one thread that advances the engine's
//! epoch every [`EPOCH_TICK`] while activations run, so that each running
//! guest yields its worker at every tick, and sleeps (parked, no wake-ups)
//! while none runs: an idle executor, such as an OpenWhisk stem cell
//! waiting for its first /init, costs no CPU.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread::Thread;
use std::time::Duration;
use wasmtime::Engine;

/// How often the epoch advances while activations run: a running guest
/// yields to the HTTP worker it runs on this often (its timeslice), so
/// other activations and requests on that worker go on, and a deadline
/// stops a computing guest within this much (OpenWhisk's shortest timeout
/// is 100 ms).
pub(crate) const EPOCH_TICK: Duration = Duration::from_millis(1);

struct Shared {
    /// Activations running now.
    running: AtomicUsize,
    /// Set when the engine goes: the thread ends.
    stop: AtomicBool,
}

/// Handle on the ticker thread; the thread ends when this is dropped.
pub(crate) struct Ticker {
    shared: Arc<Shared>,
    /// `None` when the thread could not be started (then deadlines of
    /// computing guests are not enforced, which is logged loudly).
    thread: Option<Thread>,
}

/// Counts one running activation while it lives.
pub(crate) struct Busy<'a>(&'a Ticker);

impl Ticker {
    pub(crate) fn start(engine: &Engine) -> Self {
        let shared = Arc::new(Shared {
            running: AtomicUsize::new(0),
            stop: AtomicBool::new(false),
        });
        let (engine, state) = (engine.clone(), Arc::clone(&shared));
        let spawned = std::thread::Builder::new()
            .name("wasmtime-epoch".into())
            .spawn(move || {
                while !state.stop.load(Ordering::Acquire) {
                    if state.running.load(Ordering::Acquire) == 0 {
                        // Woken by the first activation to start (an unpark
                        // between the check and here returns at once).
                        std::thread::park();
                        continue;
                    }
                    std::thread::sleep(EPOCH_TICK);
                    engine.increment_epoch();
                }
            });
        let thread = match spawned {
            Ok(handle) => Some(handle.thread().clone()),
            Err(e) => {
                tracing::error!("cannot start the epoch ticker, time limits are not enforced: {e}");
                None
            }
        };
        Self { shared, thread }
    }

    /// Mark an activation running until the guard drops; the first one
    /// wakes the ticker.
    pub(crate) fn busy(&self) -> Busy<'_> {
        if self.shared.running.fetch_add(1, Ordering::AcqRel) == 0
            && let Some(thread) = &self.thread
        {
            thread.unpark();
        }
        Busy(self)
    }
}

impl Drop for Busy<'_> {
    fn drop(&mut self) {
        self.0.shared.running.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Drop for Ticker {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Release);
        if let Some(thread) = &self.thread {
            thread.unpark();
        }
    }
}
