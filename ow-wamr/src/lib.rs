#![doc = include_str!("../README.md")]

mod deferred;
mod ffi;
mod stdio;
mod tables;

use ffi::{LoadedModule, Wamr};
use ow_common::abi::{self, ActionAbi, SdkInstance};
use ow_common::blocking::Pool;
use ow_common::shared::{SharedModules, content_key};
use ow_common::{
    ActionSpec, Activation, ActivationOutput, BoxFuture, Error, Limits, PreparedAction, Result,
    WasmRuntime, scratch,
};
use std::ffi::CString;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How often an activation past its deadline is woken again.
const STOP_AGAIN: Duration = Duration::from_millis(20);

/// The WAMR version bundled by wamrx-sys.
pub const WAMR_VERSION: &str = "2.4.3";

/// The WAMR engine (fast interpreter).
///
/// WAMR's runtime is process-global: the first `WamrRuntime` initialises
/// it, later ones share it. A module is loaded once at /init; each
/// activation instantiates it afresh on the thread that runs the activation,
/// after that thread's WAMR environment is set up (`init_thread_env`).
/// Instances, exec envs and pipes never leave that thread: activations run
/// on a bounded pool of this crate ([`Pool`], as many threads as
/// instances), behind the async `PreparedAction::run`. When the executor's
/// deadline expires the instance is terminated and its thread woken every
/// [`STOP_AGAIN`] until the activation ends.
pub struct WamrRuntime {
    limits: Limits,
    pool: Arc<Pool>,
    version: &'static str,
    /// Loaded modules by content and table cap, shared by every action
    /// with that code.
    modules: SharedModules<LoadedModule>,
}

impl WamrRuntime {
    /// Initialise WAMR (once per process) and make an engine with these limits.
    ///
    /// # Errors
    /// [`Error::Resources`] when WAMR's runtime cannot be initialised.
    pub fn new(limits: Limits) -> Result<Self> {
        let version = Wamr::init().map_err(Error::Resources)?;
        let pool = Pool::new(
            "wamr",
            limits.max_instances as usize,
            ow_common::blocking::thread_stack_bytes(&limits),
        )?;
        Ok(Self {
            pool: Arc::new(pool),
            limits,
            version,
            modules: SharedModules::default(),
        })
    }
}

impl WasmRuntime for WamrRuntime {
    fn name(&self) -> &'static str {
        "wamr"
    }

    fn version(&self) -> &'static str {
        self.version
    }

    fn prepare(&self, wasm: &[u8], spec: ActionSpec) -> Result<Arc<dyn PreparedAction>> {
        ffi::ensure_thread_env()?;
        let limits = spec.limits.within(&self.limits);
        abi::check_tables(wasm, limits.max_table_elements)?;
        let key = content_key(&[wasm, &limits.max_table_elements.to_le_bytes()]);
        let module = self.modules.get_or_make(key, || {
            let capped = tables::cap_tables(wasm, limits.max_table_elements)?;
            LoadedModule::load(&deferred::defer_instantiation_code(&capped)?)
        })?;
        module.check_imports()?;
        // The loaded module's exports carry the rewrite's names: look the
        // ABI's names up through it.
        let exports = |name: &str| module.export_kind(&deferred::loaded_name(name));
        let abi = abi::classify(&exports, &spec.entry)?;
        let cname = |name: &str| {
            CString::new(deferred::loaded_name(name).as_bytes())
                .map_err(|_| Error::InvalidModule(format!("the export name `{name}` contains NUL")))
        };
        Ok(Arc::new(WamrAction {
            start: module
                .export_kind(deferred::START_EXPORT)
                .map(|_| cname(deferred::START_EXPORT))
                .transpose()?,
            initialize: exports(abi::EXPORT_INITIALIZE)
                .map(|_| cname(abi::EXPORT_INITIALIZE))
                .transpose()?,
            entry: cname(&spec.entry)?,
            module,
            abi,
            argv0: spec.name.clone().unwrap_or_else(|| "action".to_owned()),
            spec,
            limits,
            pool: Arc::clone(&self.pool),
        }))
    }
}

/// An action loaded at /init.
struct WamrAction {
    module: Arc<LoadedModule>,
    abi: ActionAbi,
    entry: CString,
    /// The module's start function, exported by the rewrite of [`deferred`].
    start: Option<CString>,
    /// `_initialize`, under its name in the loaded module.
    initialize: Option<CString>,
    argv0: String,
    spec: ActionSpec,
    limits: Limits,
    pool: Arc<Pool>,
}

impl PreparedAction for WamrAction {
    fn abi(&self) -> ActionAbi {
        self.abi
    }

