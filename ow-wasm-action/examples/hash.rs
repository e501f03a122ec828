//! `hash`: a CPU-bound workload. `{"input": s, "iterations": n}` ->
//! `{"hash": hex}` where the hash is blake3 applied `n` times in a chain:
//! `h1 = blake3(s)`, `h(i+1) = blake3(h(i))`. `n` defaults to 1 and must be >= 1.
use ow_wasm_action::{Value, json};

fn hash(params: Value) -> Result<Value, String> {
    let input = params["input"].as_str().unwrap_or_default();
    let iterations = match &params["iterations"] {
        Value::Null => 1,
        v => v
            .as_u64()
            .filter(|&n| n >= 1)
            .ok_or("`iterations` must be a positive integer")?,
    };
    let mut digest = blake3::hash(input.as_bytes());
    for _ in 1..iterations {
        digest = blake3::hash(digest.as_bytes());
    }
    Ok(json!({ "hash": digest.to_hex().as_str() }))
}

ow_wasm_action::export!(hash);
