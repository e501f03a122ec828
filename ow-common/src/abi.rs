//! The action ABI, version 1: the engine-neutral half.
//!
//! `docs/abi.md` is the specification; this module holds its names and the
//! decoding every engine shares, so that all engines agree byte for byte.

use crate::error::{Error, Result};

/// The highest version of the ABI described in `docs/abi.md` (2: the
/// `ow_host_v1` state functions; modules that import none are version 1).
pub const ABI_VERSION: u32 = 2;

/// SDK modules export their linear memory under this name.
pub const EXPORT_MEMORY: &str = "memory";
/// SDK modules export `ow_alloc(size: i32) -> i32`; its presence marks an SDK module.
pub const EXPORT_ALLOC: &str = "ow_alloc";
/// Called once per instance before anything else, when exported.
pub const EXPORT_INITIALIZE: &str = "_initialize";
/// A proto-function: run once at /init, after `_initialize`; activations
/// start from the snapshot of the instance it leaves (docs/abi.md).
pub const EXPORT_ZYGOTE: &str = "ow_zygote";
/// The entry point of a WASI command module.
pub const EXPORT_START: &str = "_start";
/// Import module of the host functions (ABI version 2: the state functions
/// of [`crate::state::IMPORTS`]). A module importing anything else from it
/// fails /init with an unknown-import error.
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

/// Whether `wasm` exports a function named `name` (a quick scan of the
/// export section; a module that does not parse exports nothing).
pub fn exports_function(wasm: &[u8], name: &str) -> bool {
    for payload in wasmparser::Parser::new(0).parse_all(wasm) {
        match payload {
            Ok(wasmparser::Payload::ExportSection(exports)) => {
                return exports
                    .into_iter()
                    .flatten()
                    .any(|e| e.name == name && e.kind == wasmparser::ExternalKind::Func);
            }
            Ok(wasmparser::Payload::CodeSectionStart { .. }) | Err(_) => return false,
            Ok(_) => {}
        }
    }
    false
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

/// Check a result: UTF-8 JSON that is an object or an array, at most
/// `limit` bytes long. The bytes are returned as they are: checked by a
/// parser that builds nothing, never turned into a tree.
///
/// # Errors
/// [`Error::ResultTooLarge`], [`Error::Abi`] for bytes that are not UTF-8 or
/// not JSON, [`Error::NotDictionary`] for JSON that is neither object nor array.
pub fn decode_result(bytes: Vec<u8>, limit: usize) -> Result<Vec<u8>> {
    if bytes.len() > limit {
        return Err(Error::ResultTooLarge {
            size: bytes.len(),
            limit,
        });
    }
    let text = std::str::from_utf8(&bytes)
        .map_err(|e| Error::Abi(format!("the result is not UTF-8: {e}")))?;
    serde_json::from_str::<serde::de::IgnoredAny>(text)
        .map_err(|e| Error::Abi(format!("the result is not valid JSON: {e}")))?;
    match text.trim_start().as_bytes().first() {
        Some(b'{' | b'[') => Ok(bytes),
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
pub fn command_result(stdout: Vec<u8>, limit: usize) -> (Result<Vec<u8>>, Vec<u8>) {
    match split_command_stdout(stdout) {
        (Some(line), log) => (decode_result(line, limit), log),
        (None, log) => (Err(Error::NotDictionary), log),
    }
}

/// A WebAssembly value type, as far as the ABI cares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ValKind {
    /// `i32`
    I32,
    /// `i64`
    I64,
    /// Any other type, by its name in the text format.
    Other(String),
}

impl std::fmt::Display for ValKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ValKind::I32 => f.write_str("i32"),
            ValKind::I64 => f.write_str("i64"),
            ValKind::Other(name) => f.write_str(name),
        }
    }
}

/// An export of a module, described without any engine's types.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExportKind {
    /// A function and its signature.
    Func {
        /// Parameter types.
        params: Vec<ValKind>,
        /// Result types.
        results: Vec<ValKind>,
    },
    /// A linear memory.
    Memory {
        /// True for a 64-bit (memory64) memory.
        is_64: bool,
    },
    /// A global, table or tag.
    Other,
}

fn signature(params: &[ValKind], results: &[ValKind]) -> String {
    let list = |tys: &[ValKind]| {
        tys.iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    };
    format!("({}) -> ({})", list(params), list(results))
}

