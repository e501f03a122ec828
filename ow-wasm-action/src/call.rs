//! Action chaining: start activations of other actions and wait for their
//! results, through the `ow_host_v1` functions `call` and `await_call` of
//! the action ABI version 2 (`docs/abi.md`).
//!
//! [`call`] starts an activation and returns at once with a [`Call`];
//! [`Call::wait`] waits for its result. Calls started before any is awaited
//! run concurrently (fan-out, then fan-in: [`call_all`]). A callee's
//! application error (`{"error": ...}`) is [`CallError::Failed`].
//!
//! ```
//! use ow_wasm_action::call::{self, CallError};
//! use ow_wasm_action::{Value, json};
//!
//! /// `double`, then `square`, each answering `{"value": ...}`.
//! fn double_then_square(n: i64) -> Result<Value, CallError> {
//!     let doubled = call::call("double", &json!({ "value": n }))?.wait()?;
//!     call::call("square", &json!({ "value": doubled["value"] }))?.wait()
//! }
//! # // Outside wasm32 there is no host: every call is `Unavailable`.
//! # assert_eq!(double_then_square(3), Err(CallError::Unavailable));
//! ```
//!
//! A module that calls none of these imports nothing from `ow_host_v1` for
//! them. Outside wasm32 (host-side builds and tests of a workspace) every
//! function returns [`CallError::Unavailable`].

use serde_json::Value;
use std::fmt;

/// Action names are UTF-8 of at most this many bytes. The raw import ends
/// the activation on a longer name; [`call`] answers
/// [`CallError::UnknownAction`] without asking the host.
pub const MAX_NAME_BYTES: usize = 1024;

/// How much [`Call::wait_bytes`] reads in its first await.
const FIRST_READ: usize = 64 * 1024;

/// The raw `ow_host_v1` imports, typed exactly as `docs/abi.md` lists them:
/// every pointer and length an `i32` into the module's `memory`, negative
/// results error codes. The safe functions of [`crate::call`] wrap them;
/// these are for tests of the ABI itself and bindings of other languages.
///
/// Outside wasm32 they are stand-ins that return `-3` (unavailable).
///
/// # Safety
///
/// Every `(pointer, length)` pair must be a range of linear memory the
/// caller may read (name, params) or write (`buf`): the host writes up to
/// `cap` bytes to `buf`. A range outside memory, a name that is not UTF-8
/// or longer than [`MAX_NAME_BYTES`], or params that are not a JSON object
/// end the activation.
pub mod raw {
    #[cfg(target_arch = "wasm32")]
    #[link(wasm_import_module = "ow_host_v1")]
    unsafe extern "C" {
        /// Start an activation of the action `name` with the params JSON
        /// object (empty = `{}`); the call's id (`> 0`), `-1` if the action
        /// is unknown, `-5` with too many calls in flight, `-3` without a
        /// host (in a zygote).
        pub fn call(name: i32, name_len: i32, params: i32, params_len: i32) -> i64;
        /// Wait for the call `id`: the result's length; copies
        /// `min(len, cap)` bytes to `buf`. The result stays readable until
        /// an await with `cap >= len` consumes it; `-1` if the id is unknown
        /// or consumed.
        pub fn await_call(id: i64, buf: i32, cap: i32) -> i64;
    }

    #[cfg(not(target_arch = "wasm32"))]
    mod unavailable {
        // Stand-ins with the imports' signatures: there is no host here.
        #![allow(clippy::missing_safety_doc)]

        const UNAVAILABLE: i64 = -3;

        pub unsafe fn call(_: i32, _: i32, _: i32, _: i32) -> i64 {
            UNAVAILABLE
        }
        pub unsafe fn await_call(_: i64, _: i32, _: i32) -> i64 {
            UNAVAILABLE
        }
    }

    #[cfg(not(target_arch = "wasm32"))]
    pub use unavailable::*;
}

/// Why a call failed: a negative code of `docs/abi.md`, or a result that is
/// an application error or not JSON.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallError {
    /// `-1` of `call`: no action of that name (or a name longer than
    /// [`MAX_NAME_BYTES`], which names none).
    UnknownAction,
    /// `-5`: too many calls of this activation are in flight; await some.
    TooManyCalls,
    /// `-3`: there is no host to run the call (in a zygote, outside wasm32).
    Unavailable,
    /// `-1` of `await_call`: no such call, or its result was consumed.
    UnknownCall,
    /// The callee answered an application error: the value of its `error`
    /// field.
    Failed(Value),
    /// The callee's result is not JSON (the parser's message).
    BadResult(String),
    /// Any other negative code.
    Other(i64),
}

