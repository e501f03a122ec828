#![doc = include_str!("../README.md")]

pub mod manifest;

pub use manifest::{
    Artifact, FileRef, MANIFEST_NAME, Manifest, SigningKey, TrustError, TrustPolicy, WASM_NAME,
};

use std::io::{Cursor, Read};

const WASM_MAGIC: &[u8] = b"\0asm";
const ZIP_MAGIC: &[u8] = b"PK\x03\x04";
/// Largest module accepted, compressed or not: OpenWhisk's 48 MB code limit.
pub const MAX_MODULE_BYTES: u64 = 48 * 1024 * 1024;
/// Most entries a zip may have.
pub const MAX_ZIP_ENTRIES: usize = 1024;
/// The name that wins when a zip holds several `.wasm` files.
pub const PREFERRED_ENTRY: &str = WASM_NAME;

/// Why the code cannot be used. The executor answers [`ArtifactError::BadBase64`]
/// with 400 and [`ArtifactError::Load`] with 502.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ArtifactError {
    /// `binary` was true but the code is not base64.
    #[error("the code is not valid base64: {0}")]
    BadBase64(String),
    /// Text code, a bad zip, or bytes that are not a module.
    #[error("{0}")]
    Load(String),
}

/// Decode `code` into module bytes.
///
/// `binary` is /init's flag. When it is true, `code` must be base64. When
/// it is false or absent, `code` is still accepted if it is base64 of a
/// module or a zip (some clients do not set the flag); anything else is
/// text source, which this runtime cannot run.
///
/// # Errors
/// [`ArtifactError::BadBase64`] for bad base64 with `binary: true`,
/// [`ArtifactError::Load`] for text code, a bad zip, or bytes that are not wasm.
pub fn decode(code: &str, binary: bool) -> Result<Vec<u8>, ArtifactError> {
    decode_package(code, binary).map(Package::into_wasm)
}

/// What /init's `code` held: the module, and for a zip, the archive (which
/// may hold a precompiler [`Manifest`] and precompiled artifacts).
pub struct Package {
    wasm: Vec<u8>,
    archive: Option<zip::ZipArchive<Cursor<Vec<u8>>>>,
}

impl Package {
    /// A package of just the module `wasm` (no zip, no artifacts).
    pub fn from_wasm(wasm: Vec<u8>) -> Self {
        Self {
            wasm,
            archive: None,
        }
    }

    /// The module's bytes (`action.wasm` for a precompiler zip).
    pub fn wasm(&self) -> &[u8] {
        &self.wasm
    }

    /// The module's bytes, by value.
    pub fn into_wasm(self) -> Vec<u8> {
        self.wasm
    }

    /// Whether the zip holds a `manifest.json` (a precompiler zip).
    pub fn has_manifest(&self) -> bool {
        self.archive
            .as_ref()
            .is_some_and(|a| a.index_for_name(MANIFEST_NAME).is_some())
    }

    /// The raw bytes of entry `name`, at most `max` of them; `None` for a
    /// raw module or a zip without that entry.
    ///
    /// # Errors
    /// [`ArtifactError::Load`] when the entry is larger than `max` or does
    /// not decompress.
    pub fn read_entry(&mut self, name: &str, max: u64) -> Result<Option<Vec<u8>>, ArtifactError> {
        let Some(archive) = self.archive.as_mut() else {
            return Ok(None);
        };
        let entry = match archive.by_name(name) {
            Ok(entry) => entry,
            Err(zip::result::ZipError::FileNotFound) => return Ok(None),
            Err(e) => return Err(bad_zip(e)),
        };
        read_bounded(entry, name, max).map(Some)
    }
}

