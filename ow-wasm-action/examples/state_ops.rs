//! `state_ops`: runs a list of state operations through the raw `ow_host_v1`
//! imports, so that tests see the exact codes the host returns.
//!
//! `{"ops": [op, ...]}` -> `{"results": [{"code": c, ...}, ...]}`, one result
//! per op, in order. An op is an object:
//!
//! | field | meaning | default |
//! |---|---|---|
//! | `op` | `get` (alias `raw_get`), `set`, `append`, `delete`, `get_range`, `set_range`, `add`, `lock`, `unlock`; or `sleep`, `trap`, `spin` | required |
//! | `key` / `key_hex` | the key: a string, or hex for bytes that need not be UTF-8 | required unless `key_ptr` is given |
//! | `value` / `value_hex` | the value of `set`, `append`, `set_range` | empty |
//! | `value_repeat` | the value is repeated this many times | 1 |
//! | `offset` | of `get_range`, `set_range` (an `i64`: negative ones are passed on) | 0 |
//! | `cap` | buffer capacity of `get` | 65536 |
//! | `len` | buffer length of `get_range` | 65536 |
//! | `delta` | of `add` | 1 |
//! | `repeat` | run the op this many times; the result is the last one's. With `lock` and `unlock` the keys are then `key` + `0`, `1`, ... (decimal) | 1 |
//! | `ms` | of `sleep`: sleep this long, code 0 | 0 |
//! | `key_ptr`, `key_len`, `val_ptr`, `val_len`, `buf` | pass these raw `i32`s (taken modulo 2^32) instead of the real key, value or buffer: for ABI violations | |
//!
//! `get` and `get_range` with the op's own buffer (no `buf`) add `"data"`,
//! the copied bytes as UTF-8 (lossy), and `"hex"`, the same in hex: the
//! first `min(code, cap)` (`get`) or `code` (`get_range`) bytes, empty for a
//! negative code. `trap` executes `unreachable`; `spin` loops forever.
//! A malformed op answers `{"error": "op <n>: ..."}`.
use ow_wasm_action::state::raw;
use ow_wasm_action::{Value, json};

const DEFAULT_BUFFER: i64 = 65_536;

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

fn hex_decode(name: &str, hex: &str) -> Result<Vec<u8>, String> {
    let digits = hex.as_bytes();
    if !digits.len().is_multiple_of(2) {
        return Err(format!("`{name}` has an odd number of hex digits"));
    }
    digits
        .chunks(2)
        .map(|pair| {
            std::str::from_utf8(pair)
                .ok()
                .and_then(|pair| u8::from_str_radix(pair, 16).ok())
                .ok_or_else(|| format!("`{name}` is not hex"))
        })
        .collect()
}

