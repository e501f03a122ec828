//! `exit_code`: exits with code 3 in the middle of the activation (hostile).
use ow_wasm_action::Value;

fn exit_code(_params: Value) -> Result<Value, String> {
    eprintln!("exiting with 3");
    std::process::exit(3)
}

ow_wasm_action::export!(exit_code);
