#![doc = include_str!("../README.md")]

mod config;
mod logpipe;
mod snapshot;
mod ticker;

pub use config::WasmtimeConfig;

use bytes::Bytes;
use logpipe::LogPipe;
use ow_common::abi::{self, ActionAbi, ExportKind, ValKind};
use ow_common::shared::{SharedModules, content_key};
use ow_common::state;
use ow_common::{
    ActionSpec, Activation, ActivationContext, ActivationOutput, BoxFuture, Deadline, Error, Host,
    Limits, PreparedAction, Result, SCRATCH_GUEST_DIR, WasmRuntime, scratch,
};
use std::hash::Hash as _;
use std::sync::Arc;
use wasmtime::{
    Caller, Engine, Extern, ExternType, Func, FuncType, Instance, InstancePre, Linker, Module,
    ModuleExport, PoolConcurrencyLimitError, Precompiled, Store, StoreLimits, StoreLimitsBuilder,
    Trap, UpdateDeadline, Val, ValType, WasmParams, WasmResults,
};
use wasmtime_wasi::p1::WasiP1Ctx;
use wasmtime_wasi::p2::pipe::MemoryInputPipe;
use wasmtime_wasi::{FsPerms, I32Exit};

/// The wasmtime version this crate is built with.
pub const WASMTIME_VERSION: &str = "48.0.0";

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
    /// Advances the epoch while activations run; shared with the actions.
    ticker: Arc<ticker::Ticker>,
}

/// What a store holds for one activation.
struct ActivationState {
    wasi: WasiP1Ctx,
    limits: StoreLimits,
    /// What the guest's `ow_host_v1` imports call (see [`add_host_functions`]).
    host: Arc<dyn Host>,
}

impl ActivationState {
    /// A store for one instance: `wasi`, `host`, and the caps of `limits`
    /// (one instance, one memory, its size and table elements).
    fn store(
        engine: &Engine,
        wasi: WasiP1Ctx,
        limits: &Limits,
        host: Arc<dyn Host>,
    ) -> Store<Self> {
        let caps = StoreLimitsBuilder::new()
            .memory_size(limits.max_memory_bytes)
            .instances(1)
            .memories(1)
            .tables(16)
            .table_elements(limits.max_table_elements as usize)
            .build();
        let state = Self {
            wasi,
            limits: caps,
            host,
        };
        let mut store = Store::new(engine, state);
        store.limiter(|s| &mut s.limits);
        store
    }
}

/// Link the `ow_host_v1` state functions (ABI version 2,
/// [`ow_common::state`]). Each is an async host function: it reads its
/// arguments from the guest's memory, awaits the activation's host context
/// on the guest's fiber (a waiting call, such as a lock or a Redis round
/// trip, holds no thread) and writes the answer back.
fn add_host_functions(
    linker: &mut Linker<ActivationState>,
    engine: &Engine,
) -> wasmtime::Result<()> {
    let val_type = |ty: &state::Ty| match ty {
        state::Ty::I32 => ValType::I32,
        state::Ty::I64 => ValType::I64,
    };
    for (id, import) in state::IMPORTS.iter().enumerate() {
        let ty = FuncType::new(
            engine,
            import.params.iter().map(val_type),
            [val_type(&import.result)],
        );
        linker.func_new_async(
            abi::HOST_MODULE,
            import.name,
            ty,
            move |mut caller, params, results| {
                Box::new(async move {
                    let ret = state_call(&mut caller, id, params).await?;
                    results[0] = match import.result {
                        state::Ty::I32 => Val::I32(ret as i32),
                        state::Ty::I64 => Val::I64(ret),
                    };
                    Ok(())
                })
            },
        )?;
    }
    Ok(())
}

