#![doc = include_str!("../README.md")]

use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::manifest::{ImageIndexEntry, OciDescriptor, OciImageIndex, OciImageManifest};
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference};
use ow_common::digest::sha256_hex;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

/// A core module, as a raw layer holds it (CNCF wasm artifacts).
pub const WASM_LAYER: &str = "application/wasm";
/// A core module (wasm-to-oci, Spin).
pub const WASM_CONTENT_LAYER: &str = "application/vnd.wasm.content.layer.v1+wasm";
/// A component (runwasi): refused, this executor runs core modules.
pub const COMPONENT_LAYER: &str = "application/vnd.bytecodealliance.wasm.component.layer.v0+wasm";
/// A precompiled zip of `ow-precompiler` (module plus native code).
pub const ZIP_LAYER: &str = "application/zip";
const TAR_LAYERS: [&str; 2] = [
    "application/vnd.oci.image.layer.v1.tar",
    "application/vnd.docker.image.rootfs.diff.tar",
];
const TAR_GZIP_LAYERS: [&str; 2] = [
    "application/vnd.oci.image.layer.v1.tar+gzip",
    "application/vnd.docker.image.rootfs.diff.tar.gzip",
];
const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
/// The tag of an entry of an image layout's `index.json`.
const REF_NAME: &str = "org.opencontainers.image.ref.name";

/// Why an image cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum OciError {
    /// The reference does not parse.
    #[error("invalid image reference {0:?}: {1}")]
    Reference(String, String),
    /// The registry answered with an error, or could not be reached.
    #[error("the registry failed: {0}")]
    Registry(String),
    /// The whole fetch took longer than allowed.
    #[error("the image was not fetched within {0:?}")]
    Timeout(Duration),
    /// Bytes that do not hash to the digest they were asked for by.
    #[error("digest mismatch: expected {expected}, got {actual}")]
    Digest { expected: String, actual: String },
    /// A manifest, layer or module over its limit.
    #[error("{what} is larger than the limit of {limit} bytes")]
    TooLarge { what: String, limit: u64 },
    /// A layout or manifest that is not what the OCI specs describe.
    #[error("{0}")]
    Invalid(String),
    /// Something that holds no core module this executor can run.
    #[error("{0}")]
    Unsupported(String),
}

/// Limits and trust of a [`Puller`].
#[derive(Debug, Clone)]
pub struct PullOptions {
    /// Registries (`host[:port]`) spoken to over plain HTTP besides the
    /// loopback ones (`--insecure-registry`).
    pub insecure: Vec<String>,
    /// Longest whole fetch (manifests and layer).
    pub timeout: Duration,
    /// Largest manifest or index (Distribution refuses manifests over 4 MiB).
    pub max_manifest_bytes: u64,
    /// Largest layer, compressed.
    pub max_layer_bytes: u64,
    /// Largest module (or precompiled zip), uncompressed.
    pub max_module_bytes: u64,
    /// Where verified layers are cached by digest; `None` for no cache.
    pub cache_dir: Option<PathBuf>,
}

impl Default for PullOptions {
    fn default() -> Self {
        Self {
            insecure: Vec::new(),
            timeout: Duration::from_secs(30),
            max_manifest_bytes: 4 << 20,
            max_layer_bytes: 256 << 20,
            max_module_bytes: 256 << 20,
            cache_dir: None,
        }
    }
}

/// A module fetched from an image.
#[derive(Debug, Clone)]
pub struct Module {
    /// A wasm module, or a zip holding one (a precompiled zip).
    pub bytes: Vec<u8>,
    /// The digest of the image manifest it came from.
    pub manifest_digest: String,
    /// The media type of the layer that held it.
    pub layer_media_type: String,
}

/// Fetches modules from registries and image layouts.
pub struct Puller {
    options: PullOptions,
    /// Clients for TLS registries and plain-HTTP ones, made on first use.
    tls: OnceLock<Client>,
    plain: OnceLock<Client>,
}

impl std::fmt::Debug for Puller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Puller")
            .field("options", &self.options)
            .finish()
    }
}

