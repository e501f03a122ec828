//! From /init code to a prepared action, by the fastest path that is safe:
//! a signed precompiled artifact from the zip, the compile cache, or a
//! compilation (which then fills the cache).

use ow_artifact::{MANIFEST_NAME, Package, TrustPolicy, manifest};
use ow_common::digest::sha256_hex;
use ow_common::shared::{ContentKey, SharedModules, content_key};
use ow_common::{ActionSpec, PreparedAction, Result, WasmRuntime};
use std::io::Write as _;
use std::os::unix::fs::{DirBuilderExt as _, MetadataExt as _};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

/// Largest precompiled artifact read from a zip: native code is a few times
/// larger than the module it comes from.
const MAX_ARTIFACT_BYTES: u64 = 4 * ow_artifact::MAX_MODULE_BYTES;

/// How an action was loaded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoadPath {
    /// From the zip's signed artifact for this engine.
    Precompiled,
    /// From the compile cache.
    Cached,
    /// Compiled at this /init.
    Compiled,
    /// The prepared action of a live container with the same code, engine
    /// and settings (nothing decoded, compiled or copied).
    Shared,
}

impl LoadPath {
    /// The name used in logs and the `X-Ow-Init-Path` header.
    pub fn name(self) -> &'static str {
        match self {
            LoadPath::Precompiled => "precompiled",
            LoadPath::Cached => "cached",
            LoadPath::Compiled => "compiled",
            LoadPath::Shared => "shared",
        }
    }
}

/// What decides whether native code from outside may be loaded.
pub struct Loader {
    trust: TrustPolicy,
    cache: Option<CompileCache>,
    /// Live prepared actions by [`Loader::shared_key`]: identical /inits
    /// share one (it is immutable; every activation still gets a fresh
    /// instance) and skip decoding and loading altogether.
    shared: SharedModules<dyn PreparedAction>,
}

impl Loader {
    /// A loader trusting `trust`'s manifests, caching in `cache` if any.
    pub fn new(trust: TrustPolicy, cache: Option<CompileCache>) -> Self {
        Self {
            trust,
            cache,
            shared: SharedModules::default(),
        }
    }

    /// A loader with the same trust and no compile cache, sharing nothing
    /// with this one: the start-up warm-up's, which must leave no trace.
    pub fn without_cache(&self) -> Self {
        Self::new(self.trust.clone(), None)
    }

    /// Whether native code from unsigned zips is loaded.
    pub fn trusts_unsigned(&self) -> bool {
        self.trust.trust_unsigned
    }

    /// The key of a prepared action: the engine, the whole spec (entry,
    /// env, limits, scratch) and what identifies the code (its source's
    /// tag, then the code as sent or its digest). BLAKE3 over
    /// length-prefixed parts, so that no upload can be made to collide
    /// with another action's.
    pub fn shared_key(engine: &str, code: &[&[u8]], spec: &ActionSpec) -> ContentKey {
        let spec = format!("{spec:?}");
        let mut parts: Vec<&[u8]> = vec![engine.as_bytes(), spec.as_bytes()];
        parts.extend_from_slice(code);
        content_key(&parts)
    }

    /// The live prepared action under `key`, else the one `make` loads,
    /// which is then offered to later /inits with the same key.
    ///
    /// # Errors
    /// `make`'s.
    pub fn shared_or<E>(
        &self,
        key: ContentKey,
        make: impl FnOnce() -> std::result::Result<(Arc<dyn PreparedAction>, LoadPath), E>,
    ) -> std::result::Result<(Arc<dyn PreparedAction>, LoadPath), E> {
        let mut path = LoadPath::Shared;
        let action = self.shared.get_or_make_arc(key, || {
            make().map(|(action, made)| {
                path = made;
                action
            })
        })?;
        Ok((action, path))
    }

