#![doc = include_str!("../README.md")]

pub mod abi;
pub mod blocking;
pub mod context;
pub mod deadline;
pub mod digest;
pub mod error;
pub mod host;
pub mod log;
pub mod payload;
pub mod runtime;
pub mod scratch;
pub mod shared;
pub mod state;

/// For implementations of [`Host`] outside this crate.
pub use async_trait::async_trait;
pub use context::ActivationContext;
pub use deadline::{Deadline, run_to_deadline};
pub use error::{Error, Result};
pub use host::{Host, NoHost};
pub use runtime::{
    ActionAbi, ActionSpec, Activation, ActivationOutput, BoxFuture, Limits, PreparedAction,
    SCRATCH_GUEST_DIR, WasmRuntime,
};

/// The line written to stdout and to stderr after every activation's logs.
///
/// The invoker reads the container's streams up to this line to collect an
/// activation's logs; see `docs/protocol.md`.
pub const SENTINEL: &str = "XXX_THE_END_OF_A_WHISK_ACTIVATION_XXX";
