#![doc = include_str!("../README.md")]

mod logfile;
mod scratch;
mod stopper;
mod tunables;

use logfile::LogFile;
use ow_common::abi::{self, ActionAbi, ExportKind, SdkInstance, ValKind};
use ow_common::blocking::Pool;
use ow_common::shared::{ContentKey, SharedModules, content_key};
use ow_common::state;
use ow_common::{
    ActionSpec, Activation, ActivationOutput, BoxFuture, Deadline, Error, Host, Limits,
    PreparedAction, Result, SCRATCH_GUEST_DIR, WasmRuntime,
};
use std::hash::Hash as _;
use std::io::Write as _;
use std::sync::Arc;
use std::time::Duration;
use stopper::Stopper;
use wasmer::sys::vm::VMConfig;
use wasmer::sys::{BaseTunables, Cranelift, NativeEngineExt};
use wasmer::{
    Engine, ExternType, Function, FunctionEnv, FunctionEnvMut, FunctionType, Instance, Memory,
    Module, Pages, RuntimeError, Store, Type, TypedFunction, Value,
};
use wasmer_wasix::runtime::task_manager::tokio::TokioTaskManager;
use wasmer_wasix::{
    Pipe, PluggableRuntime, Runtime, UnsupportedVirtualNetworking, WasiEnv, WasiError,
    WasiRuntimeError,
};

/// The wasmer version this crate is built with.
pub const WASMER_VERSION: &str = "7.4.2";

/// Import modules a wasmer action may use: WASI preview 1 (and its old name).
const WASI_MODULES: &[&str] = &["wasi_snapshot_preview1", "wasi_unstable"];

/// The wasmer engine (Cranelift), one per process.
///
/// - Compiles at /init; each activation gets a fresh `Store` and instance.
/// - WASI comes from wasmer-wasix with a shared runtime of our own: no
///   networking, no HTTP client, no host filesystem; stdin, stdout, stderr
///   and the environment are per instance and in memory.
/// - Linear memory is capped by tunables on the engine (`memory.grow` returns
///   -1 past `Limits::max_memory_bytes`).
/// - Activations block a thread: they run on a bounded pool of this crate
///   ([`Pool`], as many threads as instances), behind the async
///   `PreparedAction::run`. The pool's runtime also drives wasix's timers.
/// - Deadlines are the executor's: once one expires the store is
///   interrupted (wasmer's host-interrupt, a signal to the running thread)
///   every [`STOP_AGAIN`] until the activation ends, and its WASI process
///   is killed (see `stopper`).
pub struct WasmerRuntime {
    engine: Engine,
    /// [`WasmRuntime::compatibility_hash`], computed once.
    compatibility: String,
    /// Compiled modules by content and caps, shared by every action with
    /// that code and those caps.
    modules: SharedModules<Module>,
    wasi: Arc<dyn Runtime + Send + Sync>,
    /// The threads activations run on; its runtime is wasix's too.
    pool: Arc<Pool>,
    limits: Limits,
}

/// How often an activation past its deadline is interrupted again.
const STOP_AGAIN: Duration = Duration::from_millis(5);

/// Which of wasmer's compilers turns modules into native code at /init.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Compiler {
    /// Optimising; the default.
    #[default]
    Cranelift,
    /// One pass, no optimisation: faster /init, slower activations.
    #[cfg(feature = "singlepass")]
    Singlepass,
}

impl WasmerRuntime {
    /// An engine with these limits, compiling with Cranelift.
    ///
    /// # Errors
    /// [`Error::Resources`] when the runtime's threads cannot start.
    pub fn new(limits: Limits) -> Result<Self> {
        Self::with_compiler(limits, Compiler::Cranelift)
    }

