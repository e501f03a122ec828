//! The engine abstraction, split by lifetime.
//!
//! * process: a [`WasmRuntime`] holds an engine and its configuration;
//! * action: [`WasmRuntime::prepare`] compiles, links and type-checks a module
//!   once, at /init, into a [`PreparedAction`];
//! * activation: [`PreparedAction::run`] makes a fresh instance for every
//!   /run, so nothing leaks from one activation to the next.

use crate::context::ActivationContext;
use crate::deadline::Deadline;
use crate::error::Result;
use crate::host::Host;
use std::collections::BTreeMap;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

pub use crate::abi::ActionAbi;

/// Default [`Limits::max_table_elements`]: wasmtime's pooling default, far
/// above what compilers emit (a Rust action's function table holds a few
/// hundred entries).
pub const DEFAULT_TABLE_ELEMENTS: u32 = 20_000;

/// Default [`Limits::max_stack_bytes`]: wasmtime's default `max_wasm_stack`.
pub const DEFAULT_STACK_BYTES: usize = 512 << 10;

/// Largest [`Limits::max_stack_bytes`] an operator may configure: the
/// executor's activation threads get this much native stack plus a margin.
pub const MAX_STACK_BYTES: usize = 64 << 20;

/// Resource limits that apply to every activation, whatever the engine.
///
/// The defaults are OpenWhisk's: 256 MiB of memory, 5 minutes at most
/// (OpenWhisk's largest action timeout; the per-activation deadline is
/// usually shorter), 1 MiB results and 10 MiB of logs per activation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Largest linear memory an instance may grow to, in bytes.
    pub max_memory_bytes: usize,
    /// Longest an activation may run, whatever its deadline says.
    pub max_duration: Duration,
    /// Largest result, in bytes of JSON.
    pub max_result_bytes: usize,
    /// Log bytes kept per stream and activation; the rest is cut with a notice.
    pub max_log_bytes: usize,
    /// Instances that may exist at once (sizes the engine's instance pool).
    pub max_instances: u32,
    /// Elements any one table may hold: a larger declared minimum fails
    /// /init, `table.grow` past it fails (returns -1).
    pub max_table_elements: u32,
    /// Wasm call stack per activation, in bytes; deeper recursion traps with
    /// a stack overflow. Engine-wide on wasmtime (its `max_wasm_stack`), so
    /// this one is the operator's only: [`Limits::within`] keeps `max`'s.
    pub max_stack_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_memory_bytes: 256 << 20,
            max_duration: Duration::from_secs(300),
            max_result_bytes: 1 << 20,
            max_log_bytes: 10 << 20,
            max_instances: 1000,
            max_table_elements: DEFAULT_TABLE_ELEMENTS,
            max_stack_bytes: DEFAULT_STACK_BYTES,
        }
    }
}

impl Limits {
    /// These limits, none above `max`'s: an action may ask for less than
    /// the operator allows, never more.
    pub fn within(&self, max: &Limits) -> Limits {
        Limits {
            max_memory_bytes: self.max_memory_bytes.min(max.max_memory_bytes),
            max_duration: self.max_duration.min(max.max_duration),
            max_result_bytes: self.max_result_bytes.min(max.max_result_bytes),
            max_log_bytes: self.max_log_bytes.min(max.max_log_bytes),
            max_instances: self.max_instances.min(max.max_instances),
            max_table_elements: self.max_table_elements.min(max.max_table_elements),
            max_stack_bytes: max.max_stack_bytes,
        }
    }
}

/// What /init says about the action, besides its bytes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ActionSpec {
    /// The action's name, informational (used as `argv[0]`).
    pub name: Option<String>,
    /// The entry point of an SDK module (ignored by command modules).
    pub entry: String,
    /// The init-time environment, visible from the first instruction.
    pub env: BTreeMap<String, String>,
    /// The action's own limits; engines apply them within their own.
    pub limits: Limits,
    /// When set, every activation gets a fresh, empty scratch directory,
    /// preopened at [`SCRATCH_GUEST_DIR`] and removed when the activation
    /// ends. Engines that keep it on disk create it under this host
    /// directory; wasmer keeps it in memory, with a budget of the memory cap.
    pub scratch: Option<PathBuf>,
}

/// Where an action sees its scratch directory (see [`ActionSpec::scratch`]).
pub const SCRATCH_GUEST_DIR: &str = "/tmp";

/// An engine, process-wide.
pub trait WasmRuntime: Send + Sync {
    /// Short name used on the command line (`wasmtime`).
    fn name(&self) -> &'static str;

    /// The engine's version.
    fn version(&self) -> &'static str;

    /// Compile, link and type-check `wasm` so that each activation only has
    /// to instantiate it.
    ///
    /// # Errors
    /// [`crate::Error::InvalidModule`], [`crate::Error::UnknownAbi`],
    /// [`crate::Error::MissingExport`] or [`crate::Error::ExportType`].
    fn prepare(&self, wasm: &[u8], spec: ActionSpec) -> Result<Arc<dyn PreparedAction>>;

    /// What a precompiled artifact must have been made for to load in this
    /// engine as configured: a hex digest covering the engine's version,
    /// target, CPU features and code-generation settings. `None` when the
    /// engine has no precompiled form.
    fn compatibility_hash(&self) -> Option<String> {
        None
    }