/// Make ring the process's rustls provider, which every reqwest client of
/// the process then takes (this crate's and the executor's). Idempotent.
pub fn install_tls_provider() {
    // An error means one is installed already, which is as good.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

impl Puller {
    /// A puller with `options`.
    pub fn new(options: PullOptions) -> Self {
        install_tls_provider();
        Self {
            options,
            tls: OnceLock::new(),
            plain: OnceLock::new(),
        }
    }

    /// The module of `image`: `oci:<dir>[:<tag>|@<digest>]` for an image
    /// layout directory, else a registry reference
    /// (`host[:port]/repo[:tag|@digest]`). Plain HTTP only for loopback
    /// hosts and the insecure list.
    ///
    /// # Errors
    /// Why the image cannot be used ([`OciError`]); never waits longer
    /// than the options' timeout.
    pub async fn fetch(&self, image: &str) -> Result<Module, OciError> {
        let limit = self.options.timeout;
        let fetch = async {
            match image.strip_prefix("oci:") {
                Some(layout) => {
                    let (dir, selector) = split_layout(layout);
                    let (dir, selector) = (PathBuf::from(dir), selector.map(str::to_owned));
                    let options = self.options.clone();
                    tokio::task::spawn_blocking(move || {
                        from_layout(&options, &dir, selector.as_deref())
                    })
                    .await
                    .map_err(|e| OciError::Invalid(format!("layout read failed: {e}")))?
                }
                None => self.pull_registry(image).await,
            }
        };
        tokio::time::timeout(limit, fetch)
            .await
            .map_err(|_| OciError::Timeout(limit))?
    }

    fn client(&self, registry: &str) -> Result<&Client, OciError> {
        let plain = is_loopback(registry) || self.options.insecure.iter().any(|r| r == registry);
        let (cell, protocol) = match plain {
            true => (&self.plain, ClientProtocol::Http),
            false => (&self.tls, ClientProtocol::Https),
        };
        if let Some(client) = cell.get() {
            return Ok(client);
        }
        let config = ClientConfig {
            protocol,
            connect_timeout: Some(Duration::from_secs(5)),
            read_timeout: Some(self.options.timeout),
            platform_resolver: Some(Box::new(|entries: &[ImageIndexEntry]| {
                pick_platform(entries).map(|e| e.digest.clone())
            })),
            ..ClientConfig::default()
        };
        let client = Client::try_from(config).map_err(|e| OciError::Registry(e.to_string()))?;
        Ok(cell.get_or_init(|| client))
    }

    async fn pull_registry(&self, image: &str) -> Result<Module, OciError> {
        let reference: Reference = image.parse().map_err(|e: oci_client::ParseError| {
            OciError::Reference(image.into(), e.to_string())
        })?;
        let client = self.client(reference.resolve_registry())?;
        let auth = RegistryAuth::Anonymous;
        let accepted = [OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, DOCKER_LIST];
        let (mut raw, mut digest) = client
            .pull_manifest_raw(&reference, &auth, &accepted)
            .await
            .map_err(registry_error)?;
        self.check_manifest_size(raw.len())?;
        let mut reference = reference;
        if let Some(index) = as_index(&raw)? {
            let entry = pick_platform(&index.manifests).ok_or_else(no_platform)?;
            reference = reference.clone_with_digest(entry.digest.clone());
            (raw, digest) = client
                .pull_manifest_raw(&reference, &auth, &accepted)
                .await
                .map_err(registry_error)?;
            self.check_manifest_size(raw.len())?;
        }
        let manifest = parse_manifest(&raw)?;
        let layer = the_layer(&manifest)?;
        let size = self.check_layer_size(layer)?;
        let bytes = match self.cached(&layer.digest) {
            Some(bytes) => bytes,
            None => {
                let mut stream = client
                    .pull_blob_stream(&reference, layer.digest.as_str())
                    .await
                    .map_err(registry_error)?;
                let mut bytes = Vec::with_capacity(size as usize);
                use futures_util::StreamExt as _;
                while let Some(chunk) = stream.next().await {
                    let chunk = chunk.map_err(|e| match e.into_inner() {
                        Some(inner) => match inner.downcast::<oci_client::errors::DigestError>() {
                            Ok(d) => OciError::Registry(d.to_string()),
                            Err(other) => OciError::Registry(other.to_string()),
                        },
                        None => OciError::Registry("the layer download failed".into()),
                    })?;
                    if bytes.len() as u64 + chunk.len() as u64 > size {
                        return Err(OciError::Invalid(format!(
                            "layer {} is longer than the {size} bytes its descriptor says",
                            layer.digest
                        )));
                    }
                    bytes.extend_from_slice(&chunk);
                }
                verify(&layer.digest, &bytes)?;
                self.cache(&layer.digest, &bytes);
                bytes
            }
        };
        let bytes = module_of(&layer.media_type, bytes, self.options.max_module_bytes)?;
        Ok(Module {
            bytes,
            manifest_digest: digest,
            layer_media_type: layer.media_type.clone(),
        })
    }

    fn check_manifest_size(&self, len: usize) -> Result<(), OciError> {
        match len as u64 > self.options.max_manifest_bytes {
            true => Err(OciError::TooLarge {
                what: format!("the manifest ({len} bytes)"),
                limit: self.options.max_manifest_bytes,
            }),
            false => Ok(()),
        }
    }

    fn check_layer_size(&self, layer: &OciDescriptor) -> Result<u64, OciError> {
        let size = u64::try_from(layer.size).map_err(|_| {
            OciError::Invalid(format!("layer {} has a negative size", layer.digest))
        })?;
        if size > self.options.max_layer_bytes {
            return Err(OciError::TooLarge {
                what: format!("layer {} ({size} bytes)", layer.digest),
                limit: self.options.max_layer_bytes,
            });
        }
        Ok(size)
    }

    fn cache_path(&self, digest: &str) -> Option<PathBuf> {
        let hex = digest
            .strip_prefix("sha256:")
            .filter(|h| is_sha256_hex(h))?;
        Some(self.options.cache_dir.as_ref()?.join("sha256").join(hex))
    }

    /// A cached layer, verified again (a cache is a disk, disks rot).
    fn cached(&self, digest: &str) -> Option<Vec<u8>> {
        let bytes = std::fs::read(self.cache_path(digest)?).ok()?;
        verify(digest, &bytes).ok()?;
        Some(bytes)
    }

    fn cache(&self, digest: &str, bytes: &[u8]) {
        let Some(path) = self.cache_path(digest) else {
            return;
        };
        let write = || -> std::io::Result<()> {
            let dir = path.parent().unwrap_or(Path::new("."));
            std::fs::create_dir_all(dir)?;
            let mut tmp = tempfile_in(dir)?;
            std::io::Write::write_all(&mut tmp.1, bytes)?;
            std::fs::rename(&tmp.0, &path)
        };
        if let Err(e) = write() {
            tracing::warn!(digest, "cannot cache a layer: {e}");
        }
    }
}

/// A new file in `dir` (named by pid and a counter): a cache write that
/// dies half-way leaves only a temp file, never a torn blob under its digest.
fn tempfile_in(dir: &Path) -> std::io::Result<(PathBuf, std::fs::File)> {
    static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let path = dir.join(format!(".tmp-{}-{n}", std::process::id()));
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&path)?;
    Ok((path, file))
}

