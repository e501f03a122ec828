//! ABI version 2: the functions of `ow_host_v1` (key-value state, and
//! calls of other actions), the engine-neutral half (docs/abi.md, "ABI
//! version 2").
//!
//! Every engine links the same [`IMPORTS`] and runs each call in three
//! steps, so that all engines agree byte for byte on what the guest sees:
//!
//! 1. [`decode`]: the raw arguments and reads of the guest's memory become
//!    an owned [`StateOp`]; every range and key is checked here, before
//!    anything happens (a bad one is [`Error::Abi`], which ends the
//!    activation);
//! 2. the activation's host context answers it (`Host::answer`, async);
//! 3. [`Delivery::finish`]: the bytes to copy go to the guest's buffer and
//!    the import's return value comes back.

use crate::error::{Error, Result};

/// Keys are UTF-8 of at most this many bytes.
pub const MAX_KEY_BYTES: usize = 1024;
/// Values are at most this many bytes unless the executor says otherwise.
pub const DEFAULT_MAX_VALUE_BYTES: usize = 64 << 20;

/// `-1`: the key (or the lock, for unlock) is absent.
pub const ABSENT: i64 = -1;
/// `-2`: the value would exceed the size limit.
pub const TOO_LARGE: i64 = -2;
/// `-3`: the state backend is unavailable (or the activation is ending).
pub const UNAVAILABLE: i64 = -3;
/// `-4`: waiting for a lock ran past the activation's deadline.
pub const LOCK_TIMEOUT: i64 = -4;
/// `-5`: `call` refused: the activation has as many calls in flight as it may.
pub const TOO_MANY_CALLS: i64 = -5;

/// Why a state operation did not succeed, as the guest sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum StateError {
    /// The key, or the lock, is absent.
    #[error("absent")]
    Absent,
    /// The value would exceed the size limit.
    #[error("the value exceeds the size limit")]
    TooLarge,
    /// The backend cannot be reached.
    #[error("the state backend is unavailable")]
    Unavailable,
    /// A lock wait ran past the deadline.
    #[error("the lock wait ran past the deadline")]
    LockTimeout,
    /// `call`: the activation has as many calls in flight as it may.
    #[error("too many calls in flight")]
    TooManyCalls,
}

impl StateError {
    /// The negative code the guest gets.
    pub fn code(self) -> i64 {
        match self {
            StateError::Absent => ABSENT,
            StateError::TooLarge => TOO_LARGE,
            StateError::Unavailable => UNAVAILABLE,
            StateError::LockTimeout => LOCK_TIMEOUT,
            StateError::TooManyCalls => TOO_MANY_CALLS,
        }
    }
}

/// A wasm value type of an import's signature.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ty {
    /// `i32`.
    I32,
    /// `i64`.
    I64,
}

/// One `ow_host_v1` function: its name and wasm signature.
#[derive(Debug, Clone, Copy)]
pub struct Import {
    /// The import's field name.
    pub name: &'static str,
    /// Parameter types.
    pub params: &'static [Ty],
    /// The one result type.
    pub result: Ty,
}

use Ty::{I32, I64};

/// The `ow_host_v1` functions, in the order of [`ImportId`]'s indices:
/// the state functions, then the calls of other actions.
pub const IMPORTS: [Import; 11] = [
    Import {
        name: "state_get",
        params: &[I32, I32, I32, I32],
        result: I64,
    },
    Import {
        name: "state_set",
        params: &[I32, I32, I32, I32],
        result: I32,
    },
    Import {
        name: "state_append",
        params: &[I32, I32, I32, I32],
        result: I64,
    },
    Import {
        name: "state_delete",
        params: &[I32, I32],
        result: I32,
    },
    Import {
        name: "state_get_range",
        params: &[I32, I32, I64, I32, I32],
        result: I64,
    },
    Import {
        name: "state_set_range",
        params: &[I32, I32, I64, I32, I32],
        result: I32,
    },
    Import {
        name: "state_add",
        params: &[I32, I32, I64],
        result: I64,
    },
    Import {
        name: "state_lock",
        params: &[I32, I32],
        result: I32,
    },
    Import {
        name: "state_unlock",
        params: &[I32, I32],
        result: I32,
    },
    Import {
        name: "call",
        params: &[I32, I32, I32, I32],
        result: I64,
    },
    Import {
        name: "await_call",
        params: &[I64, I32, I32],
        result: I64,
    },
];

