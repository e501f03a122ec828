//! /init bodies: JSON parsing, then the code decoding the executor does.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ow_common::payload::InitRequest;

fuzz_target!(|data: &[u8]| {
    let Ok(req) = serde_json::from_slice::<InitRequest>(data) else {
        return;
    };
    let Some(value) = req.value else { return };
    let _ = value.entry();
    let _ = value.env_strings();
    if let Some(code) = &value.code {
        if let Ok(wasm) = ow_artifact::decode(code, value.binary.unwrap_or(false)) {
            assert!(wasm.starts_with(b"\0asm"));
        }
    }
});