    /// Prepare the package's action on `runtime`.
    ///
    /// # Errors
    /// The module's own errors ([`WasmRuntime::prepare`]). A precompiled
    /// artifact or cache entry that cannot be used is logged and skipped,
    /// never an error.
    pub fn load(
        &self,
        runtime: &dyn WasmRuntime,
        mut package: Package,
        spec: ActionSpec,
    ) -> Result<(Arc<dyn PreparedAction>, LoadPath)> {
        let engine = runtime.name();
        if package.has_manifest() {
            match self.artifact_from_zip(runtime, &mut package) {
                Ok(artifact) => {
                    // SAFETY: the manifest verified under the operator's trust
                    // policy, and the artifact's bytes match its digest.
                    match unsafe {
                        runtime.prepare_precompiled(package.wasm(), &artifact, spec.clone())
                    } {
                        Ok(action) => return Ok((action, LoadPath::Precompiled)),
                        Err(e) => tracing::warn!(
                            engine,
                            "precompiled artifact not loaded, compiling: {e}"
                        ),
                    }
                }
                Err(reason) => {
                    tracing::info!(engine, "precompiled artifact not used, compiling: {reason}")
                }
            }
        }
        let wasm = package.wasm();
        let (Some(cache), Some(compat)) = (&self.cache, runtime.compatibility_hash()) else {
            return runtime.prepare(wasm, spec).map(|a| (a, LoadPath::Compiled));
        };
        let key = CompileCache::key(wasm, engine, runtime.version(), &compat);
        if let Some(artifact) = cache.get(engine, &key) {
            // SAFETY: written by this executor (or one sharing its cache
            // directory, which the operator keeps private), intact by its digest.
            match unsafe { runtime.prepare_precompiled(wasm, &artifact, spec.clone()) } {
                Ok(action) => return Ok((action, LoadPath::Cached)),
                Err(e) => {
                    tracing::warn!(engine, "cache entry not loaded, compiling: {e}");
                    cache.remove(engine, &key);
                }
            }
        }
        let artifact = runtime.precompile(wasm)?;
        // SAFETY: compiled just now by this very engine.
        let action = unsafe { runtime.prepare_precompiled(wasm, &artifact, spec)? };
        // Only modules that pass /init's checks are worth keeping.
        if let Err(e) = cache.put(engine, &key, &artifact) {
            tracing::warn!(engine, "cannot write the compile cache: {e}");
        }
        Ok((action, LoadPath::Compiled))
    }

    /// The zip's artifact for `runtime`, checked, or why there is none.
    fn artifact_from_zip(
        &self,
        runtime: &dyn WasmRuntime,
        package: &mut Package,
    ) -> std::result::Result<Vec<u8>, String> {
        let compat = runtime
            .compatibility_hash()
            .ok_or_else(|| format!("{} has no precompiled form", runtime.name()))?;
        let bytes = package
            .read_entry(MANIFEST_NAME, manifest::MAX_MANIFEST_BYTES)
            .map_err(|e| e.to_string())?
            .ok_or("no manifest")?;
        let manifest = manifest::open(&bytes, &self.trust).map_err(|e| e.to_string())?;
        if !manifest.wasm.matches(package.wasm()) {
            return Err(format!(
                "{} does not match the manifest's digest",
                ow_artifact::WASM_NAME
            ));
        }
        let artifact = manifest.artifact_for(runtime.name(), runtime.version(), &compat)?;
        let bytes = package
            .read_entry(&artifact.file.path, MAX_ARTIFACT_BYTES)
            .map_err(|e| e.to_string())?
            .ok_or_else(|| format!("the zip lacks {}", artifact.file.path))?;
        if !artifact.file.matches(&bytes) {
            return Err(format!(
                "{} does not match the manifest's digest",
                artifact.file.path
            ));
        }
        Ok(bytes)
    }
}

