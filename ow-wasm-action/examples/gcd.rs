//! `gcd` (WasmEngine's benchmark function): `{"a": 48, "b": 18}` ->
//! `{"gcd": 6}`. Numbers or numeric strings (WasmEngine passes its `args`
//! as strings).
use ow_wasm_action::{Value, json};

fn number(params: &Value, name: &str) -> Result<u64, String> {
    match params.get(name) {
        Some(Value::Number(n)) => n.as_u64(),
        Some(Value::String(s)) => s.trim().parse().ok(),
        _ => return Err(format!("missing parameter `{name}`")),
    }
    .ok_or_else(|| format!("parameter `{name}` must be a non-negative integer"))
}

fn gcd(params: Value) -> Result<Value, String> {
    let (mut a, mut b) = (number(&params, "a")?, number(&params, "b")?);
    while b != 0 {
        (a, b) = (b, a % b);
    }
    Ok(json!({ "gcd": a }))
}

ow_wasm_action::export!(gcd);
