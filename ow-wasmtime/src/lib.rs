#![doc = include_str!("../README.md")]

mod config;
mod logpipe;

pub use config::WasmtimeConfig;

use logpipe::LogPipe;
use ow_common::abi::{self, ActionAbi};
use ow_common::{
    ActionSpec, ActivationContext, ActivationOutput, Error, Limits, PreparedAction, Result,
    WasmRuntime,
};
use std::sync::Arc;
use std::time::Duration;
use wasmtime::{
    Engine, ExternType, FuncType, InstancePre, Linker, Module, PoolConcurrencyLimitError, Store,
    StoreLimits, StoreLimitsBuilder, Trap, ValType,
};
use wasmtime_wasi::I32Exit;
use wasmtime_wasi::p1::WasiP1Ctx;
use wasmtime_wasi::p2::pipe::MemoryInputPipe;

/// The wasmtime version this crate is built with.
pub const WASMTIME_VERSION: &str = "48.0.8";

/// How often the epoch ticker advances the engine's epoch; deadlines are
/// enforced to this granularity (OpenWhisk's shortest timeout is 100 ms).
const EPOCH_TICK: Duration = Duration::from_millis(5);

/// The wasmtime engine: one per process.
pub struct WasmtimeRuntime {
    engine: Engine,
    linker: Arc<Linker<ActivationState>>,
    limits: Limits,
    pooling: bool,
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
        wasmtime_wasi::p1::add_to_linker_sync(&mut linker, |s: &mut ActivationState| &mut s.wasi)
            .map_err(|e| Error::Resources(format!("cannot link WASI: {e:#}")))?;
        spawn_epoch_ticker(&engine);
        Ok(Self {
            engine,
            linker: Arc::new(linker),
            limits: config.limits,
            pooling,
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
        let module =
            Module::new(&self.engine, wasm).map_err(|e| Error::InvalidModule(format!("{e:#}")))?;
        let abi = check_exports(&module, &spec.entry)?;
        let pre = self
            .linker
            .instantiate_pre(&module)
            .map_err(|e| Error::InvalidModule(format!("{e:#}")))?;
        let has_initialize = func_type(&module, abi::EXPORT_INITIALIZE).is_some();
        tracing::debug!(%abi, entry = %spec.entry, "prepared action");
        Ok(Arc::new(WasmtimeAction {
            pre,
            abi,
            has_initialize,
            argv0: spec.name.clone().unwrap_or_else(|| "action".to_owned()),
            spec,
            limits: self.limits.clone(),
        }))
    }
}

fn func_type(module: &Module, name: &str) -> Option<FuncType> {
    match module.get_export(name)? {
        ExternType::Func(ty) => Some(ty),
        _ => None,
    }
}

fn signature(ty: &FuncType) -> String {
    let list = |tys: &mut dyn Iterator<Item = ValType>| {
        tys.map(|t| t.to_string()).collect::<Vec<_>>().join(", ")
    };
    format!(
        "({}) -> ({})",
        list(&mut ty.params()),
        list(&mut ty.results())
    )
}

fn has_signature(ty: &FuncType, params: &[ValType], results: &[ValType]) -> bool {
    let same = |a: &mut dyn ExactSizeIterator<Item = ValType>, b: &[ValType]| {
        a.len() == b.len() && a.zip(b).all(|(x, y)| ValType::eq(&x, y))
    };
    same(&mut ty.params(), params) && same(&mut ty.results(), results)
}

fn expect_func(
    module: &Module,
    name: &str,
    params: &[ValType],
    results: &[ValType],
    expected: &'static str,
) -> Result<()> {
    match module.get_export(name) {
        Some(ExternType::Func(ty)) if has_signature(&ty, params, results) => Ok(()),
        Some(ExternType::Func(ty)) => Err(Error::ExportType {
            name: name.to_owned(),
            expected,
            found: signature(&ty),
        }),
        Some(_) => Err(Error::ExportType {
            name: name.to_owned(),
            expected,
            found: "a non-function export".to_owned(),
        }),
        None => Err(Error::MissingExport {
            kind: "function",
            name: name.to_owned(),
        }),
    }
}

/// Decide the module's ABI and type-check its exports (`docs/abi.md`).
fn check_exports(module: &Module, entry: &str) -> Result<ActionAbi> {
    if module.get_export(abi::EXPORT_ALLOC).is_some() {
        expect_func(
            module,
            abi::EXPORT_ALLOC,
            &[ValType::I32],
            &[ValType::I32],
            "(i32) -> (i32)",
        )?;
        match module.get_export(abi::EXPORT_MEMORY) {
            Some(ExternType::Memory(mem)) if !mem.is_64() => {}
            Some(_) => {
                return Err(Error::ExportType {
                    name: abi::EXPORT_MEMORY.to_owned(),
                    expected: "a 32-bit memory",
                    found: "another kind of export".to_owned(),
                });
            }
            None => {
                return Err(Error::MissingExport {
                    kind: "memory",
                    name: abi::EXPORT_MEMORY.to_owned(),
                });
            }
        }
        expect_func(
            module,
            entry,
            &[ValType::I32, ValType::I32],
            &[ValType::I64],
            "(i32, i32) -> (i64)",
        )?;
        if module.get_export(abi::EXPORT_INITIALIZE).is_some() {
            expect_func(module, abi::EXPORT_INITIALIZE, &[], &[], "() -> ()")?;
        }
        Ok(ActionAbi::Sdk)
    } else if module.get_export(abi::EXPORT_START).is_some() {
        expect_func(module, abi::EXPORT_START, &[], &[], "() -> ()")?;
        Ok(ActionAbi::Command)
    } else {
        Err(Error::UnknownAbi)
    }
}

/// An action compiled and linked at /init.
struct WasmtimeAction {
    pre: InstancePre<ActivationState>,
    abi: ActionAbi,
    has_initialize: bool,
    argv0: String,
    spec: ActionSpec,
    limits: Limits,
}

impl PreparedAction for WasmtimeAction {
    fn abi(&self) -> ActionAbi {
        self.abi
    }

