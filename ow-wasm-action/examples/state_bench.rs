//! `state_bench`: `{"n": n, "size": s, "key": k}` (defaults 1000, 1024,
//! `"bench"`) sets `k` to `s` bytes once, then reads it `n` times and writes
//! it `n` times -> `{"n": n}`; `"gets"` and `"sets"` give the two counts
//! apart. The host measures; the guest keeps no time.
use ow_wasm_action::{Value, json, state};

fn bench(params: Value) -> Result<Value, String> {
    let n = params["n"].as_u64().unwrap_or(1000);
    let gets = params["gets"].as_u64().unwrap_or(n);
    let sets = params["sets"].as_u64().unwrap_or(n);
    let size = params["size"].as_u64().unwrap_or(1024);
    let size = usize::try_from(size).map_err(|e| e.to_string())?;
    let key = params["key"].as_str().unwrap_or("bench");
    let err = |e: state::StateError| e.to_string();
    let value = vec![0x5a; size];
    state::set(key, &value).map_err(err)?;
    let mut buf = vec![0; size];
    for _ in 0..gets {
        let len = state::get_into(key, &mut buf).map_err(err)?;
        if len != Some(size) {
            return Err(format!("read {len:?} bytes, expected {size}"));
        }
    }
    for _ in 0..sets {
        state::set(key, &value).map_err(err)?;
    }
    Ok(json!({ "n": n }))
}

ow_wasm_action::export!(bench);
