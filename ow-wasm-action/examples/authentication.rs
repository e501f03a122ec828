//! `authentication` (WasmEngine's benchmark function): checks that
//! `token` is the hex HMAC-SHA256 of `header` under the secret in the
//! action's env `AUTH_SECRET` (a demo default otherwise), in constant time.
//! `{"status": "200", "body": ...}` when it is, `{"status": "403", ...}`
//! otherwise, as WasmEngine's function answers.
use hmac::{Hmac, Mac};
use ow_wasm_action::{Value, json};
use sha2::Sha256;

const DEMO_SECRET: &str = "ow-wasm-demo-secret";

fn text<'a>(params: &'a Value, name: &str) -> Result<&'a str, String> {
    params
        .get(name)
        .and_then(Value::as_str)
        .ok_or_else(|| format!("parameter `{name}` must be a string"))
}

fn authentication(params: Value) -> Result<Value, String> {
    let header = text(&params, "header")?;
    let token = hex::decode(text(&params, "token")?).unwrap_or_default();
    let secret = std::env::var("AUTH_SECRET").unwrap_or_else(|_| DEMO_SECRET.to_owned());
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).map_err(|e| e.to_string())?;
    mac.update(header.as_bytes());
    Ok(match mac.verify_slice(&token) {
        Ok(()) => json!({ "status": "200", "body": "authenticated" }),
        Err(_) => json!({ "status": "403", "body": "<html><body>403 Forbidden</body></html>" }),
    })
}

ow_wasm_action::export!(authentication);
