//! `scratch`: uses the per-activation scratch directory `/tmp` (an action
//! gets one when its /init env holds `OW_SCRATCH=1`), and tries to get out
//! of it.
//!
//! Params: `name` (file name, default `note.txt`), `data` (what to write,
//! default `scratch`). Result: what `/tmp` held before writing, what was read
//! back, which escape attempts succeeded (none should), and what `/tmp/..`
//! lists (`null` when refused).
use ow_wasm_action::{Value, json};
use std::fs;

fn listing(dir: &str) -> Result<Vec<String>, String> {
    let entries = fs::read_dir(dir).map_err(|e| format!("no scratch directory: {e}"))?;
    let mut names: Vec<String> = entries
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    Ok(names)
}

fn scratch(params: Value) -> Result<Value, String> {
    let name = params["name"].as_str().unwrap_or("note.txt");
    let data = params["data"].as_str().unwrap_or("scratch");
    let before = listing("/tmp")?;
    let path = format!("/tmp/{name}");
    fs::write(&path, data).map_err(|e| format!("cannot write {path}: {e}"))?;
    let read = fs::read_to_string(&path).map_err(|e| format!("cannot read {path}: {e}"))?;
    let reads = [
        "/tmp/../etc/passwd",
        "/tmp/../../etc/passwd",
        "/tmp/./../tmp/../etc/hostname",
        "/etc/passwd",
    ];
    let escaped_reads: Vec<&str> = reads.into_iter().filter(|p| fs::read(p).is_ok()).collect();
    let writes = ["/tmp/../ow-escape.txt", "/ow-escape.txt"];
    let escaped_writes: Vec<&str> = writes
        .into_iter()
        .filter(|p| fs::write(p, b"x").is_ok())
        .collect();
    // Where `..` is clamped at the directory's root this lists the scratch
    // directory itself; anything else is a way out.
    let parent = listing("/tmp/..").ok();
    Ok(json!({
        "before": before,
        "read": read,
        "escaped_reads": escaped_reads,
        "escaped_writes": escaped_writes,
        "parent": parent,
    }))
}

ow_wasm_action::export!(scratch);
