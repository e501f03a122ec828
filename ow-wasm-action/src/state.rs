//! Key-value state shared by the activations of a namespace: the
//! `ow_host_v1` functions of the action ABI version 2 (`docs/abi.md`).
//!
//! Keys are UTF-8 of at most [`MAX_KEY_BYTES`]; the host scopes them by the
//! activation's namespace, so actions of one namespace share them and other
//! namespaces never see them. Values are bytes, up to the executor's size
//! limit (64 MiB by default). Every call is atomic; [`lock`] serialises
//! read-modify-write sequences across activations and executors.
//!
//! ```
//! use ow_wasm_action::state::{self, StateError};
//!
//! /// Record a visit; the visit count so far.
//! fn visit(page: &str) -> Result<i64, StateError> {
//!     state::append("visits:log", format!("{page}\n").as_bytes())?;
//!     state::add(&format!("visits:{page}"), 1)
//! }
//! # // Outside wasm32 there is no host: every call is `Unavailable`.
//! # assert_eq!(visit("home"), Err(StateError::Unavailable));
//! ```
//!
//! A module that calls none of these imports nothing from `ow_host_v1` and
//! stays an ABI version 1 module. Outside wasm32 (host-side builds and
//! tests of a workspace) every function returns
//! [`StateError::Unavailable`].

use std::fmt;

/// Keys are UTF-8 of at most this many bytes. A longer key breaks the ABI:
/// the activation ends with `The action broke the ABI: ...`.
pub const MAX_KEY_BYTES: usize = 1024;

/// How much [`get`] reads in its first call.
const FIRST_READ: usize = 4096;

/// The raw `ow_host_v1` imports, typed exactly as `docs/abi.md` lists them:
/// every pointer and length an `i32` into the module's `memory`, negative
/// results error codes. The safe functions of [`crate::state`] wrap them;
/// these are for tests of the ABI itself and bindings of other languages.
///
/// Outside wasm32 they are stand-ins that return `-3` (unavailable).
///
/// # Safety
///
/// Every `(pointer, length)` pair must be a range of linear memory the
/// caller may read (keys, values) or write (`buf`): the host writes up to
/// `cap` or `len` bytes to `buf`. A range outside memory, a key that is not
/// UTF-8 or longer than [`MAX_KEY_BYTES`] or a
/// negative offset ends the activation.
pub mod raw {
    #[cfg(target_arch = "wasm32")]
    #[link(wasm_import_module = "ow_host_v1")]
    unsafe extern "C" {
        /// The value's length; copies `min(len, cap)` bytes to `buf`; `-1` if absent.
        pub fn state_get(key: i32, key_len: i32, buf: i32, cap: i32) -> i64;
        /// Replace the value; `0`.
        pub fn state_set(key: i32, key_len: i32, val: i32, val_len: i32) -> i32;
        /// Append to the value (absent = empty); the new length.
        pub fn state_append(key: i32, key_len: i32, val: i32, val_len: i32) -> i64;
        /// Remove the key; `0`, or `-1` if absent.
        pub fn state_delete(key: i32, key_len: i32) -> i32;
        /// Copy up to `len` bytes from `offset` to `buf`: how many (`0` at or
        /// after the end); `-1` if absent.
        pub fn state_get_range(key: i32, key_len: i32, offset: i64, buf: i32, len: i32) -> i64;
        /// Write at `offset`, zero-filling a gap; `0`.
        pub fn state_set_range(key: i32, key_len: i32, offset: i64, val: i32, val_len: i32) -> i32;
        /// Add `delta` to the 8-byte little-endian counter (absent = 0,
        /// wrapping); the new value.
        pub fn state_add(key: i32, key_len: i32, delta: i64) -> i64;
        /// Wait for the key's exclusive lock (at most until the deadline); `0`.
        pub fn state_lock(key: i32, key_len: i32) -> i32;
        /// Release the key's lock; `0`, or `-1` if this activation does not hold it.
        pub fn state_unlock(key: i32, key_len: i32) -> i32;
    }

    #[cfg(not(target_arch = "wasm32"))]
    mod unavailable {
        // Stand-ins with the imports' signatures: there is no host here.
        #![allow(clippy::missing_safety_doc)]

        const UNAVAILABLE: i32 = -3;

