//! What stops one activation's guest once the executor's deadline expired.
//!
//! wasmer's `Interrupter::interrupt` is ignored while the store is not
//! running wasm (during a host call it is recorded, between calls it is
//! dropped), so [`ow_common::blocking::Pool::run`] calls [`Stopper::stop`]
//! at the expiry and again every few milliseconds until the activation ends.
//!
//! A guest blocked in a WASI call (a long `poll_oneoff` sleep) runs no wasm
//! to interrupt: its WASI process is also sent `SIGKILL` once, which wasix's
//! blocking calls watch for (its asyncify poller) and turn into an exit.

use std::sync::Mutex;
use wasmer::Interrupter;
use wasmer_wasix::WasiProcess;
use wasmer_wasix::wasmer_wasix_types::wasi::Signal;

/// The handles of one activation's store and WASI process, while it runs.
#[derive(Default)]
pub(crate) struct Stopper {
    inner: Mutex<Handles>,
}

#[derive(Default)]
struct Handles {
    interrupter: Option<Interrupter>,
    process: Option<WasiProcess>,
}

impl Stopper {
    fn lock(&self) -> std::sync::MutexGuard<'_, Handles> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Interrupt this store's guest when told to stop.
    pub(crate) fn watch(&self, interrupter: Interrupter) {
        self.lock().interrupter = Some(interrupter);
    }

    /// Also kill this WASI process (a guest waiting in a WASI call).
    pub(crate) fn also_kill(&self, process: WasiProcess) {
        self.lock().process = Some(process);
    }

    /// Forget the handles: called by the activation's thread before its
    /// store goes, so that no late `stop` reaches whatever the thread runs
    /// next (a `stop` in progress holds the lock, and finishes first).
    pub(crate) fn clear(&self) {
        *self.lock() = Handles::default();
    }

    /// Interrupt the guest, and kill its WASI process the first time.
    pub(crate) fn stop(&self) {
        let mut handles = self.lock();
        if let Some(interrupter) = &handles.interrupter {
            interrupter.interrupt();
        }
        if let Some(process) = handles.process.take() {
            process.signal_process(Signal::Sigkill);
        }
    }
}
