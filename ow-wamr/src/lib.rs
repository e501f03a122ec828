#![doc = include_str!("../README.md")]

mod deferred;
mod ffi;
mod stdio;
mod tables;

use ffi::{LoadedModule, Wamr};
use ow_common::abi::{self, ActionAbi, SdkInstance};
use ow_common::shared::{SharedModules, content_key};
use ow_common::{
    ActionSpec, ActivationContext, ActivationOutput, Error, Limits, PreparedAction, Result,
    WasmRuntime, scratch,
};
use std::ffi::CString;
use std::sync::Arc;

/// The WAMR version bundled by wamrx-sys.
pub const WAMR_VERSION: &str = "2.4.3";

/// The WAMR engine (fast interpreter).
///
/// WAMR's runtime is process-global: the first `WamrRuntime` initialises
/// it, later ones share it. A module is loaded once at /init; each
/// activation instantiates it afresh on the thread that runs the activation,
/// after that thread's WAMR environment is set up (`init_thread_env`).
/// Instances, exec envs and pipes never leave that thread.
pub struct WamrRuntime {
    limits: Limits,
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
        Ok(Self {
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
}

impl PreparedAction for WamrAction {
    fn abi(&self) -> ActionAbi {
        self.abi
    }

    fn run(&self, ctx: &ActivationContext) -> ActivationOutput {
        let limit = ctx.time_limit(self.limits.max_duration);
        let params = ctx.params_json();
        let stdin: &[u8] = match self.abi {
            ActionAbi::Command => &params,
            ActionAbi::Sdk => b"",
        };
        let io = match stdio::ActivationIo::start(stdin, self.limits.max_log_bytes, limit) {
            Ok(io) => io,
            Err(e) => return abi::finish(self.abi, Err(e), Vec::new(), Vec::new(), false, 0),
        };
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
            };
            // Instantiation runs no guest code (see `deferred`): the start
            // function and `_initialize` run here, where the deadline can
            // terminate them.
            let mut instance = ffi::Instance::new(&self.module, &settings, io.watch())?;
            for func in [&self.start, &self.initialize].into_iter().flatten() {
                instance.call(func, &[])?;
            }
            match self.abi {
                ActionAbi::Sdk => {
                    let mut sdk = WamrSdk {
                        instance: &mut instance,
                        entry: &self.entry,
                    };
                    abi::call_sdk(&mut sdk, &params, self.limits.max_result_bytes)
                }
                ActionAbi::Command => match instance.call(c"_start", &[]) {
                    Ok(_) | Err(Error::Exit(0)) => Ok(Vec::new()),
                    Err(e) => Err(e),
                },
            }
        });
        let (stdout, stderr, truncated, timed_out) = io.finish();
        let raw = raw.map_err(|e| match timed_out {
            true => Error::Timeout(limit.as_millis() as u64),
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
