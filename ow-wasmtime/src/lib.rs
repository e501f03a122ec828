#![doc = include_str!("../README.md")]

mod config;
mod logpipe;

pub use config::WasmtimeConfig;

use logpipe::LogPipe;
use ow_common::abi::{self, ActionAbi, ExportKind, SdkInstance, ValKind};
use ow_common::shared::{SharedModules, content_key};
use ow_common::{
    ActionSpec, ActivationContext, ActivationOutput, Error, Limits, PreparedAction, Result,
    SCRATCH_GUEST_DIR, WasmRuntime, scratch,
};
use std::hash::Hash as _;
use std::sync::Arc;
use std::time::Duration;
use wasmtime::{
    Engine, ExternType, FuncType, InstancePre, Linker, Memory, Module, PoolConcurrencyLimitError,
    Precompiled, Store, StoreLimits, StoreLimitsBuilder, Trap, TypedFunc, ValType,
};
use wasmtime_wasi::p1::WasiP1Ctx;
use wasmtime_wasi::p2::pipe::MemoryInputPipe;
use wasmtime_wasi::{FsPerms, I32Exit};

/// The wasmtime version this crate is built with.
pub const WASMTIME_VERSION: &str = "48.0.0";

/// How often the epoch ticker advances the engine's epoch: a running guest
/// yields this often, so deadlines are enforced to this granularity
/// (OpenWhisk's shortest timeout is 100 ms).
const EPOCH_TICK: Duration = Duration::from_millis(5);

/// The wasmtime engine: one per process.
pub struct WasmtimeRuntime {
    engine: Engine,
    /// [`WasmRuntime::compatibility_hash`], computed once.
    compatibility: String,
    /// Compiled modules by content, shared by every action with that code.
    modules: SharedModules<Module>,
    linker: Arc<Linker<ActivationState>>,
    limits: Limits,
    pooling: bool,
    /// Drives activations' timers (WASI sleeps, deadlines); `None` only
    /// while dropping.
    tokio: Option<tokio::runtime::Runtime>,
    tokio_handle: tokio::runtime::Handle,
}

impl Drop for WasmtimeRuntime {
    fn drop(&mut self) {
        // May be dropped inside an async context, where a blocking shutdown panics.
        if let Some(tokio) = self.tokio.take() {
            tokio.shutdown_background();
        }
    }
}

/// What a store holds for one activation.
struct ActivationState {
    wasi: WasiP1Ctx,
    limits: StoreLimits,
}

impl WasmtimeRuntime {
    /// An engine with the configuration of [`WasmtimeConfig::new`]: the
    /// pooling allocator when the address space allows it, else on-demand.
    ///
    /// # Errors
    /// [`Error::Resources`] when wasmtime refuses both configurations.
    pub fn new(limits: Limits) -> Result<Self> {
        Self::with_config(WasmtimeConfig::new(limits))
    }

    /// An engine with an explicit configuration.
    ///
    /// # Errors
    /// [`Error::Resources`] when wasmtime refuses the configuration.
    pub fn with_config(config: WasmtimeConfig) -> Result<Self> {
        let (engine, pooling) = config.build_engine()?;
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p1::add_to_linker_async(&mut linker, |s: &mut ActivationState| &mut s.wasi)
            .map_err(|e| Error::Resources(format!("cannot link WASI: {e:#}")))?;
        spawn_epoch_ticker(&engine);
        // Activations run on the calling thread (`Handle::block_on`); this
        // runtime's one worker only drives the timers they wait on.
        let tokio = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("wasmtime-timers")
            .enable_time()
            .build()
            .map_err(|e| Error::Resources(format!("cannot start wasmtime's timers: {e}")))?;
        let mut hasher = ow_common::digest::Sha256Hasher::default();
        // Covers wasmtime's version, target, CPU features and every setting
        // that changes the generated code.
        (WASMTIME_VERSION, engine.precompile_compatibility_hash()).hash(&mut hasher);
        Ok(Self {
            modules: SharedModules::default(),
            compatibility: hasher.hex(),
            engine,
            linker: Arc::new(linker),
            limits: config.limits,
            pooling,
            tokio_handle: tokio.handle().clone(),
            tokio: Some(tokio),
        })
    }

    /// Whether instances come from the pooling allocator.
    pub fn is_pooling(&self) -> bool {
        self.pooling
    }

    /// The underlying wasmtime engine.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }
}