    fn run(&self, ctx: &ActivationContext) -> ActivationOutput {
        let stdout = LogPipe::new(self.limits.max_log_bytes);
        let stderr = LogPipe::new(self.limits.max_log_bytes);
        let time_limit = ctx.time_limit(self.limits.max_duration);
        let params = match serde_json::to_vec(&ctx.params) {
            Ok(params) => params,
            Err(e) => {
                return ActivationOutput {
                    result: Err(Error::Abi(format!("cannot encode the parameters: {e}"))),
                    stdout: Vec::new(),
                    stderr: Vec::new(),
                    logs_truncated: false,
                };
            }
        };
        let stdin = match self.abi {
            ActionAbi::Command => MemoryInputPipe::new(params.clone()),
            ActionAbi::Sdk => MemoryInputPipe::new(Vec::new()),
        };
        let mut store = self.new_store(ctx, stdin, &stdout, &stderr, time_limit);
        let raw = match self.abi {
            ActionAbi::Sdk => self.call_sdk(&mut store, &params),
            ActionAbi::Command => self.call_command(&mut store),
        };
        drop(store);
        let (out, out_cut) = stdout.take();
        let (err, err_cut) = stderr.take();
        let raw = raw.map_err(|e| activation_error(e, time_limit));
        let (result, out) = match (self.abi, raw) {
            (ActionAbi::Sdk, Ok(bytes)) => (
                abi::decode_result(&bytes, self.limits.max_result_bytes),
                out,
            ),
            (ActionAbi::Command, Ok(_)) => abi::command_result(out, self.limits.max_result_bytes),
            (_, Err(e)) => (Err(e), out),
        };
        ActivationOutput {
            result,
            stdout: out,
            stderr: err,
            logs_truncated: out_cut || err_cut,
        }
    }
}

impl WasmtimeAction {
    fn new_store(
        &self,
        ctx: &ActivationContext,
        stdin: MemoryInputPipe,
        stdout: &LogPipe,
        stderr: &LogPipe,
        time_limit: Duration,
    ) -> Store<ActivationState> {
        let wasi = wasmtime_wasi::WasiCtxBuilder::new()
            .stdin(stdin)
            .stdout(stdout.clone())
            .stderr(stderr.clone())
            .envs(&ctx.environment(&self.spec.env))
            .args(&[&self.argv0])
            .build_p1();
        let limits = StoreLimitsBuilder::new()
            .memory_size(self.limits.max_memory_bytes)
            .instances(1)
            .memories(1)
            .tables(16)
            .build();
        let mut store = Store::new(self.pre.module().engine(), ActivationState { wasi, limits });
        store.limiter(|s| &mut s.limits);
        let ticks = time_limit.as_millis().div_ceil(EPOCH_TICK.as_millis()) as u64 + 1;
        store.set_epoch_deadline(ticks);
        store
    }

