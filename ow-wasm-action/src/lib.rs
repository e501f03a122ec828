#![doc = include_str!("../README.md")]

pub use serde_json::{self, Value, json};

pub mod call;
pub mod context;
pub mod state;

pub use context::Context;

/// Export handlers as OpenWhisk action entry points (ABI v1, `docs/abi.md`).
///
/// A handler is any `fn(Value) -> Result<Value, E>` with `E: Display`; an
/// `Err(e)` becomes the result `{"error": "<e>"}`, which OpenWhisk records as
/// an application error. The macro also exports `ow_alloc`, so invoke it
/// once per action crate, naming every entry point there:
///
/// ```ignore
/// ow_wasm_action::export!(hello);                  // entry point `main`
/// ow_wasm_action::export!(main => hello, niam => hello); // several
/// ```
#[macro_export]
macro_rules! export {
    ($handler:path) => {
        $crate::export!(main => $handler);
    };
    ($($entry:ident => $handler:path),+ $(,)?) => {
        /// ABI v1: allocate `size` bytes for the host to write the params into.
        #[unsafe(no_mangle)]
        pub extern "C" fn ow_alloc(size: i32) -> i32 {
            $crate::__private::alloc(size)
        }
        $(
            /// ABI v1 entry point: params JSON at `(ptr, len)`, returns the
            /// result JSON as `(ptr << 32) | len`.
            #[unsafe(no_mangle)]
            pub extern "C" fn $entry(ptr: i32, len: i32) -> i64 {
                // SAFETY: the host passes a buffer it obtained from `ow_alloc`
                // with exactly `len` bytes written, as the ABI requires.
                unsafe { $crate::__private::call(ptr, len, $handler) }
            }
        )+
    };
}

/// Export a raw handler as the entry point `main` (ABI v1, `docs/abi.md`):
/// the params as the bytes the host wrote (never parsed), the result as the
/// bytes to answer (a JSON object or array, which the host checks). For
/// payloads of megabytes that an action passes on or measures without
/// decoding them, such as the callees of the workflow benchmarks.
///
/// The handler is a `fn(&'static [u8]) -> Cow<'static, [u8]>`: the params
/// buffer is never freed (the instance is discarded after the activation),
/// so a handler may answer with (part of) it without a copy. Also exports
/// `ow_alloc`: use it instead of [`export!`], not beside it.
///
/// ```ignore
/// fn size(params: &'static [u8]) -> Cow<'static, [u8]> {
///     Cow::Owned(format!(r#"{{"bytes":{}}}"#, params.len()).into_bytes())
/// }
/// ow_wasm_action::export_raw!(size);
/// ```
#[macro_export]
macro_rules! export_raw {
    ($handler:path) => {
        /// ABI v1: allocate `size` bytes for the host to write the params into.
        #[unsafe(no_mangle)]
        pub extern "C" fn ow_alloc(size: i32) -> i32 {
            $crate::__private::alloc(size)
        }
        /// ABI v1 entry point: params at `(ptr, len)`, returns the result as
        /// `(ptr << 32) | len`.
        #[unsafe(no_mangle)]
        pub extern "C" fn main(ptr: i32, len: i32) -> i64 {
            // SAFETY: the host passes a buffer it obtained from `ow_alloc`
            // with exactly `len` bytes written, as the ABI requires.
            unsafe { $crate::__private::call_raw(ptr, len, $handler) }
        }
    };
}

/// Export `ow_zygote`, the proto-function of a snapshot (ABI version 2,
/// `docs/abi.md`): the executor calls `init` once at /init, snapshots linear
/// memory and globals, and starts every activation from that snapshot, so
/// that work done here (tables, parsed configuration, warmed caches) is
/// never repeated.
///
/// ```ignore
/// static TABLE: OnceLock<Vec<u32>> = OnceLock::new();
///
/// fn warm() {
///     TABLE.get_or_init(build_table);
/// }
///
/// ow_wasm_action::zygote!(warm);
/// // The handler uses `TABLE.get_or_init(build_table)` too: engines and
/// // tools that do not snapshot never call `ow_zygote`.
/// ```
///
/// `init` sees the /init environment but no activation's: no `__OW_*`
/// variables of an activation, no scratch directory, state calls answer
/// [`state::StateError::Unavailable`] and action calls
/// [`call::CallError::Unavailable`]. It must not open files or other
/// handles, read clocks or random numbers (their values would be frozen into
/// every activation) or spawn anything. A panic fails /init.
///
/// After `init` the macro flushes stdout and makes wasi-libc forget the
/// environment and preopened directories it may have cached, so that every
/// activation reads its own.
#[macro_export]
macro_rules! zygote {
    ($init:expr) => {
        /// ABI v2: the proto-function, called once before the snapshot.
        #[unsafe(no_mangle)]
        pub extern "C" fn ow_zygote() {
            $crate::__private::zygote($init)
        }
    };
}

