//! `logflood`: writes `mb` MiB (default 100) to stdout, then succeeds (hostile).
use ow_wasm_action::{Value, json};
use std::io::Write;

fn logflood(params: Value) -> Result<Value, String> {
    let mb = params["mb"].as_u64().unwrap_or(100);
    let line = [b'x'; 1023];
    let mut out = std::io::stdout().lock();
    for _ in 0..mb * 1024 {
        out.write_all(&line)
            .and_then(|()| out.write_all(b"\n"))
            .map_err(|e| e.to_string())?;
    }
    Ok(json!({ "wrote_mb": mb }))
}

ow_wasm_action::export!(logflood);
