//! Run one activation the way the executor does, from synchronous tests and
//! benchmarks: under a deadline that [`ow_common::run_to_deadline`] expires
//! at the context's time limit, on a shared tokio runtime.

use ow_common::{Activation, ActivationContext, Error, PreparedAction, run_to_deadline};
use serde_json::Value;
use std::sync::{Arc, LazyLock};
use std::time::Duration;

/// The longest an activation of the suite may run when its context names
/// no earlier deadline.
pub const MAX_DURATION: Duration = Duration::from_secs(300);

/// What one activation produced, its result parsed for assertions.
#[derive(Debug)]
pub struct Outcome {
    /// The result as JSON, or why there is none.
    pub result: Result<Value, Error>,
    /// The action's stdout, less a command module's result line.
    pub stdout: Vec<u8>,
    /// The action's stderr.
    pub stderr: Vec<u8>,
    /// True when a stream was cut at the log limit.
    pub logs_truncated: bool,
}

static RUNTIME: LazyLock<tokio::runtime::Runtime> = LazyLock::new(|| {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime for the tests")
});

/// Runs activations from synchronous code.
pub trait Activate {
    /// One activation of `ctx`, blocking this thread until it ends.
    fn activate(&self, ctx: &ActivationContext) -> Outcome;
}

impl Activate for Arc<dyn PreparedAction> {
    fn activate(&self, ctx: &ActivationContext) -> Outcome {
        let limit = ctx.time_limit(MAX_DURATION);
        let run = run_to_deadline(
            Arc::clone(self),
            Activation::new(ctx.clone(), limit),
            Duration::from_secs(1),
        );
        let output = RUNTIME
            .block_on(run)
            .expect("the engine stops its guest within a second of the deadline");
        Outcome {
            result: output.result.map(|bytes| {
                serde_json::from_slice(&bytes).expect("the engine checked the result is JSON")
            }),
            stdout: output.stdout,
            stderr: output.stderr,
            logs_truncated: output.logs_truncated,
        }
    }
}
