//! `env`: returns `SOME_VAR` and `ANOTHER_VAR` from the environment ("" when unset).
use ow_wasm_action::{Value, json};

fn env(_params: Value) -> Result<Value, String> {
    let var = |k: &str| std::env::var(k).unwrap_or_default();
    Ok(json!({ "SOME_VAR": var("SOME_VAR"), "ANOTHER_VAR": var("ANOTHER_VAR") }))
}

ow_wasm_action::export!(env);