        pub unsafe fn state_get(_: i32, _: i32, _: i32, _: i32) -> i64 {
            UNAVAILABLE.into()
        }
        pub unsafe fn state_set(_: i32, _: i32, _: i32, _: i32) -> i32 {
            UNAVAILABLE
        }
        pub unsafe fn state_append(_: i32, _: i32, _: i32, _: i32) -> i64 {
            UNAVAILABLE.into()
        }
        pub unsafe fn state_delete(_: i32, _: i32) -> i32 {
            UNAVAILABLE
        }
        pub unsafe fn state_get_range(_: i32, _: i32, _: i64, _: i32, _: i32) -> i64 {
            UNAVAILABLE.into()
        }
        pub unsafe fn state_set_range(_: i32, _: i32, _: i64, _: i32, _: i32) -> i32 {
            UNAVAILABLE
        }
        pub unsafe fn state_add(_: i32, _: i32, _: i64) -> i64 {
            UNAVAILABLE.into()
        }
        pub unsafe fn state_lock(_: i32, _: i32) -> i32 {
            UNAVAILABLE
        }
        pub unsafe fn state_unlock(_: i32, _: i32) -> i32 {
            UNAVAILABLE
        }
    }

    #[cfg(not(target_arch = "wasm32"))]
    pub use unavailable::*;
}

/// Why a state call failed (the negative codes of `docs/abi.md`; `-1`,
/// absent, is an `Option` or a `bool` of the function instead).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StateError {
    /// `-2`: the value would exceed the executor's size limit.
    TooLarge,
    /// `-3`: the state backend is unavailable (or there is no activation:
    /// in a zygote, outside wasm32).
    Unavailable,
    /// `-4`: waiting for a lock ran past the activation's deadline.
    LockTimeout,
    /// Any other negative code.
    Other(i64),
}

impl StateError {
    /// The error of a negative code.
    pub fn from_code(code: i64) -> Self {
        match code {
            -2 => StateError::TooLarge,
            -3 => StateError::Unavailable,
            -4 => StateError::LockTimeout,
            other => StateError::Other(other),
        }
    }

    /// The negative code the host returned.
    pub fn code(self) -> i64 {
        match self {
            StateError::TooLarge => -2,
            StateError::Unavailable => -3,
            StateError::LockTimeout => -4,
            StateError::Other(code) => code,
        }
    }
}

impl fmt::Display for StateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StateError::TooLarge => f.write_str("the value exceeds the state size limit"),
            StateError::Unavailable => f.write_str("the state backend is unavailable"),
            StateError::LockTimeout => {
                f.write_str("waiting for the lock ran past the activation's deadline")
            }
            StateError::Other(code) => write!(f, "state error {code}"),
        }
    }
}

impl std::error::Error for StateError {}

/// A non-negative result, or its error.
fn check(code: i64) -> Result<u64, StateError> {
    u64::try_from(code).map_err(|_| StateError::from_code(code))
}

/// Like [`check`], with `-1` (absent) as `None`.
fn check_absent(code: i64) -> Result<Option<u64>, StateError> {
    match code {
        -1 => Ok(None),
        code => check(code).map(Some),
    }
}

/// A length the host returned, as a `usize`.
fn length(n: u64) -> Result<usize, StateError> {
    usize::try_from(n).map_err(|_| StateError::TooLarge)
}

/// A byte range of linear memory as the ABI passes it.
fn parts(bytes: &[u8]) -> (i32, i32) {
    (bytes.as_ptr() as usize as i32, bytes.len() as i32)
}

/// An offset as the ABI passes it. Values are far smaller than `i64::MAX`,
/// so an offset beyond it answers as `i64::MAX` does (nothing to read there;
/// too large to write) instead of turning negative, which breaks the ABI.
fn offset(offset: u64) -> i64 {
    i64::try_from(offset).unwrap_or(i64::MAX)
}