/// Advance the engine's epoch every [`EPOCH_TICK`] for as long as the engine lives.
fn spawn_epoch_ticker(engine: &Engine) {
    let weak = engine.weak();
    let spawned = std::thread::Builder::new()
        .name("wasmtime-epoch".into())
        .spawn(move || {
            loop {
                std::thread::sleep(EPOCH_TICK);
                match weak.upgrade() {
                    Some(engine) => engine.increment_epoch(),
                    None => return,
                }
            }
        });
    if let Err(e) = spawned {
        // Without a ticker deadlines would never fire: say so loudly.
        tracing::error!("cannot start the epoch ticker, time limits are not enforced: {e}");
    }
}

impl WasmRuntime for WasmtimeRuntime {
    fn name(&self) -> &'static str {
        "wasmtime"
    }

    fn version(&self) -> &'static str {
        WASMTIME_VERSION
    }

    fn prepare(&self, wasm: &[u8], spec: ActionSpec) -> Result<Arc<dyn PreparedAction>> {
        let limits = spec.limits.within(&self.limits);
        abi::check_tables(wasm, limits.max_table_elements)?;
        let key = content_key(&[b"wasm", wasm]);
        let module = self.modules.get_or_make(key, || {
            Module::new(&self.engine, wasm).map_err(|e| Error::InvalidModule(format!("{e:#}")))
        })?;
        self.prepare_module(module, spec, limits)
    }

    fn compatibility_hash(&self) -> Option<String> {
        Some(self.compatibility.clone())
    }

    fn precompile(&self, wasm: &[u8]) -> Result<Vec<u8>> {
        self.engine
            .precompile_module(wasm)
            .map_err(|e| Error::InvalidModule(format!("{e:#}")))
    }

    unsafe fn prepare_precompiled(
        &self,
        wasm: &[u8],
        artifact: &[u8],
        spec: ActionSpec,
    ) -> Result<Arc<dyn PreparedAction>> {
        let limits = spec.limits.within(&self.limits);
        abi::check_tables(wasm, limits.max_table_elements)?;
        if Engine::detect_precompiled(artifact) != Some(Precompiled::Module) {
            return Err(Error::InvalidModule(
                "not a module precompiled by wasmtime".into(),
            ));
        }
        let key = content_key(&[b"artifact", artifact]);
        let module = self.modules.get_or_make(key, || {
            // SAFETY: the caller vouches for the artifact's origin (see the
            // trait); wasmtime itself refuses one made by another version
            // or with other settings.
            unsafe { Module::deserialize(&self.engine, artifact) }.map_err(|e| {
                Error::InvalidModule(format!("cannot load the precompiled module: {e:#}"))
            })
        })?;
        self.prepare_module(module, spec, limits)
    }
}

impl WasmtimeRuntime {
    /// Classify, link and type-check a compiled module.
    fn prepare_module(
        &self,
        module: Arc<Module>,
        spec: ActionSpec,
        limits: Limits,
    ) -> Result<Arc<dyn PreparedAction>> {
        let abi = abi::classify(&|name| export_kind(&module, name), &spec.entry)?;
        let pre = self
            .linker
            .instantiate_pre(&module)
            .map_err(|e| Error::InvalidModule(format!("{e:#}")))?;
        let has_initialize = func_type(&module, abi::EXPORT_INITIALIZE).is_some();
        tracing::debug!(%abi, entry = %spec.entry, "prepared action");
        Ok(Arc::new(WasmtimeAction {
            _module: module,
            pre,
            abi,
            has_initialize,
            argv0: spec.name.clone().unwrap_or_else(|| "action".to_owned()),
            spec,
            limits,
            tokio: self.tokio_handle.clone(),
        }))
    }
}

fn func_type(module: &Module, name: &str) -> Option<FuncType> {
    match module.get_export(name)? {
        ExternType::Func(ty) => Some(ty),
        _ => None,
    }
}

fn val_kind(ty: ValType) -> ValKind {
    match ty {
        ValType::I32 => ValKind::I32,
        ValType::I64 => ValKind::I64,
        other => ValKind::Other(other.to_string()),
    }
}

/// The module's export `name`, described for [`abi::classify`].
fn export_kind(module: &Module, name: &str) -> Option<ExportKind> {
    Some(match module.get_export(name)? {
        ExternType::Func(ty) => ExportKind::Func {
            params: ty.params().map(val_kind).collect(),
            results: ty.results().map(val_kind).collect(),
        },
        ExternType::Memory(mem) => ExportKind::Memory { is_64: mem.is_64() },
        _ => ExportKind::Other,
    })
}

/// An action compiled and linked at /init.
struct WasmtimeAction {
    /// Keeps the shared compiled module listed while this action lives.
    _module: Arc<Module>,
    pre: InstancePre<ActivationState>,
    abi: ActionAbi,
    has_initialize: bool,
    argv0: String,
    spec: ActionSpec,
    limits: Limits,
    tokio: tokio::runtime::Handle,
}

