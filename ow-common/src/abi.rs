//! The action ABI, version 1: the engine-neutral half.
//!
//! `docs/abi.md` is the specification; this module holds its names and the
//! decoding every engine shares, so that all engines agree byte for byte.

use crate::error::{Error, Result};
use serde_json::Value;

/// Version of the ABI described in `docs/abi.md`.
pub const ABI_VERSION: u32 = 1;

/// SDK modules export their linear memory under this name.
pub const EXPORT_MEMORY: &str = "memory";
/// SDK modules export `ow_alloc(size: i32) -> i32`; its presence marks an SDK module.
pub const EXPORT_ALLOC: &str = "ow_alloc";
/// Called once per instance before anything else, when exported.
pub const EXPORT_INITIALIZE: &str = "_initialize";
/// The entry point of a WASI command module.
pub const EXPORT_START: &str = "_start";
/// Import module reserved for host calls of later ABI versions (state,
/// chaining). Nothing is defined in it yet: a module importing from it fails
/// /init with an unknown-import error.
pub const HOST_MODULE: &str = "ow_host_v1";

/// The two kinds of action module.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ActionAbi {
    /// A reactor built with the SDK: JSON in and out through linear memory.
    Sdk,
    /// A plain WASI program: JSON on stdin, result on the last stdout line.
    Command,
}

impl std::fmt::Display for ActionAbi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ActionAbi::Sdk => "sdk",
            ActionAbi::Command => "command",
        })
    }
}

/// Split an entry point's `i64` return value into `(ptr, len)`.
pub fn unpack(ret: i64) -> (u32, u32) {
    let ret = ret as u64;
    ((ret >> 32) as u32, ret as u32)
}

/// The inverse of [`unpack`].
pub fn pack(ptr: u32, len: u32) -> i64 {
    ((u64::from(ptr) << 32) | u64::from(len)) as i64
}

/// Check a guest range `[ptr, ptr + len)` against a memory of `mem_len`
/// bytes, returning it as a host range.
///
/// # Errors
/// [`Error::Abi`] when the range does not lie inside the memory.
pub fn guest_range(
    ptr: u32,
    len: u32,
    mem_len: usize,
    what: &str,
) -> Result<std::ops::Range<usize>> {
    let start = ptr as usize;
    match start.checked_add(len as usize) {
        Some(end) if end <= mem_len => Ok(start..end),
        _ => Err(Error::Abi(format!(
            "{what} at {ptr:#x} of {len} bytes lies outside the module's memory of {mem_len} bytes"
        ))),
    }
}

/// Decode a result: UTF-8 JSON that is an object or an array, at most
/// `limit` bytes long.
///
/// # Errors
/// [`Error::ResultTooLarge`], [`Error::Abi`] for bytes that are not UTF-8 or
/// not JSON, [`Error::NotDictionary`] for JSON that is neither object nor array.
pub fn decode_result(bytes: &[u8], limit: usize) -> Result<Value> {
    if bytes.len() > limit {
        return Err(Error::ResultTooLarge {
            size: bytes.len(),
            limit,
        });
    }
    let text = std::str::from_utf8(bytes)
        .map_err(|e| Error::Abi(format!("the result is not UTF-8: {e}")))?;
    let value: Value = serde_json::from_str(text)
        .map_err(|e| Error::Abi(format!("the result is not valid JSON: {e}")))?;
    match value {
        Value::Object(_) | Value::Array(_) => Ok(value),
        _ => Err(Error::NotDictionary),
    }
}

/// Take a command module's result off its stdout.
///
/// The result is the last non-empty line (OpenWhisk's dockerskeleton
/// convention); it is removed from the returned log, which keeps everything
/// else. Returns `(result_line, log)`.
pub fn split_command_stdout(mut stdout: Vec<u8>) -> (Option<Vec<u8>>, Vec<u8>) {
    let is_blank = |line: &[u8]| line.iter().all(u8::is_ascii_whitespace);
    let mut end = stdout.len();
    loop {
        let start = stdout[..end]
            .iter()
            .rposition(|&b| b == b'\n')
            .map_or(0, |i| i + 1);
        let line = &stdout[start..end];
        if !is_blank(line) {
            let result = line.to_vec();
            // Drop the line and whatever blank lines followed it.
            stdout.truncate(start);
            return (Some(result), stdout);
        }
        if start == 0 {
            return (None, stdout);
        }
        end = start - 1;
    }
}

/// Decode a command module's result from its stdout (see
/// [`split_command_stdout`]); returns the result and the remaining log.
///
/// # Errors
/// As [`decode_result`]; no non-empty line at all is [`Error::NotDictionary`].
pub fn command_result(stdout: Vec<u8>, limit: usize) -> (Result<Value>, Vec<u8>) {
    match split_command_stdout(stdout) {
        (Some(line), log) => (decode_result(&line, limit), log),
        (None, log) => (Err(Error::NotDictionary), log),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn pack_and_unpack_are_inverse_for_high_addresses() {
        for (p, l) in [
            (0, 0),
            (1, 2),
            (0xffff_fff0, 0x10),
            (0x8000_0000, 0xffff_ffff),
        ] {
            assert_eq!(unpack(pack(p, l)), (p, l));
        }
        assert_eq!(unpack((5i64 << 32) | 7), (5, 7));
    }

    #[test]
    fn guest_range_refuses_overflow_and_out_of_bounds() {
        assert_eq!(guest_range(10, 5, 15, "x").unwrap(), 10..15);
        assert!(guest_range(10, 6, 15, "x").is_err());
        assert!(guest_range(0, 0, 0, "x").is_ok());
        assert!(guest_range(u32::MAX, 2, 1 << 20, "result").is_err());
    }

    #[test]
    fn decode_result_classifies() {
        assert_eq!(decode_result(br#"{"a":1}"#, 100).unwrap(), json!({"a": 1}));
        assert_eq!(decode_result(b"[1]", 100).unwrap(), json!([1]));
        assert_eq!(decode_result(br#""s""#, 100), Err(Error::NotDictionary));
        assert!(matches!(decode_result(b"{", 100), Err(Error::Abi(_))));
        assert!(matches!(
            decode_result(&[0xff, 0xfe], 100),
            Err(Error::Abi(_))
        ));
        assert!(matches!(
            decode_result(b"[1,2,3]", 3),
            Err(Error::ResultTooLarge { size: 7, limit: 3 })
        ));
    }

    #[test]
    fn command_result_is_last_non_empty_line() {
        let (line, log) = split_command_stdout(b"log 1\n{\"a\":1}\n\n  \n".to_vec());
        assert_eq!(line.unwrap(), b"{\"a\":1}");
        assert_eq!(log, b"log 1\n");
        let (line, log) = split_command_stdout(b"{\"only\":true}".to_vec());
        assert_eq!(line.unwrap(), b"{\"only\":true}");
        assert!(log.is_empty());
        let (line, log) = split_command_stdout(b"\n\n".to_vec());
        assert!(line.is_none());
        assert_eq!(log, b"\n\n");
        assert_eq!(command_result(Vec::new(), 10).0, Err(Error::NotDictionary));
    }
}
