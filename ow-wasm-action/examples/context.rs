//! `context`: returns the activation's facts from the `__OW_*` environment.
use ow_wasm_action::{Context, Value, json};

fn context(_params: Value) -> Result<Value, String> {
    let ctx = Context::from_env();
    Ok(json!({
        "api_host": ctx.api_host,
        "api_key": ctx.api_key,
        "namespace": ctx.namespace,
        "action_name": ctx.action_name,
        "action_version": ctx.action_version,
        "activation_id": ctx.activation_id,
        "deadline": ctx.deadline,
    }))
}

ow_wasm_action::export!(context);