fn expect_func(
    exports: &dyn Fn(&str) -> Option<ExportKind>,
    name: &str,
    want_params: &[ValKind],
    want_results: &[ValKind],
) -> Result<()> {
    match exports(name) {
        Some(ExportKind::Func { params, results })
            if params == want_params && results == want_results =>
        {
            Ok(())
        }
        Some(ExportKind::Func { params, results }) => Err(Error::ExportType {
            name: name.to_owned(),
            expected: signature(want_params, want_results),
            found: signature(&params, &results),
        }),
        Some(_) => Err(Error::ExportType {
            name: name.to_owned(),
            expected: signature(want_params, want_results),
            found: "a non-function export".to_owned(),
        }),
        None => Err(Error::MissingExport {
            kind: "function",
            name: name.to_owned(),
        }),
    }
}

/// Every export of `wasm` with its kind, read from the binary without an
/// engine (for the precompiler's manifest).
///
/// # Errors
/// [`Error::InvalidModule`] for bytes that do not parse.
pub fn exports(wasm: &[u8]) -> Result<Vec<(String, ExportKind)>> {
    use wasmparser::{CompositeInnerType, ExternalKind, Parser, Payload, TypeRef, ValType};
    let invalid = |e: wasmparser::BinaryReaderError| Error::InvalidModule(e.to_string());
    let kind = |ty: ValType| match ty {
        ValType::I32 => ValKind::I32,
        ValType::I64 => ValKind::I64,
        other => ValKind::Other(other.to_string()),
    };
    let mut types: Vec<Option<ExportKind>> = Vec::new();
    // The type index of every function, imported ones first.
    let mut funcs: Vec<u32> = Vec::new();
    let mut exports = Vec::new();
    for payload in Parser::new(0).parse_all(wasm) {
        match payload.map_err(invalid)? {
            Payload::TypeSection(section) => {
                for group in section {
                    for sub in group.map_err(invalid)?.into_types() {
                        types.push(match &sub.composite_type.inner {
                            CompositeInnerType::Func(f) => Some(ExportKind::Func {
                                params: f.params().iter().map(|&t| kind(t)).collect(),
                                results: f.results().iter().map(|&t| kind(t)).collect(),
                            }),
                            _ => None,
                        });
                    }
                }
            }
            Payload::ImportSection(section) => {
                for import in section.into_imports() {
                    if let TypeRef::Func(ty) = import.map_err(invalid)?.ty {
                        funcs.push(ty);
                    }
                }
            }
            Payload::FunctionSection(section) => {
                for ty in section {
                    funcs.push(ty.map_err(invalid)?);
                }
            }
            Payload::ExportSection(section) => {
                for export in section {
                    let export = export.map_err(invalid)?;
                    let described = match export.kind {
                        ExternalKind::Func => funcs
                            .get(export.index as usize)
                            .and_then(|&ty| types.get(ty as usize).cloned().flatten())
                            .unwrap_or(ExportKind::Other),
                        ExternalKind::Memory => ExportKind::Memory { is_64: false },
                        _ => ExportKind::Other,
                    };
                    exports.push((export.name.to_owned(), described));
                }
            }
            _ => {}
        }
    }
    Ok(exports)
}

/// Refuse, at /init, a module that defines a table larger than `max`
/// elements (its declared minimum; growth past `max` is the engines' job).
///
/// Bytes that do not parse are left to the engine, which says why in its
/// own words.
///
/// # Errors
/// [`Error::InvalidModule`] naming the table and the limit.
pub fn check_tables(wasm: &[u8], max: u32) -> Result<()> {
    use wasmparser::{Parser, Payload};
    for payload in Parser::new(0).parse_all(wasm) {
        let Ok(payload) = payload else { return Ok(()) };
        if let Payload::TableSection(tables) = payload {
            for (index, table) in tables.into_iter().enumerate() {
                let Ok(table) = table else { return Ok(()) };
                if table.ty.initial > u64::from(max) {
                    return Err(Error::InvalidModule(format!(
                        "table {index} holds {} elements at start, more than the limit of {max}",
                        table.ty.initial
                    )));
                }
            }
        }
    }
    Ok(())
}

