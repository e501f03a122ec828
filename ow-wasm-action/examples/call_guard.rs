//! `call_guard`: calls an action that may fail and never fails itself.
//! `{"callee": name, "params": {...}}` (params default `{}`) ->
//!
//! - `{"ok": true, "result": r}` when the callee succeeds;
//! - `{"ok": false, "callee_error": e}` when it answers `{"error": e}`;
//! - `{"ok": false, "unknown": true}` when there is no such action;
//! - `{"ok": false, "reason": "...", "code": c}` otherwise (no host, too
//!   many calls, a result that is not JSON: `code` is the host's negative
//!   code, `null` if none), or for bad params of its own.
use ow_wasm_action::call::{self, Call, CallError};
use ow_wasm_action::{Value, json};
use std::convert::Infallible;

fn guard(params: Value) -> Result<Value, Infallible> {
    let Some(callee) = params["callee"].as_str() else {
        return Ok(
            json!({ "ok": false, "reason": "missing string parameter `callee`", "code": null }),
        );
    };
    let args = &params["params"];
    if !(args.is_object() || args.is_null()) {
        return Ok(json!({ "ok": false, "reason": "`params` must be an object", "code": null }));
    }
    Ok(match call::call(callee, args).and_then(Call::wait) {
        Ok(result) => json!({ "ok": true, "result": result }),
        Err(CallError::Failed(e)) => json!({ "ok": false, "callee_error": e }),
        Err(CallError::UnknownAction) => json!({ "ok": false, "unknown": true }),
        Err(e) => json!({ "ok": false, "reason": e.to_string(), "code": e.code() }),
    })
}

ow_wasm_action::export!(guard);