    fn run(self: Arc<Self>, activation: Activation) -> BoxFuture<'static, ActivationOutput> {
        Box::pin(async move {
            let pool = Arc::clone(&self.pool);
            let deadline = activation.deadline.clone();
            // The activation's watch, once its thread has made it.
            let watch: Arc<Mutex<Option<Arc<stdio::Watch>>>> = Arc::default();
            let job_watch = Arc::clone(&watch);
            let job = move || self.run_blocking(&activation, &job_watch);
            let stop = |first: bool| {
                let watch = watch.lock().unwrap_or_else(|e| e.into_inner());
                if let Some(watch) = &*watch {
                    watch.expire(first);
                }
            };
            pool.run(&deadline, job, STOP_AGAIN, stop)
                .await
                .unwrap_or_else(ActivationOutput::failed)
        })
    }
}

impl WamrAction {
    /// One activation on this (pool) thread.
    fn run_blocking(
        &self,
        activation: &Activation,
        watch: &Mutex<Option<Arc<stdio::Watch>>>,
    ) -> ActivationOutput {
        let Activation { ctx, deadline, .. } = activation;
        let stdin: &[u8] = match self.abi {
            ActionAbi::Command => &ctx.params,
            ActionAbi::Sdk => b"",
        };
        let io = match stdio::ActivationIo::start(stdin, self.limits.max_log_bytes) {
            Ok(io) => io,
            Err(e) => return ActivationOutput::failed(e),
        };
        {
            let mut slot = watch.lock().unwrap_or_else(|e| e.into_inner());
            *slot = Some(io.watch());
            // Expired while the descriptors were made: the instance fails
            // to instantiate (it checks `timed_out` once live).
            if deadline.is_expired() {
                io.watch().expire(true);
            }
        }
        // Removed (with whatever the action left in it) when this drops,
        // after the instance.
        let scratch = self
            .spec
            .scratch
            .as_deref()
            .map(scratch::create)
            .transpose();
        let raw = ffi::ensure_thread_env().and_then(|()| {
            let scratch = match &scratch {
                Ok(dir) => dir.as_ref().map(|d| d.path()),
                Err(e) => return Err(e.clone()),
            };
            let env = ctx.environment(&self.spec.env);
            let settings = ffi::InstanceSettings {
                argv0: &self.argv0,
                env: &env,
                max_memory_bytes: self.limits.max_memory_bytes,
                stack_bytes: self.limits.max_stack_bytes,
                stdio: io.guest_fds(),
                scratch,
                host: ffi::HostCtx {
                    host: Arc::clone(&activation.host),
                    handle: self.pool.handle().clone(),
                },
            };
            // Instantiation runs no guest code (see `deferred`): the start
            // function and `_initialize` run here, where the deadline can
            // terminate them.
            let mut instance = ffi::Instance::new(&self.module, settings, io.watch())?;
            for func in [&self.start, &self.initialize].into_iter().flatten() {
                instance.call(func, &[])?;
            }
            match self.abi {
                ActionAbi::Sdk => {
                    let mut sdk = WamrSdk {
                        instance: &mut instance,
                        entry: &self.entry,
                    };
                    abi::call_sdk(&mut sdk, &ctx.params, self.limits.max_result_bytes)
                }
                ActionAbi::Command => match instance.call(c"_start", &[]) {
                    Ok(_) | Err(Error::Exit(0)) => Ok(Vec::new()),
                    Err(e) => Err(e),
                },
            }
        });
        // The instance is gone (it left the watch when it went).
        *watch.lock().unwrap_or_else(|e| e.into_inner()) = None;
        let (stdout, stderr, truncated, timed_out) = io.finish();
        let raw = raw.map_err(|e| match timed_out {
            true => deadline.error(),
            false => e,
        });
        abi::finish(
            self.abi,
            raw,
            stdout,
            stderr,
            truncated,
            self.limits.max_result_bytes,
        )
    }
}

/// One SDK instance for [`abi::call_sdk`].
struct WamrSdk<'a, 'm> {
    instance: &'a mut ffi::Instance<'m>,
    entry: &'a std::ffi::CStr,
}

impl SdkInstance for WamrSdk<'_, '_> {
    type Error = Error;

    fn alloc(&mut self, len: u32) -> Result<u32> {
        // The types were checked at /init: one i32 in, one i32 out.
        match self.instance.call(c"ow_alloc", &[len])?[..] {
            [ptr] => Ok(ptr),
            _ => Err(Error::Abi("ow_alloc must return one i32".into())),
        }
    }

    fn call_entry(&mut self, ptr: u32, len: u32) -> Result<i64> {
        // An i64 result comes back in two cells, low word first.
        match self.instance.call(self.entry, &[ptr, len])?[..] {
            [low, high] => Ok((u64::from(low) | (u64::from(high) << 32)) as i64),
            _ => Err(Error::Abi("the entry point must return one i64".into())),
        }
    }

    fn memory_size(&mut self) -> usize {
        self.instance.memory_size()
    }

    fn write(&mut self, offset: usize, bytes: &[u8]) -> Result<()> {
        self.instance.write(offset, bytes)
    }

    fn read(&mut self, range: std::ops::Range<usize>) -> Result<Vec<u8>> {
        self.instance.read(range)
    }
}
