//! `bigresult`: returns a 5 MiB result, over OpenWhisk's 1 MiB limit (hostile).
use ow_wasm_action::{Value, json};

fn bigresult(_params: Value) -> Result<Value, String> {
    Ok(json!({ "big": "x".repeat(5 << 20) }))
}

ow_wasm_action::export!(bigresult);
