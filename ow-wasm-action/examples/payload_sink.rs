//! `payload_sink`: the callee of the payload benchmarks, which never parses
//! its params: a raw handler with its own `ow_alloc` and `main` exports
//! (`export!` would parse the params as JSON, which is the cost these
//! benchmarks leave out).
//!
//! Params of `len` bytes -> `{"bytes": len}`. In echo mode, params that
//! begin with `{"echo":true,` (or end with `,"echo":true}`, as a host that
//! re-encodes them with sorted keys would write them) are the result
//! themselves: a payload returned to the caller.
use std::mem::ManuallyDrop;

const ECHO_PREFIX: &[u8] = br#"{"echo":true,"#;
const ECHO_SUFFIX: &[u8] = br#","echo":true}"#;

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
    let params: &'static [u8] = if len == 0 {
        &[]
    } else {
        // SAFETY: the host wrote exactly `len` bytes to the buffer it got
        // from `ow_alloc(len)`, which is never freed or written again.
        unsafe { std::slice::from_raw_parts(ptr as usize as *const u8, len) }
    };
    let result: &'static [u8] = if params.starts_with(ECHO_PREFIX) || params.ends_with(ECHO_SUFFIX)
    {
        params
    } else {
        format!(r#"{{"bytes":{len}}}"#).into_bytes().leak()
    };
    ((result.as_ptr() as usize as i64) << 32) | result.len() as i64
}
