//! The host context the executor gives each activation (`ow_common::Host`):
//! what its guest's `ow_host_v1` imports call back into. No host function
//! is defined yet; state and chaining add theirs here.

use ow_common::{ActivationContext, Host};

/// One activation's host context.
#[derive(Debug)]
pub struct ActivationHost {
    /// The invoker's `namespace` of the activation: what host calls are
    /// scoped by, never anything the guest says.
    namespace: Option<String>,
}

impl ActivationHost {
    /// The host context of the activation `ctx`.
    pub fn new(ctx: &ActivationContext) -> Self {
        Self {
            namespace: ctx.namespace.clone(),
        }
    }
}

#[ow_common::async_trait]
impl Host for ActivationHost {
    fn namespace(&self) -> Option<&str> {
        self.namespace.as_deref()
    }
}