/// Decode `code` (see [`decode`]) and keep a zip's archive for
/// [`Package::read_entry`].
///
/// # Errors
/// As [`decode`].
pub fn decode_package(code: &str, binary: bool) -> Result<Package, ArtifactError> {
    // Forgiving decoding: line breaks, spaces and missing padding are
    // accepted, as uploads come from many encoders. SIMD: the code of a
    // precompiled zip is megabytes, and decoding it was the slowest step of
    // a precompiled /init.
    let decoded = base64_simd::forgiving_decode_to_vec(code.as_bytes());
    let bytes = match decoded {
        Ok(bytes) => bytes,
        Err(e) if binary => {
            return Err(ArtifactError::BadBase64(e.to_string()));
        }
        Err(_) => return Err(text_code()),
    };
    if !binary && !bytes.starts_with(WASM_MAGIC) && !bytes.starts_with(ZIP_MAGIC) {
        return Err(text_code());
    }
    package_from_bytes(bytes)
}

/// The package in `bytes`: a module, or a zip holding one (with its
/// artifacts). What the function store keeps and OCI layers hold.
///
/// # Errors
/// [`ArtifactError::Load`] for a bad zip or bytes that are neither.
pub fn package_from_bytes(bytes: Vec<u8>) -> Result<Package, ArtifactError> {
    if bytes.starts_with(WASM_MAGIC) {
        Ok(Package {
            wasm: bytes,
            archive: None,
        })
    } else if bytes.starts_with(ZIP_MAGIC) {
        // The zip crate parses the whole central directory when it opens
        // an archive: refuse one that declares too many entries first.
        if let Some(declared) = declared_entries(&bytes)
            && declared > MAX_ZIP_ENTRIES as u64
        {
            return Err(too_many_entries(declared));
        }
        let mut archive = zip::ZipArchive::new(Cursor::new(bytes)).map_err(bad_zip)?;
        let wasm = wasm_from_zip(&mut archive)?;
        Ok(Package {
            wasm,
            archive: Some(archive),
        })
    } else {
        Err(ArtifactError::Load(
            "The code is neither a WebAssembly module nor a zip archive holding one.".into(),
        ))
    }
}

fn text_code() -> ArtifactError {
    ArtifactError::Load(
        "The code is text, but this runtime runs WebAssembly: send a .wasm module or a zip holding one, \
         base64-encoded, with \"binary\": true."
            .into(),
    )
}

fn bad_zip(e: impl std::fmt::Display) -> ArtifactError {
    ArtifactError::Load(format!("The code is not a valid zip archive: {e}"))
}

fn too_many_entries(count: u64) -> ArtifactError {
    ArtifactError::Load(format!(
        "The zip archive has {count} entries, more than the {MAX_ZIP_ENTRIES} allowed."
    ))
}

/// The entry count a zip's end-of-central-directory record declares (the
/// zip64 record's, when the classic one says to look there), read without
/// parsing the central directory; `None` when no record is found, which
/// the zip crate then reports in its own words.
fn declared_entries(bytes: &[u8]) -> Option<u64> {
    const EOCD: &[u8] = b"PK\x05\x06";
    const EOCD_LEN: usize = 22;
    const ZIP64_LOCATOR: &[u8] = b"PK\x06\x07";
    const ZIP64_EOCD: &[u8] = b"PK\x06\x06";
    let u16_at = |at: usize| Some(u16::from_le_bytes(bytes.get(at..at + 2)?.try_into().ok()?));
    let u64_at = |at: usize| Some(u64::from_le_bytes(bytes.get(at..at + 8)?.try_into().ok()?));
    // The record ends the file, followed by a comment of at most 64 KiB.
    let last = bytes.len().checked_sub(EOCD_LEN)?;
    let first = last.saturating_sub(u16::MAX as usize);
    let eocd = (first..=last)
        .rev()
        .find(|&at| bytes[at..].starts_with(EOCD))?;
    let total = u16_at(eocd + 10)?;
    if total != u16::MAX {
        return Some(u64::from(total));
    }
    let locator = eocd.checked_sub(20)?;
    if !bytes[locator..].starts_with(ZIP64_LOCATOR) {
        return Some(u64::from(total));
    }
    let record = usize::try_from(u64_at(locator + 8)?).ok()?;
    if !bytes.get(record..)?.starts_with(ZIP64_EOCD) {
        return None;
    }
    u64_at(record + 32)
}

