//! Uploaded files (zips above all) as base64 code: bounded, never a panic.
#![no_main]

use base64::Engine as _;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let code = base64::engine::general_purpose::STANDARD.encode(data);
    match ow_artifact::decode(&code, true) {
        Ok(wasm) => {
            assert!(wasm.starts_with(b"\0asm"));
            assert!(wasm.len() as u64 <= ow_artifact::MAX_MODULE_BYTES);
        }
        Err(ow_artifact::ArtifactError::BadBase64(e)) => panic!("our own base64 refused: {e}"),
        Err(ow_artifact::ArtifactError::Load(_)) => {}
    }
    // The same bytes as (possibly) text code.
    let _ = ow_artifact::decode(&String::from_utf8_lossy(data), false);
});
