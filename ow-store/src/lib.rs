#![doc = include_str!("../README.md")]

use ow_common::digest::sha256_hex;
use redb::{Database, ReadableDatabase as _, ReadableTable as _, TableDefinition};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

/// Functions by `(namespace, name)`: the record as JSON.
const FUNCTIONS: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("functions");
/// Code by its SHA-256 (lowercase hex).
const BLOBS: TableDefinition<&str, &[u8]> = TableDefinition::new("blobs");
/// How many functions use each blob; a blob goes with its last user.
const REFS: TableDefinition<&str, u64> = TableDefinition::new("blob_refs");

/// The database file under the store directory.
pub const DB_FILE: &str = "functions.redb";

/// Longest function or namespace name.
pub const MAX_NAME_BYTES: usize = 256;

/// Names no function may have: the executor's own routes
/// (`/{container_id}/init|run|destroy`, WasmEngine's `/function/deploy`,
/// `delete`, `query`, `list` and `invoke`) would shadow or be shadowed by
/// them.
pub const RESERVED_NAMES: [&str; 8] = [
    "init", "run", "destroy", "deploy", "delete", "query", "list", "invoke",
];

/// Why the store refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A create found the function there already.
    #[error("function {0} already exists")]
    Exists(String),
    /// The function is not in the store.
    #[error("function {0} not found")]
    NotFound(String),
    /// A name the store does not accept.
    #[error("{0}")]
    BadName(String),
    /// The database failed (disk full, I/O error, corruption found).
    #[error("the function store failed: {0}")]
    Db(String),
}

impl StoreError {
    fn db(e: impl std::fmt::Display) -> Self {
        Self::Db(e.to_string())
    }
}

/// Per-call limits of a function; `None` takes the executor's default.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limits {
    /// Linear memory of one activation, in bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_bytes: Option<u64>,
    /// Time limit of one activation, in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
}

/// What a deploy or an update says about a function; the store adds the
/// code's digest, the times and the version.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FunctionSpec {
    /// Where the code came from (an OCI reference or layout), if not uploaded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// The exported function to call (`main` when empty).
    #[serde(default)]
    pub entry: String,
    /// Environment given to every activation (and to /init's snapshot).
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Per-call limits.
    #[serde(default)]
    pub limits: Limits,
    /// The engine to run it on; the executor's default when `None`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub engine: Option<String>,
    /// Labels (OpenFaaS).
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Annotations: string values from OpenFaaS, any JSON from OpenWhisk.
    #[serde(default)]
    pub annotations: Map<String, Value>,
    /// Default parameters, merged under each invocation's (OpenWhisk).
    #[serde(default)]
    pub parameters: Map<String, Value>,
    /// Fields of the API that deployed it, kept as sent so that it can
    /// answer with them (OpenFaaS `secrets`, `constraints`, `requests`, ...;
    /// OpenWhisk `exec.kind`, `publish`, ...).
    #[serde(default)]
    pub extra: Map<String, Value>,
}

/// A stored function.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Function {
    /// Its namespace.
    pub namespace: String,
    /// Its name, unique in the namespace.
    pub name: String,
    /// SHA-256 (lowercase hex) of its code: a module or a zip.
    pub code_digest: String,
    /// Size of its code in bytes.
    pub code_bytes: u64,
    /// What was deployed.
    pub spec: FunctionSpec,
    /// When it was first deployed, milliseconds since the Unix epoch.
    pub created_ms: u64,
    /// When it was last deployed or updated.
    pub updated_ms: u64,
    /// 1 at the first deploy, one more at every update.
    pub version: u64,
}

/// Code with its SHA-256, hashed once for whoever needs the digest.
#[derive(Debug, Clone, Copy)]
pub struct Code<'a> {
    bytes: &'a [u8],
    digest: &'a str,
}

/// The SHA-256 (lowercase hex) of `bytes`, for [`Code::new`].
pub fn digest(bytes: &[u8]) -> String {
    sha256_hex(bytes)
}

impl<'a> Code<'a> {
    /// `bytes` and `digest`, which must be [`digest`]`(bytes)`: checked in
    /// debug builds (hashing megabytes twice per deploy is what this saves).
    pub fn new(bytes: &'a [u8], digest: &'a str) -> Self {
        debug_assert_eq!(sha256_hex(bytes), digest);
        Self { bytes, digest }
    }

    /// The code's SHA-256.
    pub fn digest(&self) -> &str {
        self.digest
    }
}

/// How a write treats a function that is (not) there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Only a new function: [`StoreError::Exists`] otherwise.
    Create,
    /// Only an existing function: [`StoreError::NotFound`] otherwise.
    Update,
    /// Either.
    Upsert,
}