/// Decide which ABI a module follows and type-check its exports, at /init.
///
/// `exports` looks an export up by name. An export `ow_alloc` makes it an
/// SDK module (then `memory`, `ow_alloc` and `entry` must have the ABI's
/// types); else `_start` makes it a command module.
///
/// # Errors
/// [`Error::UnknownAbi`], [`Error::MissingExport`] or [`Error::ExportType`].
pub fn classify(exports: &dyn Fn(&str) -> Option<ExportKind>, entry: &str) -> Result<ActionAbi> {
    use ValKind::{I32, I64};
    if exports(EXPORT_ALLOC).is_some() {
        expect_func(exports, EXPORT_ALLOC, &[I32], &[I32])?;
        match exports(EXPORT_MEMORY) {
            Some(ExportKind::Memory { is_64: false }) => {}
            Some(_) => {
                return Err(Error::ExportType {
                    name: EXPORT_MEMORY.to_owned(),
                    expected: "a 32-bit memory".to_owned(),
                    found: "another kind of export".to_owned(),
                });
            }
            None => {
                return Err(Error::MissingExport {
                    kind: "memory",
                    name: EXPORT_MEMORY.to_owned(),
                });
            }
        }
        expect_func(exports, entry, &[I32, I32], &[I64])?;
        check_initialize(exports)?;
        Ok(ActionAbi::Sdk)
    } else if exports(EXPORT_START).is_some() {
        expect_func(exports, EXPORT_START, &[], &[])?;
        check_initialize(exports)?;
        Ok(ActionAbi::Command)
    } else {
        Err(Error::UnknownAbi)
    }
}

/// Every engine calls `_initialize` (when exported) before anything else,
/// whatever the ABI, so its type is checked at /init for both: the host
/// sizes no buffer for results it does not expect.
fn check_initialize(exports: &dyn Fn(&str) -> Option<ExportKind>) -> Result<()> {
    match exports(EXPORT_INITIALIZE) {
        Some(_) => expect_func(exports, EXPORT_INITIALIZE, &[], &[]),
        None => Ok(()),
    }
}

/// One instance of an SDK module, as an engine exposes it to
/// [`call_sdk`]. Each method is a thin wrapper over the engine's API.
pub trait SdkInstance {
    /// The engine's error type; ABI violations are converted into it.
    type Error: From<Error>;
    /// Call `ow_alloc(len)`.
    fn alloc(&mut self, len: u32) -> Result<u32, Self::Error>;
    /// Call the entry point with `(ptr, len)`.
    fn call_entry(&mut self, ptr: u32, len: u32) -> Result<i64, Self::Error>;
    /// The current size of the exported memory, in bytes.
    fn memory_size(&mut self) -> usize;
    /// Copy `bytes` into memory at `offset` (already bounds-checked).
    fn write(&mut self, offset: usize, bytes: &[u8]) -> Result<(), Self::Error>;
    /// Copy `range` out of memory (already bounds-checked).
    fn read(&mut self, range: std::ops::Range<usize>) -> Result<Vec<u8>, Self::Error>;
}

/// The SDK half of an activation, the same on every engine: params into a
/// buffer from `ow_alloc`, call the entry point, copy the result out. Every
/// guest pointer and length is checked against the memory first.
///
/// # Errors
/// The engine's errors, and [`Error::Abi`] / [`Error::ResultTooLarge`] for a
/// guest that breaks the ABI.
pub fn call_sdk<I: SdkInstance>(
    inst: &mut I,
    params: &[u8],
    max_result: usize,
) -> Result<Vec<u8>, I::Error> {
    let len = params_len(params)?;
    let ptr = inst.alloc(len)?;
    let range = guest_range(ptr, len, inst.memory_size(), "the buffer from ow_alloc")?;
    inst.write(range.start, params)?;
    let ret = inst.call_entry(ptr, len)?;
    let range = result_range(ret, inst.memory_size(), max_result)?;
    inst.read(range)
}

/// The params' length as the guest sees it (an `i32`).
///
/// # Errors
/// [`Error::Abi`] past 4 GiB.
pub fn params_len(params: &[u8]) -> Result<u32> {
    u32::try_from(params.len()).map_err(|_| Error::Abi("the parameters exceed 4 GiB".into()))
}