/// Find the module in a zip and read it, bounded.
fn wasm_from_zip(archive: &mut zip::ZipArchive<Cursor<Vec<u8>>>) -> Result<Vec<u8>, ArtifactError> {
    if archive.len() > MAX_ZIP_ENTRIES {
        return Err(too_many_entries(archive.len() as u64));
    }
    // The archive is never extracted, but a name that climbs out of it or is
    // absolute marks a hostile or broken upload: refuse it outright.
    if let Some(name) = archive
        .file_names()
        .filter_map(Result::ok)
        .find(|n| !is_safe_name(n))
    {
        return Err(ArtifactError::Load(format!(
            "The zip archive has an unsafe entry name: {name:?}."
        )));
    }
    let wasm_names: Vec<String> = archive
        .file_names()
        // Names that are not valid text cannot be the action's module.
        .filter_map(Result::ok)
        .filter(|name| name.ends_with(".wasm") && !name.ends_with('/'))
        .map(|name| name.into_owned())
        .collect();
    let name = match wasm_names.as_slice() {
        [] => return Err(ArtifactError::Load("The zip archive holds no .wasm file.".into())),
        [one] => one.clone(),
        several => several
            .iter()
            .find(|n| n.as_str() == PREFERRED_ENTRY)
            .cloned()
            .ok_or_else(|| {
                ArtifactError::Load(format!(
                    "The zip archive holds several .wasm files ({}); name the action's module {PREFERRED_ENTRY}.",
                    several.join(", ")
                ))
            })?,
    };
    let entry = archive.by_name(&name).map_err(bad_zip)?;
    let wasm = read_bounded(entry, &name, MAX_MODULE_BYTES)?;
    if !wasm.starts_with(WASM_MAGIC) {
        return Err(ArtifactError::Load(format!(
            "{name} in the zip archive is not a WebAssembly module."
        )));
    }
    Ok(wasm)
}

/// Read a zip entry of at most `max` bytes.
fn read_bounded<R: Read>(
    entry: zip::read::ZipFile<'_, R>,
    name: &str,
    max: u64,
) -> Result<Vec<u8>, ArtifactError> {
    if entry.size() > max {
        return Err(too_big(name, max));
    }
    let mut bytes = Vec::with_capacity(entry.size() as usize);
    // The declared size can lie: bound the read itself too.
    entry
        .take(max + 1)
        .read_to_end(&mut bytes)
        .map_err(bad_zip)?;
    if bytes.len() as u64 > max {
        return Err(too_big(name, max));
    }
    Ok(bytes)
}

/// A relative path without `..` components, as `zip`'s `enclosed_name`
/// would accept it (also refusing Windows drive and backslash forms).
fn is_safe_name(name: &str) -> bool {
    !name.starts_with(['/', '\\'])
        && !name.contains(':')
        && name.split(['/', '\\']).all(|part| part != "..")
}