/// One call of the state function `id`: decode, await the host, deliver.
async fn state_call(
    caller: &mut Caller<'_, ActivationState>,
    id: state::ImportId,
    params: &[Val],
) -> wasmtime::Result<i64> {
    let args: Vec<i64> = params
        .iter()
        .map(|v| match v {
            Val::I32(x) => i64::from(*x),
            Val::I64(x) => *x,
            _ => 0,
        })
        .collect();
    let memory = caller
        .get_export(abi::EXPORT_MEMORY)
        .and_then(Extern::into_memory)
        .ok_or_else(|| Error::Abi("ow_host_v1 needs the module's exported memory".into()))?;
    let (op, delivery) = {
        let data = memory.data(&*caller);
        let max = caller.data().host.max_value_bytes();
        state::decode(id, &args, data.len(), max, &mut |ptr, len| {
            let range = abi::guest_range(ptr, len, data.len(), "a state argument")?;
            Ok(data[range].to_vec())
        })?
    };
    let host = Arc::clone(&caller.data().host);
    let result = match delivery.refused() {
        Some(e) => Err(e),
        None => host.answer(op).await,
    };
    let ret = delivery.finish(result, &mut |ptr, bytes| {
        memory
            .write(&mut *caller, ptr as usize, bytes)
            .map_err(|e| Error::Abi(format!("the state buffer: {e}")))
    })?;
    Ok(ret)
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
        // WASI through the async linker: a WASI sleep is a timer of the
        // caller's runtime, not a blocked thread.
        wasmtime_wasi::p1::add_to_linker_async(&mut linker, |s: &mut ActivationState| &mut s.wasi)
            .and_then(|()| add_host_functions(&mut linker, &engine))
            .map_err(|e| Error::Resources(format!("cannot link the host functions: {e:#}")))?;
        let ticker = Arc::new(ticker::Ticker::start(&engine));
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
            ticker,
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

    fn snapshot(
        &self,
        wasm: &[u8],
        env: &[(String, String)],
        time_limit: std::time::Duration,
    ) -> Result<Vec<u8>> {
        let make = self.make_snapshot(wasm, env, time_limit);
        // Called from a blocking thread of a runtime (the executor's /init
        // pool) or from none (the precompiler).
        match tokio::runtime::Handle::try_current() {
            Ok(handle) => handle.block_on(make),
            Err(_) => tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| Error::Resources(format!("cannot start a runtime: {e}")))?
                .block_on(make),
        }
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
        // Resolved once: an activation finds its exports by index, not name.
        let export = |name: &str| module.get_export_index(name);
        let exports = Exports {
            initialize: export(abi::EXPORT_INITIALIZE),
            memory: export(abi::EXPORT_MEMORY),
            alloc: export(abi::EXPORT_ALLOC),
            entry: export(&spec.entry),
            start: export(abi::EXPORT_START),
        };
        let env = spec
            .env
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        tracing::debug!(%abi, entry = %spec.entry, "prepared action");
        Ok(Arc::new(WasmtimeAction {
            _module: module,
            pre,
            abi,
            exports,
            env,
            argv0: spec.name.clone().unwrap_or_else(|| "action".to_owned()),
            spec,
            limits,
            ticker: Arc::clone(&self.ticker),
        }))
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
    exports: Exports,
    /// The init-time environment, sorted, built once.
    env: Vec<(String, String)>,
    argv0: String,
    spec: ActionSpec,
    limits: Limits,
    ticker: Arc<ticker::Ticker>,
}

/// The exports an activation calls, resolved at /init.
struct Exports {
    initialize: Option<ModuleExport>,
    memory: Option<ModuleExport>,
    alloc: Option<ModuleExport>,
    entry: Option<ModuleExport>,
    start: Option<ModuleExport>,
}

impl PreparedAction for WasmtimeAction {
    fn abi(&self) -> ActionAbi {
        self.abi
    }

    fn run(self: Arc<Self>, activation: Activation) -> BoxFuture<'static, ActivationOutput> {
        Box::pin(async move { self.activate(activation).await })
    }
}