/// Where the entry point's packed return value `ret` says the result is,
/// checked against the memory and the result limit. Engines that call the
/// guest asynchronously (wasmtime) follow [`call_sdk`]'s sequence with this
/// and [`params_len`] / [`guest_range`].
///
/// # Errors
/// [`Error::ResultTooLarge`], or [`Error::Abi`] for a range outside memory.
pub fn result_range(
    ret: i64,
    memory_size: usize,
    max_result: usize,
) -> Result<std::ops::Range<usize>> {
    let (ptr, len) = unpack(ret);
    if len as usize > max_result {
        return Err(Error::ResultTooLarge {
            size: len as usize,
            limit: max_result,
        });
    }
    guest_range(ptr, len, memory_size, "the result")
}

/// Turn what an engine got from a module into the activation's output:
/// decode the SDK result, or take a command module's result off its stdout.
pub fn finish(
    abi: ActionAbi,
    raw: Result<Vec<u8>>,
    stdout: Vec<u8>,
    stderr: Vec<u8>,
    logs_truncated: bool,
    max_result: usize,
) -> crate::ActivationOutput {
    let (result, stdout) = match (abi, raw) {
        (ActionAbi::Sdk, Ok(bytes)) => (decode_result(bytes, max_result), stdout),
        (ActionAbi::Command, Ok(_)) => command_result(stdout, max_result),
        (_, Err(e)) => (Err(e), stdout),
    };
    crate::ActivationOutput {
        result,
        stdout,
        stderr,
        logs_truncated,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exports_are_described_from_the_binary() {
        let module = wat::parse_str(
            r#"(module (import "wasi_snapshot_preview1" "fd_write" (func (param i32 i32 i32 i32) (result i32)))
                 (memory (export "memory") 1)
                 (func (export "ow_alloc") (param i32) (result i32) (i32.const 0))
                 (func (export "main") (param i32 i32) (result i64) (i64.const 0)))"#,
        )
        .unwrap();
        let found = exports(&module).unwrap();
        assert_eq!(
            found[0],
            ("memory".into(), ExportKind::Memory { is_64: false })
        );
        assert_eq!(
            found[2],
            (
                "main".into(),
                ExportKind::Func {
                    params: vec![ValKind::I32, ValKind::I32],
                    results: vec![ValKind::I64]
                }
            )
        );
        let lookup = |name: &str| {
            found
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, k)| k.clone())
        };
        assert_eq!(classify(&lookup, "main").unwrap(), ActionAbi::Sdk);
        assert!(exports(b"\0asm\x01\0\0\0garbage").is_err());
    }

    #[test]
    fn tables_above_the_limit_are_refused_before_compiling() {
        let module = wat::parse_str("(module (table 100 funcref) (table 5000 funcref))").unwrap();
        assert!(check_tables(&module, 5000).is_ok());
        let err = check_tables(&module, 4999).unwrap_err().to_string();
        assert!(err.contains("table 1") && err.contains("4999"), "{err}");
        // Not wasm at all: left to the engine to explain.
        assert!(check_tables(b"not wasm", 1).is_ok());
    }

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
        let check = |bytes: &[u8], limit| decode_result(bytes.to_vec(), limit);
        assert_eq!(check(br#" {"a":1}"#, 100).unwrap(), br#" {"a":1}"#);
        assert_eq!(check(b"[1]", 100).unwrap(), b"[1]");
        assert_eq!(check(br#""s""#, 100), Err(Error::NotDictionary));
        assert_eq!(check(b"12", 100), Err(Error::NotDictionary));
        assert!(matches!(check(b"{", 100), Err(Error::Abi(_))));
        assert!(matches!(check(br#"{"a":1} x"#, 100), Err(Error::Abi(_))));
        assert!(matches!(check(&[0xff, 0xfe], 100), Err(Error::Abi(_))));
        assert!(matches!(
            check(b"{\"s\":\"\xff\"}", 100),
            Err(Error::Abi(_))
        ));
        assert!(matches!(
            check(b"[1,2,3]", 3),
            Err(Error::ResultTooLarge { size: 7, limit: 3 })
        ));
    }

    fn lookup<'a>(
        exports: &'a [(&'a str, ExportKind)],
    ) -> impl Fn(&str) -> Option<ExportKind> + 'a {
        move |name| {
            exports
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, k)| k.clone())
        }
    }

    fn func(params: &[ValKind], results: &[ValKind]) -> ExportKind {
        ExportKind::Func {
            params: params.to_vec(),
            results: results.to_vec(),
        }
    }

    #[test]
    fn classify_recognises_both_abis_and_names_what_is_wrong() {
        use ValKind::{I32, I64};
        let sdk = [
            ("memory", ExportKind::Memory { is_64: false }),
            ("ow_alloc", func(&[I32], &[I32])),
            ("main", func(&[I32, I32], &[I64])),
        ];
        assert_eq!(classify(&lookup(&sdk), "main"), Ok(ActionAbi::Sdk));
        assert_eq!(
            classify(&lookup(&sdk), "niam"),
            Err(Error::MissingExport {
                kind: "function",
                name: "niam".into()
            })
        );
        let bad_entry = [
            ("memory", ExportKind::Memory { is_64: false }),
            ("ow_alloc", func(&[I32], &[I32])),
            ("main", func(&[I32], &[I32])),
        ];
        assert!(matches!(classify(&lookup(&bad_entry), "main"),
            Err(Error::ExportType { found, .. }) if found == "(i32) -> (i32)"));
        let no_memory = [
            ("ow_alloc", func(&[I32], &[I32])),
            ("main", func(&[I32, I32], &[I64])),
        ];
        assert!(matches!(
            classify(&lookup(&no_memory), "main"),
            Err(Error::MissingExport { kind: "memory", .. })
        ));
        let command = [
            ("_start", func(&[], &[])),
            ("memory", ExportKind::Memory { is_64: false }),
        ];
        assert_eq!(classify(&lookup(&command), "main"), Ok(ActionAbi::Command));
        // `_initialize` is called by every engine: typed at /init for both ABIs.
        for abi in [&sdk[..], &command[..]] {
            let mut bad_init = abi.to_vec();
            bad_init.push(("_initialize", func(&[], &[I64])));
            assert_eq!(
                classify(&lookup(&bad_init), "main"),
                Err(Error::ExportType {
                    name: "_initialize".into(),
                    expected: "() -> ()".into(),
                    found: "() -> (i64)".into(),
                })
            );
        }
        assert_eq!(
            classify(&lookup(&[("hello", func(&[], &[]))]), "main"),
            Err(Error::UnknownAbi)
        );
    }

    /// An instance over a plain byte vector, with a scripted entry point.
    struct FakeInstance {
        memory: Vec<u8>,
        alloc_at: u32,
        entry_returns: i64,
    }

    impl SdkInstance for FakeInstance {
        type Error = Error;
        fn alloc(&mut self, _len: u32) -> Result<u32> {
            Ok(self.alloc_at)
        }
        fn call_entry(&mut self, _ptr: u32, _len: u32) -> Result<i64> {
            Ok(self.entry_returns)
        }
        fn memory_size(&mut self) -> usize {
            self.memory.len()
        }
        fn write(&mut self, offset: usize, bytes: &[u8]) -> Result<()> {
            self.memory[offset..offset + bytes.len()].copy_from_slice(bytes);
            Ok(())
        }
        fn read(&mut self, range: std::ops::Range<usize>) -> Result<Vec<u8>> {
            Ok(self.memory[range].to_vec())
        }
    }

    #[test]
    fn call_sdk_checks_every_guest_range() {
        let mut ok = FakeInstance {
            memory: vec![0; 64],
            alloc_at: 8,
            entry_returns: pack(8, 4),
        };
        assert_eq!(call_sdk(&mut ok, b"{}[]", 100).unwrap(), b"{}[]");
        let mut bad_alloc = FakeInstance {
            memory: vec![0; 64],
            alloc_at: 62,
            entry_returns: 0,
        };
        assert!(
            matches!(call_sdk(&mut bad_alloc, b"{}[]", 100), Err(Error::Abi(m)) if m.contains("ow_alloc"))
        );
        let mut bad_result = FakeInstance {
            memory: vec![0; 64],
            alloc_at: 0,
            entry_returns: pack(60, 5),
        };
        assert!(
            matches!(call_sdk(&mut bad_result, b"{}", 100), Err(Error::Abi(m)) if m.contains("result"))
        );
        let mut too_big = FakeInstance {
            memory: vec![0; 64],
            alloc_at: 0,
            entry_returns: pack(0, 50),
        };
        assert!(matches!(
            call_sdk(&mut too_big, b"{}", 10),
            Err(Error::ResultTooLarge {
                size: 50,
                limit: 10
            })
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
