//! The per-activation host context: what a guest may ask of the executor
//! through the `ow_host_v1` imports (docs/abi.md, "Reserved imports").
//!
//! Each activation gets an `Arc<dyn Host>` from the executor. An engine
//! keeps it with the instance's state and calls it from the host functions
//! it links under `ow_host_v1`: wasmtime from an async host function
//! (`Linker::func_wrap_async`, awaited on the guest's fiber, so a waiting
//! host call holds no thread), engines that block a thread by driving the
//! call on their own runtime (`Handle::block_on`). Every `ow_host_v1`
//! function (ABI version 2, [`crate::state`]) reaches [`Host::answer`]: the
//! state functions [`Host::state`], `call` and `await_call` [`Host::call`]
//! and [`Host::await_call`].

use crate::state::{HostCall, StateError, StateOp, StateReply, StateResult};
use std::fmt;

/// What the executor offers one activation's guest.
#[async_trait::async_trait]
pub trait Host: Send + Sync {
    /// The namespace the activation runs in (what host calls are scoped by).
    fn namespace(&self) -> Option<&str>;

    /// The largest state value: longer ones are refused (`-2`) before they
    /// are copied out of the guest.
    fn max_value_bytes(&self) -> usize {
        usize::MAX
    }

    /// Answer one state operation of the guest, scoped by the namespace.
    /// It returns by the activation's deadline at the latest (a lock wait
    /// then gives [`StateError::LockTimeout`]). Without a state backend:
    /// [`StateError::Unavailable`].
    async fn state(&self, op: StateOp) -> StateResult {
        let _ = op;
        Err(StateError::Unavailable)
    }

    /// Start an activation of the action `name` with `params` (a JSON
    /// object's bytes): the call's id (> 0). [`StateError::Absent`] for an
    /// unknown action, [`StateError::TooManyCalls`] when the activation has
    /// as many calls in flight as it may; without chaining
    /// [`StateError::Unavailable`].
    async fn call(&self, name: String, params: Vec<u8>) -> Result<i64, StateError> {
        let _ = (name, params);
        Err(StateError::Unavailable)
    }

    /// Wait for call `id`: its result's length and, when `cap` has room for
    /// it, the result (which is then forgotten); a result that does not fit
    /// stays for a later await. A failed callee's result is its
    /// `{"error": ...}` object. [`StateError::Absent`] for an unknown id.
    async fn await_call(&self, id: i64, cap: u32) -> StateResult {
        let _ = (id, cap);
        Err(StateError::Absent)
    }

    /// Answer one `ow_host_v1` call: what the engines' host functions await.
    async fn answer(&self, call: HostCall) -> StateResult {
        match call {
            HostCall::State(op) => self.state(op).await,
            HostCall::Call { name, params } => self.call(name, params).await.map(StateReply::value),
            HostCall::Await { id, cap } => self.await_call(id, cap).await,
        }
    }
}

/// A host offering nothing: for engines' own tests and benchmarks, and for
/// executors that link no `ow_host_v1` function.
#[derive(Debug, Default, Clone)]
pub struct NoHost;

#[async_trait::async_trait]
impl Host for NoHost {
    fn namespace(&self) -> Option<&str> {
        None
    }
}

impl fmt::Debug for dyn Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Host")
            .field("namespace", &self.namespace())
            .finish()
    }
}
