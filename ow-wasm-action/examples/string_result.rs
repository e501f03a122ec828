//! `string_result`: returns a JSON string, which OpenWhisk refuses as a result.
use ow_wasm_action::Value;

fn string_result(_params: Value) -> Result<Value, String> {
    Ok(Value::String("not a dictionary".to_owned()))
}

ow_wasm_action::export!(string_result);
