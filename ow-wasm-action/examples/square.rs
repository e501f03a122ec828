//! `square`: the mapper of `map_reduce`. `{"value": n}` -> `{"value": n * n}`,
//! an integer for an integer (a float if the square overflows `i64`).
use ow_wasm_action::{Value, json};

fn square(params: Value) -> Result<Value, String> {
    let n = &params["value"];
    let squared = match n.as_i64().and_then(|n| n.checked_mul(n)) {
        Some(squared) => json!(squared),
        None => {
            let n = n.as_f64().ok_or("missing number parameter `value`")?;
            json!(n * n)
        }
    };
    Ok(json!({ "value": squared }))
}

ow_wasm_action::export!(square);
