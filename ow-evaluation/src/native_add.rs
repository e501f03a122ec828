//! `native-add '{"param1": 1, "param2": 2}'`: the `add` action as a native
//! process, for the process-per-activation baseline (what OpenWhisk's
//! dockerskeleton does for native binaries, minus Docker).

fn main() {
    let arg = std::env::args().nth(1).unwrap_or_default();
    let params: serde_json::Value = serde_json::from_str(&arg).unwrap_or_default();
    let sum = params["param1"].as_i64().unwrap_or(0) + params["param2"].as_i64().unwrap_or(0);
    println!("{}", serde_json::json!({ "result": sum }));
}