fn registry_error(e: oci_client::errors::OciDistributionError) -> OciError {
    use oci_client::errors::{DigestError, OciDistributionError as E};
    match e {
        E::DigestError(DigestError::VerificationError { expected, actual }) => {
            OciError::Digest { expected, actual }
        }
        other => OciError::Registry(other.to_string()),
    }
}

fn no_platform() -> OciError {
    OciError::Unsupported(
        "the image index has no wasm entry (platform wasm/wasi) and more than one entry".into(),
    )
}

fn is_sha256_hex(hex: &str) -> bool {
    hex.len() == 64 && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// Check that `bytes` hash to `digest` (`sha256:<hex>`).
///
/// # Errors
/// [`OciError::Digest`], or [`OciError::Unsupported`] for another algorithm.
pub fn verify(digest: &str, bytes: &[u8]) -> Result<(), OciError> {
    let Some(expected) = digest.strip_prefix("sha256:") else {
        return Err(OciError::Unsupported(format!(
            "digest {digest:?}: only sha256 digests are supported"
        )));
    };
    let actual = sha256_hex(bytes);
    match actual == expected {
        true => Ok(()),
        false => Err(OciError::Digest {
            expected: digest.to_owned(),
            actual: format!("sha256:{actual}"),
        }),
    }
}

/// Whether a registry (`host[:port]`) is on this machine.
fn is_loopback(registry: &str) -> bool {
    let host = match registry.strip_prefix('[') {
        Some(rest) => rest.split(']').next().unwrap_or(rest),
        None => registry.rsplit_once(':').map_or(registry, |(h, _)| h),
    };
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// The entry of an index to run: one for platform wasm/wasi, else the only one.
fn pick_platform(entries: &[ImageIndexEntry]) -> Option<&ImageIndexEntry> {
    let wasm = entries.iter().find(|e| {
        e.platform.as_ref().is_some_and(|p| {
            p.architecture.to_string() == "wasm" || p.os.to_string().starts_with("wasi")
        })
    });
    wasm.or(match entries {
        [only] => Some(only),
        _ => None,
    })
}

/// The index in `raw`, if it is one.
fn as_index(raw: &[u8]) -> Result<Option<OciImageIndex>, OciError> {
    let value: serde_json::Value = serde_json::from_slice(raw)
        .map_err(|e| OciError::Invalid(format!("the manifest is not JSON: {e}")))?;
    let is_index = value.get("manifests").is_some()
        || matches!(
            value.get("mediaType").and_then(|m| m.as_str()),
            Some(OCI_INDEX | DOCKER_LIST)
        );
    if !is_index {
        return Ok(None);
    }
    serde_json::from_value(value)
        .map(Some)
        .map_err(|e| OciError::Invalid(format!("the image index is not valid: {e}")))
}

fn parse_manifest(raw: &[u8]) -> Result<OciImageManifest, OciError> {
    serde_json::from_slice(raw)
        .map_err(|e| OciError::Invalid(format!("the image manifest is not valid: {e}")))
}

/// The one layer of a wasm image.
fn the_layer(manifest: &OciImageManifest) -> Result<&OciDescriptor, OciError> {
    match manifest.layers.as_slice() {
        [layer] => Ok(layer),
        [] => Err(OciError::Unsupported("the image has no layer".into())),
        layers => Err(OciError::Unsupported(format!(
            "the image has {} layers; a wasm image has one (the module, or a tar holding it)",
            layers.len()
        ))),
    }
}

/// The module a layer of `media_type` holds.
///
/// # Errors
/// For components, unknown media types, tars without exactly one module,
/// and modules over `max`.
pub fn module_of(media_type: &str, layer: Vec<u8>, max: u64) -> Result<Vec<u8>, OciError> {
    let too_large = |what: &str| OciError::TooLarge {
        what: what.to_owned(),
        limit: max,
    };
    match media_type {
        WASM_LAYER | WASM_CONTENT_LAYER | ZIP_LAYER => {
            if layer.len() as u64 > max {
                return Err(too_large("the module"));
            }
            Ok(layer)
        }
        COMPONENT_LAYER => Err(OciError::Unsupported(
            "the image holds a WebAssembly component; this executor runs core modules \
             (build the action for wasm32-wasip1)"
                .into(),
        )),
        t if TAR_GZIP_LAYERS.contains(&t) => {
            module_from_tar(flate2::read::GzDecoder::new(layer.as_slice()), max)
        }
        t if TAR_LAYERS.contains(&t) => module_from_tar(layer.as_slice(), max),
        other => Err(OciError::Unsupported(format!(
            "layer media type {other:?} holds no wasm module this executor knows: use \
             {WASM_LAYER}, {WASM_CONTENT_LAYER}, {ZIP_LAYER} or a tar(+gzip) holding one .wasm"
        ))),
    }
}

/// Most bytes a tar layer may expand to, beyond its one module: a tar bomb
/// is cut off here.
const MAX_TAR_OVERHEAD: u64 = 16 << 20;
/// Most entries a tar layer may have.
const MAX_TAR_ENTRIES: usize = 10_000;

/// The one `.wasm` (or `.zip`) regular file of a tar.
fn module_from_tar(reader: impl Read, max: u64) -> Result<Vec<u8>, OciError> {
    let budget = max.saturating_add(MAX_TAR_OVERHEAD);
    let mut archive = tar::Archive::new(Capped {
        inner: reader,
        left: budget,
    });
    let bad = |e: std::io::Error| match e.kind() {
        std::io::ErrorKind::FileTooLarge => OciError::TooLarge {
            what: "the layer, uncompressed,".into(),
            limit: budget,
        },
        _ => OciError::Invalid(format!("the layer is not a valid tar: {e}")),
    };
    let mut found: Option<(String, Vec<u8>)> = None;
    for (count, entry) in archive.entries().map_err(bad)?.enumerate() {
        if count >= MAX_TAR_ENTRIES {
            return Err(OciError::Invalid(format!(
                "the layer has more than {MAX_TAR_ENTRIES} entries"
            )));
        }
        let mut entry = entry.map_err(bad)?;
        let path = entry.path().map_err(bad)?.to_string_lossy().into_owned();
        let is_module = path.ends_with(".wasm") || path.ends_with(".zip");
        if !entry.header().entry_type().is_file() || !is_module {
            continue;
        }
        if let Some((first, _)) = &found {
            return Err(OciError::Unsupported(format!(
                "the layer holds more than one module ({first} and {path}); a wasm image holds one"
            )));
        }
        if entry.size() > max {
            return Err(OciError::TooLarge {
                what: format!("module {path} ({} bytes)", entry.size()),
                limit: max,
            });
        }
        let mut bytes = Vec::with_capacity(entry.size() as usize);
        entry.read_to_end(&mut bytes).map_err(bad)?;
        found = Some((path, bytes));
    }
    found
        .map(|(_, bytes)| bytes)
        .ok_or_else(|| OciError::Unsupported("the layer holds no .wasm file".into()))
}

/// A reader that fails once more than `left` bytes were read.
struct Capped<R> {
    inner: R,
    left: u64,
}

impl<R: Read> Read for Capped<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.left = self.left.checked_sub(n as u64).ok_or_else(|| {
            std::io::Error::new(
                std::io::ErrorKind::FileTooLarge,
                "the layer expands past its limit",
            )
        })?;
        Ok(n)
    }
}

