//! `big_array`: a large state value used as a byte array.
//!
//! - `{"op": "write", "key": k, "offset": o, "len": n, "byte": b}` writes `n`
//!   bytes of value `b` (default 1) at offset `o` (default 0) with one
//!   `set_range` -> `{"written": n}`;
//! - `{"op": "read", "key": k, "offset": o, "len": n}` reads up to `n` bytes
//!   at `o` with one `get_range` -> `{"read": bytes read, "sum": their sum}`
//!   (an absent key is an error);
//! - `{"op": "size", "key": k}` -> `{"size": the value's length}` (`null`
//!   when absent), through `get_into` with an empty buffer.
use ow_wasm_action::{Value, json, state};

fn uint(params: &Value, name: &str, default: Option<u64>) -> Result<u64, String> {
    match (&params[name], default) {
        (Value::Null, Some(default)) => Ok(default),
        (v, _) => v
            .as_u64()
            .ok_or_else(|| format!("missing non-negative integer parameter `{name}`")),
    }
}

fn big_array(params: Value) -> Result<Value, String> {
    let key = params["key"]
        .as_str()
        .ok_or("missing string parameter `key`")?;
    let op = params["op"]
        .as_str()
        .ok_or("missing string parameter `op`")?;
    let err = |e: state::StateError| e.to_string();
    match op {
        "write" => {
            let offset = uint(&params, "offset", Some(0))?;
            let len = usize::try_from(uint(&params, "len", None)?).map_err(|e| e.to_string())?;
            let byte = u8::try_from(uint(&params, "byte", Some(1))?)
                .map_err(|_| "parameter `byte` must be at most 255")?;
            state::set_range(key, offset, &vec![byte; len]).map_err(err)?;
            Ok(json!({ "written": len }))
        }
        "read" => {
            let offset = uint(&params, "offset", Some(0))?;
            let len = usize::try_from(uint(&params, "len", None)?).map_err(|e| e.to_string())?;
            let mut buf = vec![0u8; len];
            let read = state::get_range(key, offset, &mut buf)
                .map_err(err)?
                .ok_or_else(|| format!("no value at `{key}`"))?;
            let sum: u64 = buf[..read].iter().map(|&b| u64::from(b)).sum();
            Ok(json!({ "read": read, "sum": sum }))
        }
        "size" => {
            let size = state::get_into(key, &mut []).map_err(err)?;
            Ok(json!({ "size": size }))
        }
        other => Err(format!("unknown op `{other}`: write, read or size")),
    }
}

ow_wasm_action::export!(big_array);
