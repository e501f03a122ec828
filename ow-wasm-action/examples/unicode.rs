//! `unicode`: `{"delimiter": d}` -> `{"winter": "d ☃ d"}`, printed to stdout too.
use ow_wasm_action::{Value, json};

fn unicode(params: Value) -> Result<Value, String> {
    let delimiter = params["delimiter"]
        .as_str()
        .ok_or("missing string parameter `delimiter`")?;
    let winter = format!("{delimiter} ☃ {delimiter}");
    println!("{winter}");
    Ok(json!({ "winter": winter }))
}

ow_wasm_action::export!(unicode);
