//! `payload_source`: the caller of the payload benchmarks (CWASI's
//! workflows). `{"bytes": n, "callee": name, "fan_out": k, "ack": a}`
//! (defaults: `k` 1, `a` true) builds one params buffer
//! `{"data":"xx...x"}` with exactly `n` x's, by hand rather than by serde,
//! starts `k` calls of the callee with it (the same bytes each time, not
//! re-encoded: `call::call_bytes`), then awaits them all without parsing
//! the results -> `{"bytes": n, "calls": k, "results_bytes": total length
//! of the results}`.
//!
//! `"ack": false` asks a `payload_sink` callee to echo the payload (the
//! buffer is `{"echo":true,"data":"xx...x"}`, `n` x's still): the payload
//! then travels both ways. With `true` the callee answers a small
//! acknowledgement. A call that fails, or a result that is an application
//! error, fails the action.
use ow_wasm_action::call::{self, Call};
use ow_wasm_action::{Value, json};

/// The params buffer: `n` x's in the `data` string.
fn payload(n: usize, echo: bool) -> Vec<u8> {
    let prefix: &[u8] = if echo {
        br#"{"echo":true,"data":""#
    } else {
        br#"{"data":""#
    };
    let suffix = br#""}"#;
    let mut buf = Vec::with_capacity(prefix.len() + n + suffix.len());
    buf.extend_from_slice(prefix);
    buf.resize(prefix.len() + n, b'x');
    buf.extend_from_slice(suffix);
    buf
}

/// Whether a result is an application error, without parsing it.
fn is_error(result: &[u8]) -> bool {
    result.trim_ascii_start().starts_with(br#"{"error""#)
}

fn count(params: &Value, name: &str, default: Option<u64>) -> Result<usize, String> {
    match &params[name] {
        Value::Null => default,
        n => n.as_u64(),
    }
    .and_then(|n| usize::try_from(n).ok())
    .ok_or_else(|| format!("missing integer parameter `{name}`"))
}

fn source(params: Value) -> Result<Value, String> {
    let bytes = count(&params, "bytes", None)?;
    let fan_out = count(&params, "fan_out", Some(1))?;
    let callee = params["callee"]
        .as_str()
        .ok_or("missing string parameter `callee`")?;
    let ack = params["ack"].as_bool().unwrap_or(true);
    let buf = payload(bytes, !ack);
    let calls = (0..fan_out)
        .map(|_| call::call_bytes(callee, &buf))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("calling {callee}: {e}"))?;
    let mut results_bytes = 0;
    for result in calls.into_iter().map(Call::wait_bytes) {
        let result = result.map_err(|e| format!("awaiting {callee}: {e}"))?;
        if is_error(&result) {
            return Err(format!(
                "{callee} failed: {}",
                String::from_utf8_lossy(&result)
            ));
        }
        results_bytes += result.len();
    }
    Ok(json!({ "bytes": bytes, "calls": fan_out, "results_bytes": results_bytes }))
}

ow_wasm_action::export!(source);
