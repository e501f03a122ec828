//! `stackbomb`: unbounded recursion (hostile); the engine must trap.
use ow_wasm_action::{Value, json};

// Unbounded on purpose: this action exists to overflow the stack.
#[allow(unconditional_recursion)]
#[inline(never)]
fn dive(depth: u64) -> u64 {
    // black_box keeps the call from becoming a loop.
    std::hint::black_box(dive(std::hint::black_box(depth + 1))) + 1
}

fn stackbomb(_params: Value) -> Result<Value, String> {
    Ok(json!({ "depth": dive(0) }))
}

ow_wasm_action::export!(stackbomb);