/// The index of an import in [`IMPORTS`].
pub type ImportId = usize;

/// Whether `name` (of module [`crate::abi::HOST_MODULE`]) is a function of
/// this ABI.
pub fn import_id(name: &str) -> Option<ImportId> {
    IMPORTS.iter().position(|i| i.name == name)
}

/// Check that the module's import `name` of [`crate::abi::HOST_MODULE`]
/// is a function of this ABI with its exact type: the /init error when not.
///
/// # Errors
/// [`Error::InvalidModule`] naming the import.
pub fn check_import(
    name: &str,
    params: &[crate::abi::ValKind],
    results: &[crate::abi::ValKind],
) -> Result<ImportId> {
    use crate::abi::ValKind;
    let id = import_id(name).ok_or_else(|| {
        Error::InvalidModule(format!(
            "unknown import: `{}::{name}` has not been defined",
            crate::abi::HOST_MODULE
        ))
    })?;
    let kind = |t: &Ty| match t {
        Ty::I32 => ValKind::I32,
        Ty::I64 => ValKind::I64,
    };
    let spec = &IMPORTS[id];
    let want: Vec<ValKind> = spec.params.iter().map(kind).collect();
    if params != want.as_slice() || results != [kind(&spec.result)] {
        return Err(Error::InvalidModule(format!(
            "incompatible import type for `{}::{name}`: expected {want:?} -> {:?}, found {params:?} -> {results:?}",
            crate::abi::HOST_MODULE,
            kind(&spec.result)
        )));
    }
    Ok(id)
}

/// One call of an `ow_host_v1` function, owned: what the host context
/// answers (`Host::answer`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostCall {
    /// A state operation.
    State(StateOp),
    /// `call`: start an activation of the action `name` with `params` (a
    /// JSON object's bytes); the reply's value is the call's id.
    Call { name: String, params: Vec<u8> },
    /// `await_call`: wait for call `id`; the reply's value is the result's
    /// length, its data the result's first `cap` bytes (or all of them).
    Await { id: i64, cap: u32 },
}

/// One state operation, owned: what the host context answers. Keys are the
/// guest's, not yet scoped by namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StateOp {
    /// The value's length and its first `cap` bytes.
    Get { key: String, cap: u32 },
    /// Replace the value.
    Set { key: String, value: Vec<u8> },
    /// Append to the value (absent = empty); its new length.
    Append { key: String, value: Vec<u8> },
    /// Remove the key.
    Delete { key: String },
    /// Up to `len` bytes from `offset`.
    GetRange { key: String, offset: u64, len: u32 },
    /// Write `value` at `offset`, zero-filling a gap.
    SetRange {
        key: String,
        offset: u64,
        value: Vec<u8>,
    },
    /// Add `delta` to an 8-byte little-endian counter; the new value.
    Add { key: String, delta: i64 },
    /// Take the key's exclusive lock.
    Lock { key: String },
    /// Release it.
    Unlock { key: String },
}

impl StateOp {
    /// The key the operation is about.
    pub fn key(&self) -> &str {
        match self {
            StateOp::Get { key, .. }
            | StateOp::Set { key, .. }
            | StateOp::Append { key, .. }
            | StateOp::Delete { key }
            | StateOp::GetRange { key, .. }
            | StateOp::SetRange { key, .. }
            | StateOp::Add { key, .. }
            | StateOp::Lock { key }
            | StateOp::Unlock { key } => key,
        }
    }
}

/// A successful answer: the import's return value and the bytes to copy to
/// the guest's buffer (at most its capacity).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StateReply {
    /// What the import returns (a length, a count, `0`, a counter value).
    pub value: i64,
    /// The bytes for the guest's buffer; empty for operations without one.
    pub data: Vec<u8>,
}

impl StateReply {
    /// A reply without bytes.
    pub fn value(value: i64) -> Self {
        Self {
            value,
            data: Vec::new(),
        }
    }
}

/// The outcome of a state operation.
pub type StateResult = std::result::Result<StateReply, StateError>;

