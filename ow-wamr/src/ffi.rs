//! The unsafe edge: every call into WAMR's C API lives in this file.
//!
//! Threading, as WAMR documents it: the runtime is initialised once per
//! process; every thread that touches WAMR first calls
//! `wasm_runtime_init_thread_env` (done lazily per thread by
//! [`ensure_thread_env`]); a loaded module is read-only after
//! `wasm_runtime_load` and may be instantiated from several threads; an
//! instance and its exec env belong to the thread that created them, and the
//! only call another thread makes on them is `wasm_runtime_terminate`, which
//! exists for that purpose.

use crate::stdio::Watch;
use ow_common::Error;
use ow_common::Result;
use ow_common::abi::{ExportKind, ValKind};
use ow_common::state;
use std::ffi::{CStr, CString, c_char, c_int};
use std::marker::PhantomData;
use std::os::fd::RawFd;
use std::path::Path;
use std::sync::{Arc, OnceLock};
use wamrx_sys as sys;

unsafe extern "C" {
    /// WAMR's platform layer (posix_blocking_op.c): which signal
    /// `wasm_runtime_terminate` uses to wake a guest blocked in a syscall.
    /// Not in the public header, but exported by the static library.
    fn os_set_signal_number_for_blocking_op(signo: c_int);
}

/// The signal that wakes an activation's thread from a system call at its
/// deadline ([`wake`]): a real-time signal nobody else here uses (wasmer's
/// interrupts use SIGUSR1, WAMR's own blocking ops SIGUSR2).
fn wake_signal() -> c_int {
    libc::SIGRTMIN() + 4
}

/// Does nothing: its delivery alone makes the interrupted system call fail
/// with EINTR (installed without `SA_RESTART`).
extern "C" fn on_wake(_: c_int) {}

/// Interrupt `thread`'s current system call, if any. WAMR's `poll_oneoff`
/// sleeps in slices of up to one second (`clock_nanosleep`, outside its
/// blocking-op machinery, whose SIGUSR2 stays blocked there) and checks for
/// termination between slices: without this a terminated guest would sleep
/// on for up to a second, past the deadline guard's grace, and lose its
/// logs. The interrupted slice returns `EINTR`; WAMR then sees the
/// termination and stops the guest.
pub(crate) fn wake(thread: libc::pthread_t) {
    // SAFETY: the caller holds the instance's watch lock, so `thread` is
    // the live activation's thread (it cannot have exited: it still has to
    // deinstantiate, which waits for the lock); the handler is installed.
    unsafe { libc::pthread_kill(thread, wake_signal()) };
}

/// The process-wide runtime.
pub(crate) struct Wamr;

impl Wamr {
    /// Initialise WAMR once; returns its version.
    pub(crate) fn init() -> std::result::Result<&'static str, String> {
        static INIT: OnceLock<std::result::Result<&'static str, String>> = OnceLock::new();
        INIT.get_or_init(|| {
            // SAFETY: called once, before any other WAMR call; the init args
            // are fully initialised and outlive the call.
            unsafe {
                // wasmer's host interrupts own SIGUSR1: WAMR wakes blocked
                // guests with SIGUSR2 instead.
                os_set_signal_number_for_blocking_op(libc::SIGUSR2);
                // A do-nothing handler (async-signal-safe) without
                // SA_RESTART, so that delivery interrupts a sleep.
                let mut action: libc::sigaction = std::mem::zeroed();
                action.sa_sigaction = on_wake as extern "C" fn(c_int) as libc::sighandler_t;
                libc::sigemptyset(&mut action.sa_mask);
                if libc::sigaction(wake_signal(), &action, std::ptr::null_mut()) != 0 {
                    return Err("cannot install WAMR's wake-up signal handler".to_owned());
                }
                // WAMR logs to stdout; the executor's stdout is the actions' only.
                sys::wasm_runtime_set_log_level(sys::WASM_LOG_LEVEL_FATAL);
                let mut args = sys::RuntimeInitArgs {
                    mem_alloc_type: sys::Alloc_With_System_Allocator,
                    max_thread_num: 1,
                    ..Default::default()
                };
                if !sys::wasm_runtime_full_init(&mut args) {
                    return Err("WAMR's runtime failed to initialise".to_owned());
                }
                if !register_host_functions() {
                    return Err("WAMR refused the ow_host_v1 functions".to_owned());
                }
                let (mut major, mut minor, mut patch) = (0, 0, 0);
                sys::wasm_runtime_get_version(&mut major, &mut minor, &mut patch);
                let version: &'static str =
                    Box::leak(format!("{major}.{minor}.{patch}").into_boxed_str());
                Ok(version)
            }
        })
        .clone()
    }
}