#[doc(hidden)]
pub mod __private {
    use serde_json::{Value, json};
    use std::alloc::Layout;
    use std::fmt::Display;

    /// Allocate `size` bytes, never freed by the guest unless passed to [`call`].
    pub fn alloc(size: i32) -> i32 {
        let Ok(size) = usize::try_from(size) else {
            return 0;
        };
        if size == 0 {
            return std::ptr::NonNull::<u8>::dangling().as_ptr() as usize as i32;
        }
        let Ok(layout) = Layout::array::<u8>(size) else {
            return 0;
        };
        // SAFETY: the layout has a non-zero size.
        let ptr = unsafe { std::alloc::alloc(layout) };
        if ptr.is_null() {
            std::alloc::handle_alloc_error(layout);
        }
        ptr as usize as i32
    }

    /// Decode the params, call the handler, encode its result.
    ///
    /// # Safety
    /// `(ptr, len)` must be a buffer returned by [`alloc`] for exactly `len`
    /// bytes, initialised by the host; it is freed here.
    pub unsafe fn call<E: Display>(
        ptr: i32,
        len: i32,
        handler: fn(Value) -> Result<Value, E>,
    ) -> i64 {
        let len = usize::try_from(len).unwrap_or(0);
        let params = if len == 0 {
            Ok(Value::Object(Default::default()))
        } else {
            let ptr = ptr as usize as *mut u8;
            // SAFETY: guaranteed by the caller.
            let input = unsafe { std::slice::from_raw_parts(ptr, len) };
            let params = serde_json::from_slice::<Value>(input);
            // SAFETY: allocated by `alloc` with this very layout.
            unsafe { std::alloc::dealloc(ptr, Layout::array::<u8>(len).expect("valid layout")) };
            params
        };
        let result = match params {
            Ok(params) => handler(params).unwrap_or_else(|e| json!({ "error": e.to_string() })),
            Err(e) => json!({ "error": format!("the parameters are not valid JSON: {e}") }),
        };
        let bytes = serde_json::to_vec(&result)
            .unwrap_or_else(|_| br#"{"error":"unserializable result"}"#.to_vec());
        let bytes: &'static mut [u8] = Box::leak(bytes.into_boxed_slice());
        // The instance is discarded after the activation, which frees the result.
        let (ptr, len) = (bytes.as_ptr() as usize as u64, bytes.len() as u64);
        ((ptr << 32) | (len & 0xffff_ffff)) as i64
    }

    /// Hand the params' bytes to a raw handler and its result to the host.
    ///
    /// # Safety
    /// `(ptr, len)` must be a buffer returned by [`alloc`] for exactly `len`
    /// bytes, initialised by the host; it is never freed.
    pub unsafe fn call_raw(
        ptr: i32,
        len: i32,
        handler: fn(&'static [u8]) -> std::borrow::Cow<'static, [u8]>,
    ) -> i64 {
        let len = usize::try_from(len).unwrap_or(0);
        let params: &'static [u8] = match len {
            0 => b"{}",
            // SAFETY: guaranteed by the caller; never freed, so 'static for
            // the instance's life.
            _ => unsafe { std::slice::from_raw_parts(ptr as usize as *const u8, len) },
        };
        let result: &'static [u8] = match handler(params) {
            std::borrow::Cow::Borrowed(result) => result,
            // The instance is discarded after the activation, which frees it.
            std::borrow::Cow::Owned(result) => result.leak(),
        };
        let (ptr, len) = (result.as_ptr() as usize as u64, result.len() as u64);
        ((ptr << 32) | (len & 0xffff_ffff)) as i64
    }

    /// Run a zygote's `init`, then drop what wasi-libc cached of the
    /// zygote's WASI world, which the snapshot would otherwise hand to every
    /// activation: the environment (read lazily, on the first `getenv`) and
    /// the preopened directories.
    pub fn zygote(init: impl FnOnce()) {
        init();
        // Output left in the buffer would be printed by every activation.
        let _ = std::io::Write::flush(&mut std::io::stdout());
        #[cfg(all(target_arch = "wasm32", target_os = "wasi"))]
        {
            unsafe extern "C" {
                fn __wasilibc_deinitialize_environ();
                fn __wasilibc_reset_preopens();
            }
            // SAFETY: no environment pointer or path outlives this call; the
            // next `getenv` or path lookup reads them afresh from WASI.
            unsafe {
                __wasilibc_deinitialize_environ();
                __wasilibc_reset_preopens();
            }
        }
    }
}
