//! `payload_sink`: the callee of the payload benchmarks, which never parses
//! its params: a raw handler (`export_raw!`; `export!` would parse the
//! params as JSON, which is the cost these benchmarks leave out).
//!
//! Params of `len` bytes -> `{"bytes": len}`. In echo mode, params that
//! begin with `{"echo":true,` (or end with `,"echo":true}`, as a host that
//! re-encodes them with sorted keys would write them) are the result
//! themselves: a payload returned to the caller.
use std::borrow::Cow;

const ECHO_PREFIX: &[u8] = br#"{"echo":true,"#;
const ECHO_SUFFIX: &[u8] = br#","echo":true}"#;

/// `{"bytes": len}`, or the params themselves in echo mode.
fn sink(params: &'static [u8]) -> Cow<'static, [u8]> {
    if params.starts_with(ECHO_PREFIX) || params.ends_with(ECHO_SUFFIX) {
        return Cow::Borrowed(params);
    }
    Cow::Owned(format!(r#"{{"bytes":{}}}"#, params.len()).into_bytes())
}

ow_wasm_action::export_raw!(sink);
