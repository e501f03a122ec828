#![doc = include_str!("../README.md")]

use ow_artifact::manifest::{self, FORMAT_VERSION};
use ow_artifact::{Artifact, FileRef, Manifest, SigningKey, WASM_NAME};
use ow_common::abi::{self, ActionAbi, ExportKind, ValKind};
use ow_common::{Error, Result, WasmRuntime};
use std::io::{Cursor, Write as _};

/// The file name of an engine's artifact inside the zip.
pub fn artifact_name(engine: &str) -> String {
    match engine {
        "wasmtime" => "wasmtime.cwasm".to_owned(),
        "wasmer" => "wasmer.wasmu".to_owned(),
        other => format!("{other}.bin"),
    }
}

/// The module's ABI and the entry points it can be run by: every export
/// with the SDK entry signature `(i32, i32) -> i64`, or `_start`.
///
/// # Errors
/// [`Error::InvalidModule`], [`Error::UnknownAbi`] or the ABI's type errors.
pub fn describe(wasm: &[u8]) -> Result<(ActionAbi, Vec<String>)> {
    let exports = abi::exports(wasm)?;
    let lookup = |name: &str| {
        exports
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, k)| k.clone())
    };
    let sdk_entry = ExportKind::Func {
        params: vec![ValKind::I32, ValKind::I32],
        results: vec![ValKind::I64],
    };
    let entries: Vec<String> = exports
        .iter()
        .filter(|(name, kind)| *kind == sdk_entry && name != abi::EXPORT_ALLOC)
        .map(|(name, _)| name.clone())
        .collect();
    let first = entries.first().map_or("main", String::as_str);
    match abi::classify(&lookup, first)? {
        ActionAbi::Sdk => Ok((ActionAbi::Sdk, entries)),
        ActionAbi::Command => Ok((ActionAbi::Command, vec![abi::EXPORT_START.to_owned()])),
    }
}

/// The target triple the artifacts are made for (this build's).
pub fn target() -> String {
    env!("OW_TARGET_TRIPLE").to_owned()
}

/// The host CPU's features that code generators use, as detected now.
pub fn cpu_features() -> Vec<String> {
    #[cfg(target_arch = "x86_64")]
    {
        let mut found = Vec::new();
        macro_rules! detect {
            ($($feature:tt),*) => {
                $(if std::is_x86_feature_detected!($feature) {
                    found.push($feature.to_owned());
                })*
            };
        }
        detect!(
            "sse3",
            "ssse3",
            "sse4.1",
            "sse4.2",
            "popcnt",
            "avx",
            "avx2",
            "bmi1",
            "bmi2",
            "fma",
            "lzcnt",
            "avx512f",
            "avx512vl",
            "avx512dq",
            "avx512bw",
            "avx512vbmi"
        );
        found
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        Vec::new()
    }
}

/// Build a precompiler zip: `action.wasm`, one artifact per engine, and
/// `manifest.json` (signed when `key` is given). The same inputs give the
/// same bytes: entries in a fixed order, fixed timestamps, stored (not
/// compressed, so that /init reads native code without inflating it).
///
/// # Errors
/// The module's errors, or an engine that has no precompiled form.
pub fn package(
    wasm: &[u8],
    engines: &[&dyn WasmRuntime],
    key: Option<&SigningKey>,
) -> Result<Vec<u8>> {
    let (abi, entry_points) = describe(wasm)?;
    let mut files: Vec<(String, Vec<u8>)> = vec![(WASM_NAME.to_owned(), wasm.to_vec())];
    let mut artifacts = Vec::new();
    for engine in engines {
        let compatibility_hash = engine.compatibility_hash().ok_or_else(|| {
            Error::Unsupported(format!("{} has no precompiled form", engine.name()))
        })?;
        let bytes = engine.precompile(wasm)?;
        let name = artifact_name(engine.name());
        artifacts.push(Artifact {
            engine: engine.name().to_owned(),
            engine_version: engine.version().to_owned(),
            compatibility_hash,
            target: target(),
            cpu_features: cpu_features(),
            file: FileRef::of(&name, &bytes),
        });
        files.push((name, bytes));
    }
    let manifest = Manifest {
        format: FORMAT_VERSION,
        abi: abi.to_string(),
        entry_points,
        wasm: FileRef::of(WASM_NAME, wasm),
        artifacts,
    };
    files.push((
        ow_artifact::MANIFEST_NAME.to_owned(),
        manifest::encode(&manifest, key),
    ));
    write_zip(&files).map_err(|e| Error::Resources(format!("cannot write the zip: {e}")))
}

fn write_zip(files: &[(String, Vec<u8>)]) -> zip::result::ZipResult<Vec<u8>> {
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Stored)
        .last_modified_time(zip::DateTime::default())
        .unix_permissions(0o644);
    let mut zip = zip::ZipWriter::new(Cursor::new(Vec::new()));
    for (name, bytes) in files {
        zip.start_file(name.as_str(), options)?;
        zip.write_all(bytes)?;
    }
    Ok(zip.finish()?.into_inner())
}