    /// An engine with these limits and this compiler.
    ///
    /// # Errors
    /// [`Error::Resources`] when the runtime's threads cannot start.
    pub fn with_compiler(limits: Limits, compiler: Compiler) -> Result<Self> {
        let base: Engine = match compiler {
            Compiler::Cranelift => Cranelift::default().into(),
            #[cfg(feature = "singlepass")]
            Compiler::Singlepass => wasmer::sys::Singlepass::default().into(),
        };
        let engine = capped(&base, &limits);
        // Activations block one of these threads each; wasix runs its
        // timers (guest sleeps, poll timeouts) on the same runtime's worker.
        let pool = Pool::new(
            "wasmer",
            limits.max_instances as usize,
            ow_common::blocking::thread_stack_bytes(&limits),
        )?;
        let mut wasi = {
            let _entered = pool.handle().enter();
            PluggableRuntime::new(Arc::new(TokioTaskManager::new(pool.handle().clone())))
        };
        wasi.set_engine(engine.clone());
        wasi.set_networking_implementation(UnsupportedVirtualNetworking::default());
        wasi.http_client = None;
        let mut hasher = ow_common::digest::Sha256Hasher::default();
        // The version, the compiler and its settings, the target triple and
        // CPU features: what a serialized module depends on.
        (
            WASMER_VERSION,
            engine.deterministic_id(),
            format!("{:?}", engine.target()),
        )
            .hash(&mut hasher);
        Ok(Self {
            modules: SharedModules::default(),
            compatibility: hasher.hex(),
            engine,
            wasi: Arc::new(wasi),
            pool: Arc::new(pool),
            limits,
        })
    }
}

/// `engine` (sharing its compiler and code) with linear memories capped at
/// `max_memory_bytes`.
fn capped(engine: &Engine, limits: &Limits) -> Engine {
    let mut engine = engine.clone();
    let pages = (limits.max_memory_bytes / wasmer::WASM_PAGE_SIZE).min(65_536) as u32;
    engine.set_tunables(tunables::CappedTunables {
        base: BaseTunables::new(),
        max: Pages(pages),
        max_table: limits.max_table_elements,
        vmconfig: VMConfig {
            // wasmer runs host functions (WASI) on the same coroutine stack:
            // the wasm budget plus room for them.
            wasm_stack_size: Some(limits.max_stack_bytes + HOST_STACK_MARGIN),
        },
    });
    engine
}

/// The content key of a module compiled for engines with these caps.
fn caps_key(kind: &[u8], bytes: &[u8], limits: &Limits) -> ContentKey {
    content_key(&[
        kind,
        bytes,
        &limits.max_memory_bytes.to_le_bytes(),
        &limits.max_table_elements.to_le_bytes(),
    ])
}

/// Stack reserved for host functions on top of [`Limits::max_stack_bytes`]
/// (wasmer's own default stack is 1 MiB in all).
const HOST_STACK_MARGIN: usize = 512 << 10;

impl WasmRuntime for WasmerRuntime {
    fn name(&self) -> &'static str {
        "wasmer"
    }

    fn version(&self) -> &'static str {
        WASMER_VERSION
    }

    fn prepare(&self, wasm: &[u8], spec: ActionSpec) -> Result<Arc<dyn PreparedAction>> {
        let limits = spec.limits.within(&self.limits);
        abi::check_tables(wasm, limits.max_table_elements)?;
        let engine = self.engine_for(&limits);
        let module = self
            .modules
            .get_or_make(caps_key(b"wasm", wasm, &limits), || {
                Module::new(&engine, wasm).map_err(|e| Error::InvalidModule(e.to_string()))
            })?;
        self.prepare_module(module, engine, spec, limits)
    }

    fn compatibility_hash(&self) -> Option<String> {
        Some(self.compatibility.clone())
    }

    fn precompile(&self, wasm: &[u8]) -> Result<Vec<u8>> {
        let module =
            Module::new(&self.engine, wasm).map_err(|e| Error::InvalidModule(e.to_string()))?;
        module
            .serialize()
            .map(|bytes| bytes.to_vec())
            .map_err(|e| Error::InvalidModule(format!("cannot serialize the module: {e}")))
    }

    unsafe fn prepare_precompiled(
        &self,
        wasm: &[u8],
        artifact: &[u8],
        spec: ActionSpec,
    ) -> Result<Arc<dyn PreparedAction>> {
        let limits = spec.limits.within(&self.limits);
        abi::check_tables(wasm, limits.max_table_elements)?;
        // wasmer's deserializer also loads ELF and object files (wasmtime's
        // artifacts among them) as "static artifacts": accept only what
        // `Module::serialize` writes.
        if !wasmer::sys::Artifact::is_deserializable(artifact) {
            return Err(Error::InvalidModule(
                "not a module serialized by wasmer".into(),
            ));
        }
        let engine = self.engine_for(&limits);
        let module = self
            .modules
            .get_or_make(caps_key(b"artifact", artifact, &limits), || {
                // SAFETY: the caller vouches for the artifact's origin (see
                // the trait); wasmer checks its header and version.
                unsafe { Module::deserialize(&engine, artifact.to_vec()) }.map_err(|e| {
                    Error::InvalidModule(format!("cannot load the precompiled module: {e}"))
                })
            })?;
        self.prepare_module(module, engine, spec, limits)
    }
}

