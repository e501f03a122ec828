//! `locked_update`: `{"key": k, "item": x}` appends `x` to the JSON array
//! stored at `k` (absent = `[]`) under the key's lock -> `{"length": n}`.
//!
//! A read-modify-write: without the lock, concurrent activations would read
//! the same array and all but one update would be lost.
use ow_wasm_action::{Value, json, serde_json, state};

fn update(params: Value) -> Result<Value, String> {
    let key = params["key"]
        .as_str()
        .ok_or("missing string parameter `key`")?;
    let item = params
        .get("item")
        .cloned()
        .ok_or("missing parameter `item`")?;
    let err = |e: state::StateError| e.to_string();
    let _guard = state::lock(key).map_err(err)?;
    let mut items: Vec<Value> = match state::get(key).map_err(err)? {
        None => Vec::new(),
        Some(bytes) => serde_json::from_slice(&bytes)
            .map_err(|e| format!("the value at `{key}` is not a JSON array: {e}"))?,
    };
    items.push(item);
    let bytes = serde_json::to_vec(&items).map_err(|e| e.to_string())?;
    state::set(key, &bytes).map_err(err)?;
    Ok(json!({ "length": items.len() }))
    // `_guard` drops here: the lock is released after the update.
}

ow_wasm_action::export!(update);
