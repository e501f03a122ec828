//! The precompiler's `manifest.json`: what a zip holds, for which engines,
//! and a signature that says who made it.
//!
//! On disk the file is an envelope, `{"manifest": {...}, "signature": {...}}`.
//! The signature (HMAC-SHA256 with a key the operator shares between the
//! precompiler and the executors) covers the exact bytes of `manifest`, so
//! verifying never depends on re-serialising JSON the same way.

use hmac::{Hmac, Mac};
use ow_common::digest::sha256_hex;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use sha2::Sha256;

/// The manifest's name inside a precompiler zip.
pub const MANIFEST_NAME: &str = "manifest.json";
/// The module's name inside a precompiler zip.
pub const WASM_NAME: &str = "action.wasm";
/// The manifest format this crate writes and reads.
pub const FORMAT_VERSION: u32 = 1;
/// Largest manifest read from a zip.
pub const MAX_MANIFEST_BYTES: u64 = 64 * 1024;
/// The only signature algorithm.
pub const HMAC_SHA256: &str = "hmac-sha256";

/// What a precompiler zip holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// [`FORMAT_VERSION`].
    pub format: u32,
    /// The module's ABI: `sdk` or `command`.
    pub abi: String,
    /// Exports an SDK module can be run by (`main` and others), or
    /// `["_start"]` for a command module.
    pub entry_points: Vec<String>,
    /// The original module, `action.wasm`.
    pub wasm: FileRef,
    /// One native artifact per engine.
    pub artifacts: Vec<Artifact>,
}

/// A file in the zip and its digest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileRef {
    /// Its name in the zip.
    pub path: String,
    /// SHA-256 of its bytes, lowercase hex.
    pub sha256: String,
    /// Its size in bytes.
    pub size: u64,
}

impl FileRef {
    /// Describe `bytes` stored as `path`.
    pub fn of(path: &str, bytes: &[u8]) -> Self {
        Self {
            path: path.to_owned(),
            sha256: sha256_hex(bytes),
            size: bytes.len() as u64,
        }
    }

    /// Whether `bytes` are the file this describes.
    pub fn matches(&self, bytes: &[u8]) -> bool {
        bytes.len() as u64 == self.size && sha256_hex(bytes) == self.sha256
    }
}

/// A module precompiled for one engine.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Artifact {
    /// `wasmtime` or `wasmer`.
    pub engine: String,
    /// The engine's version.
    pub engine_version: String,
    /// The engine's compatibility hash (version, target, CPU features,
    /// code-generation settings); must equal the executor's.
    pub compatibility_hash: String,
    /// Target triple the code was generated for (`x86_64-unknown-linux-gnu`),
    /// for people; the compatibility hash is what is checked.
    pub target: String,
    /// CPU features of the machine that generated it (the engines compile
    /// for the host CPU), for people; covered by the compatibility hash.
    #[serde(default)]
    pub cpu_features: Vec<String>,
    /// The artifact file.
    pub file: FileRef,
}

impl Manifest {
    /// The artifact for this engine, or why none fits (for the log).
    ///
    /// # Errors
    /// A sentence saying what differs.
    pub fn artifact_for(
        &self,
        engine: &str,
        version: &str,
        compatibility_hash: &str,
    ) -> Result<&Artifact, String> {
        let candidates: Vec<&Artifact> = self
            .artifacts
            .iter()
            .filter(|a| a.engine == engine)
            .collect();
        if candidates.is_empty() {
            return Err(format!("the zip holds no artifact for {engine}"));
        }
        candidates
            .iter()
            .find(|a| a.engine_version == version && a.compatibility_hash == compatibility_hash)
            .copied()
            .ok_or_else(|| match candidates.iter().find(|a| a.engine_version == version) {
                Some(_) => format!(
                    "the {engine} artifact was made with other settings or for another CPU \
                     (compatibility hash differs)"
                ),
                None => format!(
                    "the {engine} artifact was made by {engine} {}, this executor runs {version}",
                    candidates[0].engine_version
                ),
            })
    }
}

/// A shared secret for HMAC-SHA256 signatures.
#[derive(Clone)]
pub struct SigningKey(Vec<u8>);

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SigningKey({})", self.key_id())
    }
}

/// Shortest key accepted, in bytes.
pub const MIN_KEY_BYTES: usize = 16;

