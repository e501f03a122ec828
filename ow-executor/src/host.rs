//! The host context the executor gives each activation (`ow_common::Host`):
//! what its guest's `ow_host_v1` imports call back into.

use ow_common::state::{StateError, StateOp, StateResult};
use ow_common::{ActivationContext, Deadline, Host};

/// The namespace of activations whose /run names none.
pub const DEFAULT_NAMESPACE: &str = "_";

/// One activation's host context.
#[derive(Debug)]
pub struct ActivationHost {
    /// The state as this activation sees it; its locks are released when
    /// the host context is dropped (the activation ended, whatever the
    /// outcome, and its engine let go of it).
    state: ow_state::Session,
    /// The actions it calls; it keeps the invoker's `namespace` of the
    /// activation, what host calls are scoped by (never anything the guest
    /// says).
    calls: crate::chain::Calls,
}

impl ActivationHost {
    /// The host context of the activation `ctx` of `caller`, called from
    /// `origin`, which ends at `deadline`.
    pub fn new(
        app: &actix_web::web::Data<crate::server::AppState>,
        ctx: &ActivationContext,
        deadline: &Deadline,
        origin: &crate::chain::Origin,
        caller: crate::chain::Caller,
    ) -> Self {
        let namespace = ctx.namespace.as_deref().unwrap_or(DEFAULT_NAMESPACE);
        Self {
            state: app.state.session(namespace, deadline.clone()),
            calls: crate::chain::Calls::new(app, ctx, deadline, origin, caller),
        }
    }
}

#[ow_common::async_trait]
impl Host for ActivationHost {
    fn namespace(&self) -> Option<&str> {
        self.calls.request_namespace()
    }

    fn max_value_bytes(&self) -> usize {
        self.state.max_value_bytes()
    }

    async fn state(&self, op: StateOp) -> StateResult {
        self.state.call(op).await
    }

    async fn call(&self, name: String, params: Vec<u8>) -> Result<i64, StateError> {
        self.calls.call(name, params)
    }

    async fn await_call(&self, id: i64, cap: u32) -> StateResult {
        self.calls.await_call(id, cap).await
    }
}