/// Set up WAMR's per-thread environment, once per thread; torn down when
/// the thread exits.
struct ThreadEnv {
    ok: bool,
}

impl Drop for ThreadEnv {
    fn drop(&mut self) {
        if self.ok {
            // SAFETY: paired with the successful init on this same thread.
            unsafe { sys::wasm_runtime_destroy_thread_env() };
        }
    }
}

thread_local! {
    // SAFETY (of the call): WAMR is initialised before any action exists.
    static THREAD_ENV: ThreadEnv = ThreadEnv { ok: unsafe { sys::wasm_runtime_init_thread_env() } };
}

/// Make sure this thread may call into WAMR.
pub(crate) fn ensure_thread_env() -> Result<()> {
    match THREAD_ENV.with(|env| env.ok) {
        true => Ok(()),
        false => Err(Error::Resources("WAMR cannot run on this thread".into())),
    }
}

/// Stop a running instance from another thread.
pub(crate) fn terminate(inst: usize) {
    // SAFETY: the caller holds the instance's watch lock, so the instance is
    // alive (it is only deinstantiated after leaving the watch).
    unsafe { sys::wasm_runtime_terminate(inst as sys::wasm_module_inst_t) };
}

/// Read a C string owned by WAMR.
///
/// # Safety
/// `p` is null or points to a NUL-terminated string that outlives the call.
unsafe fn c_string(p: *const c_char) -> String {
    if p.is_null() {
        return String::new();
    }
    // SAFETY: guaranteed by the caller.
    unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
}

/// A module loaded at /init.
pub(crate) struct LoadedModule {
    raw: sys::wasm_module_t,
    /// WAMR keeps pointers into the buffer it loaded from: it lives as long
    /// as the module.
    _bytes: Box<[u8]>,
}

// SAFETY: a loaded module is immutable after `wasm_runtime_load` (the fast
// interpreter prepares all code at load time); WAMR supports instantiating
// one module from several threads, each with its thread env set up (we do,
// in `ensure_thread_env`). We never use the module-level WASI setters, which
// are the only ones that write to it after loading. Unloading happens in
// Drop, once no instance can exist (every `Instance` borrows the module).
unsafe impl Send for LoadedModule {}
// SAFETY: see above: shared use is read-only instantiation.
unsafe impl Sync for LoadedModule {}

impl Drop for LoadedModule {
    fn drop(&mut self) {
        // SAFETY: the module was loaded and no instance of it is left.
        unsafe { sys::wasm_runtime_unload(self.raw) };
    }
}

impl LoadedModule {
    /// Load and validate `wasm`.
    pub(crate) fn load(wasm: &[u8]) -> Result<Self> {
        let mut bytes: Box<[u8]> = wasm.into();
        let size = u32::try_from(bytes.len())
            .map_err(|_| Error::InvalidModule("the module is larger than 4 GiB".into()))?;
        let mut err = [0 as c_char; 256];
        // SAFETY: a writable buffer that outlives the module, and an error
        // buffer of the size given.
        let raw = unsafe {
            sys::wasm_runtime_load(bytes.as_mut_ptr(), size, err.as_mut_ptr(), err.len() as u32)
        };
        if raw.is_null() {
            // SAFETY: WAMR NUL-terminates the error buffer.
            let msg = unsafe { c_string(err.as_ptr()) };
            return Err(Error::InvalidModule(msg));
        }
        Ok(Self { raw, _bytes: bytes })
    }

