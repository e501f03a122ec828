//! `chain_ops`: runs a list of call operations through the raw `ow_host_v1`
//! imports `call` and `await_call`, so that tests see the exact codes the
//! host returns (as `state_ops` does for state).
//!
//! `{"ops": [op, ...]}` -> `{"results": [result, ...]}`, one result per op,
//! in order. An op is an object:
//!
//! | field | meaning | default |
//! |---|---|---|
//! | `op` | `call`, `await`, `await_all`; or `sleep`, `trap`, `spin` | required |
//! | `name` | of `call`: the action to start | required unless `name_ptr` is given |
//! | `params` | of `call`: any JSON value, sent compactly encoded (a non-object breaks the ABI) | `{}` |
//! | `params_raw` | of `call`, instead of `params`: a string sent verbatim as the params bytes (`""`: empty) | |
//! | `repeat` | of `call`: start this many calls; the result is the last one's code | 1 |
//! | `id` | of `await`: the call id to await (any integer) | |
//! | `index` | of `await`, instead of `id`: the `index`-th call started so far (from 0) | the last one started |
//! | `cap` | of `await`: the buffer's capacity | 65536 |
//! | `ms` | of `sleep`: sleep this long | 0 |
//! | `name_ptr`, `name_len`, `params_ptr`, `params_len`, `buf` | pass these raw `i32`s (taken modulo 2^32) instead of the real name, params or buffer: for ABI violations | |
//!
//! Results:
//!
//! - `call`: `{"code": c}`, the id (`> 0`) or a negative code. Every id
//!   returned (of each `repeat`) is recorded, in order, for `index` and
//!   `await_all`.
//! - `await`: `{"code": c, "data": s}`: the result's length or a negative
//!   code, and the first `min(code, cap)` bytes copied, as UTF-8 (lossy);
//!   no `data` with a raw `buf`. An await that read the whole result
//!   (`0 <= code <= cap`) marks a recorded id as awaited.
//! - `await_all`: awaits every recorded id not yet awaited, in order, each
//!   read whole (a second await with the exact length when 64 KiB do not
//!   hold it) -> `{"codes": [c, ...], "data": [s, ...]}`; all are then
//!   awaited.
//! - `sleep`: `{"code": 0}`. `trap` executes `unreachable`; `spin` loops
//!   forever (for calls left in flight by a failed caller).
//!
//! A malformed op answers `{"error": "op <n>: ..."}`.
use ow_wasm_action::call::raw;
use ow_wasm_action::{Value, json, serde_json};

const DEFAULT_CAP: i64 = 65_536;

/// The calls started so far: id, and whether it was awaited.
#[derive(Default)]
struct Started(Vec<(i64, bool)>);

impl Started {
    fn awaited(&mut self, id: i64) {
        for (_, awaited) in self.0.iter_mut().filter(|(started, _)| *started == id) {
            *awaited = true;
        }
    }
}

fn int(op: &Value, name: &str) -> Result<Option<i64>, String> {
    match &op[name] {
        Value::Null => Ok(None),
        v => v
            .as_i64()
            .or_else(|| v.as_u64().map(|n| n as i64))
            .map(Some)
            .ok_or_else(|| format!("`{name}` must be an integer")),
    }
}

/// A raw `i32` argument: a pointer or a length, modulo 2^32.
fn raw_arg(op: &Value, name: &str) -> Result<Option<i32>, String> {
    Ok(int(op, name)?.map(|n| n as i32))
}

/// Pointer and length of `bytes`, unless the op overrides them.
fn range(op: &Value, bytes: &[u8], ptr: &str, len: &str) -> Result<(i32, i32), String> {
    Ok((
        raw_arg(op, ptr)?.unwrap_or(bytes.as_ptr() as usize as i32),
        raw_arg(op, len)?.unwrap_or(bytes.len() as i32),
    ))
}

fn call(op: &Value, started: &mut Started) -> Result<Value, String> {
    let name = match &op["name"] {
        Value::String(name) => name.as_bytes(),
        Value::Null if !op["name_ptr"].is_null() => &[],
        _ => return Err("missing string field `name`".into()),
    };
    let params = match (&op["params_raw"], &op["params"]) {
        (Value::String(raw), _) => raw.as_bytes().to_vec(),
        (Value::Null, Value::Null) => b"{}".to_vec(),
        (Value::Null, params) => serde_json::to_vec(params).map_err(|e| e.to_string())?,
        _ => return Err("`params_raw` must be a string".into()),
    };
    let (n, nl) = range(op, name, "name_ptr", "name_len")?;
    let (p, pl) = range(op, &params, "params_ptr", "params_len")?;
    let repeat = int(op, "repeat")?.unwrap_or(1);
    if repeat < 1 {
        return Err("`repeat` must be at least 1".into());
    }
    let mut code = 0;
    for _ in 0..repeat {
        // SAFETY: the op's own name and params, or the raw ranges a test
        // gives to break the ABI on purpose (the host then ends the
        // activation before touching memory).
        code = unsafe { raw::call(n, nl, p, pl) };
        if code > 0 {
            started.0.push((code, false));
        }
    }
    Ok(json!({ "code": code }))
}