impl SigningKey {
    /// A key from the bytes of a key file or variable (a trailing newline is
    /// ignored).
    ///
    /// # Errors
    /// A key shorter than [`MIN_KEY_BYTES`].
    pub fn new(bytes: &[u8]) -> Result<Self, String> {
        let key = bytes.strip_suffix(b"\n").unwrap_or(bytes);
        let key = key.strip_suffix(b"\r").unwrap_or(key);
        if key.len() < MIN_KEY_BYTES {
            return Err(format!(
                "a signing key needs at least {MIN_KEY_BYTES} bytes (e.g. `openssl rand -hex 32`)"
            ));
        }
        Ok(Self(key.to_vec()))
    }

    /// A short public name for the key: the first 16 hex digits of
    /// HMAC-SHA256(key, "ow-key-id"). Keyed, so that it offers no way to
    /// test guesses of a weak key offline.
    pub fn key_id(&self) -> String {
        self.sign(b"ow-key-id")[..16].to_owned()
    }

    fn mac(&self) -> Hmac<Sha256> {
        // HMAC takes keys of any length.
        Hmac::<Sha256>::new_from_slice(&self.0).expect("HMAC accepts any key length")
    }

    fn sign(&self, message: &[u8]) -> String {
        let mut mac = self.mac();
        mac.update(message);
        hex::encode(mac.finalize().into_bytes())
    }

    fn verify(&self, message: &[u8], signature_hex: &str) -> bool {
        let Ok(signature) = hex::decode(signature_hex) else {
            return false;
        };
        let mut mac = self.mac();
        mac.update(message);
        // Constant-time comparison.
        mac.verify_slice(&signature).is_ok()
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Signature {
    algorithm: String,
    key_id: String,
    value: String,
}

#[derive(Serialize)]
struct EnvelopeOut<'a> {
    manifest: &'a RawValue,
    signature: Option<Signature>,
}

#[derive(Deserialize)]
struct EnvelopeIn<'a> {
    #[serde(borrow)]
    manifest: &'a RawValue,
    signature: Option<Signature>,
}

/// Write `manifest` as `manifest.json` bytes, signed when a key is given.
pub fn encode(manifest: &Manifest, key: Option<&SigningKey>) -> Vec<u8> {
    let json = serde_json::to_string(manifest).expect("a manifest always serialises");
    let signature = key.map(|key| Signature {
        algorithm: HMAC_SHA256.to_owned(),
        key_id: key.key_id(),
        value: key.sign(json.as_bytes()),
    });
    let raw = RawValue::from_string(json).expect("serde_json wrote valid JSON");
    let mut bytes = serde_json::to_vec(&EnvelopeOut {
        manifest: &raw,
        signature,
    })
    .expect("an envelope always serialises");
    bytes.push(b'\n');
    bytes
}

/// Which manifests the executor believes.
#[derive(Debug, Clone, Default)]
pub struct TrustPolicy {
    /// Manifests signed with this key are trusted.
    pub key: Option<SigningKey>,
    /// Trust unsigned manifests too (closed deployments only). With a key
    /// configured, a signature that does not verify is refused even then;
    /// without one, signatures cannot be checked and every manifest is
    /// taken as unsigned.
    pub trust_unsigned: bool,
}

/// Why a manifest is not believed; the zip's `action.wasm` is compiled instead.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TrustError {
    /// Not the envelope this crate writes.
    #[error("the manifest is malformed: {0}")]
    Malformed(String),
    /// A manifest format this executor does not know.
    #[error("manifest format {0} is not supported (this executor reads format {FORMAT_VERSION})")]
    UnknownFormat(u32),
    /// No signature, and unsigned manifests are not trusted.
    #[error("the manifest is not signed (and --trust-unsigned-artifacts is off)")]
    Unsigned,
    /// Signed, but the executor has no key to check it with.
    #[error("the manifest is signed with key {0}, but no artifact key is configured")]
    NoKey(String),
    /// The signature does not verify with the configured key.
    #[error(
        "the manifest signature does not verify (signed with key {signed_with}, expected key {expected})"
    )]
    BadSignature {
        /// The key id the manifest claims.
        signed_with: String,
        /// The configured key's id.
        expected: String,
    },
}