    fn imports(&self) -> Vec<(String, String, bool)> {
        // SAFETY: a loaded module.
        let count = unsafe { sys::wasm_runtime_get_import_count(self.raw) }.max(0);
        (0..count)
            .map(|i| {
                // SAFETY: an index below the count, into a zeroed out-struct.
                let import = unsafe {
                    let mut import: sys::wasm_import_t = std::mem::zeroed();
                    sys::wasm_runtime_get_import_type(self.raw, i, &mut import);
                    import
                };
                // SAFETY: the names point into the loaded module.
                let (module, name) =
                    unsafe { (c_string(import.module_name), c_string(import.name)) };
                let linked = import.kind == sys::WASM_IMPORT_EXPORT_KIND_FUNC && import.linked;
                (module, name, linked)
            })
            .collect()
    }

    /// Refuse imports WAMR cannot satisfy (it only warns at load time).
    /// The `ow_host_v1` state functions are registered as native symbols
    /// ([`register_host_functions`]) before any module loads: WAMR links
    /// them when their signature matches.
    pub(crate) fn check_imports(&self) -> Result<()> {
        match self.imports().into_iter().find(|(_, _, linked)| !linked) {
            Some((module, name, _)) => Err(Error::InvalidModule(format!(
                "unknown import: `{module}::{name}` has not been defined"
            ))),
            None => Ok(()),
        }
    }

    /// The export `name`, described for `abi::classify`.
    pub(crate) fn export_kind(&self, name: &str) -> Option<ExportKind> {
        // SAFETY: a loaded module.
        let count = unsafe { sys::wasm_runtime_get_export_count(self.raw) }.max(0);
        for i in 0..count {
            // SAFETY: an index below the count, into a zeroed out-struct.
            let export = unsafe {
                let mut export: sys::wasm_export_t = std::mem::zeroed();
                sys::wasm_runtime_get_export_type(self.raw, i, &mut export);
                export
            };
            // SAFETY: the name points into the loaded module.
            if unsafe { c_string(export.name) } != name {
                continue;
            }
            return Some(match export.kind {
                sys::WASM_IMPORT_EXPORT_KIND_FUNC => {
                    // SAFETY: for a function export the union holds its type.
                    let ty = unsafe { export.u.func_type };
                    // SAFETY: indices below the counts of a valid type.
                    unsafe {
                        ExportKind::Func {
                            params: (0..sys::wasm_func_type_get_param_count(ty))
                                .map(|j| val_kind(sys::wasm_func_type_get_param_valkind(ty, j)))
                                .collect(),
                            results: (0..sys::wasm_func_type_get_result_count(ty))
                                .map(|j| val_kind(sys::wasm_func_type_get_result_valkind(ty, j)))
                                .collect(),
                        }
                    }
                }
                // This WAMR build has no memory64.
                sys::WASM_IMPORT_EXPORT_KIND_MEMORY => ExportKind::Memory { is_64: false },
                _ => ExportKind::Other,
            });
        }
        None
    }
}

fn val_kind(kind: sys::wasm_valkind_t) -> ValKind {
    match u32::from(kind) {
        sys::WASM_I32 => ValKind::I32,
        sys::WASM_I64 => ValKind::I64,
        sys::WASM_F32 => ValKind::Other("f32".into()),
        sys::WASM_F64 => ValKind::Other("f64".into()),
        sys::WASM_V128 => ValKind::Other("v128".into()),
        _ => ValKind::Other("ref".into()),
    }
}

/// The import marker of a host function's ABI error in WAMR's exception
/// text: [`Instance::call`] turns it back into [`Error::Abi`].
const ABI_EXCEPTION: &str = "ow_host_v1 ABI: ";