impl PreparedAction for WasmtimeAction {
    fn abi(&self) -> ActionAbi {
        self.abi
    }

    fn run(&self, ctx: &ActivationContext) -> ActivationOutput {
        let stdout = LogPipe::new(self.limits.max_log_bytes);
        let stderr = LogPipe::new(self.limits.max_log_bytes);
        let time_limit = ctx.time_limit(self.limits.max_duration);
        let params = ctx.params_json();
        let stdin = match self.abi {
            ActionAbi::Command => MemoryInputPipe::new(params.clone()),
            ActionAbi::Sdk => MemoryInputPipe::new(Vec::new()),
        };
        let scratch = self
            .spec
            .scratch
            .as_deref()
            .map(scratch::create)
            .transpose();
        // The one deadline of the activation (none when it lies beyond
        // what the clock can represent).
        let deadline = tokio::time::Instant::now().checked_add(time_limit);
        let raw = match &scratch {
            Err(e) => Err(wasmtime::Error::from(e.clone())),
            Ok(dir) => self
                .new_store(ctx, stdin, &stdout, &stderr, dir.as_ref())
                .map_err(wasmtime::Error::from)
                .and_then(|store| {
                    let mut calls = Calls {
                        store,
                        tokio: &self.tokio,
                        deadline,
                    };
                    match self.abi {
                        ActionAbi::Sdk => self.call_sdk(&mut calls, &params),
                        ActionAbi::Command => self.call_command(&mut calls),
                    }
                }),
        };
        // The store (and its handle on the directory) is gone: remove it.
        drop(scratch);
        let (out, out_cut) = stdout.take();
        let (err, err_cut) = stderr.take();
        let raw = raw.map_err(|e| activation_error(e, time_limit));
        abi::finish(
            self.abi,
            raw,
            out,
            err,
            out_cut || err_cut,
            self.limits.max_result_bytes,
        )
    }
}

impl WasmtimeAction {
    fn new_store(
        &self,
        ctx: &ActivationContext,
        stdin: MemoryInputPipe,
        stdout: &LogPipe,
        stderr: &LogPipe,
        scratch: Option<&scratch::TempDir>,
    ) -> Result<Store<ActivationState>> {
        let mut wasi = wasmtime_wasi::WasiCtxBuilder::new();
        wasi.stdin(stdin)
            .stdout(stdout.clone())
            .stderr(stderr.clone())
            .envs(&ctx.environment(&self.spec.env))
            .args(&[&self.argv0]);
        if let Some(dir) = scratch {
            // cap-std resolves every guest path inside this directory:
            // `..` and symlinks cannot lead out of it.
            wasi.preopened_dir(dir.path(), SCRATCH_GUEST_DIR, FsPerms::ReadWrite)
                .map_err(|e| {
                    Error::Resources(format!("cannot open the scratch directory: {e:#}"))
                })?;
        }
        let wasi = wasi.build_p1();
        let limits = StoreLimitsBuilder::new()
            .memory_size(self.limits.max_memory_bytes)
            .instances(1)
            .memories(1)
            .tables(16)
            .table_elements(self.limits.max_table_elements as usize)
            .build();
        let mut store = Store::new(self.pre.module().engine(), ActivationState { wasi, limits });
        store.limiter(|s| &mut s.limits);
        // A running guest yields to the executor at every epoch tick, where
        // the activation's deadline can stop it (see `Calls::within`).
        store.set_epoch_deadline(1);
        store.epoch_deadline_async_yield_and_update(1);
        Ok(store)
    }

    fn instantiate(&self, calls: &mut Calls<'_>) -> wasmtime::Result<wasmtime::Instance> {
        let Calls {
            store,
            tokio,
            deadline,
        } = calls;
        let instance = within(tokio, *deadline, self.pre.instantiate_async(&mut *store))?;
        if self.has_initialize {
            // Typed `() -> ()` at /init (`abi::classify`).
            let init = instance.get_typed_func::<(), ()>(&mut *store, abi::EXPORT_INITIALIZE)?;
            within(tokio, *deadline, init.call_async(&mut *store, ()))?;
        }
        Ok(instance)
    }

