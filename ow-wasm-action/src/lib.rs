#![doc = include_str!("../README.md")]

pub use serde_json::{self, Value, json};

pub mod context;

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
}