impl WasmerRuntime {
    /// The memory and table caps live in the engine's tunables: an action
    /// with lower caps gets a capped clone of the engine.
    fn engine_for(&self, limits: &Limits) -> Engine {
        let same_caps = limits.max_memory_bytes == self.limits.max_memory_bytes
            && limits.max_table_elements == self.limits.max_table_elements;
        match same_caps {
            true => self.engine.clone(),
            false => capped(&self.engine, limits),
        }
    }

    /// Check imports, classify and type-check a compiled module.
    fn prepare_module(
        &self,
        module: Arc<Module>,
        engine: Engine,
        spec: ActionSpec,
        limits: Limits,
    ) -> Result<Arc<dyn PreparedAction>> {
        // Anything but WASI and the `ow_host_v1` state functions would fail
        // at instantiation: say so at /init.
        let mut host_imports = Vec::new();
        for import in module.imports() {
            if WASI_MODULES.contains(&import.module()) {
                continue;
            }
            let unknown = || {
                Error::InvalidModule(format!(
                    "unknown import: `{}::{}` has not been defined",
                    import.module(),
                    import.name()
                ))
            };
            if import.module() != abi::HOST_MODULE {
                return Err(unknown());
            }
            let ExternType::Function(f) = import.ty() else {
                return Err(unknown());
            };
            let params: Vec<ValKind> = f.params().iter().map(val_kind).collect();
            let results: Vec<ValKind> = f.results().iter().map(val_kind).collect();
            host_imports.push(state::check_import(import.name(), &params, &results)?);
        }
        let abi = abi::classify(&|name| export_kind(&module, name), &spec.entry)?;
        let uses_wasi = module.imports().any(|i| WASI_MODULES.contains(&i.module()));
        let has_initialize = export_kind(&module, abi::EXPORT_INITIALIZE).is_some();
        Ok(Arc::new(WasmerAction {
            host_imports,
            uses_wasi,
            has_initialize,
            argv0: spec.name.clone().unwrap_or_else(|| "action".to_owned()),
            module,
            abi,
            spec,
            engine,
            wasi: Arc::clone(&self.wasi),
            pool: Arc::clone(&self.pool),
            limits,
        }))
    }
}

fn val_kind(ty: &Type) -> ValKind {
    match ty {
        Type::I32 => ValKind::I32,
        Type::I64 => ValKind::I64,
        other => ValKind::Other(format!("{other:?}").to_lowercase()),
    }
}

/// The module's export `name`, described for [`abi::classify`].
fn export_kind(module: &Module, name: &str) -> Option<ExportKind> {
    let export = module.exports().find(|e| e.name() == name)?;
    Some(match export.ty() {
        ExternType::Function(f) => ExportKind::Func {
            params: f.params().iter().map(val_kind).collect(),
            results: f.results().iter().map(val_kind).collect(),
        },
        // wasmer 7.4 has no memory64 in its default features.
        ExternType::Memory(_) => ExportKind::Memory { is_64: false },
        _ => ExportKind::Other,
    })
}

/// An action compiled at /init.
struct WasmerAction {
    /// The `ow_host_v1` state functions the module imports.
    host_imports: Vec<state::ImportId>,
    module: Arc<Module>,
    abi: ActionAbi,
    uses_wasi: bool,
    has_initialize: bool,
    argv0: String,
    spec: ActionSpec,
    engine: Engine,
    wasi: Arc<dyn Runtime + Send + Sync>,
    pool: Arc<Pool>,
    limits: Limits,
}

