//! `echo`: returns its params unchanged and writes one line to each stream.
//! Exports the entry points `main` and `niam`.
use ow_wasm_action::Value;

fn echo(params: Value) -> Result<Value, String> {
    println!("hello stdout");
    eprintln!("hello stderr");
    Ok(params)
}

ow_wasm_action::export!(main => echo, niam => echo);