fn hex_encode(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The bytes of a field given as `name` (a string) or `name_hex`.
fn bytes(op: &Value, name: &str) -> Result<Option<Vec<u8>>, String> {
    let hex_name = format!("{name}_hex");
    match (&op[name], &op[&hex_name]) {
        (Value::Null, Value::Null) => Ok(None),
        (Value::String(s), Value::Null) => Ok(Some(s.clone().into_bytes())),
        (Value::Null, Value::String(h)) => hex_decode(&hex_name, h).map(Some),
        _ => Err(format!("give one string, `{name}` or `{hex_name}`")),
    }
}

/// Pointer and length of `bytes`, unless the op overrides them.
fn range(op: &Value, bytes: &[u8], ptr: &str, len: &str) -> Result<(i32, i32), String> {
    Ok((
        raw_arg(op, ptr)?.unwrap_or(bytes.as_ptr() as usize as i32),
        raw_arg(op, len)?.unwrap_or(bytes.len() as i32),
    ))
}

/// A buffer for the host to write into: the op's own (`cap` bytes), or the
/// raw `buf` pointer it gives.
fn buffer(op: &Value, cap: &str) -> Result<(Option<Vec<u8>>, i32, i32), String> {
    let size = int(op, cap)?.unwrap_or(DEFAULT_BUFFER);
    match raw_arg(op, "buf")? {
        Some(ptr) => Ok((None, ptr, size as i32)),
        None => {
            let size = usize::try_from(size)
                .ok()
                .filter(|&n| i32::try_from(n).is_ok())
                .ok_or_else(|| format!("`{cap}` must be a non-negative i32 without `buf`"))?;
            let mut buf = vec![0u8; size];
            let ptr = buf.as_mut_ptr() as usize as i32;
            Ok((Some(buf), ptr, size as i32))
        }
    }
}

/// The result of one call: its code and, for reads into the op's own
/// buffer, the bytes copied (not formatted for all but the last of a
/// `repeat`, so that benchmarks time the calls, not the formatting).
fn result(code: i64, buf: Option<Vec<u8>>, copied: i64, last: bool) -> Value {
    match buf {
        None => json!({ "code": code }),
        Some(_) if !last => json!({ "code": code }),
        Some(buf) => {
            let n = usize::try_from(copied).unwrap_or(0).min(buf.len());
            let data = &buf[..n];
            json!({
                "code": code,
                "data": String::from_utf8_lossy(data),
                "hex": hex_encode(data),
            })
        }
    }
}

/// Call the import `name` once with `key`.
fn call(name: &str, op: &Value, key: &[u8], last: bool) -> Result<Value, String> {
    let (k, kl) = range(op, key, "key_ptr", "key_len")?;
    let mut value = bytes(op, "value")?.unwrap_or_default();
    if let Some(n) = int(op, "value_repeat")? {
        let n = usize::try_from(n).map_err(|_| "`value_repeat` must not be negative")?;
        value = value.repeat(n);
    }
    let (v, vl) = range(op, &value, "val_ptr", "val_len")?;
    let offset = int(op, "offset")?.unwrap_or(0);
    // SAFETY (all calls below): the ranges are the op's own key, value and
    // buffer, or the raw ones a test gives to break the ABI on purpose (the
    // host then ends the activation before touching memory).
    Ok(match name {
        "get" | "raw_get" => {
            let (buf, b, cap) = buffer(op, "cap")?;
            let code = unsafe { raw::state_get(k, kl, b, cap) };
            result(code, buf, code.min(cap.into()), last)
        }
        "set" => result(
            unsafe { raw::state_set(k, kl, v, vl) }.into(),
            None,
            0,
            last,
        ),
        "append" => result(unsafe { raw::state_append(k, kl, v, vl) }, None, 0, last),
        "delete" => result(unsafe { raw::state_delete(k, kl) }.into(), None, 0, last),
        "get_range" => {
            let (buf, b, len) = buffer(op, "len")?;
            let code = unsafe { raw::state_get_range(k, kl, offset, b, len) };
            result(code, buf, code, last)
        }
        "set_range" => {
            let code = unsafe { raw::state_set_range(k, kl, offset, v, vl) };
            result(code.into(), None, 0, last)
        }
        "add" => {
            let delta = int(op, "delta")?.unwrap_or(1);
            result(unsafe { raw::state_add(k, kl, delta) }, None, 0, last)
        }
        "lock" => result(unsafe { raw::state_lock(k, kl) }.into(), None, 0, last),
        "unlock" => result(unsafe { raw::state_unlock(k, kl) }.into(), None, 0, last),
        other => return Err(format!("unknown op `{other}`")),
    })
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

fn step(op: &Value) -> Result<Value, String> {
    let name = op["op"].as_str().ok_or("missing string field `op`")?;
    match name {
        "trap" => trap(),
        "spin" => spin(),
        "sleep" => {
            let ms = int(op, "ms")?.unwrap_or(0);
            let ms = u64::try_from(ms).map_err(|_| "`ms` must not be negative")?;
            std::thread::sleep(std::time::Duration::from_millis(ms));
            return Ok(json!({ "code": 0 }));
        }
        _ => {}
    }
    let key = match bytes(op, "key")? {
        Some(key) => key,
        None if !op["key_ptr"].is_null() => Vec::new(),
        None => return Err("missing `key` or `key_hex`".into()),
    };
    let repeat = int(op, "repeat")?;
    let count = repeat.unwrap_or(1);
    if count < 1 {
        return Err("`repeat` must be at least 1".into());
    }
    let numbered = repeat.is_some() && matches!(name, "lock" | "unlock");
    let mut last = Value::Null;
    for i in 0..count {
        last = if numbered {
            let mut key = key.clone();
            key.extend_from_slice(i.to_string().as_bytes());
            call(name, op, &key, i + 1 == count)?
        } else {
            call(name, op, &key, i + 1 == count)?
        };
    }
    Ok(last)
}

fn run(params: Value) -> Result<Value, String> {
    let ops = params["ops"]
        .as_array()
        .ok_or("missing array parameter `ops`")?;
    let results = ops
        .iter()
        .enumerate()
        .map(|(n, op)| step(op).map_err(|e| format!("op {n}: {e}")))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(json!({ "results": results }))
}

ow_wasm_action::export!(run);
