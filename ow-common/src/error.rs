//! Errors of the engine-neutral layer and of every engine.
//!
//! Engines convert their own error types into [`Error`] inside their crate,
//! so the executor sees one vocabulary whatever the engine. The `Display`
//! texts are what a user reads in `{"error": "..."}`: they say what went
//! wrong with the action, never how the executor is built.

/// Result with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong preparing or running an action.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum Error {
    /// The bytes are not a valid WebAssembly module, or the engine could not
    /// compile or link them (an unknown import, for instance).
    #[error("invalid WebAssembly module: {0}")]
    InvalidModule(String),

    /// The module follows neither ABI of `docs/abi.md`.
    #[error(
        "the module is not an OpenWhisk action: it must export `ow_alloc`, `memory` and the entry point \
         (SDK ABI) or `_start` (WASI command ABI)"
    )]
    UnknownAbi,

    /// A required export is missing.
    #[error("the module does not export {kind} `{name}`")]
    MissingExport {
        /// What kind of export (`function`, `memory`).
        kind: &'static str,
        /// The export's name.
        name: String,
    },

    /// An export has the wrong type.
    #[error("the export `{name}` has type {found}, expected {expected}")]
    ExportType {
        /// The export's name.
        name: String,
        /// The signature the ABI asks for.
        expected: String,
        /// The signature the module has.
        found: String,
    },

    /// The activation ran past its time limit and was interrupted.
    #[error("The action exceeded its time limits of {0} milliseconds.")]
    Timeout(u64),

    /// The guest trapped (unreachable, out-of-bounds access, stack overflow,
    /// a Rust panic, ...).
    #[error("The action failed: {0}")]
    Trap(String),

    /// The guest called `proc_exit` with a non-zero code (or, for an SDK
    /// module, exited at all before returning a result).
    #[error("The action exited with code {0}.")]
    Exit(i32),

    /// The guest broke the ABI: a pointer or length out of its memory, a
    /// result that is not UTF-8 or not JSON.
    #[error("The action broke the ABI: {0}")]
    Abi(String),

    /// The result is valid JSON but neither an object nor an array.
    #[error("The action did not return a dictionary or array.")]
    NotDictionary,

    /// The result is larger than the configured maximum.
    #[error(
        "The action produced a response that exceeded the allowed length: {size} > {limit} bytes."
    )]
    ResultTooLarge {
        /// The size of the result in bytes.
        size: usize,
        /// The maximum allowed.
        limit: usize,
    },

    /// The engine could not provide resources for the activation (instance
    /// pool exhausted, out of host memory).
    #[error("no resources for the activation: {0}")]
    Resources(String),

    /// This engine cannot do what was asked (precompiling, on WAMR).
    #[error("not supported by this engine: {0}")]
    Unsupported(String),
}