/// A content-addressed directory of compiled artifacts, shared by executor
/// processes: `<dir>/<engine>/<key>.bin`, each file the artifact's SHA-256
/// (64 hex digits) then the artifact. Written atomically (a temporary file
/// renamed into place), so concurrent writers of one key cannot corrupt it;
/// kept under `max_bytes` by evicting the least recently used files.
pub struct CompileCache {
    dir: PathBuf,
    max_bytes: u64,
}

impl CompileCache {
    /// A cache in `dir` (created, private to this user, if missing).
    ///
    /// # Errors
    /// When the directory cannot be created.
    pub fn open(dir: &Path, max_bytes: u64) -> std::io::Result<Self> {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)?;
        // Whoever can write here can make the executor run native code:
        // only this user may.
        let meta = std::fs::metadata(dir)?;
        // SAFETY: geteuid has no preconditions and cannot fail.
        let euid = unsafe { libc::geteuid() };
        if meta.uid() != euid || meta.mode() & 0o022 != 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::PermissionDenied,
                format!(
                    "{} must be owned by this user (uid {euid}) and writable by nobody else \
                     (it holds native code the executor loads)",
                    dir.display()
                ),
            ));
        }
        Ok(Self {
            dir: dir.to_owned(),
            max_bytes,
        })
    }

    /// The cache key: the module's digest and everything the artifact
    /// depends on.
    pub fn key(wasm: &[u8], engine: &str, version: &str, compat: &str) -> String {
        let wasm_digest = sha256_hex(wasm);
        sha256_hex(format!("{wasm_digest}\n{engine}\n{version}\n{compat}").as_bytes())
    }

    fn path(&self, engine: &str, key: &str) -> PathBuf {
        self.dir.join(engine).join(format!("{key}.bin"))
    }

    /// The artifact stored under `key`, if present and intact.
    pub fn get(&self, engine: &str, key: &str) -> Option<Vec<u8>> {
        let path = self.path(engine, key);
        let mut bytes = std::fs::read(&path).ok()?;
        if bytes.len() < 64 || sha256_hex(&bytes[64..]).as_bytes() != &bytes[..64] {
            tracing::warn!(path = %path.display(), "corrupt cache entry removed");
            let _ = std::fs::remove_file(&path);
            return None;
        }
        // Most recently used: the last to be evicted.
        if let Ok(file) = std::fs::File::options().append(true).open(&path) {
            let _ = file.set_modified(SystemTime::now());
        }
        bytes.drain(..64);
        Some(bytes)
    }

    /// Store `artifact` under `key`, then evict down to the size bound.
    ///
    /// # Errors
    /// When the file cannot be written.
    pub fn put(&self, engine: &str, key: &str, artifact: &[u8]) -> std::io::Result<()> {
        let dir = self.dir.join(engine);
        std::fs::create_dir_all(&dir)?;
        let mut tmp = tempfile::Builder::new().prefix(".tmp-").tempfile_in(&dir)?;
        tmp.write_all(sha256_hex(artifact).as_bytes())?;
        tmp.write_all(artifact)?;
        tmp.as_file().sync_data()?;
        tmp.persist(self.path(engine, key)).map_err(|e| e.error)?;
        self.evict();
        Ok(())
    }

    /// Remove the entry under `key`.
    pub fn remove(&self, engine: &str, key: &str) {
        let _ = std::fs::remove_file(self.path(engine, key));
    }

    /// Delete least recently used entries until the cache fits its bound.
    fn evict(&self) {
        // Temporary files of writers that died before renaming.
        let stale = std::time::Duration::from_secs(600);
        for engine_dir in std::fs::read_dir(&self.dir).into_iter().flatten().flatten() {
            for entry in std::fs::read_dir(engine_dir.path())
                .into_iter()
                .flatten()
                .flatten()
            {
                let old = entry
                    .metadata()
                    .and_then(|m| m.modified())
                    .is_ok_and(|t| t.elapsed().is_ok_and(|age| age > stale));
                if old && entry.file_name().to_string_lossy().starts_with(".tmp-") {
                    let _ = std::fs::remove_file(entry.path());
                }
            }
        }
        let mut entries: Vec<(SystemTime, u64, PathBuf)> = std::fs::read_dir(&self.dir)
            .into_iter()
            .flatten()
            .flatten()
            .filter(|e| e.path().is_dir())
            .flat_map(|engine_dir| {
                std::fs::read_dir(engine_dir.path())
                    .into_iter()
                    .flatten()
                    .flatten()
            })
            .filter(|e| e.path().extension().is_some_and(|x| x == "bin"))
            .filter_map(|e| {
                let meta = e.metadata().ok()?;
                Some((meta.modified().ok()?, meta.len(), e.path()))
            })
            .collect();
        let mut total: u64 = entries.iter().map(|(_, len, _)| len).sum();
        entries.sort();
        for (_, len, path) in entries {
            if total <= self.max_bytes {
                break;
            }
            if std::fs::remove_file(&path).is_ok() {
                total -= len;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_round_trip_and_corruption_is_a_miss() {
        let dir = tempfile::tempdir().unwrap();
        let cache = CompileCache::open(&dir.path().join("c"), 1 << 20).unwrap();
        let key = CompileCache::key(b"wasm", "wasmtime", "48.0.0", "abc");
        assert_ne!(key, CompileCache::key(b"wasm", "wasmtime", "48.0.0", "abd"));
        assert_eq!(cache.get("wasmtime", &key), None);
        cache.put("wasmtime", &key, b"native code").unwrap();
        assert_eq!(cache.get("wasmtime", &key).unwrap(), b"native code");
        let path = cache.path("wasmtime", &key);
        let mut bytes = std::fs::read(&path).unwrap();
        *bytes.last_mut().unwrap() ^= 1;
        std::fs::write(&path, bytes).unwrap();
        assert_eq!(cache.get("wasmtime", &key), None);
        assert!(!path.exists());
    }

    #[test]
    fn a_cache_directory_others_can_write_is_refused() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
        let err = CompileCache::open(dir.path(), 1 << 20).err().unwrap();
        assert_eq!(err.kind(), std::io::ErrorKind::PermissionDenied);
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
        assert!(CompileCache::open(dir.path(), 1 << 20).is_ok());
    }

    #[test]
    fn the_cache_stays_under_its_bound_evicting_the_least_recently_used() {
        let dir = tempfile::tempdir().unwrap();
        let cache = CompileCache::open(dir.path(), 3 * (64 + 1000)).unwrap();
        let artifact = vec![7u8; 1000];
        for i in 0..3 {
            cache.put("e", &format!("k{i}"), &artifact).unwrap();
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        // k0 is used: k1 becomes the oldest.
        assert!(cache.get("e", "k0").is_some());
        cache.put("e", "k3", &artifact).unwrap();
        assert!(cache.get("e", "k1").is_none());
        for k in ["k0", "k2", "k3"] {
            assert!(cache.get("e", k).is_some(), "{k}");
        }
    }

    #[test]
    fn concurrent_writers_of_one_key_leave_one_intact_entry() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Arc::new(CompileCache::open(dir.path(), 1 << 30).unwrap());
        let artifact: Vec<u8> = (0..200_000u32).map(|i| i as u8).collect();
        std::thread::scope(|s| {
            for _ in 0..8 {
                let (cache, artifact) = (Arc::clone(&cache), &artifact);
                s.spawn(move || {
                    for _ in 0..10 {
                        cache.put("e", "same", artifact).unwrap();
                        if let Some(read) = cache.get("e", "same") {
                            assert_eq!(&read, artifact);
                        }
                    }
                });
            }
        });
        assert_eq!(cache.get("e", "same").unwrap(), artifact);
        let files: Vec<_> = std::fs::read_dir(dir.path().join("e")).unwrap().collect();
        assert_eq!(files.len(), 1, "temporary files left: {files:?}");
    }
}