impl PreparedAction for WasmerAction {
    fn abi(&self) -> ActionAbi {
        self.abi
    }

    fn run(self: Arc<Self>, activation: Activation) -> BoxFuture<'static, ActivationOutput> {
        Box::pin(async move {
            let pool = Arc::clone(&self.pool);
            let deadline = activation.deadline.clone();
            let stopper = Arc::new(Stopper::default());
            let job_stopper = Arc::clone(&stopper);
            let job = move || self.run_blocking(&activation, &job_stopper);
            pool.run(&deadline, job, STOP_AGAIN, |_| stopper.stop())
                .await
                .unwrap_or_else(ActivationOutput::failed)
        })
    }
}

impl WasmerAction {
    /// One activation on this (pool) thread.
    fn run_blocking(&self, activation: &Activation, stopper: &Stopper) -> ActivationOutput {
        let _entered = self.pool.handle().enter();
        let deadline = &activation.deadline;
        let stdout = LogFile::new(self.limits.max_log_bytes);
        let stderr = LogFile::new(self.limits.max_log_bytes);
        // A Store is not Send: it lives and dies on this thread.
        let mut store = Store::new(self.engine.clone());
        stopper.watch(store.interrupter());
        let raw = self.run_in(&mut store, stopper, activation, &stdout, &stderr);
        stopper.clear();
        drop(store);
        let raw = raw.map_err(|e| timed_out(e, deadline));
        let (out, out_cut) = stdout.take();
        let (err, err_cut) = stderr.take();
        abi::finish(
            self.abi,
            raw,
            out,
            err,
            out_cut || err_cut,
            self.limits.max_result_bytes,
        )
    }

    fn run_in(
        &self,
        store: &mut Store,
        stopper: &Stopper,
        activation: &Activation,
        stdout: &LogFile,
        stderr: &LogFile,
    ) -> Result<Vec<u8>> {
        let ctx = &activation.ctx;
        let host_env = FunctionEnv::new(
            &mut *store,
            HostEnv {
                memory: None,
                host: Arc::clone(&activation.host),
                handle: self.pool.handle().clone(),
            },
        );
        // Keeps the WASI state alive for the whole call.
        let mut _wasi_env = None;
        let instance = if self.uses_wasi {
            let (guest_stdin, mut host_stdin) = Pipe::channel();
            if self.abi == ActionAbi::Command {
                host_stdin
                    .write_all(&ctx.params)
                    .map_err(|e| Error::Resources(format!("cannot write stdin: {e}")))?;
            }
            host_stdin.close();
            let env = ctx.environment(&self.spec.env);
            let mut builder = WasiEnv::builder(self.argv0.as_str())
                .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
                .stdin(Box::new(guest_stdin))
                .stdout(Box::new(stdout.clone()))
                .stderr(Box::new(stderr.clone()))
                .runtime(Arc::clone(&self.wasi));
            if self.spec.scratch.is_some() {
                // The filesystem's root is the scratch directory, so `..`
                // leads nowhere else. Dropped with the WASI state at the end
                // of the activation.
                let fs = scratch::filesystem(self.limits.max_memory_bytes);
                builder = builder
                    .fs(Arc::new(fs) as Arc<dyn virtual_fs::FileSystem + Send + Sync>)
                    .map_dir(SCRATCH_GUEST_DIR, "/")
                    .map_err(|e| {
                        Error::Resources(format!("cannot open the scratch directory: {e}"))
                    })?;
            }
            // wasmer's documented step-by-step flow rather than
            // `instantiate`: the WASI process exists before any guest code
            // runs, so the deadline can stop a guest blocked in a WASI call
            // from its start function on, `_initialize` included.
            let mut wasi_env = builder.finalize(&mut *store).map_err(wasi_error)?;
            stopper.also_kill(wasi_env.data(&*store).process.clone());
            let mut imports = wasi_env
                .import_object(&mut *store, &self.module)
                .map_err(|e| Error::InvalidModule(e.to_string()))?;
            self.define_host_functions(&mut imports, store, &host_env);
            let instance = Instance::new(&mut *store, &self.module, &imports)
                .map_err(|e| Error::Trap(e.to_string()))?;
            host_env.as_mut(&mut *store).memory = instance
                .exports
                .get_memory(abi::EXPORT_MEMORY)
                .ok()
                .cloned();
            wasi_env
                .initialize(&mut *store, instance.clone())
                .map_err(export_error)?;
            _wasi_env = Some(wasi_env);
            if self.has_initialize {
                call_initialize(&instance, store)?;
            }
            instance
        } else {
            let mut imports = wasmer::imports! {};
            self.define_host_functions(&mut imports, store, &host_env);
            let instance = Instance::new(&mut *store, &self.module, &imports)
                .map_err(|e| Error::Trap(e.to_string()))?;
            host_env.as_mut(&mut *store).memory = instance
                .exports
                .get_memory(abi::EXPORT_MEMORY)
                .ok()
                .cloned();
            if self.has_initialize {
                call_initialize(&instance, store)?;
            }
            instance
        };
        match self.abi {
            ActionAbi::Sdk => {
                let exports = &instance.exports;
                let mut sdk = WasmerSdk {
                    memory: exports
                        .get_memory(abi::EXPORT_MEMORY)
                        .map_err(export_error)?
                        .clone(),
                    alloc: exports
                        .get_typed_function(&*store, abi::EXPORT_ALLOC)
                        .map_err(export_error)?,
                    entry: exports
                        .get_typed_function(&*store, &self.spec.entry)
                        .map_err(export_error)?,
                    store,
                };
                abi::call_sdk(&mut sdk, &ctx.params, self.limits.max_result_bytes)
            }
            ActionAbi::Command => {
                let start: TypedFunction<(), ()> = instance
                    .exports
                    .get_typed_function(&*store, abi::EXPORT_START)
                    .map_err(export_error)?;
                match start.call(&mut *store) {
                    Ok(()) => Ok(Vec::new()),
                    Err(e) if exit_code(&e) == Some(0) => Ok(Vec::new()),
                    Err(e) => Err(runtime_error(e)),
                }
            }
        }
    }
}

