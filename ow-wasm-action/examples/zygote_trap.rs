//! `zygote_trap`: a zygote that panics, so /init fails (502). Run without a
//! snapshot, the handler answers `{"zygote": false}`.
use ow_wasm_action::{Value, json};

fn warm() {
    panic!("the zygote failed on purpose");
}

fn handler(_params: Value) -> Result<Value, String> {
    Ok(json!({ "zygote": false }))
}

ow_wasm_action::export!(handler);
ow_wasm_action::zygote!(warm);
