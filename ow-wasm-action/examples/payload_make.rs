//! `payload_make`: the producer of `payload_fan_in`. `{"bytes": n}` ->
//! `{"data": "xx...x"}` with exactly `n` x's.
//!
//! The result is written by hand, not by serde (a raw handler with its own
//! `ow_alloc` and `main` exports, as `export!` would encode a `Value`): the
//! payload benchmarks time the transfer, not the encoding. The small params
//! are parsed with serde.
use ow_wasm_action::{Value, serde_json};
use std::mem::ManuallyDrop;

/// The result: `{"data":"` n x's `"}`, or an application error.
fn make(params: &[u8]) -> Vec<u8> {
    let bytes = serde_json::from_slice::<Value>(params)
        .ok()
        .and_then(|params| params["bytes"].as_u64())
        .and_then(|n| usize::try_from(n).ok());
    let Some(n) = bytes else {
        return br#"{"error":"missing integer parameter `bytes`"}"#.to_vec();
    };
    let (prefix, suffix) = (br#"{"data":""#, br#""}"#);
    let mut result = Vec::with_capacity(prefix.len() + n + suffix.len());
    result.extend_from_slice(prefix);
    result.resize(prefix.len() + n, b'x');
    result.extend_from_slice(suffix);
    result
}

/// ABI v1: a buffer of `size` bytes for the params, never freed (the
/// instance is discarded after the activation, and with it the memory).
#[unsafe(no_mangle)]
pub extern "C" fn ow_alloc(size: i32) -> i32 {
    let buf = ManuallyDrop::new(Vec::<u8>::with_capacity(usize::try_from(size).unwrap_or(0)));
    buf.as_ptr() as usize as i32
}

/// ABI v1 entry point: params at `(ptr, len)`, returns the result as
/// `(ptr << 32) | len`.
#[unsafe(no_mangle)]
pub extern "C" fn main(ptr: i32, len: i32) -> i64 {
    let len = usize::try_from(len).unwrap_or(0);
    let params: &[u8] = if len == 0 {
        b"{}"
    } else {
        // SAFETY: the host wrote exactly `len` bytes to the buffer it got
        // from `ow_alloc(len)`, which is never freed.
        unsafe { std::slice::from_raw_parts(ptr as usize as *const u8, len) }
    };
    // Leaked: the host copies it out after `main` returns.
    let result: &'static [u8] = make(params).leak();
    ((result.as_ptr() as usize as i64) << 32) | result.len() as i64
}
