//! WAMR runs guest code inside `wasm_runtime_instantiate`: the start
//! function, then `_initialize` (for modules importing WASI),
//! `__post_instantiate` and `__wasm_call_ctors` (for other modules), each
//! when it is exported with type `() -> ()` (`execute_post_instantiate_functions`
//! in `core/iwasm/interpreter/wasm_runtime.c`). No instance exists yet to
//! terminate while that code runs, so a guest spinning there would escape
//! its deadline and hold its activation slot for good.
//!
//! At /init the module is therefore rewritten so that instantiation runs no
//! guest code: the start section is removed and its function exported as
//! [`START_EXPORT`], and the exports WAMR would call by name are renamed
//! under [`RESERVED_PREFIX`]. The activation then calls the start function
//! and `_initialize` itself, in that order, once the instance is armed for
//! termination. `__post_instantiate` and `__wasm_call_ctors` are not called
//! at all, as on wasmtime and wasmer.

use ow_common::{Error, Result};
use std::borrow::Cow;
use wasmparser::{ExternalKind, Parser, Payload};

/// Export names the rewrite uses; a module's own exports may not start so.
pub(crate) const RESERVED_PREFIX: &str = "ow-internal:";

/// Where the module's start function is exported after the rewrite.
pub(crate) const START_EXPORT: &str = "ow-internal:start";

/// Exports WAMR calls by itself during instantiation.
const CALLED_BY_WAMR: [&str; 3] = ["_initialize", "__post_instantiate", "__wasm_call_ctors"];

/// The name an export of the original module has in the rewritten one.
pub(crate) fn loaded_name(name: &str) -> Cow<'_, str> {
    match CALLED_BY_WAMR.contains(&name) {
        true => Cow::Owned(format!("{RESERVED_PREFIX}{name}")),
        false => Cow::Borrowed(name),
    }
}

/// The position of a known section in a module (custom sections have none).
fn rank(id: u8) -> Option<u8> {
    // Type, import, function, table, memory, tag, global, export, start,
    // element, data count, code, data.
    const ORDER: [u8; 13] = [1, 2, 3, 4, 5, 13, 6, 7, 8, 9, 12, 10, 11];
    ORDER.iter().position(|&x| x == id).map(|p| p as u8)
}