/// Where a call's answer goes, kept while the host answers.
#[derive(Debug)]
pub struct Delivery {
    /// The answer's buffer: `(ptr, capacity)` in guest memory.
    out: Option<(u32, u32)>,
    /// The import's result type.
    result: Ty,
    /// Refused before the host was asked (a value over the size limit,
    /// not even copied out of the guest).
    refused: Option<StateError>,
}

/// Decode a call of `import` with `args` (each `i32` given as its value
/// sign-extended to `i64`), reading from guest memory with `read(ptr,
/// len)`, which checks the range. `memory_size` bounds the output buffer.
/// A value longer than `max_value` (or written past it) is not copied:
/// the call is refused with [`StateError::TooLarge`] ([`Delivery::refused`]).
///
/// # Errors
/// [`Error::Abi`] for a range outside memory, a key that is not UTF-8 or
/// longer than [`MAX_KEY_BYTES`], or arguments that do not fit the
/// import's type.
pub fn decode(
    import: ImportId,
    args: &[i64],
    memory_size: usize,
    max_value: usize,
    read: &mut dyn FnMut(u32, u32) -> Result<Vec<u8>>,
) -> Result<(HostCall, Delivery)> {
    let mut refused = None;
    {
        let spec = IMPORTS
            .get(import)
            .ok_or_else(|| Error::Abi(format!("no ow_host_v1 function number {import}")))?;
        if args.len() != spec.params.len() {
            return Err(Error::Abi(format!(
                "{} takes {} arguments, not {}",
                spec.name,
                spec.params.len(),
                args.len()
            )));
        }
        // An i32 argument is a pointer or a length: its unsigned value.
        let u = |i: usize| args[i] as i32 as u32;
        let out = |ptr: u32, cap: u32, what: &str| -> Result<Option<(u32, u32)>> {
            crate::abi::guest_range(ptr, cap, memory_size, what)?;
            Ok(Some((ptr, cap)))
        };
        if spec.name == "await_call" {
            return Ok((
                HostCall::Await {
                    id: args[0],
                    cap: u(2),
                },
                Delivery {
                    out: out(u(1), u(2), "the call's result buffer")?,
                    result: spec.result,
                    refused: None,
                },
            ));
        }
        // The key, or the name of the action `call` starts.
        let key = {
            let len = u(1) as usize;
            if len > MAX_KEY_BYTES {
                return Err(Error::Abi(format!(
                    "{}: the key is {len} bytes long, over the limit of {MAX_KEY_BYTES}",
                    spec.name
                )));
            }
            let bytes = read(u(0), u(1))?;
            String::from_utf8(bytes)
                .map_err(|_| Error::Abi(format!("{}: the key is not UTF-8", spec.name)))?
        };
        // A value: its range checked, then copied unless it is too large.
        let mut value = |ptr: u32, len: u32, end: Option<u64>| -> Result<Vec<u8>> {
            crate::abi::guest_range(ptr, len, memory_size, "a state value")?;
            if end.is_none_or(|end| end > max_value as u64) {
                refused = Some(StateError::TooLarge);
                return Ok(Vec::new());
            }
            read(ptr, len)
        };
        if spec.name == "call" {
            let params = read(u(2), u(3))?;
            if !is_object(&params) {
                return Err(Error::Abi(format!(
                    "call of {key}: the params are not a JSON object"
                )));
            }
            return Ok((
                HostCall::Call { name: key, params },
                Delivery {
                    out: None,
                    result: spec.result,
                    refused: None,
                },
            ));
        }
        let out = |ptr, cap| out(ptr, cap, "the state buffer");
        let (op, out) = match spec.name {
            "state_get" => (StateOp::Get { key, cap: u(3) }, out(u(2), u(3))?),
            "state_set" => (
                StateOp::Set {
                    key,
                    value: value(u(2), u(3), Some(u64::from(u(3))))?,
                },
                None,
            ),
            "state_append" => (
                StateOp::Append {
                    key,
                    value: value(u(2), u(3), Some(u64::from(u(3))))?,
                },
                None,
            ),
            "state_delete" => (StateOp::Delete { key }, None),
            "state_get_range" => (
                StateOp::GetRange {
                    key,
                    offset: offset(args[2])?,
                    len: u(4),
                },
                out(u(3), u(4))?,
            ),
            "state_set_range" => {
                let offset = offset(args[2])?;
                let end = offset.checked_add(u64::from(u(4)));
                (
                    StateOp::SetRange {
                        key,
                        offset,
                        value: value(u(3), u(4), end)?,
                    },
                    None,
                )
            }
            "state_add" => (
                StateOp::Add {
                    key,
                    delta: args[2],
                },
                None,
            ),
            "state_lock" => (StateOp::Lock { key }, None),
            "state_unlock" => (StateOp::Unlock { key }, None),
            other => return Err(Error::Abi(format!("unknown ow_host_v1 function {other}"))),
        };
        Ok((
            HostCall::State(op),
            Delivery {
                out,
                result: spec.result,
                refused,
            },
        ))
    }
}

