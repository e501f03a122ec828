//! `payload_via_state`: the payload benchmarks (CWASI's workflows) the way
//! platforms pass large data today: the payload goes through a shared
//! store (the executor's state, Redis with `--state-redis`), the calls
//! carry only its key. One module plays every role, chosen by `"role"`:
//!
//! - `{"role": "put", "bytes": n, "callee": name, "fan_out": k}` (`k`
//!   defaults to 1): builds `n` x's by hand, stores them under a key of its
//!   own, calls the callee `k` times with `{"role": "get", "key": key,
//!   "bytes": n}`, awaits them all, deletes the key -> `{"bytes": n,
//!   "calls": k}`;
//! - `{"role": "get", "key": key, "bytes": n}`: reads the value (into a
//!   buffer of `n` bytes, `n` a size hint) -> `{"bytes": its length}`;
//! - `{"role": "gather", "bytes": n, "sources": k, "producer": name}`
//!   (fan-in): calls the producer `k` times with `{"role": "make", "bytes":
//!   n, "key": a key each}`, awaits them all, then reads and deletes every
//!   key -> `{"received": total length}`;
//! - `{"role": "make", "bytes": n, "key": key}`: stores `n` x's under
//!   `key` -> `{"key": key}`.
//!
//! Keys are unique per activation: `__OW_ACTIVATION_ID` when the activation
//! has one, else a counter in the state (one more round trip). A failed
//! call, state operation or callee fails the action.
use ow_wasm_action::call::{self, Call};
use ow_wasm_action::{Context, Value, json, state};

fn count(params: &Value, name: &str, default: Option<u64>) -> Result<usize, String> {
    match &params[name] {
        Value::Null => default,
        n => n.as_u64(),
    }
    .and_then(|n| usize::try_from(n).ok())
    .ok_or_else(|| format!("missing integer parameter `{name}`"))
}

fn text<'a>(params: &'a Value, name: &str) -> Result<&'a str, String> {
    params[name]
        .as_str()
        .ok_or_else(|| format!("missing string parameter `{name}`"))
}

fn state_err(e: state::StateError) -> String {
    format!("state: {e}")
}

/// A key no other activation uses.
fn unique_key() -> Result<String, String> {
    let id = Context::from_env().activation_id;
    if !id.is_empty() {
        return Ok(format!("payload_via_state:{id}"));
    }
    let n = state::add("payload_via_state:seq", 1).map_err(state_err)?;
    Ok(format!("payload_via_state:{n}"))
}

/// Read `key` (expected `hint` bytes long): its length.
fn read(key: &str, hint: usize) -> Result<usize, String> {
    let mut buf = vec![0; hint];
    match state::get_into(key, &mut buf).map_err(state_err)? {
        Some(len) if len <= hint => Ok(len),
        // Longer than said: read it whole.
        Some(_) => Ok(state::get(key).map_err(state_err)?.map_or(0, |v| v.len())),
        None => Err(format!("no value at {key}")),
    }
}

/// Start `calls`, await them all; a call or callee that failed is an error.
fn await_all(name: &str, calls: Vec<Result<Call, call::CallError>>) -> Result<(), String> {
    let calls = calls
        .into_iter()
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("calling {name}: {e}"))?;
    for call in calls {
        call.wait().map_err(|e| format!("awaiting {name}: {e}"))?;
    }
    Ok(())
}

fn put(params: &Value) -> Result<Value, String> {
    let bytes = count(params, "bytes", None)?;
    let fan_out = count(params, "fan_out", Some(1))?;
    let callee = text(params, "callee")?;
    let key = unique_key()?;
    state::set(&key, &vec![b'x'; bytes]).map_err(state_err)?;
    let args = json!({ "role": "get", "key": key, "bytes": bytes });
    let calls = (0..fan_out).map(|_| call::call(callee, &args)).collect();
    let done = await_all(callee, calls);
    state::delete(&key).map_err(state_err)?;
    done?;
    Ok(json!({ "bytes": bytes, "calls": fan_out }))
}

fn get(params: &Value) -> Result<Value, String> {
    let len = read(text(params, "key")?, count(params, "bytes", Some(0))?)?;
    Ok(json!({ "bytes": len }))
}

fn gather(params: &Value) -> Result<Value, String> {
    let bytes = count(params, "bytes", None)?;
    let sources = count(params, "sources", None)?;
    let producer = text(params, "producer")?;
    let base = unique_key()?;
    let keys: Vec<String> = (0..sources).map(|i| format!("{base}:{i}")).collect();
    let calls = keys
        .iter()
        .map(|key| {
            call::call(
                producer,
                &json!({ "role": "make", "bytes": bytes, "key": key }),
            )
        })
        .collect();
    await_all(producer, calls)?;
    let mut received = 0;
    for key in &keys {
        received += read(key, bytes)?;
        state::delete(key).map_err(state_err)?;
    }
    Ok(json!({ "received": received }))
}

fn make(params: &Value) -> Result<Value, String> {
    let bytes = count(params, "bytes", None)?;
    let key = text(params, "key")?;
    state::set(key, &vec![b'x'; bytes]).map_err(state_err)?;
    Ok(json!({ "key": key }))
}

fn via_state(params: Value) -> Result<Value, String> {
    match text(&params, "role")? {
        "put" => put(&params),
        "get" => get(&params),
        "gather" => gather(&params),
        "make" => make(&params),
        other => Err(format!("unknown role {other:?}")),
    }
}

ow_wasm_action::export!(via_state);