impl WasmtimeAction {
    /// One activation, on the caller's task: the guest runs on a fiber that
    /// yields at every epoch tick and in every WASI wait.
    async fn activate(&self, activation: Activation) -> ActivationOutput {
        let Activation {
            ctx,
            deadline,
            host,
        } = activation;
        // The epoch advances (the guest gets timeslices) while it runs.
        let _busy = self.ticker.busy();
        let stdout = LogPipe::new(self.limits.max_log_bytes);
        let stderr = LogPipe::new(self.limits.max_log_bytes);
        let stdin = match self.abi {
            ActionAbi::Command => MemoryInputPipe::new(ctx.params.clone()),
            ActionAbi::Sdk => MemoryInputPipe::new(Bytes::new()),
        };
        let scratch = self
            .spec
            .scratch
            .as_deref()
            .map(scratch::create)
            .transpose();
        let raw = match &scratch {
            Err(e) => Err(wasmtime::Error::from(e.clone())),
            Ok(dir) => match self.new_store(&ctx, host, stdin, &stdout, &stderr, dir.as_ref()) {
                Err(e) => Err(e.into()),
                Ok(mut store) => {
                    let calls = async {
                        match self.abi {
                            ActionAbi::Sdk => self.call_sdk(&mut store, &ctx.params).await,
                            ActionAbi::Command => self.call_command(&mut store).await,
                        }
                    };
                    // The deadline is the executor's; when it expires the
                    // calls are dropped and wasmtime unwinds the guest's
                    // fiber, computing (it yields every tick) or waiting in
                    // a host call such as a WASI sleep.
                    tokio::select! {
                        biased;
                        () = deadline.expired() => Err(Trap::Interrupt.into()),
                        raw = calls => raw,
                    }
                }
            },
        };
        // The store (and its handle on the directory) is gone: remove it.
        drop(scratch);
        let (out, out_cut) = stdout.take();
        let (err, err_cut) = stderr.take();
        let raw = raw.map_err(|e| activation_error(e, &deadline));
        abi::finish(
            self.abi,
            raw,
            out,
            err,
            out_cut || err_cut,
            self.limits.max_result_bytes,
        )
    }

    fn new_store(
        &self,
        ctx: &ActivationContext,
        host: Arc<dyn Host>,
        stdin: MemoryInputPipe,
        stdout: &LogPipe,
        stderr: &LogPipe,
        scratch: Option<&scratch::TempDir>,
    ) -> Result<Store<ActivationState>> {
        let mut wasi = wasmtime_wasi::WasiCtxBuilder::new();
        wasi.stdin(stdin)
            .stdout(stdout.clone())
            .stderr(stderr.clone())
            .args(&[&self.argv0]);
        // The init-time environment, then the activation's variables over it.
        if ctx.ow_env.is_empty() && ctx.api_host.is_none() {
            wasi.envs(&self.env);
        } else {
            wasi.envs(&ctx.environment(&self.spec.env));
        }
        if let Some(dir) = scratch {
            // cap-std resolves every guest path inside this directory:
            // `..` and symlinks cannot lead out of it.
            wasi.preopened_dir(dir.path(), SCRATCH_GUEST_DIR, FsPerms::ReadWrite)
                .map_err(|e| {
                    Error::Resources(format!("cannot open the scratch directory: {e:#}"))
                })?;
        }
        let mut store = ActivationState::store(
            self.pre.module().engine(),
            wasi.build_p1(),
            &self.limits,
            host,
        );
        // A running guest yields to the worker at every epoch tick. tokio's
        // `yield_now` lets the worker poll its sockets and timers before
        // the guest resumes, so requests on the same worker are served
        // between two timeslices.
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(|_| {
            Ok(UpdateDeadline::YieldCustom(
                1,
                Box::pin(tokio::task::yield_now()),
            ))
        });
        Ok(store)
    }

    /// Instantiate and run `_initialize` when there is one.
    async fn instantiate(&self, store: &mut Store<ActivationState>) -> wasmtime::Result<Instance> {
        let instance = self.pre.instantiate_async(&mut *store).await?;
        if let Some(init) = &self.exports.initialize {
            // Typed `() -> ()` at /init (`abi::classify`).
            let init = typed::<(), ()>(&instance, store, init, abi::EXPORT_INITIALIZE)?;
            init.call_async(&mut *store, ()).await?;
        }
        Ok(instance)
    }

