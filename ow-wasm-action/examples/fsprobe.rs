//! `fsprobe`: looks for a way out of the sandbox (hostile) and reports what
//! it saw: `/etc/passwd`, a listing of `/`, and its environment.
use ow_wasm_action::{Value, json};

fn fsprobe(_params: Value) -> Result<Value, String> {
    let passwd = match std::fs::read_to_string("/etc/passwd") {
        Ok(text) => json!({ "read": text.len() }),
        Err(e) => json!({ "error": e.to_string() }),
    };
    let root = match std::fs::read_dir("/") {
        Ok(entries) => {
            json!({ "entries": entries.filter_map(|e| e.ok()).map(|e| e.file_name().to_string_lossy().into_owned()).collect::<Vec<_>>() })
        }
        Err(e) => json!({ "error": e.to_string() }),
    };
    let env: Vec<String> = std::env::vars().map(|(k, _)| k).collect();
    Ok(json!({ "passwd": passwd, "root": root, "env": env }))
}

ow_wasm_action::export!(fsprobe);
