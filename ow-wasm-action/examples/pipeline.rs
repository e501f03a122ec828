//! `pipeline`: sequential chaining. `{"steps": ["a", "b", ...], "value": v}`
//! calls each step in turn with `{"value": current}` and passes the `value`
//! field of its result on (`null` if it has none) -> `{"value": final,
//! "steps": n}`. A step that fails fails the pipeline:
//! `{"error": "step <i> (<name>): ..."}`, the later steps not called.
use ow_wasm_action::call::{self, Call};
use ow_wasm_action::{Value, json};

fn pipeline(mut params: Value) -> Result<Value, String> {
    let mut value = params["value"].take();
    let steps = params["steps"]
        .as_array()
        .ok_or("missing array parameter `steps`")?;
    for (i, step) in steps.iter().enumerate() {
        let name = step
            .as_str()
            .ok_or_else(|| format!("step {i} is not an action name"))?;
        let mut result = call::call(name, &json!({ "value": value }))
            .and_then(Call::wait)
            .map_err(|e| format!("step {i} ({name}): {e}"))?;
        value = result["value"].take();
    }
    Ok(json!({ "value": value, "steps": steps.len() }))
}

ow_wasm_action::export!(pipeline);