/// Register the `ow_host_v1` state functions, once, before any module
/// loads. Each is the one raw trampoline [`state_native`], told apart by
/// its attachment (the index in [`state::IMPORTS`]).
fn register_host_functions() -> bool {
    let ty = |t: &state::Ty| match t {
        state::Ty::I32 => 'i',
        state::Ty::I64 => 'I',
    };
    let symbols: Vec<sys::NativeSymbol> = state::IMPORTS
        .iter()
        .enumerate()
        .map(|(id, import)| {
            let params: String = import.params.iter().map(ty).collect();
            let signature = format!("({params}){}", ty(&import.result));
            // Leaked: WAMR keeps the pointers for the process's lifetime.
            let leak =
                |s: String| CString::new(s).map_or(std::ptr::null(), |c| c.into_raw().cast_const());
            sys::NativeSymbol {
                symbol: leak(import.name.to_owned()),
                func_ptr: state_native as *mut std::ffi::c_void,
                signature: leak(signature),
                attachment: id as *mut std::ffi::c_void,
            }
        })
        .collect();
    let symbols: &'static mut [sys::NativeSymbol] = Box::leak(symbols.into_boxed_slice());
    let module = Box::leak(Box::new(
        CString::new(ow_common::abi::HOST_MODULE).unwrap_or_default(),
    ));
    // SAFETY: the names, signatures and the array are leaked, so they live
    // as long as WAMR keeps them (for the process); WAMR's raw API calls
    // `state_native` with the exec env and one 64-bit cell per parameter
    // (results written back to the first cell), as its signature says.
    unsafe {
        sys::wasm_runtime_register_natives_raw(
            module.as_ptr(),
            symbols.as_mut_ptr(),
            symbols.len() as u32,
        )
    }
}

/// What a host function of one instance reaches through its exec env's
/// user data. Owned by the [`Instance`], boxed so its address is stable.
pub(crate) struct HostCtx {
    pub(crate) host: Arc<dyn ow_common::Host>,
    /// The pool's runtime: a host call waits for the host on it, holding
    /// this (pool) thread.
    pub(crate) handle: tokio::runtime::Handle,
}

/// The size of `inst`'s default memory in bytes.
///
/// # Safety
/// `inst` is a live instance.
unsafe fn memory_size_of(inst: sys::wasm_module_inst_t) -> usize {
    // SAFETY: the caller's; the memory belongs to the instance.
    unsafe {
        let memory = sys::wasm_runtime_get_default_memory(inst);
        if memory.is_null() {
            return 0;
        }
        (sys::wasm_memory_get_cur_page_count(memory) * sys::wasm_memory_get_bytes_per_page(memory))
            as usize
    }
}

/// The guest bytes `[offset, offset + len)` of `inst`'s memory, checked
/// against its current size.
///
/// # Safety
/// `inst` is a live instance and no guest code runs while the slice lives.
unsafe fn guest_bytes<'a>(
    inst: sys::wasm_module_inst_t,
    offset: u32,
    len: u32,
) -> Result<&'a mut [u8]> {
    // SAFETY: the caller's.
    let size = unsafe { memory_size_of(inst) };
    let range = ow_common::abi::guest_range(offset, len, size, "a state argument")?;
    if range.is_empty() {
        return Ok(&mut []);
    }
    // SAFETY: the range lies inside the default memory (checked above
    // against its current size), which does not move while no guest code
    // runs; WAMR checks the address again.
    let ptr = unsafe { sys::wasm_runtime_addr_app_to_native(inst, u64::from(offset)) };
    if ptr.is_null() {
        return Err(Error::Abi(format!(
            "{len} bytes at {offset:#x} lie outside the module's memory"
        )));
    }
    // SAFETY: `len` bytes from `ptr` are the checked range.
    Ok(unsafe { std::slice::from_raw_parts_mut(ptr.cast::<u8>(), range.len()) })
}