/// `wasm` rewritten so that instantiating it runs no guest code; borrowed
/// unchanged when it has no start function and exports none of the names
/// WAMR calls.
///
/// # Errors
/// [`Error::InvalidModule`] when the module does not parse, or uses the
/// reserved export prefix.
pub(crate) fn defer_instantiation_code(wasm: &[u8]) -> Result<Cow<'_, [u8]>> {
    let invalid = |e: wasmparser::BinaryReaderError| Error::InvalidModule(e.to_string());
    // (id, content range) of every section, in order.
    let mut sections: Vec<(u8, std::ops::Range<usize>)> = Vec::new();
    let mut start = None;
    let mut exports: Option<Vec<(String, ExternalKind, u32)>> = None;
    for payload in Parser::new(0).parse_all(wasm) {
        let payload = payload.map_err(invalid)?;
        match &payload {
            Payload::StartSection { func, .. } => start = Some(*func),
            Payload::ExportSection(reader) => {
                let mut list = Vec::new();
                for export in reader.clone() {
                    let export = export.map_err(invalid)?;
                    if export.name.starts_with(RESERVED_PREFIX) {
                        return Err(Error::InvalidModule(format!(
                            "export names beginning with `{RESERVED_PREFIX}` are reserved (found `{}`)",
                            export.name
                        )));
                    }
                    list.push((export.name.to_owned(), export.kind, export.index));
                }
                exports = Some(list);
            }
            _ => {}
        }
        if let Some(section) = payload.as_section() {
            sections.push(section);
        }
    }
    let renames = exports
        .iter()
        .flatten()
        .any(|(name, ..)| CALLED_BY_WAMR.contains(&name.as_str()));
    if start.is_none() && !renames {
        return Ok(Cow::Borrowed(wasm));
    }
    let mut export_section = wasm_encoder::ExportSection::new();
    for (name, kind, index) in exports.iter().flatten() {
        let kind = match kind {
            ExternalKind::Func => wasm_encoder::ExportKind::Func,
            ExternalKind::Table => wasm_encoder::ExportKind::Table,
            ExternalKind::Memory => wasm_encoder::ExportKind::Memory,
            ExternalKind::Global => wasm_encoder::ExportKind::Global,
            ExternalKind::Tag => wasm_encoder::ExportKind::Tag,
            ExternalKind::FuncExact => {
                return Err(Error::InvalidModule(
                    "exact function exports are not supported".into(),
                ));
            }
        };
        export_section.export(&loaded_name(name), kind, *index);
    }
    if let Some(func) = start {
        export_section.export(START_EXPORT, wasm_encoder::ExportKind::Func, func);
    }
    let export_rank = rank(wasm_encoder::SectionId::Export as u8);
    let mut module = wasm_encoder::Module::new();
    let mut exports_written = false;
    for (id, range) in sections {
        let section_rank = rank(id);
        if id == wasm_encoder::SectionId::Start as u8 {
            continue;
        }
        if id == wasm_encoder::SectionId::Export as u8 {
            module.section(&export_section);
            exports_written = true;
            continue;
        }
        if !exports_written && section_rank.is_some() && section_rank > export_rank {
            module.section(&export_section);
            exports_written = true;
        }
        module.section(&wasm_encoder::RawSection {
            id,
            data: &wasm[range],
        });
    }
    if !exports_written {
        module.section(&export_section);
    }
    Ok(Cow::Owned(module.finish()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn export_names(wasm: &[u8]) -> Vec<String> {
        ow_common::abi::exports(wasm)
            .unwrap()
            .into_iter()
            .map(|(name, _)| name)
            .collect()
    }

    fn has_start(wasm: &[u8]) -> bool {
        Parser::new(0)
            .parse_all(wasm)
            .any(|p| matches!(p, Ok(Payload::StartSection { .. })))
    }

    #[test]
    fn start_and_instantiation_hooks_become_plain_exports() {
        let wasm = wat::parse_str(
            r#"(module
                 (memory (export "memory") 1)
                 (func $s) (start $s)
                 (func (export "_initialize"))
                 (func (export "__wasm_call_ctors"))
                 (func (export "main") (param i32 i32) (result i64) i64.const 0)
                 (data (i32.const 0) "hi"))"#,
        )
        .unwrap();
        let out = defer_instantiation_code(&wasm).unwrap();
        wasmparser::Validator::new().validate_all(&out).unwrap();
        assert!(!has_start(&out));
        assert_eq!(
            export_names(&out),
            [
                "memory",
                "ow-internal:_initialize",
                "ow-internal:__wasm_call_ctors",
                "main",
                "ow-internal:start"
            ]
        );
    }

    #[test]
    fn a_start_function_without_exports_gets_an_export_section_in_order() {
        let wasm = wat::parse_str(
            "(module (func $s) (start $s) (elem func $s) (func (drop (i32.const 1))))",
        )
        .unwrap();
        let out = defer_instantiation_code(&wasm).unwrap();
        wasmparser::Validator::new().validate_all(&out).unwrap();
        assert!(!has_start(&out));
        assert_eq!(export_names(&out), ["ow-internal:start"]);
    }

    #[test]
    fn plain_modules_are_borrowed_and_reserved_names_refused() {
        let plain = wat::parse_str(r#"(module (func (export "_start")))"#).unwrap();
        assert!(matches!(
            defer_instantiation_code(&plain).unwrap(),
            Cow::Borrowed(_)
        ));
        let reserved = wat::parse_str(r#"(module (func (export "ow-internal:x")))"#).unwrap();
        let err = defer_instantiation_code(&reserved).unwrap_err().to_string();
        assert!(err.contains("reserved"), "{err}");
    }
}