/// `dir[:tag]` or `dir@digest` of an `oci:` reference.
fn split_layout(layout: &str) -> (&str, Option<&str>) {
    if let Some((dir, digest)) = layout.rsplit_once('@') {
        return (dir, Some(digest));
    }
    match layout.rsplit_once(':') {
        Some((dir, tag)) if !tag.contains('/') && !tag.is_empty() => (dir, Some(tag)),
        _ => (layout, None),
    }
}

/// Read a blob of a layout, at most `max` bytes, verified.
fn layout_blob(dir: &Path, digest: &str, max: u64) -> Result<Vec<u8>, OciError> {
    let hex = digest
        .strip_prefix("sha256:")
        .filter(|h| is_sha256_hex(h))
        .ok_or_else(|| OciError::Invalid(format!("invalid digest {digest:?}")))?;
    let path = dir.join("blobs").join("sha256").join(hex);
    let file = std::fs::File::open(&path)
        .map_err(|e| OciError::Invalid(format!("blob {digest} is missing from the layout: {e}")))?;
    let mut bytes = Vec::new();
    file.take(max + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| OciError::Invalid(format!("cannot read blob {digest}: {e}")))?;
    if bytes.len() as u64 > max {
        return Err(OciError::TooLarge {
            what: format!("blob {digest}"),
            limit: max,
        });
    }
    verify(digest, &bytes)?;
    Ok(bytes)
}