/// What the `ow_host_v1` functions of one activation reach.
struct HostEnv {
    /// The module's exported memory, once instantiated.
    memory: Option<Memory>,
    host: Arc<dyn Host>,
    /// The pool's runtime: a host call waits for the host context on it,
    /// holding this (pool) thread.
    handle: tokio::runtime::Handle,
}

impl WasmerAction {
    /// Add the state functions the module imports to `imports`.
    fn define_host_functions(
        &self,
        imports: &mut wasmer::Imports,
        store: &mut Store,
        env: &FunctionEnv<HostEnv>,
    ) {
        for &id in &self.host_imports {
            let import = &state::IMPORTS[id];
            let ty = |t: &state::Ty| match t {
                state::Ty::I32 => Type::I32,
                state::Ty::I64 => Type::I64,
            };
            let signature = FunctionType::new(
                import.params.iter().map(ty).collect::<Vec<_>>(),
                [ty(&import.result)],
            );
            let function =
                Function::new_with_env(&mut *store, env, signature, move |env, params| {
                    state_call(env, id, params)
                });
            imports.define(abi::HOST_MODULE, import.name, function);
        }
    }
}

/// One call of the state function `id`: decode, wait for the host, deliver.
fn state_call(
    mut env: FunctionEnvMut<HostEnv>,
    id: state::ImportId,
    params: &[Value],
) -> std::result::Result<Vec<Value>, RuntimeError> {
    let user = |e: Error| RuntimeError::user(Box::new(e));
    let args: Vec<i64> = params
        .iter()
        .map(|v| match v {
            Value::I32(x) => i64::from(*x),
            Value::I64(x) => *x,
            _ => 0,
        })
        .collect();
    let (data, store) = env.data_and_store_mut();
    let memory = data.memory.clone().ok_or_else(|| {
        user(Error::Abi(
            "ow_host_v1 needs the module's exported memory".into(),
        ))
    })?;
    let view = memory.view(&store);
    let size = view.data_size() as usize;
    let max = data.host.max_value_bytes();
    let (op, delivery) = state::decode(id, &args, size, max, &mut |ptr, len| {
        abi::guest_range(ptr, len, size, "a state argument")?;
        let mut buf = vec![0; len as usize];
        view.read(u64::from(ptr), &mut buf)
            .map_err(|e| Error::Abi(e.to_string()))?;
        Ok(buf)
    })
    .map_err(user)?;
    let result = match delivery.refused() {
        Some(e) => Err(e),
        None => data.handle.block_on(data.host.answer(op)),
    };
    let ty = delivery.result_type();
    let ret = delivery
        .finish(result, &mut |ptr, bytes| {
            view.write(u64::from(ptr), bytes)
                .map_err(|e| Error::Abi(format!("the state buffer: {e}")))
        })
        .map_err(user)?;
    Ok(vec![match ty {
        state::Ty::I32 => Value::I32(ret as i32),
        state::Ty::I64 => Value::I64(ret),
    }])
}