/// The raw trampoline of every `ow_host_v1` state function: decode the
/// cells, wait for the host context, deliver the answer. An ABI error
/// becomes the instance's exception (the guest traps).
///
/// # Safety
/// Called by WAMR only, on the instance's thread, with `args` holding one
/// cell per parameter of the registered signature (and room for the result
/// in the first).
unsafe extern "C" fn state_native(exec_env: sys::wasm_exec_env_t, args: *mut u64) {
    // No panic may unwind into C.
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        // SAFETY: the contract of this function.
        unsafe { state_call(exec_env, args) }
    }));
    let message = match outcome {
        Ok(Ok(())) => return,
        Ok(Err(Error::Abi(detail))) => format!("{ABI_EXCEPTION}{detail}"),
        Ok(Err(e)) => e.to_string(),
        Err(_) => "a host function panicked".to_owned(),
    };
    let message = CString::new(message).unwrap_or_default();
    // SAFETY: the exec env is live (we are called from it), so is its
    // instance; WAMR copies the message, under its exception lock
    // (`wasm_set_exception_local` in wasm_runtime_common.c), the lock a
    // concurrent `wasm_runtime_terminate` from the deadline takes too.
    unsafe {
        let inst = sys::wasm_runtime_get_module_inst(exec_env);
        sys::wasm_runtime_set_exception(inst, message.as_ptr());
    }
}

/// [`state_native`]'s work.
///
/// # Safety
/// As [`state_native`].
unsafe fn state_call(exec_env: sys::wasm_exec_env_t, args: *mut u64) -> Result<()> {
    // SAFETY: WAMR's exec env of a live instance; the attachment is the
    // index given at registration; the user data is null or the instance's
    // boxed `HostCtx`, which lives as long as the instance.
    let (inst, id, ctx) = unsafe {
        (
            sys::wasm_runtime_get_module_inst(exec_env),
            sys::wasm_runtime_get_function_attachment(exec_env) as usize,
            sys::wasm_runtime_get_user_data(exec_env)
                .cast::<HostCtx>()
                .as_ref(),
        )
    };
    let ctx = ctx.ok_or_else(|| Error::Abi("no host context for this instance".into()))?;
    let import = state::IMPORTS
        .get(id)
        .ok_or_else(|| Error::Abi(format!("no ow_host_v1 function number {id}")))?;
    // SAFETY: WAMR passes one cell per parameter of the registered signature.
    let cells = unsafe { std::slice::from_raw_parts_mut(args, import.params.len().max(1)) };
    let values: Vec<i64> = import
        .params
        .iter()
        .zip(cells.iter())
        .map(|(ty, cell)| match ty {
            state::Ty::I32 => i64::from(*cell as u32 as i32),
            state::Ty::I64 => *cell as i64,
        })
        .collect();
    // SAFETY: a live instance.
    let size = unsafe { memory_size_of(inst) };
    let max = ctx.host.max_value_bytes();
    let (op, delivery) = state::decode(id, &values, size, max, &mut |ptr, len| {
        // SAFETY: a live instance; no guest code runs during the copy.
        Ok(unsafe { guest_bytes(inst, ptr, len) }?.to_vec())
    })?;
    let result = match delivery.refused() {
        Some(e) => Err(e),
        None => ctx.handle.block_on(ctx.host.answer(op)),
    };
    let ty = delivery.result_type();
    let ret = delivery.finish(result, &mut |ptr, bytes| {
        // SAFETY: a live instance; no guest code runs during the copy. The
        // memory cannot have shrunk since the range was checked.
        let dst = unsafe { guest_bytes(inst, ptr, bytes.len() as u32) }?;
        dst.copy_from_slice(bytes);
        Ok(())
    })?;
    cells[0] = match ty {
        state::Ty::I32 => u64::from(ret as i32 as u32),
        state::Ty::I64 => ret as u64,
    };
    Ok(())
}

/// What one instance gets.
pub(crate) struct InstanceSettings<'a> {
    pub(crate) argv0: &'a str,
    pub(crate) env: &'a [(String, String)],
    pub(crate) max_memory_bytes: usize,
    /// Interpreter stack, in bytes. WAMR zero-fills it at every
    /// instantiation: a larger stack costs time on every activation.
    pub(crate) stack_bytes: usize,
    /// stdin, stdout, stderr.
    pub(crate) stdio: [RawFd; 3],
    /// A host directory to preopen at [`ow_common::SCRATCH_GUEST_DIR`].
    pub(crate) scratch: Option<&'a Path>,
    /// What the instance's `ow_host_v1` functions reach.
    pub(crate) host: HostCtx,
}