/// The value at `key`, `None` if absent.
///
/// Reads up to 4 KiB at first; a larger value is read again with its exact
/// length (and again if it grew in between).
///
/// # Errors
/// [`StateError::Unavailable`] when the backend cannot be reached.
pub fn get(key: &str) -> Result<Option<Vec<u8>>, StateError> {
    let (k, kl) = parts(key.as_bytes());
    let mut cap = FIRST_READ;
    loop {
        let mut buf = Vec::<u8>::with_capacity(cap);
        let (b, c) = (buf.as_mut_ptr() as usize as i32, buf.capacity() as i32);
        // SAFETY: the key is readable; the host writes at most `c` bytes to
        // the buffer's spare capacity.
        let Some(len) = check_absent(unsafe { raw::state_get(k, kl, b, c) })? else {
            return Ok(None);
        };
        let len = length(len)?;
        if len <= buf.capacity() {
            // SAFETY: the host initialised the first `len` bytes.
            unsafe { buf.set_len(len) };
            return Ok(Some(buf));
        }
        cap = len;
    }
}

/// Copy the start of the value at `key` into `buf` (as much as fits) and
/// return the value's full length, `None` if absent. An empty `buf` asks
/// for the length alone.
///
/// # Errors
/// [`StateError::Unavailable`] when the backend cannot be reached.
pub fn get_into(key: &str, buf: &mut [u8]) -> Result<Option<usize>, StateError> {
    let (k, kl) = parts(key.as_bytes());
    let (b, c) = parts(buf);
    // SAFETY: the key is readable, the buffer writable for its length.
    check_absent(unsafe { raw::state_get(k, kl, b, c) })?
        .map(length)
        .transpose()
}

/// Replace the value at `key`.
///
/// # Errors
/// [`StateError::TooLarge`] over the size limit, [`StateError::Unavailable`]
/// when the backend cannot be reached.
pub fn set(key: &str, value: &[u8]) -> Result<(), StateError> {
    let ((k, kl), (v, vl)) = (parts(key.as_bytes()), parts(value));
    // SAFETY: key and value are readable.
    check(unsafe { raw::state_set(k, kl, v, vl) }.into()).map(drop)
}

/// Append `value` to the value at `key` (absent = empty); the new length.
///
/// # Errors
/// [`StateError::TooLarge`] when the result would exceed the size limit
/// (nothing is appended), [`StateError::Unavailable`] when the backend
/// cannot be reached.
pub fn append(key: &str, value: &[u8]) -> Result<u64, StateError> {
    let ((k, kl), (v, vl)) = (parts(key.as_bytes()), parts(value));
    // SAFETY: key and value are readable.
    check(unsafe { raw::state_append(k, kl, v, vl) })
}

/// Remove `key`; whether it existed.
///
/// # Errors
/// [`StateError::Unavailable`] when the backend cannot be reached.
pub fn delete(key: &str) -> Result<bool, StateError> {
    let (k, kl) = parts(key.as_bytes());
    // SAFETY: the key is readable.
    Ok(check_absent(unsafe { raw::state_delete(k, kl) }.into())?.is_some())
}

/// Copy the value's bytes from `offset` into `buf`; how many were copied
/// (fewer at the end of the value, `0` at or after it), `None` if absent.
///
/// # Errors
/// [`StateError::Unavailable`] when the backend cannot be reached.
pub fn get_range(key: &str, offset: u64, buf: &mut [u8]) -> Result<Option<usize>, StateError> {
    let ((k, kl), (b, c)) = (parts(key.as_bytes()), parts(buf));
    // SAFETY: the key is readable, the buffer writable for its length.
    check_absent(unsafe { raw::state_get_range(k, kl, self::offset(offset), b, c) })?
        .map(length)
        .transpose()
}

/// Write `value` at `offset` of the value at `key`, extending it as needed
/// (a gap, and an absent value, are zero-filled).
///
/// # Errors
/// [`StateError::TooLarge`] when the value would exceed the size limit
/// (nothing is written), [`StateError::Unavailable`] when the backend cannot
/// be reached.
pub fn set_range(key: &str, offset: u64, value: &[u8]) -> Result<(), StateError> {
    let ((k, kl), (v, vl)) = (parts(key.as_bytes()), parts(value));
    // SAFETY: key and value are readable.
    check(unsafe { raw::state_set_range(k, kl, self::offset(offset), v, vl) }.into()).map(drop)
}