/// The store: an in-memory index of every function over one redb database.
///
/// Why redb: a deploy writes the record, the code blob and its reference
/// count together, and redb commits them in one transaction (copy-on-write
/// B-trees, fsync before a commit returns), so `kill -9` or a power cut at
/// any point leaves either the whole write or none of it, with no temp
/// files to sweep and no record whose blob is missing. Quick-repair mode
/// (two-phase commit, allocator state saved per commit) makes reopening
/// after a crash instant instead of a walk of the whole file.
pub struct Store {
    db: Database,
    dir: PathBuf,
    index: RwLock<HashMap<(String, String), Arc<Function>>>,
    /// Writers one at a time, so that the index follows commit order.
    writer: Mutex<()>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("dir", &self.dir).finish()
    }
}

/// Check a namespace or function name: 1 to 256 bytes of letters, digits,
/// `_`, `-`, `.` and `@`, starting with a letter, digit or `_`, no `..`,
/// not one of [`RESERVED_NAMES`].
///
/// # Errors
/// [`StoreError::BadName`] saying why.
pub fn check_name(what: &str, name: &str) -> Result<(), StoreError> {
    let bad = |why: &str| {
        Err(StoreError::BadName(format!(
            "invalid {what} {name:?}: {why}"
        )))
    };
    if name.is_empty() || name.len() > MAX_NAME_BYTES {
        return bad("it must have 1 to 256 characters");
    }
    let first = name.as_bytes()[0];
    if !(first.is_ascii_alphanumeric() || first == b'_') {
        return bad("it must start with a letter, a digit or '_'");
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b'@'))
    {
        return bad("only letters, digits, '_', '-', '.' and '@' are allowed");
    }
    if name.contains("..") {
        return bad("'..' is not allowed");
    }
    if RESERVED_NAMES.contains(&name) {
        return bad("the name is reserved for the executor's own routes");
    }
    Ok(())
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl Store {
    /// Open (or create) the store in `dir`, loading every function's record.
    ///
    /// # Errors
    /// When the directory or the database cannot be created or read.
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        use std::os::unix::fs::DirBuilderExt as _;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| StoreError::Db(format!("cannot create {}: {e}", dir.display())))?;
        let path = dir.join(DB_FILE);
        let db = Database::builder()
            // Records are read once into the index; blobs once per prepare.
            .set_cache_size(64 << 20)
            .create(&path)
            .map_err(|e| StoreError::Db(format!("cannot open {}: {e}", path.display())))?;
        let store = Self {
            db,
            dir: dir.to_owned(),
            index: RwLock::new(HashMap::new()),
            writer: Mutex::new(()),
        };
        // The tables exist from the first open on: readers need not care.
        store.write(|_| Ok(()))?;
        {
            let mut index = store.index.write().unwrap_or_else(|e| e.into_inner());
            let read = store.db.begin_read().map_err(StoreError::db)?;
            let table = read.open_table(FUNCTIONS).map_err(StoreError::db)?;
            for entry in table.iter().map_err(StoreError::db)? {
                let (key, value) = entry.map_err(StoreError::db)?;
                let (ns, name) = key.value();
                let function: Function = serde_json::from_slice(value.value())
                    .map_err(|e| StoreError::Db(format!("record {ns}/{name}: {e}")))?;
                index.insert((ns.to_owned(), name.to_owned()), Arc::new(function));
            }
        }
        Ok(store)
    }

    /// The directory the store lives in.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The function `name` of `namespace`.
    pub fn get(&self, namespace: &str, name: &str) -> Option<Arc<Function>> {
        self.index
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&(namespace.to_owned(), name.to_owned()))
            .cloned()
    }

    /// Every function of `namespace` (of every namespace for `None`), by
    /// namespace then name.
    pub fn list(&self, namespace: Option<&str>) -> Vec<Arc<Function>> {
        let index = self.index.read().unwrap_or_else(|e| e.into_inner());
        let mut functions: Vec<_> = index
            .values()
            .filter(|f| namespace.is_none_or(|ns| f.namespace == ns))
            .cloned()
            .collect();
        functions.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
        functions
    }

    /// The namespaces that hold at least one function, sorted.
    pub fn namespaces(&self) -> Vec<String> {
        let index = self.index.read().unwrap_or_else(|e| e.into_inner());
        let mut namespaces: Vec<String> = index.keys().map(|(ns, _)| ns.clone()).collect();
        namespaces.sort();
        namespaces.dedup();
        namespaces
    }

    /// How many functions there are.
    pub fn len(&self) -> usize {
        self.index.read().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// Whether there is no function.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The code with SHA-256 `digest`.
    ///
    /// # Errors
    /// When the database cannot be read.
    pub fn code(&self, digest: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let read = self.db.begin_read().map_err(StoreError::db)?;
        let table = read.open_table(BLOBS).map_err(StoreError::db)?;
        Ok(table
            .get(digest)
            .map_err(StoreError::db)?
            .map(|v| v.value().to_vec()))
    }

    /// Deploy or update `namespace/name` with `spec` and `code`. The write
    /// is on disk when this returns (it blocks on fsync: call it off async
    /// workers).
    ///
    /// # Errors
    /// [`StoreError::Exists`] / [`StoreError::NotFound`] as `mode` says,
    /// [`StoreError::BadName`], or a database failure (nothing written).
    pub fn put(
        &self,
        namespace: &str,
        name: &str,
        spec: FunctionSpec,
        code: Code<'_>,
        mode: Mode,
    ) -> Result<Arc<Function>, StoreError> {
        check_name("namespace", namespace)?;
        check_name("function name", name)?;
        let (digest, code) = (code.digest.to_owned(), code.bytes);
        let _writer = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        let old = self.get(namespace, name);
        match (mode, &old) {
            (Mode::Create, Some(_)) => {
                return Err(StoreError::Exists(format!("{namespace}/{name}")));
            }
            (Mode::Update, None) => {
                return Err(StoreError::NotFound(format!("{namespace}/{name}")));
            }
            _ => {}
        }
        let now = now_ms();
        let function = Function {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            code_digest: digest.clone(),
            code_bytes: code.len() as u64,
            spec,
            created_ms: old.as_ref().map_or(now, |o| o.created_ms),
            updated_ms: now,
            version: old.as_ref().map_or(1, |o| o.version + 1),
        };
        let record = serde_json::to_vec(&function).map_err(StoreError::db)?;
        self.write(|t| {
            t.functions
                .insert((namespace, name), record.as_slice())
                .map_err(StoreError::db)?;
            if old.as_ref().is_none_or(|o| o.code_digest != digest) {
                t.add_ref(&digest, code)?;
                if let Some(old) = &old {
                    t.drop_ref(&old.code_digest)?;
                }
            }
            Ok(())
        })?;
        let function = Arc::new(function);
        self.index
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(
                (namespace.to_owned(), name.to_owned()),
                Arc::clone(&function),
            );
        Ok(function)
    }

    /// Delete `namespace/name` (and its code, unless another function
    /// uses it). On disk when this returns.
    ///
    /// # Errors
    /// [`StoreError::NotFound`], or a database failure (nothing deleted).
    pub fn delete(&self, namespace: &str, name: &str) -> Result<Arc<Function>, StoreError> {
        let _writer = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        let old = self
            .get(namespace, name)
            .ok_or_else(|| StoreError::NotFound(format!("{namespace}/{name}")))?;
        self.write(|t| {
            t.functions
                .remove((namespace, name))
                .map_err(StoreError::db)?;
            t.drop_ref(&old.code_digest)
        })?;
        self.index
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&(namespace.to_owned(), name.to_owned()));
        Ok(old)
    }
}

