//! `echo_string` (WasmEngine's benchmark function): `{"input": "text"}` ->
//! `{"output": "text"}`.
use ow_wasm_action::{Value, json};

fn echo_string(params: Value) -> Result<Value, String> {
    match params.get("input") {
        Some(Value::String(s)) => Ok(json!({ "output": s })),
        _ => Err("parameter `input` must be a string".into()),
    }
}

ow_wasm_action::export!(echo_string);