/// One instance, on the thread that created it (it is neither Send nor Sync).
pub(crate) struct Instance<'m> {
    inst: sys::wasm_module_inst_t,
    exec_env: sys::wasm_exec_env_t,
    watch: Arc<Watch>,
    /// The exec env's user data: a leaked box (a raw pointer from the
    /// start, so moving the `Instance` never invalidates it), freed in
    /// `Drop` after the instance is gone.
    host: *mut HostCtx,
    _module: PhantomData<&'m LoadedModule>,
}

impl<'m> Instance<'m> {
    /// Instantiate `module` with its own WASI args, env, stdio and memory cap.
    /// Runs the start function and, for WASI modules, `_initialize`.
    pub(crate) fn new(
        module: &'m LoadedModule,
        settings: InstanceSettings,
        watch: Arc<Watch>,
    ) -> Result<Self> {
        let env: Vec<CString> = settings
            .env
            .iter()
            .filter_map(|(k, v)| CString::new(format!("{k}={v}")).ok())
            .collect();
        let mut env_ptrs: Vec<*const c_char> = env.iter().map(|s| s.as_ptr()).collect();
        let argv0 = CString::new(settings.argv0).unwrap_or_else(|_| c"action".to_owned());
        let mut argv = [argv0.as_ptr().cast_mut()];
        let max_pages = u32::try_from(settings.max_memory_bytes / 65_536)
            .unwrap_or(u32::MAX)
            .max(1);
        let [stdin, stdout, stderr] = settings.stdio;
        let stack = u32::try_from(settings.stack_bytes).unwrap_or(u32::MAX);
        // WAMR's mapping syntax is `guest::host`; WAMR copies the string.
        let map_dir = settings
            .scratch
            .map(|host| {
                let host = host.to_str().filter(|h| !h.contains("::")).ok_or_else(|| {
                    Error::Resources(format!("unusable scratch path {}", host.display()))
                })?;
                CString::new(format!("{}::{host}", ow_common::SCRATCH_GUEST_DIR))
                    .map_err(|_| Error::Resources("the scratch path contains NUL".into()))
            })
            .transpose()?;
        let mut map_dirs: Vec<*const c_char> = map_dir.iter().map(|m| m.as_ptr()).collect();
        let mut err = [0 as c_char; 256];
        // SAFETY: every pointer handed to the args lives until instantiation
        // returns (WAMR copies the strings); the args are destroyed after.
        let inst = unsafe {
            let mut args: *mut sys::InstantiationArgs2 = std::ptr::null_mut();
            if !sys::wasm_runtime_instantiation_args_create(&mut args) {
                return Err(Error::Resources(
                    "cannot allocate WAMR instantiation args".into(),
                ));
            }
            sys::wasm_runtime_instantiation_args_set_default_stack_size(args, stack);
            if !map_dirs.is_empty() {
                sys::wasm_runtime_instantiation_args_set_wasi_dir(
                    args,
                    std::ptr::null_mut(),
                    0,
                    map_dirs.as_mut_ptr(),
                    map_dirs.len() as u32,
                );
            }
            sys::wasm_runtime_instantiation_args_set_host_managed_heap_size(args, 0);
            sys::wasm_runtime_instantiation_args_set_max_memory_pages(args, max_pages);
            sys::wasm_runtime_instantiation_args_set_wasi_arg(args, argv.as_mut_ptr(), 1);
            sys::wasm_runtime_instantiation_args_set_wasi_env(
                args,
                env_ptrs.as_mut_ptr(),
                env_ptrs.len() as u32,
            );
            sys::wasm_runtime_instantiation_args_set_wasi_stdio(
                args,
                stdin.into(),
                stdout.into(),
                stderr.into(),
            );
            let inst = sys::wasm_runtime_instantiate_ex2(
                module.raw,
                args,
                err.as_mut_ptr(),
                err.len() as u32,
            );
            sys::wasm_runtime_instantiation_args_destroy(args);
            inst
        };
        if inst.is_null() {
            // SAFETY: WAMR NUL-terminates the error buffer.
            let msg = unsafe { c_string(err.as_ptr()) };
            return Err(Error::Trap(format!("instantiation failed: {msg}")));
        }
        // SAFETY: a live instance; the singleton is owned by it.
        let exec_env = unsafe { sys::wasm_runtime_get_exec_env_singleton(inst) };
        let instance = Self {
            inst,
            exec_env,
            watch,
            _module: PhantomData,
            host: Box::into_raw(Box::new(settings.host)),
        };
        if exec_env.is_null() {
            return Err(Error::Resources("cannot create a WAMR exec env".into()));
        }
        // SAFETY: a live exec env; the pointer stays valid until `Drop`
        // frees it, after deinstantiating, and is only read through
        // (`state_call` makes a shared reference for one call).
        unsafe { sys::wasm_runtime_set_user_data(exec_env, instance.host.cast()) };
        *instance
            .watch
            .live
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = Some(inst as usize);
        if instance
            .watch
            .timed_out
            .load(std::sync::atomic::Ordering::SeqCst)
        {
            return Err(Error::Trap("terminated during instantiation".into()));
        }
        if instance.memory_size() > settings.max_memory_bytes {
            return Err(Error::Trap(format!(
                "the module's initial memory exceeds the limit of {} bytes",
                settings.max_memory_bytes
            )));
        }
        Ok(instance)
    }