impl Delivery {
    /// The import's result type.
    pub fn result_type(&self) -> Ty {
        self.result
    }

    /// Why the call is answered without asking the host, if it is.
    pub fn refused(&self) -> Option<StateError> {
        self.refused
    }

    /// Deliver `result`: copy its bytes with `write(ptr, bytes)` and return
    /// what the import returns (a negative code for an error; an `i32`
    /// result is the low half).
    ///
    /// # Errors
    /// What `write` returns (the range was checked at decode, and no guest
    /// code ran since, so only a shrunk memory could fail it).
    pub fn finish(
        self,
        result: StateResult,
        write: &mut dyn FnMut(u32, &[u8]) -> Result<()>,
    ) -> Result<i64> {
        match result {
            Err(e) => Ok(e.code()),
            Ok(reply) => {
                if let Some((ptr, cap)) = self.out {
                    let n = reply.data.len().min(cap as usize);
                    if n > 0 {
                        write(ptr, &reply.data[..n])?;
                    }
                }
                Ok(reply.value)
            }
        }
    }
}

/// Whether `params` look like a JSON object: `{...}` within whitespace
/// (empty means `{}`). Checked by its braces only, so that a large payload
/// is not scanned twice: the callee parses it.
fn is_object(params: &[u8]) -> bool {
    let params = params.trim_ascii();
    params.is_empty() || (params.first() == Some(&b'{') && params.last() == Some(&b'}'))
}

/// An `i64` offset argument: negative ones break the ABI.
fn offset(raw: i64) -> Result<u64> {
    u64::try_from(raw).map_err(|_| Error::Abi(format!("negative state offset {raw}")))
}

