//! `payload_fan_in`: fan-in of payloads. `{"bytes": n, "sources": k,
//! "producer": name}` starts `k` calls of the producer with
//! `{"bytes": n}` (`payload_make` answers `n` bytes of payload), then awaits
//! them all without parsing the results -> `{"received": total length of
//! the results}`. A call that fails, or a result that is an application
//! error, fails the action.
use ow_wasm_action::call::{self, Call};
use ow_wasm_action::{Value, json};

/// Whether a result is an application error, without parsing it.
fn is_error(result: &[u8]) -> bool {
    result.trim_ascii_start().starts_with(br#"{"error""#)
}

fn fan_in(params: Value) -> Result<Value, String> {
    let bytes = params["bytes"]
        .as_u64()
        .ok_or("missing integer parameter `bytes`")?;
    let sources = params["sources"]
        .as_u64()
        .ok_or("missing integer parameter `sources`")?;
    let producer = params["producer"]
        .as_str()
        .ok_or("missing string parameter `producer`")?;
    let args = json!({ "bytes": bytes });
    let calls = (0..sources)
        .map(|_| call::call(producer, &args))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("calling {producer}: {e}"))?;
    let mut received = 0;
    for result in calls.into_iter().map(Call::wait_bytes) {
        let result = result.map_err(|e| format!("awaiting {producer}: {e}"))?;
        if is_error(&result) {
            return Err(format!(
                "{producer} failed: {}",
                String::from_utf8_lossy(&result)
            ));
        }
        received += result.len();
    }
    Ok(json!({ "received": received }))
}

ow_wasm_action::export!(fan_in);