    /// SDK ABI: the shared sequence of [`abi::call_sdk`] on a fresh instance.
    fn call_sdk(&self, calls: &mut Calls<'_>, params: &[u8]) -> wasmtime::Result<Vec<u8>> {
        let instance = self.instantiate(calls)?;
        let store = &mut calls.store;
        let mut sdk = WasmtimeSdk {
            memory: instance
                .get_memory(&mut *store, abi::EXPORT_MEMORY)
                .ok_or_else(|| wasmtime::format_err!("no memory export"))?,
            alloc: instance.get_typed_func::<i32, i32>(&mut *store, abi::EXPORT_ALLOC)?,
            entry: instance.get_typed_func::<(i32, i32), i64>(&mut *store, &self.spec.entry)?,
            calls,
        };
        abi::call_sdk(&mut sdk, params, self.limits.max_result_bytes)
    }

    /// Command ABI: run `_start`; exit code 0 (or returning) is success.
    fn call_command(&self, calls: &mut Calls<'_>) -> wasmtime::Result<Vec<u8>> {
        let instance = self.instantiate(calls)?;
        let start = instance.get_typed_func::<(), ()>(&mut calls.store, abi::EXPORT_START)?;
        match within(
            calls.tokio,
            calls.deadline,
            start.call_async(&mut calls.store, ()),
        ) {
            Ok(()) => Ok(Vec::new()),
            Err(e) if e.downcast_ref::<I32Exit>().is_some_and(|exit| exit.0 == 0) => Ok(Vec::new()),
            Err(e) => Err(e),
        }
    }
}

/// An activation's store and its deadline: every call into the guest goes
/// through [`within`].
struct Calls<'a> {
    store: Store<ActivationState>,
    tokio: &'a tokio::runtime::Handle,
    deadline: Option<tokio::time::Instant>,
}

/// Drive one call into the guest on this thread until it ends or the
/// deadline passes. At the deadline the call is dropped: wasmtime unwinds
/// the guest's fiber, whether it was computing (it yields at every epoch
/// tick) or waiting in a host call such as a WASI sleep. This is the
/// activation's only time limit on wasmtime.
fn within<T>(
    tokio: &tokio::runtime::Handle,
    deadline: Option<tokio::time::Instant>,
    call: impl std::future::Future<Output = wasmtime::Result<T>>,
) -> wasmtime::Result<T> {
    tokio.block_on(async {
        match deadline {
            Some(at) => tokio::time::timeout_at(at, call)
                .await
                .unwrap_or_else(|_| Err(Trap::Interrupt.into())),
            None => call.await,
        }
    })
}

/// One SDK instance for [`abi::call_sdk`].
struct WasmtimeSdk<'a, 'b> {
    calls: &'a mut Calls<'b>,
    memory: Memory,
    alloc: TypedFunc<i32, i32>,
    entry: TypedFunc<(i32, i32), i64>,
}

impl SdkInstance for WasmtimeSdk<'_, '_> {
    type Error = wasmtime::Error;

    fn alloc(&mut self, len: u32) -> wasmtime::Result<u32> {
        let Calls {
            store,
            tokio,
            deadline,
        } = &mut *self.calls;
        let ptr = within(tokio, *deadline, self.alloc.call_async(store, len as i32))?;
        Ok(ptr as u32)
    }

    fn call_entry(&mut self, ptr: u32, len: u32) -> wasmtime::Result<i64> {
        let Calls {
            store,
            tokio,
            deadline,
        } = &mut *self.calls;
        within(
            tokio,
            *deadline,
            self.entry.call_async(store, (ptr as i32, len as i32)),
        )
    }

    fn memory_size(&mut self) -> usize {
        self.memory.data_size(&self.calls.store)
    }

    fn write(&mut self, offset: usize, bytes: &[u8]) -> wasmtime::Result<()> {
        Ok(self.memory.write(&mut self.calls.store, offset, bytes)?)
    }

    fn read(&mut self, range: std::ops::Range<usize>) -> wasmtime::Result<Vec<u8>> {
        Ok(self.memory.data(&self.calls.store)[range].to_vec())
    }
}

/// Translate a wasmtime error from an activation into our vocabulary.
fn activation_error(e: wasmtime::Error, time_limit: Duration) -> Error {
    if let Some(err) = e.downcast_ref::<Error>() {
        return err.clone();
    }
    if let Some(exit) = e.downcast_ref::<I32Exit>() {
        return Error::Exit(exit.0);
    }
    if let Some(trap) = e.downcast_ref::<Trap>() {
        return match trap {
            Trap::Interrupt => Error::Timeout(time_limit.as_millis() as u64),
            trap => Error::Trap(trap.to_string()),
        };
    }
    if e.downcast_ref::<PoolConcurrencyLimitError>().is_some() {
        return Error::Resources(e.to_string());
    }
    tracing::debug!("activation failed: {e:?}");
    Error::Trap(format!("{e:#}"))
}