/// The 8-byte little-endian counter stored in `value`: its first 8 bytes,
/// zero-extended (absent or empty = 0).
pub fn counter(value: &[u8]) -> i64 {
    let mut bytes = [0u8; 8];
    let n = value.len().min(8);
    bytes[..n].copy_from_slice(&value[..n]);
    i64::from_le_bytes(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn memory() -> Vec<u8> {
        let mut m = vec![0u8; 256];
        m[..3].copy_from_slice(b"key");
        m[16..21].copy_from_slice(b"hello");
        m[32] = 0xff;
        m
    }

    fn host_call(import: &str, args: &[i64]) -> Result<(HostCall, Delivery)> {
        let mem = memory();
        let mut read = |ptr: u32, len: u32| {
            let r = crate::abi::guest_range(ptr, len, mem.len(), "test")?;
            Ok(mem[r].to_vec())
        };
        decode(import_id(import).unwrap(), args, mem.len(), 4, &mut read)
    }

    fn call(import: &str, args: &[i64]) -> Result<(StateOp, Delivery)> {
        host_call(import, args).map(|(call, delivery)| match call {
            HostCall::State(op) => (op, delivery),
            other => panic!("not a state operation: {other:?}"),
        })
    }

    #[test]
    fn calls_of_actions_decode_with_their_params_unlimited() {
        let mut mem = memory();
        mem[64..66].copy_from_slice(b"{}");
        let mut read = |ptr: u32, len: u32| {
            let r = crate::abi::guest_range(ptr, len, mem.len(), "test")?;
            Ok(mem[r].to_vec())
        };
        let id = import_id("call").unwrap();
        // The size limit of state values does not apply to params (4 here).
        let (call, delivery) = decode(id, &[0, 3, 16, 0], 256, 4, &mut read).unwrap();
        assert_eq!(
            call,
            HostCall::Call {
                name: "key".into(),
                params: Vec::new()
            }
        );
        assert_eq!(delivery.refused(), None);
        let (call, _) = decode(id, &[0, 3, 64, 2], 256, 0, &mut read).unwrap();
        assert!(matches!(call, HostCall::Call { params, .. } if params == b"{}"));
        // Not an object: the ABI is broken.
        let err = decode(id, &[0, 3, 16, 5], 256, 4, &mut read).unwrap_err();
        assert!(err.to_string().contains("not a JSON object"), "{err}");
        let (call, delivery) = host_call("await_call", &[7, 200, 56]).unwrap();
        assert_eq!(call, HostCall::Await { id: 7, cap: 56 });
        let mut written = Vec::new();
        let reply = StateReply {
            value: 100,
            data: vec![1; 100],
        };
        let ret = delivery
            .finish(Ok(reply), &mut |ptr, b| {
                written.push((ptr, b.len()));
                Ok(())
            })
            .unwrap();
        assert_eq!((ret, written), (100, vec![(200, 56)]));
        assert!(matches!(
            host_call("await_call", &[7, 200, 57]),
            Err(Error::Abi(_))
        ));
        assert_eq!(StateError::TooManyCalls.code(), -5);
    }

    #[test]
    fn calls_decode_into_owned_operations() {
        // Over the limit (4 bytes here): refused, not copied.
        let (op, delivery) = call("state_set", &[0, 3, 16, 5]).unwrap();
        assert_eq!(delivery.refused(), Some(StateError::TooLarge));
        assert_eq!(
            op,
            StateOp::Set {
                key: "key".into(),
                value: Vec::new()
            }
        );
        let (_, delivery) = call("state_set_range", &[0, 3, 2, 16, 3]).unwrap();
        assert_eq!(delivery.refused(), Some(StateError::TooLarge));
        let op = call("state_set", &[0, 3, 16, 4]).unwrap().0;
        assert_eq!(
            op,
            StateOp::Set {
                key: "key".into(),
                value: b"hell".to_vec()
            }
        );
        let op = call("state_get_range", &[0, 3, 7, 64, 10]).unwrap().0;
        assert_eq!(
            op,
            StateOp::GetRange {
                key: "key".into(),
                offset: 7,
                len: 10
            }
        );
        let op = call("state_add", &[0, 3, -5]).unwrap().0;
        assert_eq!(
            op,
            StateOp::Add {
                key: "key".into(),
                delta: -5
            }
        );
    }

    #[test]
    fn bad_ranges_keys_and_offsets_break_the_abi() {
        let abi = |r: Result<(StateOp, Delivery)>| matches!(r, Err(Error::Abi(_)));
        assert!(abi(call("state_get", &[250, 10, 0, 0])), "key past the end");
        assert!(
            abi(call("state_get", &[0, 3, 250, 10])),
            "buffer past the end"
        );
        assert!(
            abi(call("state_set", &[0, 3, -1, 5])),
            "a negative pointer is huge"
        );
        assert!(abi(call("state_delete", &[32, 1])), "not UTF-8");
        assert!(abi(call("state_delete", &[0, 1025])), "key over 1 KiB");
        assert!(
            abi(call("state_set_range", &[0, 3, -1, 16, 5])),
            "negative offset"
        );
        assert!(abi(call("state_delete", &[0])), "wrong arity");
    }

    #[test]
    fn finish_copies_at_most_the_capacity_and_returns_codes() {
        let (_, delivery) = call("state_get", &[0, 3, 64, 4]).unwrap();
        let mut written = Vec::new();
        let reply = StateReply {
            value: 10,
            data: b"0123456789".to_vec(),
        };
        let ret = delivery
            .finish(Ok(reply), &mut |ptr, b| {
                written.push((ptr, b.to_vec()));
                Ok(())
            })
            .unwrap();
        assert_eq!(ret, 10);
        assert_eq!(written, vec![(64, b"0123".to_vec())]);
        let (_, delivery) = call("state_get", &[0, 3, 64, 4]).unwrap();
        let ret = delivery
            .finish(Err(StateError::Unavailable), &mut |_, _| panic!("no write"))
            .unwrap();
        assert_eq!(ret, UNAVAILABLE);
    }

    #[test]
    fn counters_are_little_endian_and_zero_extended() {
        assert_eq!(counter(&[]), 0);
        assert_eq!(counter(&5i64.to_le_bytes()), 5);
        assert_eq!(counter(&[1, 1]), 257);
        assert_eq!(counter(&(-2i64).to_le_bytes()), -2);
    }
}