/// Await `id` into a buffer of `cap` bytes: the code and the bytes copied.
fn await_into(id: i64, cap: usize) -> (i64, Vec<u8>) {
    let mut buf = vec![0u8; cap];
    // SAFETY: the buffer is writable for `cap` bytes.
    let code = unsafe { raw::await_call(id, buf.as_mut_ptr() as usize as i32, cap as i32) };
    buf.truncate(usize::try_from(code).unwrap_or(0));
    (code, buf)
}

fn await_one(op: &Value, started: &mut Started) -> Result<Value, String> {
    let id = match (int(op, "id")?, int(op, "index")?) {
        (Some(id), None) => id,
        (None, Some(index)) => {
            let index = usize::try_from(index).map_err(|_| "`index` must not be negative")?;
            let (id, _) = started
                .0
                .get(index)
                .ok_or_else(|| format!("only {} calls started", started.0.len()))?;
            *id
        }
        (None, None) => started.0.last().ok_or("no call started yet")?.0,
        (Some(_), Some(_)) => return Err("give `id` or `index`, not both".into()),
    };
    let cap = int(op, "cap")?.unwrap_or(DEFAULT_CAP);
    let (code, data) = match raw_arg(op, "buf")? {
        Some(buf) => {
            // SAFETY: a raw buffer a test gives to break the ABI on purpose.
            (unsafe { raw::await_call(id, buf, cap as i32) }, None)
        }
        None => {
            let cap = usize::try_from(cap)
                .ok()
                .filter(|&n| i32::try_from(n).is_ok())
                .ok_or("`cap` must be a non-negative i32 without `buf`")?;
            let (code, data) = await_into(id, cap);
            (code, Some(data))
        }
    };
    if (0..=cap).contains(&code) {
        started.awaited(id);
    }
    Ok(match data {
        Some(data) => json!({ "code": code, "data": String::from_utf8_lossy(&data) }),
        None => json!({ "code": code }),
    })
}

fn await_all(started: &mut Started) -> Value {
    let (mut codes, mut data) = (Vec::new(), Vec::new());
    for (id, awaited) in started.0.iter_mut().filter(|(_, awaited)| !*awaited) {
        let (mut code, mut bytes) = await_into(*id, DEFAULT_CAP as usize);
        if code > DEFAULT_CAP {
            (code, bytes) = await_into(*id, code as usize);
        }
        *awaited = true;
        codes.push(code);
        data.push(String::from_utf8_lossy(&bytes).into_owned());
    }
    json!({ "codes": codes, "data": data })
}

fn trap() -> ! {
    #[cfg(target_arch = "wasm32")]
    core::arch::wasm32::unreachable();
    #[cfg(not(target_arch = "wasm32"))]
    std::process::abort();
}

fn spin() -> ! {
    let mut n: u64 = 0;
    loop {
        n = std::hint::black_box(n.wrapping_add(1));
    }
}

fn step(op: &Value, started: &mut Started) -> Result<Value, String> {
    match op["op"].as_str().ok_or("missing string field `op`")? {
        "call" => call(op, started),
        "await" => await_one(op, started),
        "await_all" => Ok(await_all(started)),
        "sleep" => {
            let ms = int(op, "ms")?.unwrap_or(0);
            let ms = u64::try_from(ms).map_err(|_| "`ms` must not be negative")?;
            std::thread::sleep(std::time::Duration::from_millis(ms));
            Ok(json!({ "code": 0 }))
        }
        "trap" => trap(),
        "spin" => spin(),
        other => Err(format!("unknown op `{other}`")),
    }
}

fn run(params: Value) -> Result<Value, String> {
    let ops = params["ops"]
        .as_array()
        .ok_or("missing array parameter `ops`")?;
    let mut started = Started::default();
    let results = ops
        .iter()
        .enumerate()
        .map(|(n, op)| step(op, &mut started).map_err(|e| format!("op {n}: {e}")))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(json!({ "results": results }))
}

ow_wasm_action::export!(run);
