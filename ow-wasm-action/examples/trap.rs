//! `trap`: executes `unreachable` (hostile).
use ow_wasm_action::Value;

fn trap(_params: Value) -> Result<Value, String> {
    #[cfg(target_arch = "wasm32")]
    core::arch::wasm32::unreachable();
    #[cfg(not(target_arch = "wasm32"))]
    std::process::abort();
}

ow_wasm_action::export!(trap);