impl CallError {
    /// The error of a negative code of `call`.
    fn from_call_code(code: i64) -> Self {
        match code {
            -1 => CallError::UnknownAction,
            other => CallError::from_code(other),
        }
    }

    /// The error of a negative code of `await_call`.
    fn from_await_code(code: i64) -> Self {
        match code {
            -1 => CallError::UnknownCall,
            other => CallError::from_code(other),
        }
    }

    /// The error of a negative code both imports share.
    fn from_code(code: i64) -> Self {
        match code {
            -3 => CallError::Unavailable,
            -5 => CallError::TooManyCalls,
            other => CallError::Other(other),
        }
    }

    /// The negative code the host returned; `None` for an error of the
    /// callee's result ([`Failed`](CallError::Failed),
    /// [`BadResult`](CallError::BadResult)).
    pub fn code(&self) -> Option<i64> {
        match self {
            CallError::UnknownAction | CallError::UnknownCall => Some(-1),
            CallError::Unavailable => Some(-3),
            CallError::TooManyCalls => Some(-5),
            CallError::Other(code) => Some(*code),
            CallError::Failed(_) | CallError::BadResult(_) => None,
        }
    }
}

impl fmt::Display for CallError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CallError::UnknownAction => f.write_str("no action of that name"),
            CallError::TooManyCalls => f.write_str("too many calls in flight"),
            CallError::Unavailable => f.write_str("calling actions is unavailable"),
            CallError::UnknownCall => f.write_str("no such call, or its result was read"),
            CallError::Failed(Value::String(e)) => write!(f, "the called action failed: {e}"),
            CallError::Failed(e) => write!(f, "the called action failed: {e}"),
            CallError::BadResult(e) => write!(f, "the called action's result is not JSON: {e}"),
            CallError::Other(code) => write!(f, "call error {code}"),
        }
    }
}

impl std::error::Error for CallError {}

/// A byte range of linear memory as the ABI passes it.
fn parts(bytes: &[u8]) -> (i32, i32) {
    (bytes.as_ptr() as usize as i32, bytes.len() as i32)
}

/// Start an activation of the action `name` with `params`, a JSON object
/// (`null` is sent as `{}`), and return without waiting for it.
///
/// # Errors
/// [`CallError::UnknownAction`] when there is no such action,
/// [`CallError::TooManyCalls`] when too many calls are in flight,
/// [`CallError::Unavailable`] without a host.
///
/// # Panics
/// When `params` is neither an object nor `null` (the host would end the
/// activation).
pub fn call(name: &str, params: &Value) -> Result<Call, CallError> {
    let params = match params {
        Value::Object(_) => serde_json::to_vec(params).expect("a JSON object serializes"),
        Value::Null => Vec::new(),
        _ => panic!("the params of a call must be a JSON object"),
    };
    call_bytes(name, &params)
}

/// [`call`] with params already encoded: the bytes of a JSON object (empty
/// = `{}`), passed on as they are (no parsing, no copy in the guest).
///
/// Bytes that are not a JSON object end the activation (the host checks).
///
/// # Errors
/// As [`call`].
pub fn call_bytes(name: &str, params: &[u8]) -> Result<Call, CallError> {
    if name.len() > MAX_NAME_BYTES {
        return Err(CallError::UnknownAction);
    }
    let ((n, nl), (p, pl)) = (parts(name.as_bytes()), parts(params));
    // SAFETY: name and params are readable.
    match unsafe { raw::call(n, nl, p, pl) } {
        id if id > 0 => Ok(Call { id }),
        code => Err(CallError::from_call_code(code)),
    }
}

/// Start every call, then wait for each in order: the calls run
/// concurrently. A call that fails to start is its own `Err` entry; the
/// others still run.
pub fn call_all(calls: &[(&str, Value)]) -> Vec<Result<Value, CallError>> {
    let started: Vec<_> = calls
        .iter()
        .map(|(name, params)| call(name, params))
        .collect();
    started
        .into_iter()
        .map(|call| call.and_then(Call::wait))
        .collect()
}