/// The tables of one write transaction.
struct Tables<'t> {
    functions: redb::Table<'t, (&'static str, &'static str), &'static [u8]>,
    blobs: redb::Table<'t, &'static str, &'static [u8]>,
    refs: redb::Table<'t, &'static str, u64>,
}

impl Store {
    /// Run `f` in one write transaction, committed (on disk, quick-repair)
    /// before this returns; nothing is written if `f` fails.
    fn write(
        &self,
        f: impl FnOnce(&mut Tables<'_>) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        let mut txn = self.db.begin_write().map_err(StoreError::db)?;
        txn.set_quick_repair(true);
        {
            let mut tables = Tables {
                functions: txn.open_table(FUNCTIONS).map_err(StoreError::db)?,
                blobs: txn.open_table(BLOBS).map_err(StoreError::db)?,
                refs: txn.open_table(REFS).map_err(StoreError::db)?,
            };
            f(&mut tables)?;
        }
        txn.commit().map_err(StoreError::db)
    }
}

impl Tables<'_> {
    fn add_ref(&mut self, digest: &str, code: &[u8]) -> Result<(), StoreError> {
        let count = self
            .refs
            .get(digest)
            .map_err(StoreError::db)?
            .map_or(0, |v| v.value());
        if count == 0 {
            self.blobs.insert(digest, code).map_err(StoreError::db)?;
        }
        self.refs
            .insert(digest, count + 1)
            .map_err(StoreError::db)?;
        Ok(())
    }