    /// SDK ABI: [`abi::call_sdk`]'s sequence (params into a buffer from
    /// `ow_alloc`, the entry point, the result out), its checks shared.
    async fn call_sdk(
        &self,
        store: &mut Store<ActivationState>,
        params: &[u8],
    ) -> wasmtime::Result<Vec<u8>> {
        let instance = self.instantiate(store).await?;
        let memory = self
            .exports
            .memory
            .as_ref()
            .and_then(|m| instance.get_module_export(&mut *store, m))
            .and_then(Extern::into_memory)
            .ok_or_else(|| wasmtime::format_err!("no memory export"))?;
        let alloc = self.exports.alloc.as_ref();
        let alloc = alloc.map(|f| typed::<i32, i32>(&instance, store, f, abi::EXPORT_ALLOC));
        let alloc = alloc.ok_or_else(|| wasmtime::format_err!("no ow_alloc export"))??;
        let entry = self.exports.entry.as_ref();
        let entry = entry.map(|f| typed::<(i32, i32), i64>(&instance, store, f, &self.spec.entry));
        let entry = entry.ok_or_else(|| wasmtime::format_err!("no entry point export"))??;
        let len = abi::params_len(params)?;
        let ptr = alloc.call_async(&mut *store, len as i32).await? as u32;
        let size = memory.data_size(&*store);
        let range = abi::guest_range(ptr, len, size, "the buffer from ow_alloc")?;
        memory.write(&mut *store, range.start, params)?;
        let ret = entry
            .call_async(&mut *store, (ptr as i32, len as i32))
            .await?;
        let size = memory.data_size(&*store);
        let range = abi::result_range(ret, size, self.limits.max_result_bytes)?;
        Ok(memory.data(&*store)[range].to_vec())
    }

    /// Command ABI: run `_start`; exit code 0 (or returning) is success.
    async fn call_command(&self, store: &mut Store<ActivationState>) -> wasmtime::Result<Vec<u8>> {
        let instance = self.instantiate(store).await?;
        let start = self.exports.start.as_ref();
        let start = start.map(|f| typed::<(), ()>(&instance, store, f, abi::EXPORT_START));
        let start = start.ok_or_else(|| wasmtime::format_err!("no _start export"))??;
        match start.call_async(&mut *store, ()).await {
            Ok(()) => Ok(Vec::new()),
            Err(e) if e.downcast_ref::<I32Exit>().is_some_and(|exit| exit.0 == 0) => Ok(Vec::new()),
            Err(e) => Err(e),
        }
    }
}

/// The function `export` of `instance`, typed `P -> R` (checked at /init).
fn typed<P: WasmParams, R: WasmResults>(
    instance: &Instance,
    store: &mut Store<ActivationState>,
    export: &ModuleExport,
    name: &str,
) -> wasmtime::Result<wasmtime::TypedFunc<P, R>> {
    instance
        .get_module_export(&mut *store, export)
        .and_then(Extern::into_func)
        .ok_or_else(|| wasmtime::format_err!("no function export `{name}`"))
        .and_then(|f: Func| f.typed::<P, R>(&*store))
}

/// Translate a wasmtime error from an activation into our vocabulary.
fn activation_error(e: wasmtime::Error, deadline: &Deadline) -> Error {
    if let Some(err) = e.downcast_ref::<Error>() {
        return err.clone();
    }
    if let Some(exit) = e.downcast_ref::<I32Exit>() {
        return Error::Exit(exit.0);
    }
    if let Some(trap) = e.downcast_ref::<Trap>() {
        return match trap {
            Trap::Interrupt => deadline.error(),
            trap => Error::Trap(trap.to_string()),
        };
    }
    if e.downcast_ref::<PoolConcurrencyLimitError>().is_some() {
        return Error::Resources(e.to_string());
    }
    tracing::debug!("activation failed: {e:?}");
    Error::Trap(format!("{e:#}"))
}