    /// Call the export `name` with `args` as its parameter cells (an `i64`
    /// takes two, low word first); returns its result cells.
    ///
    /// WAMR's interpreter reads the parameter cells from, and writes every
    /// result cell back to, the one buffer it is given, without knowing its
    /// size (`wasm_interp_call_wasm` copies `ret_cell_num` cells into
    /// `argv`). The buffer is therefore sized here from the function's own
    /// type, never from what the caller expects.
    pub(crate) fn call(&mut self, name: &CStr, args: &[u32]) -> Result<Vec<u32>> {
        // SAFETY: a live instance and a NUL-terminated name.
        let func = unsafe { sys::wasm_runtime_lookup_function(self.inst, name.as_ptr()) };
        if func.is_null() {
            return Err(Error::Trap(format!(
                "no export `{}`",
                name.to_string_lossy()
            )));
        }
        let (param_cells, result_cells) = self.cells(func);
        if args.len() != param_cells {
            return Err(Error::Abi(format!(
                "the export `{}` takes {param_cells} parameter cells, not {}",
                name.to_string_lossy(),
                args.len()
            )));
        }
        let mut cells = vec![0u32; param_cells.max(result_cells).max(1)];
        cells[..args.len()].copy_from_slice(args);
        let argc =
            u32::try_from(param_cells).map_err(|_| Error::Abi("too many parameters".into()))?;
        // SAFETY: a live instance and exec env of this thread; `cells` holds
        // the parameter cells and has room for every result cell of the
        // function's type (computed above from the same function instance).
        if unsafe { sys::wasm_runtime_call_wasm(self.exec_env, func, argc, cells.as_mut_ptr()) } {
            cells.truncate(result_cells);
            return Ok(cells);
        }
        // The deadline's `terminate` writes the exception text from another
        // thread under the watch lock: read it under the same lock.
        let exception = {
            let _terminate = self.watch.live.lock().unwrap_or_else(|e| e.into_inner());
            // SAFETY: a live instance; the string is copied at once.
            unsafe { c_string(sys::wasm_runtime_get_exception(self.inst)) }
        };
        if let Some(detail) = exception
            .strip_prefix("Exception: ")
            .and_then(|e| e.strip_prefix(ABI_EXCEPTION))
        {
            return Err(Error::Abi(detail.to_owned()));
        }
        if exception == "Exception: wasi proc exit" {
            // SAFETY: a live instance.
            let code = unsafe { sys::wasm_runtime_get_wasi_exit_code(self.inst) };
            return Err(Error::Exit(code as i32));
        }
        Err(Error::Trap(
            exception.trim_start_matches("Exception: ").to_owned(),
        ))
    }

