//! `counter`: `{"key": k, "by": n}` (defaults `"counter"`, 1) adds `n` to the
//! state counter `k` atomically -> `{"key": k, "value": new value}`.
use ow_wasm_action::{Value, json, state};

fn count(params: Value) -> Result<Value, String> {
    let key = params["key"].as_str().unwrap_or("counter");
    let by = match &params["by"] {
        Value::Null => 1,
        by => by.as_i64().ok_or("parameter `by` must be an integer")?,
    };
    let value = state::add(key, by).map_err(|e| e.to_string())?;
    Ok(json!({ "key": key, "value": value }))
}

ow_wasm_action::export!(count);
