//! `sleep`: sleeps `ms` milliseconds (a WASI clock sleep), then answers.
use ow_wasm_action::{Value, json};

fn sleep(params: Value) -> Result<Value, String> {
    let ms = params["ms"]
        .as_u64()
        .ok_or("missing integer parameter `ms`")?;
    std::thread::sleep(std::time::Duration::from_millis(ms));
    Ok(json!({ "slept_ms": ms }))
}

ow_wasm_action::export!(sleep);