/// A call in flight (see [`call`]). Its result stays with the host until
/// [`wait`](Call::wait) or [`wait_bytes`](Call::wait_bytes) reads it; a call
/// never awaited still runs to its end.
#[derive(Debug, PartialEq, Eq)]
#[must_use = "the call's result is only read by `wait`"]
pub struct Call {
    id: i64,
}

impl Call {
    /// The host's id of the call (`> 0`), as the raw `await_call` takes it.
    pub fn id(&self) -> i64 {
        self.id
    }

    /// Wait for the result and parse it. A result object with an `error`
    /// field is an application error of the callee.
    ///
    /// # Errors
    /// [`CallError::Failed`] with the value of that `error` field,
    /// [`CallError::BadResult`] when the result is not JSON, and the errors
    /// of [`wait_bytes`](Call::wait_bytes).
    pub fn wait(self) -> Result<Value, CallError> {
        let bytes = self.wait_bytes()?;
        match serde_json::from_slice(&bytes) {
            Ok(Value::Object(mut result)) => match result.remove("error") {
                Some(error) => Err(CallError::Failed(error)),
                None => Ok(Value::Object(result)),
            },
            Ok(result) => Ok(result),
            Err(e) => Err(CallError::BadResult(e.to_string())),
        }
    }

    /// Wait for the result: its bytes as the callee returned them, neither
    /// parsed nor checked for an application error.
    ///
    /// Reads up to 64 KiB at first; a larger result is read again with its
    /// exact length (the host keeps it until then).
    ///
    /// # Errors
    /// [`CallError::UnknownCall`] when the host no longer knows the call,
    /// [`CallError::Unavailable`] without a host.
    pub fn wait_bytes(self) -> Result<Vec<u8>, CallError> {
        let mut cap = FIRST_READ;
        loop {
            let mut buf = Vec::<u8>::with_capacity(cap);
            let c = buf.capacity().min(i32::MAX as usize);
            let b = buf.as_mut_ptr() as usize as i32;
            // SAFETY: the host writes at most `c` bytes to the buffer's
            // spare capacity.
            let code = unsafe { raw::await_call(self.id, b, c as i32) };
            let len = usize::try_from(code).map_err(|_| CallError::from_await_code(code))?;
            if len <= c {
                // SAFETY: the host initialised the first `len` bytes.
                unsafe { buf.set_len(len) };
                return Ok(buf);
            }
            cap = len;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn codes_map_to_errors_and_back() {
        assert_eq!(CallError::from_call_code(-1), CallError::UnknownAction);
        assert_eq!(CallError::from_await_code(-1), CallError::UnknownCall);
        for code in [-1, -3, -5, -7, i64::MIN] {
            assert_eq!(CallError::from_call_code(code).code(), Some(code));
            assert_eq!(CallError::from_await_code(code).code(), Some(code));
        }
        assert_eq!(CallError::from_code(-5), CallError::TooManyCalls);
        assert_eq!(CallError::Failed(json!("no")).code(), None);
    }

    #[test]
    fn a_failed_callee_reads_as_its_error() {
        let e = CallError::Failed(json!("sorry"));
        assert_eq!(e.to_string(), "the called action failed: sorry");
    }

    #[test]
    fn overlong_names_name_no_action() {
        let name = "a".repeat(MAX_NAME_BYTES + 1);
        assert_eq!(call_bytes(&name, b"{}"), Err(CallError::UnknownAction));
    }

    #[test]
    #[should_panic(expected = "JSON object")]
    fn params_must_be_an_object() {
        let _ = call("a", &json!([1]));
    }

    #[cfg(not(target_arch = "wasm32"))]
    #[test]
    fn without_a_host_everything_is_unavailable() {
        let unavailable = Err(CallError::Unavailable);
        assert_eq!(call("a", &json!({})).map(drop), unavailable);
        assert_eq!(call("a", &Value::Null).map(drop), unavailable);
        assert_eq!(call_bytes("a", b"{}").map(drop), unavailable);
        let all = call_all(&[("a", json!({})), ("b", json!({}))]);
        assert_eq!(
            all.into_iter().map(|r| r.map(drop)).collect::<Vec<_>>(),
            [unavailable.clone(), unavailable.clone()]
        );
        assert_eq!(Call { id: 1 }.wait().map(drop), unavailable);
        assert_eq!(Call { id: 1 }.wait_bytes().map(drop), unavailable);
    }
}