    /// The parameter and result cells of `func`, from its type: one per
    /// `i32`/`f32`, two per `i64`/`f64`, four for anything else (a `v128`;
    /// references take at most that), so the count is never too small.
    fn cells(&self, func: sys::wasm_function_inst_t) -> (usize, usize) {
        let width = |kind: sys::wasm_valkind_t| match u32::from(kind) {
            sys::WASM_I32 | sys::WASM_F32 => 1,
            sys::WASM_I64 | sys::WASM_F64 => 2,
            _ => 4,
        };
        // SAFETY: a function instance of this live instance; each types
        // buffer has exactly the count WAMR reports for it.
        unsafe {
            let params = sys::wasm_func_get_param_count(func, self.inst) as usize;
            let results = sys::wasm_func_get_result_count(func, self.inst) as usize;
            let mut param_kinds: Vec<sys::wasm_valkind_t> = vec![0; params];
            let mut result_kinds: Vec<sys::wasm_valkind_t> = vec![0; results];
            if params > 0 {
                sys::wasm_func_get_param_types(func, self.inst, param_kinds.as_mut_ptr());
            }
            if results > 0 {
                sys::wasm_func_get_result_types(func, self.inst, result_kinds.as_mut_ptr());
            }
            (
                param_kinds.into_iter().map(width).sum(),
                result_kinds.into_iter().map(width).sum(),
            )
        }
    }

    /// The default memory's size in bytes.
    pub(crate) fn memory_size(&self) -> usize {
        // SAFETY: a live instance; the memory belongs to it.
        unsafe {
            let memory = sys::wasm_runtime_get_default_memory(self.inst);
            if memory.is_null() {
                return 0;
            }
            (sys::wasm_memory_get_cur_page_count(memory)
                * sys::wasm_memory_get_bytes_per_page(memory)) as usize
        }
    }

    /// A native pointer to `len` guest bytes at `offset`, checked by WAMR.
    fn native(&mut self, offset: usize, len: usize) -> Result<*mut u8> {
        let outside = || {
            Error::Abi(format!(
                "{len} bytes at {offset:#x} lie outside the module's memory"
            ))
        };
        if len == 0 {
            return Ok(std::ptr::NonNull::dangling().as_ptr());
        }
        // Checked here, not with `wasm_runtime_validate_app_addr`: that one
        // sets an exception on failure, and clearing it would also clear a
        // pending termination.
        match offset.checked_add(len) {
            Some(end) if end <= self.memory_size() => {}
            _ => return Err(outside()),
        }
        // SAFETY: a live instance; the range lies inside its default memory
        // (checked above against its current size; no guest code runs until
        // the caller has copied), and WAMR checks the address again.
        let ptr = unsafe { sys::wasm_runtime_addr_app_to_native(self.inst, offset as u64) };
        if ptr.is_null() {
            return Err(outside());
        }
        Ok(ptr.cast())
    }

    pub(crate) fn write(&mut self, offset: usize, bytes: &[u8]) -> Result<()> {
        let dst = self.native(offset, bytes.len())?;
        // SAFETY: WAMR validated the whole range; no guest code runs meanwhile.
        unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), dst, bytes.len()) };
        Ok(())
    }

    pub(crate) fn read(&mut self, range: std::ops::Range<usize>) -> Result<Vec<u8>> {
        let src = self.native(range.start, range.len())?;
        // SAFETY: WAMR validated the whole range; no guest code runs meanwhile.
        Ok(unsafe { std::slice::from_raw_parts(src, range.len()) }.to_vec())
    }
}

impl Drop for Instance<'_> {
    fn drop(&mut self) {
        // Leave the watch first, under its lock: no terminate after this.
        *self.watch.live.lock().unwrap_or_else(|e| e.into_inner()) = None;
        // SAFETY: a live instance created on this thread.
        unsafe { sys::wasm_runtime_deinstantiate(self.inst) };
        // SAFETY: from `Box::into_raw` in `new`, freed once, here; the
        // instance whose exec env pointed to it is gone.
        drop(unsafe { Box::from_raw(self.host) });
    }
}