    fn drop_ref(&mut self, digest: &str) -> Result<(), StoreError> {
        let count = self
            .refs
            .get(digest)
            .map_err(StoreError::db)?
            .map_or(0, |v| v.value());
        if count <= 1 {
            self.refs.remove(digest).map_err(StoreError::db)?;
            self.blobs.remove(digest).map_err(StoreError::db)?;
        } else {
            self.refs
                .insert(digest, count - 1)
                .map_err(StoreError::db)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(bytes: &'static [u8]) -> Code<'static> {
        Code::new(bytes, Box::leak(digest(bytes).into_boxed_str()))
    }

    fn spec(entry: &str) -> FunctionSpec {
        FunctionSpec {
            entry: entry.into(),
            ..FunctionSpec::default()
        }
    }

    #[test]
    fn a_function_survives_a_reopen_with_its_code_and_metadata() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = spec("main");
        s.env.insert("A".into(), "1".into());
        s.labels.insert("team".into(), "x".into());
        s.limits.memory_bytes = Some(1 << 20);
        let written = {
            let store = Store::open(dir.path()).unwrap();
            store
                .put("ns", "f", s.clone(), code(b"\0asm code"), Mode::Create)
                .unwrap()
        };
        let store = Store::open(dir.path()).unwrap();
        let read = store.get("ns", "f").unwrap();
        assert_eq!(*read, *written);
        assert_eq!(read.spec, s);
        assert_eq!(read.version, 1);
        assert_eq!(
            store.code(&read.code_digest).unwrap().unwrap(),
            b"\0asm code"
        );
        assert_eq!(store.namespaces(), vec!["ns".to_owned()]);
    }

    #[test]
    fn create_update_and_upsert_check_existence() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        assert!(matches!(
            store.put("ns", "f", spec("a"), code(b"1"), Mode::Update),
            Err(StoreError::NotFound(_))
        ));
        let first = store
            .put("ns", "f", spec("a"), code(b"1"), Mode::Create)
            .unwrap();
        assert!(matches!(
            store.put("ns", "f", spec("a"), code(b"1"), Mode::Create),
            Err(StoreError::Exists(_))
        ));
        let second = store
            .put("ns", "f", spec("b"), code(b"2"), Mode::Update)
            .unwrap();
        assert_eq!(second.version, 2);
        assert_eq!(second.created_ms, first.created_ms);
        assert_eq!(second.spec.entry, "b");
        let third = store
            .put("ns", "f", spec("c"), code(b"2"), Mode::Upsert)
            .unwrap();
        assert_eq!(third.version, 3);
        assert_eq!(store.len(), 1);
    }

    #[test]
    fn a_blob_lives_as_long_as_a_function_uses_it() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let a = store
            .put("ns", "a", spec("m"), code(b"shared"), Mode::Create)
            .unwrap();
        store
            .put("ns", "b", spec("m"), code(b"shared"), Mode::Create)
            .unwrap();
        let digest = a.code_digest.clone();
        store.delete("ns", "a").unwrap();
        assert!(store.code(&digest).unwrap().is_some(), "b still uses it");
        // An update to other code drops b's reference: the blob goes.
        store
            .put("ns", "b", spec("m"), code(b"other"), Mode::Update)
            .unwrap();
        assert!(store.code(&digest).unwrap().is_none());
        store.delete("ns", "b").unwrap();
        assert!(store.is_empty());
        assert!(matches!(
            store.delete("ns", "b"),
            Err(StoreError::NotFound(_))
        ));
        let store = {
            drop(store);
            Store::open(dir.path()).unwrap()
        };
        assert!(store.is_empty());
    }

    #[test]
    fn names_that_could_escape_or_shadow_routes_are_refused() {
        for bad in [
            "",
            "../x",
            "a/b",
            "a..b",
            "init",
            "run",
            "destroy",
            "-x",
            "a b",
            &"x".repeat(257),
        ] {
            assert!(
                check_name("function name", bad).is_err(),
                "{bad:?} accepted"
            );
        }
        for good in ["f", "echo_string", "gcd-1", "a.b", "user@x", "_", "x9"] {
            check_name("function name", good).unwrap();
        }
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        assert!(matches!(
            store.put("ns", "run", spec("m"), code(b"1"), Mode::Create),
            Err(StoreError::BadName(_))
        ));
        assert!(matches!(
            store.put("../ns", "f", spec("m"), code(b"1"), Mode::Create),
            Err(StoreError::BadName(_))
        ));
    }

    #[test]
    fn namespaces_keep_functions_apart() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        store
            .put("a", "f", spec("in-a"), code(b"1"), Mode::Create)
            .unwrap();
        store
            .put("b", "f", spec("in-b"), code(b"2"), Mode::Create)
            .unwrap();
        assert_eq!(store.get("a", "f").unwrap().spec.entry, "in-a");
        assert_eq!(store.get("b", "f").unwrap().spec.entry, "in-b");
        assert_eq!(store.list(Some("a")).len(), 1);
        assert_eq!(store.list(None).len(), 2);
        assert!(store.get("c", "f").is_none());
    }
}
