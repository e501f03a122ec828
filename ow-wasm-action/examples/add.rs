//! `add`: `{"param1": a, "param2": b}` -> `{"result": a + b}`.
//!
//! Integers add exactly (an overflow is an error); any float makes the sum a float.
use ow_wasm_action::{Value, json};

fn param<'a>(params: &'a Value, name: &str) -> Result<&'a Value, String> {
    match params.get(name) {
        None | Some(Value::Null) => Err(format!("missing parameter `{name}`")),
        Some(v) if v.is_number() => Ok(v),
        Some(_) => Err(format!("parameter `{name}` must be a number")),
    }
}

fn add(params: Value) -> Result<Value, String> {
    let (a, b) = (param(&params, "param1")?, param(&params, "param2")?);
    let sum = match (a.as_i64(), b.as_i64()) {
        (Some(a), Some(b)) => json!(a.checked_add(b).ok_or("integer overflow")?),
        _ => json!(a.as_f64().unwrap_or_default() + b.as_f64().unwrap_or_default()),
    };
    Ok(json!({ "result": sum }))
}

ow_wasm_action::export!(add);