    /// Compile `wasm` ahead of time into this engine's native artifact,
    /// loadable by [`WasmRuntime::prepare_precompiled`] on an engine with
    /// the same [`WasmRuntime::compatibility_hash`].
    ///
    /// # Errors
    /// [`crate::Error::InvalidModule`], or [`crate::Error::Unsupported`].
    fn precompile(&self, wasm: &[u8]) -> Result<Vec<u8>> {
        let _ = wasm;
        Err(crate::Error::Unsupported(format!(
            "{} has no precompiled form",
            self.name()
        )))
    }

    /// A proto-function snapshot of `wasm` (docs/abi.md, "Proto-function
    /// snapshots"): run `_initialize` and [`crate::abi::EXPORT_ZYGOTE`] once
    /// with the init-time environment `env`, for at most `time_limit`, and
    /// return a plain module whose memory and globals start where they
    /// ended. Any engine can run the result.
    ///
    /// # Errors
    /// [`crate::Error::Trap`] when the zygote fails or runs too long,
    /// [`crate::Error::InvalidModule`] for a module that cannot be
    /// snapshotted, [`crate::Error::Unsupported`] for engines that cannot
    /// make snapshots (one that can makes them for all).
    fn snapshot(
        &self,
        wasm: &[u8],
        env: &[(String, String)],
        time_limit: std::time::Duration,
    ) -> Result<Vec<u8>> {
        let _ = (wasm, env, time_limit);
        Err(crate::Error::Unsupported(format!(
            "{} cannot make proto-function snapshots",
            self.name()
        )))
    }

    /// Like [`WasmRuntime::prepare`], from an artifact of
    /// [`WasmRuntime::precompile`] instead of compiling `wasm` (which is still
    /// given, for the checks that read the module itself).
    ///
    /// # Safety
    /// The artifact becomes machine code run in this process: it must come
    /// from `precompile` of a compatible engine, by someone trusted (a
    /// signed manifest, or this executor's own compile cache), and be intact.
    /// A mismatched engine version or configuration is detected and refused;
    /// forged bytes are not.
    ///
    /// # Errors
    /// [`crate::Error::InvalidModule`] when the artifact does not load, as
    /// for [`WasmRuntime::prepare`] otherwise.
    unsafe fn prepare_precompiled(
        &self,
        wasm: &[u8],
        artifact: &[u8],
        spec: ActionSpec,
    ) -> Result<Arc<dyn PreparedAction>> {
        let _ = (wasm, artifact, spec);
        Err(crate::Error::Unsupported(format!(
            "{} has no precompiled form",
            self.name()
        )))
    }
}

/// A boxed future that may move between threads.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// An action ready to run, shared by all of its concurrent activations.
pub trait PreparedAction: Send + Sync {
    /// Which ABI the module follows.
    fn abi(&self) -> ActionAbi;

    /// Run one activation in a fresh instance. The future ends with the
    /// activation; it ends promptly once `activation.deadline` expires
    /// (with [`crate::Error::Timeout`] and the logs written until then).
    /// Dropping it stops the guest too, as soon as the engine can.
    fn run(self: Arc<Self>, activation: Activation) -> BoxFuture<'static, ActivationOutput>;
}

/// The input of one activation.
#[derive(Debug, Clone)]
pub struct Activation {
    /// The request's facts: params (JSON bytes), metadata, environment.
    pub ctx: ActivationContext,
    /// When it must stop; expired by the executor, honoured by the engine.
    pub deadline: Deadline,
    /// What the guest may call back into (the `ow_host_v1` imports).
    pub host: Arc<dyn Host>,
}

impl Activation {
    /// An activation of `ctx` with a `limit` deadline and no host functions:
    /// handy in engines' tests and benchmarks.
    pub fn new(ctx: ActivationContext, limit: Duration) -> Self {
        Self {
            ctx,
            deadline: Deadline::new(limit),
            host: Arc::new(crate::host::NoHost),
        }
    }
}

/// What one activation produced. The logs are there whatever the outcome.
#[derive(Debug, Clone, PartialEq)]
pub struct ActivationOutput {
    /// The result, UTF-8 JSON text of an object or array (checked, not
    /// parsed into a tree: the executor forwards it as it is), or why there
    /// is none.
    pub result: Result<Vec<u8>>,
    /// The action's stdout, less a command module's result line.
    pub stdout: Vec<u8>,
    /// The action's stderr.
    pub stderr: Vec<u8>,
    /// True when either stream went past [`Limits::max_log_bytes`] and was cut.
    pub logs_truncated: bool,
}

impl ActivationOutput {
    /// An activation that failed before its guest ran: no logs.
    pub fn failed(error: crate::Error) -> Self {
        Self {
            result: Err(error),
            stdout: Vec::new(),
            stderr: Vec::new(),
            logs_truncated: false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_action_never_gets_more_than_the_operator_allows() {
        let operator = Limits {
            max_memory_bytes: 64 << 20,
            max_duration: Duration::from_secs(10),
            ..Limits::default()
        };
        let asked = Limits {
            max_memory_bytes: 1 << 30,
            max_duration: Duration::from_secs(2),
            ..Limits::default()
        };
        let got = asked.within(&operator);
        assert_eq!(got.max_memory_bytes, 64 << 20);
        assert_eq!(got.max_duration, Duration::from_secs(2));
        assert_eq!(got.max_result_bytes, 1 << 20);
        let deep = Limits {
            max_stack_bytes: 8 << 20,
            max_table_elements: 10,
            ..Limits::default()
        };
        let got = deep.within(&operator);
        assert_eq!(got.max_stack_bytes, operator.max_stack_bytes);
        assert_eq!(got.max_table_elements, 10);
    }
}