fn from_layout(
    options: &PullOptions,
    dir: &Path,
    selector: Option<&str>,
) -> Result<Module, OciError> {
    let read_index = std::fs::File::open(dir.join("index.json")).map_err(|e| {
        OciError::Invalid(format!("{} is not an OCI image layout: {e}", dir.display()))
    })?;
    let mut raw = Vec::new();
    read_index
        .take(options.max_manifest_bytes + 1)
        .read_to_end(&mut raw)
        .map_err(|e| OciError::Invalid(format!("cannot read index.json: {e}")))?;
    if raw.len() as u64 > options.max_manifest_bytes {
        return Err(OciError::TooLarge {
            what: "index.json".into(),
            limit: options.max_manifest_bytes,
        });
    }
    let index: OciImageIndex = serde_json::from_slice(&raw)
        .map_err(|e| OciError::Invalid(format!("index.json is not valid: {e}")))?;
    let entry = match selector {
        Some(digest) if digest.starts_with("sha256:") => {
            index.manifests.iter().find(|e| e.digest == digest)
        }
        Some(tag) => index.manifests.iter().find(|e| {
            e.annotations
                .as_ref()
                .and_then(|a| a.get(REF_NAME))
                .is_some_and(|t| t == tag)
        }),
        None => pick_platform(&index.manifests),
    }
    .ok_or_else(|| {
        OciError::Invalid(format!(
            "the layout has no image {}",
            selector.unwrap_or("(give a tag: oci:<dir>:<tag>)")
        ))
    })?;
    let mut digest = entry.digest.clone();
    let mut raw = layout_blob(dir, &digest, options.max_manifest_bytes)?;
    if let Some(nested) = as_index(&raw)? {
        digest = pick_platform(&nested.manifests)
            .ok_or_else(no_platform)?
            .digest
            .clone();
        raw = layout_blob(dir, &digest, options.max_manifest_bytes)?;
    }
    let manifest = parse_manifest(&raw)?;
    let layer = the_layer(&manifest)?;
    let bytes = layout_blob(dir, &layer.digest, options.max_layer_bytes)?;
    Ok(Module {
        bytes: module_of(&layer.media_type, bytes, options.max_module_bytes)?,
        manifest_digest: digest,
        layer_media_type: layer.media_type.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tar_of(files: &[(&str, &[u8])]) -> Vec<u8> {
        let mut builder = tar::Builder::new(Vec::new());
        for (name, bytes) in files {
            let mut header = tar::Header::new_gnu();
            header.set_size(bytes.len() as u64);
            header.set_mode(0o644);
            header.set_cksum();
            builder.append_data(&mut header, name, *bytes).unwrap();
        }
        builder.into_inner().unwrap()
    }

    fn gzip(bytes: &[u8]) -> Vec<u8> {
        use std::io::Write as _;
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        encoder.write_all(bytes).unwrap();
        encoder.finish().unwrap()
    }

    const MODULE: &[u8] = b"\0asm\x01\0\0\0";

    #[test]
    fn a_tar_layer_gives_its_one_module() {
        let tar = tar_of(&[("README", b"hi"), ("app/x.wasm", MODULE)]);
        let gz = "application/vnd.oci.image.layer.v1.tar+gzip";
        assert_eq!(module_of(gz, gzip(&tar), 1 << 20).unwrap(), MODULE);
        assert_eq!(module_of(TAR_LAYERS[0], tar, 1 << 20).unwrap(), MODULE);
    }

    #[test]
    fn tars_with_no_module_or_two_are_refused() {
        let two = tar_of(&[("a.wasm", MODULE), ("b.wasm", MODULE)]);
        let err = module_of(TAR_LAYERS[0], two, 1 << 20)
            .unwrap_err()
            .to_string();
        assert!(err.contains("more than one module"), "{err}");
        let none = tar_of(&[("a.txt", b"x")]);
        let err = module_of(TAR_LAYERS[0], none, 1 << 20)
            .unwrap_err()
            .to_string();
        assert!(err.contains("no .wasm"), "{err}");
    }

    #[test]
    fn a_tar_bomb_is_cut_off_at_the_limit() {
        // 64 MiB of zeros in one entry gzip to about 64 KiB.
        let zeros = vec![0u8; 64 << 20];
        let tar = tar_of(&[("filler", &zeros), ("x.wasm", MODULE)]);
        let bomb = gzip(&tar);
        assert!(bomb.len() < 1 << 20);
        let err =
            module_of("application/vnd.oci.image.layer.v1.tar+gzip", bomb, 1 << 20).unwrap_err();
        assert!(matches!(err, OciError::TooLarge { .. }), "{err}");
    }

    #[test]
    fn components_and_unknown_layers_are_refused_with_a_reason() {
        let err = module_of(COMPONENT_LAYER, MODULE.to_vec(), 1 << 20)
            .unwrap_err()
            .to_string();
        assert!(err.contains("component"), "{err}");
        let err = module_of("text/plain", MODULE.to_vec(), 1 << 20)
            .unwrap_err()
            .to_string();
        assert!(err.contains("text/plain"), "{err}");
        let err = module_of(WASM_LAYER, vec![0; 100], 10).unwrap_err();
        assert!(matches!(err, OciError::TooLarge { .. }));
    }

    #[test]
    fn loopback_registries_are_recognised() {
        for yes in [
            "127.0.0.1:5000",
            "localhost:5000",
            "localhost",
            "[::1]:5000",
            "127.1.2.3",
        ] {
            assert!(is_loopback(yes), "{yes}");
        }
        for no in ["example.com:5000", "10.0.0.1:5000", "localhost.evil.com"] {
            assert!(!is_loopback(no), "{no}");
        }
    }

    #[test]
    fn layout_references_split_into_dir_and_selector() {
        assert_eq!(split_layout("/tmp/l:v1"), ("/tmp/l", Some("v1")));
        assert_eq!(split_layout("/tmp/l"), ("/tmp/l", None));
        assert_eq!(
            split_layout("/tmp/l@sha256:abc"),
            ("/tmp/l", Some("sha256:abc"))
        );
    }

    #[test]
    fn digests_are_verified() {
        let digest = format!("sha256:{}", sha256_hex(MODULE));
        verify(&digest, MODULE).unwrap();
        assert!(matches!(
            verify(&digest, b"other"),
            Err(OciError::Digest { .. })
        ));
        assert!(verify("md5:00", MODULE).is_err());
    }
}
