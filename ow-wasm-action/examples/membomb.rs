//! `membomb`: grows linear memory 1 MiB at a time until the engine refuses
//! (hostile), then reports how far it got: `{"refused": true, "bytes": n}`.
use ow_wasm_action::{Value, json};

#[cfg(target_arch = "wasm32")]
fn grow() -> bool {
    core::arch::wasm32::memory_grow(0, 16) != usize::MAX
}

#[cfg(not(target_arch = "wasm32"))]
fn grow() -> bool {
    false
}

fn membomb(_params: Value) -> Result<Value, String> {
    // Stop at 4 GiB, the most a 32-bit memory can hold.
    let refused = (0..4096).any(|_| !grow());
    #[cfg(target_arch = "wasm32")]
    let bytes = core::arch::wasm32::memory_size(0) * 65_536;
    #[cfg(not(target_arch = "wasm32"))]
    let bytes = 0;
    Ok(json!({ "refused": refused, "bytes": bytes }))
}

ow_wasm_action::export!(membomb);
