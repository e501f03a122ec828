//! `payload_make`: the producer of `payload_fan_in`. `{"bytes": n}` ->
//! `{"data": "xx...x"}` with exactly `n` x's.
//!
//! The result is written by hand, not by serde (a raw handler,
//! `export_raw!`, as `export!` would encode a `Value`): the payload
//! benchmarks time the transfer, not the encoding. The small params are
//! parsed with serde.
use ow_wasm_action::{Value, serde_json};
use std::borrow::Cow;

/// The result: `{"data":"` n x's `"}`, or an application error.
fn make(params: &'static [u8]) -> Cow<'static, [u8]> {
    let bytes = serde_json::from_slice::<Value>(params)
        .ok()
        .and_then(|params| params["bytes"].as_u64())
        .and_then(|n| usize::try_from(n).ok());
    let Some(n) = bytes else {
        return Cow::Borrowed(br#"{"error":"missing integer parameter `bytes`"}"#);
    };
    let (prefix, suffix) = (br#"{"data":""#, br#""}"#);
    let mut result = Vec::with_capacity(prefix.len() + n + suffix.len());
    result.extend_from_slice(prefix);
    result.resize(prefix.len() + n, b'x');
    result.extend_from_slice(suffix);
    Cow::Owned(result)
}

ow_wasm_action::export_raw!(make);