fn too_big(name: &str, max: u64) -> ArtifactError {
    ArtifactError::Load(format!(
        "{name} in the zip archive is larger than {max} bytes."
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine as _;
    use std::io::Write;

    const MODULE: &[u8] = b"\0asm\x01\0\0\0";

    fn b64(bytes: &[u8]) -> String {
        base64::engine::general_purpose::STANDARD.encode(bytes)
    }

    fn zip_of(entries: &[(&str, &[u8])]) -> Vec<u8> {
        let mut w = zip::ZipWriter::new(Cursor::new(Vec::new()));
        for (name, data) in entries {
            w.start_file(*name, zip::write::SimpleFileOptions::default())
                .unwrap();
            w.write_all(data).unwrap();
        }
        w.finish().unwrap().into_inner()
    }

    #[test]
    fn a_zip_declaring_too_many_entries_is_refused_before_its_directory_is_parsed() {
        let ok = zip_of(&[("action.wasm", MODULE), ("README", b"hi")]);
        assert_eq!(declared_entries(&ok), Some(2));
        // Claim 60,000 entries in the end record of a two-entry zip: the
        // count alone refuses it (a parse would fail on the directory).
        let mut forged = ok.clone();
        let eocd = forged.len() - 22;
        assert_eq!(&forged[eocd..eocd + 4], b"PK\x05\x06");
        forged[eocd + 8..eocd + 10].copy_from_slice(&60_000u16.to_le_bytes());
        forged[eocd + 10..eocd + 12].copy_from_slice(&60_000u16.to_le_bytes());
        let err = decode(&b64(&forged), true).unwrap_err().to_string();
        assert!(err.contains("60000 entries"), "{err}");
        // A real one with 1,025 entries is refused with the same message.
        let names: Vec<String> = (0..1025).map(|i| format!("f{i}")).collect();
        let mut entries: Vec<(&str, &[u8])> =
            names.iter().map(|n| (n.as_str(), &b""[..])).collect();
        entries.push(("action.wasm", MODULE));
        let err = decode(&b64(&zip_of(&entries)), true)
            .unwrap_err()
            .to_string();
        assert!(err.contains("1026 entries"), "{err}");
        assert_eq!(declared_entries(b"PK\x03\x04 no end record"), None);
    }

    #[test]
    fn raw_module_with_or_without_padding_and_newlines() {
        assert_eq!(decode(&b64(MODULE), true).unwrap(), MODULE);
        let unpadded = b64(MODULE).trim_end_matches('=').to_owned();
        assert_eq!(decode(&unpadded, true).unwrap(), MODULE);
        let wrapped = format!("{}\n{}", &b64(MODULE)[..4], &b64(MODULE)[4..]);
        assert_eq!(decode(&wrapped, false).unwrap(), MODULE);
    }

    #[test]
    fn zip_with_one_module_or_an_action_wasm() {
        assert_eq!(
            decode(
                &b64(&zip_of(&[("x/a.wasm", MODULE), ("README", b"hi")])),
                true
            )
            .unwrap(),
            MODULE
        );
        let two = zip_of(&[("a.wasm", b"\0asmXXXX"), ("action.wasm", MODULE)]);
        assert_eq!(decode(&b64(&two), true).unwrap(), MODULE);
    }

    #[test]
    fn bad_inputs_are_clear_errors() {
        assert!(matches!(
            decode("not base64!", true),
            Err(ArtifactError::BadBase64(_))
        ));
        assert!(matches!(
            decode("function main() {}", false),
            Err(ArtifactError::Load(_))
        ));
        assert!(matches!(
            decode(&b64(b"hello"), true),
            Err(ArtifactError::Load(_))
        ));
        let none = zip_of(&[("README", b"hi")]);
        assert!(
            matches!(decode(&b64(&none), true), Err(ArtifactError::Load(m)) if m.contains("no .wasm"))
        );
        let several = zip_of(&[("a.wasm", MODULE), ("b.wasm", MODULE)]);
        assert!(
            matches!(decode(&b64(&several), true), Err(ArtifactError::Load(m)) if m.contains("several"))
        );
        let not_wasm = zip_of(&[("a.wasm", b"text")]);
        assert!(matches!(
            decode(&b64(&not_wasm), true),
            Err(ArtifactError::Load(_))
        ));
        for name in [
            "../a.wasm",
            "x/../../a.wasm",
            "/etc/a.wasm",
            "C:\\a.wasm",
            "..\\a.wasm",
        ] {
            let evil = zip_of(&[(name, MODULE)]);
            assert!(
                matches!(decode(&b64(&evil), true), Err(ArtifactError::Load(m)) if m.contains("unsafe")),
                "{name}"
            );
        }
        let mut truncated = zip_of(&[("a.wasm", MODULE)]);
        truncated.truncate(truncated.len() / 2);
        assert!(matches!(
            decode(&b64(&truncated), true),
            Err(ArtifactError::Load(_))
        ));
    }
}