/// Atomically add `delta` to the counter at `key` (an 8-byte little-endian
/// `i64`; absent = 0; wrapping); its new value.
///
/// A value of another length counts as its first 8 bytes, zero-extended,
/// and becomes the 8-byte result.
///
/// # Errors
/// [`StateError::Unavailable`] when the backend cannot be reached. The host
/// answers that with `-3`, which is also a possible counter value: a counter
/// that really reaches `-3` reads as this error. Counters are meant to stay
/// non-negative; no other negative value is taken for an error.
pub fn add(key: &str, delta: i64) -> Result<i64, StateError> {
    let (k, kl) = parts(key.as_bytes());
    // SAFETY: the key is readable.
    match unsafe { raw::state_add(k, kl, delta) } {
        -3 => Err(StateError::Unavailable),
        value => Ok(value),
    }
}

/// Take the exclusive lock on `key`, waiting for it at most until the
/// activation's deadline. The lock is released when the guard drops, by
/// [`LockGuard::unlock`], or when the activation ends, whatever its outcome.
///
/// Locks are advisory (they guard nothing by themselves: every party takes
/// the lock before touching the key) and not counted: locking a key this
/// activation holds succeeds at once, and the first release, by any guard
/// of it, releases it.
///
/// # Errors
/// [`StateError::LockTimeout`] when the deadline passed while waiting,
/// [`StateError::Unavailable`] when the backend cannot be reached.
pub fn lock(key: &str) -> Result<LockGuard, StateError> {
    let (k, kl) = parts(key.as_bytes());
    // SAFETY: the key is readable.
    check(unsafe { raw::state_lock(k, kl) }.into())?;
    Ok(LockGuard {
        key: Some(key.to_owned()),
    })
}

/// Release the lock on `key`; whether this activation held it.
///
/// # Errors
/// [`StateError::Unavailable`] when the backend cannot be reached.
pub fn unlock(key: &str) -> Result<bool, StateError> {
    let (k, kl) = parts(key.as_bytes());
    // SAFETY: the key is readable.
    Ok(check_absent(unsafe { raw::state_unlock(k, kl) }.into())?.is_some())
}

/// The lock on a key, held until this guard drops (see [`lock`]).
#[derive(Debug)]
#[must_use = "the lock is released as soon as the guard drops"]
pub struct LockGuard {
    key: Option<String>,
}

impl LockGuard {
    /// The locked key.
    pub fn key(&self) -> &str {
        self.key.as_deref().unwrap_or_default()
    }

    /// Release the lock now; whether this activation still held it.
    ///
    /// # Errors
    /// [`StateError::Unavailable`] when the backend cannot be reached (the
    /// lock is then released when the activation ends).
    pub fn unlock(mut self) -> Result<bool, StateError> {
        match self.key.take() {
            Some(key) => unlock(&key),
            None => Ok(false),
        }
    }
}

impl Drop for LockGuard {
    fn drop(&mut self) {
        if let Some(key) = self.key.take() {
            // A failure leaves the lock to the end of the activation.
            let _ = unlock(&key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_map_to_errors_and_back() {
        for code in [-2, -3, -4, -5, i64::MIN] {
            assert_eq!(StateError::from_code(code).code(), code);
        }
        assert_eq!(StateError::from_code(-2), StateError::TooLarge);
        assert_eq!(StateError::from_code(-4), StateError::LockTimeout);
        assert_eq!(check_absent(-1), Ok(None));
        assert_eq!(check_absent(7), Ok(Some(7)));
        assert_eq!(check(-3), Err(StateError::Unavailable));
    }

    #[test]
    fn offsets_never_turn_negative() {
        assert_eq!(offset(5), 5);
        assert_eq!(offset(u64::MAX), i64::MAX);
    }

    #[cfg(not(target_arch = "wasm32"))]
    #[test]
    fn without_a_host_everything_is_unavailable() {
        let unavailable = Err(StateError::Unavailable);
        assert_eq!(get("k").map(drop), unavailable);
        assert_eq!(get_into("k", &mut []).map(drop), unavailable);
        assert_eq!(set("k", b"v"), unavailable);
        assert_eq!(append("k", b"v").map(drop), unavailable);
        assert_eq!(delete("k").map(drop), unavailable);
        assert_eq!(get_range("k", 0, &mut [0; 4]).map(drop), unavailable);
        assert_eq!(set_range("k", 0, b"v"), unavailable);
        assert_eq!(add("k", 1).map(drop), unavailable);
        assert_eq!(lock("k").map(drop), unavailable);
        assert_eq!(unlock("k").map(drop), unavailable);
    }
}