    fn instantiate(
        &self,
        store: &mut Store<ActivationState>,
    ) -> wasmtime::Result<wasmtime::Instance> {
        let instance = self.pre.instantiate(&mut *store)?;
        if self.has_initialize {
            instance
                .get_typed_func::<(), ()>(&mut *store, abi::EXPORT_INITIALIZE)?
                .call(&mut *store, ())?;
        }
        Ok(instance)
    }

    /// SDK ABI: params into a buffer from `ow_alloc`, call the entry, copy
    /// the result out. Every guest pointer is bounds-checked.
    fn call_sdk(
        &self,
        store: &mut Store<ActivationState>,
        params: &[u8],
    ) -> wasmtime::Result<Vec<u8>> {
        let instance = self.instantiate(store)?;
        let memory = instance
            .get_memory(&mut *store, abi::EXPORT_MEMORY)
            .ok_or_else(|| wasmtime::format_err!("no memory export"))?;
        let alloc = instance.get_typed_func::<i32, i32>(&mut *store, abi::EXPORT_ALLOC)?;
        let entry = instance.get_typed_func::<(i32, i32), i64>(&mut *store, &self.spec.entry)?;

        let len = u32::try_from(params.len())
            .map_err(|_| Error::Abi("the parameters exceed 4 GiB".into()))?;
        let ptr = alloc.call(&mut *store, len as i32)? as u32;
        let range = abi::guest_range(
            ptr,
            len,
            memory.data_size(&*store),
            "the buffer from ow_alloc",
        )?;
        memory.data_mut(&mut *store)[range].copy_from_slice(params);

        let (ptr, len) = abi::unpack(entry.call(&mut *store, (ptr as i32, len as i32))?);
        if len as usize > self.limits.max_result_bytes {
            return Err(Error::ResultTooLarge {
                size: len as usize,
                limit: self.limits.max_result_bytes,
            }
            .into());
        }
        let range = abi::guest_range(ptr, len, memory.data_size(&*store), "the result")?;
        Ok(memory.data(&*store)[range].to_vec())
    }

    /// Command ABI: run `_start`; exit code 0 (or returning) is success.
    fn call_command(&self, store: &mut Store<ActivationState>) -> wasmtime::Result<Vec<u8>> {
        let instance = self.instantiate(store)?;
        let start = instance.get_typed_func::<(), ()>(&mut *store, abi::EXPORT_START)?;
        match start.call(&mut *store, ()) {
            Ok(()) => Ok(Vec::new()),
            Err(e) if e.downcast_ref::<I32Exit>().is_some_and(|exit| exit.0 == 0) => Ok(Vec::new()),
            Err(e) => Err(e),
        }
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