/// One SDK instance for [`abi::call_sdk`].
struct WasmerSdk<'a> {
    store: &'a mut Store,
    memory: Memory,
    alloc: TypedFunction<i32, i32>,
    entry: TypedFunction<(i32, i32), i64>,
}

impl SdkInstance for WasmerSdk<'_> {
    type Error = Error;

    fn alloc(&mut self, len: u32) -> Result<u32> {
        self.alloc
            .call(&mut *self.store, len as i32)
            .map(|ptr| ptr as u32)
            .map_err(runtime_error)
    }

    fn call_entry(&mut self, ptr: u32, len: u32) -> Result<i64> {
        self.entry
            .call(&mut *self.store, ptr as i32, len as i32)
            .map_err(runtime_error)
    }

    fn memory_size(&mut self) -> usize {
        self.memory.view(&*self.store).data_size() as usize
    }

    fn write(&mut self, offset: usize, bytes: &[u8]) -> Result<()> {
        self.memory
            .view(&*self.store)
            .write(offset as u64, bytes)
            .map_err(|e| Error::Abi(e.to_string()))
    }

    fn read(&mut self, range: std::ops::Range<usize>) -> Result<Vec<u8>> {
        let mut buf = vec![0; range.len()];
        self.memory
            .view(&*self.store)
            .read(range.start as u64, &mut buf)
            .map_err(|e| Error::Abi(e.to_string()))?;
        Ok(buf)
    }
}

/// Call `_initialize` (typed `() -> ()` at /init).
fn call_initialize(instance: &Instance, store: &mut Store) -> Result<()> {
    instance
        .exports
        .get_typed_function::<(), ()>(&*store, abi::EXPORT_INITIALIZE)
        .map_err(export_error)?
        .call(&mut *store)
        .map_err(runtime_error)
}

/// An activation stopped at its deadline failed because of it, whatever
/// the interruption looked like from inside.
fn timed_out(e: Error, deadline: &Deadline) -> Error {
    match deadline.is_expired() {
        true => deadline.error(),
        false => e,
    }
}

fn exit_code(e: &RuntimeError) -> Option<i32> {
    match e.downcast_ref::<WasiError>() {
        Some(WasiError::Exit(code)) => Some(code.raw()),
        _ => None,
    }
}

fn runtime_error(e: RuntimeError) -> Error {
    // A host function's error (a state call that broke the ABI).
    if let Some(err) = e.downcast_ref::<Error>() {
        return err.clone();
    }
    match exit_code(&e) {
        Some(code) => Error::Exit(code),
        None => Error::Trap(e.message()),
    }
}

fn wasi_error(e: WasiRuntimeError) -> Error {
    match e.as_exit_code() {
        Some(code) => Error::Exit(code.raw()),
        None => Error::Trap(e.to_string()),
    }
}

fn export_error(e: wasmer::ExportError) -> Error {
    Error::Trap(e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_matches_the_pinned_crate() {
        assert_eq!(WASMER_VERSION, wasmer::sys::vm::VERSION);
    }
}