/// Read and check `manifest.json` bytes under `policy`.
///
/// # Errors
/// [`TrustError`] saying why the manifest is not believed.
pub fn open(bytes: &[u8], policy: &TrustPolicy) -> Result<Manifest, TrustError> {
    let envelope: EnvelopeIn<'_> =
        serde_json::from_slice(bytes).map_err(|e| TrustError::Malformed(e.to_string()))?;
    let signed = envelope.manifest.get().as_bytes();
    match (&envelope.signature, &policy.key) {
        (Some(signature), Some(key)) => {
            if signature.algorithm != HMAC_SHA256 || !key.verify(signed, &signature.value) {
                return Err(TrustError::BadSignature {
                    signed_with: signature.key_id.clone(),
                    expected: key.key_id(),
                });
            }
        }
        _ if policy.trust_unsigned => {}
        (Some(signature), None) => return Err(TrustError::NoKey(signature.key_id.clone())),
        (None, _) => return Err(TrustError::Unsigned),
    }
    let manifest: Manifest =
        serde_json::from_slice(signed).map_err(|e| TrustError::Malformed(e.to_string()))?;
    if manifest.format != FORMAT_VERSION {
        return Err(TrustError::UnknownFormat(manifest.format));
    }
    Ok(manifest)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest() -> Manifest {
        Manifest {
            format: FORMAT_VERSION,
            abi: "sdk".into(),
            entry_points: vec!["main".into()],
            wasm: FileRef::of(WASM_NAME, b"\0asm\x01\0\0\0"),
            artifacts: vec![Artifact {
                engine: "wasmtime".into(),
                engine_version: "48.0.0".into(),
                compatibility_hash: "abc".into(),
                target: "x86_64-unknown-linux-gnu".into(),
                cpu_features: vec!["avx2".into()],
                file: FileRef::of("wasmtime.cwasm", b"code"),
            }],
        }
    }

    fn key(s: &str) -> SigningKey {
        SigningKey::new(s.as_bytes()).unwrap()
    }

    #[test]
    fn signed_manifests_verify_only_with_their_key() {
        let k = key("0123456789abcdef0123456789abcdef\n");
        let bytes = encode(&manifest(), Some(&k));
        let trusted = TrustPolicy {
            key: Some(k.clone()),
            trust_unsigned: false,
        };
        assert_eq!(open(&bytes, &trusted).unwrap(), manifest());
        let other = TrustPolicy {
            key: Some(key("another key, long enough")),
            trust_unsigned: true,
        };
        assert!(matches!(
            open(&bytes, &other),
            Err(TrustError::BadSignature { .. })
        ));
        assert!(matches!(
            open(&bytes, &TrustPolicy::default()),
            Err(TrustError::NoKey(_))
        ));
        // One changed byte of the manifest breaks the signature.
        let text = String::from_utf8(bytes).unwrap();
        let tampered = text.replace("48.0.0", "48.0.1");
        assert!(matches!(
            open(tampered.as_bytes(), &trusted),
            Err(TrustError::BadSignature { .. })
        ));
    }

    #[test]
    fn unsigned_manifests_need_the_operator_to_trust_them() {
        let bytes = encode(&manifest(), None);
        assert_eq!(
            open(&bytes, &TrustPolicy::default()),
            Err(TrustError::Unsigned)
        );
        let k = key("0123456789abcdef0123456789abcdef");
        assert_eq!(
            open(
                &bytes,
                &TrustPolicy {
                    key: Some(k),
                    trust_unsigned: false
                }
            ),
            Err(TrustError::Unsigned)
        );
        let open_door = TrustPolicy {
            key: None,
            trust_unsigned: true,
        };
        assert_eq!(open(&bytes, &open_door).unwrap(), manifest());
        assert!(matches!(
            open(b"{not json", &open_door),
            Err(TrustError::Malformed(_))
        ));
        let mut future = manifest();
        future.format = 99;
        assert_eq!(
            open(&encode(&future, None), &open_door),
            Err(TrustError::UnknownFormat(99))
        );
    }

    #[test]
    fn short_keys_are_refused_and_ids_do_not_reveal_the_key() {
        assert!(SigningKey::new(b"short").is_err());
        let k = key("0123456789abcdef0123456789abcdef");
        assert_eq!(k.key_id().len(), 16);
        assert!(!format!("{k:?}").contains("0123456789"));
    }

    #[test]
    fn artifacts_are_matched_on_engine_version_and_hash() {
        let m = manifest();
        assert!(m.artifact_for("wasmtime", "48.0.0", "abc").is_ok());
        assert!(
            m.artifact_for("wasmer", "7.4.2", "abc")
                .unwrap_err()
                .contains("no artifact")
        );
        assert!(
            m.artifact_for("wasmtime", "49.0.0", "abc")
                .unwrap_err()
                .contains("48.0.0")
        );
        assert!(
            m.artifact_for("wasmtime", "48.0.0", "xyz")
                .unwrap_err()
                .contains("hash")
        );
        let file = &m.artifacts[0].file;
        assert!(file.matches(b"code"));
        assert!(!file.matches(b"codf"));
    }
}
