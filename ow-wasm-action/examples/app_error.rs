//! `app_error`: fails with an application error, `{"error": "sorry"}`.
use ow_wasm_action::Value;

fn app_error(_params: Value) -> Result<Value, String> {
    Err("sorry".to_owned())
}

ow_wasm_action::export!(app_error);
