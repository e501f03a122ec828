//! The functions of the store (`--store-dir`) as this executor runs them:
//! deploying (code checked and prepared before the write is acknowledged),
//! invoking (the prepared action of the function's current version, kept
//! warm and shared by content), their invocation counts and replicas, their
//! logs and the activation records the OpenWhisk API answers with. Both
//! management APIs (`faas_api`, `openwhisk_api`) are thin layers over this.

use crate::chain::Origin;
use crate::error::ApiError;
use crate::registry::Ready;
use crate::server::{AppState, Code, Finish, Prepare, execute_counted, prepare};
use actix_web::web::{Bytes, Data};
use ow_common::{ActivationContext, ActivationOutput};
use ow_store::{Function, FunctionSpec, Mode, Store, StoreError};
use serde_json::{Map, Value, json};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Log lines kept per function for `GET /system/logs`.
const LOG_LINES_PER_FUNCTION: usize = 1000;
/// Activation records kept for the OpenWhisk API, oldest dropped first.
const MAX_RECORDS: usize = 10_000;

/// Who may use the management APIs, and as which namespace.
#[derive(Debug, Clone)]
pub struct Credentials {
    /// `uuid:key` (OpenWhisk's format), checked as HTTP basic auth (the
    /// decoded `user:password` must equal it); `None` with `--no-auth` on a
    /// loopback address.
    pub auth: Option<String>,
    /// The namespace of that key (`guest` unless `--namespace`).
    pub namespace: String,
}

/// What the store's functions need at run time, beside the store.
pub struct Functions {
    pub store: Arc<Store>,
    pub credentials: Credentials,
    /// Fetches `image` references (OCI registries and layouts).
    pub images: Arc<ow_oci::Puller>,
    live: Mutex<HashMap<(String, String), Arc<Live>>>,
    records: Mutex<Records>,
}

/// The run-time side of one function.
#[derive(Default)]
struct Live {
    /// The prepared action of a version, filled at deploy or at the first
    /// invocation after a restart.
    prepared: Mutex<Option<(u64, Ready)>>,
    /// Held while the action is being prepared: one preparation at a
    /// time, the others wait for it (never held on the invocation path
    /// once the action is there).
    preparing: tokio::sync::Mutex<()>,
    invocations: AtomicU64,
    /// Asked for with `/system/scale-function` (1 unless scaled); at 0 the
    /// prepared action is let go.
    replicas: AtomicU64,
    logs: Mutex<VecDeque<LogLine>>,
}

/// One line of a function's output.
#[derive(Debug, Clone)]
pub struct LogLine {
    pub time: SystemTime,
    pub instance: String,
    pub text: String,
}

/// An OpenWhisk activation record, kept for `GET .../activations/{id}`.
#[derive(Default)]
struct Records {
    by_id: HashMap<String, Arc<Value>>,
    order: VecDeque<String>,
}

/// What an invocation produced.
pub struct Invocation {
    pub activation_id: String,
    /// The function's limits as OpenWhisk shows them.
    pub limits: Value,
    pub function: Arc<Function>,
    pub output: ActivationOutput,
    pub start_ms: u64,
    pub end_ms: u64,
    /// How long preparing the action took, when this invocation did it.
    pub init_ms: Option<u64>,
}

fn epoch_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// A new activation id: 32 hex digits, as OpenWhisk's.
pub fn new_activation_id() -> String {
    // Distinct per process (a seed from the pid and the start time) and
    // within it (a counter, spread by an odd multiplier); ids are names,
    // not secrets.
    static SEED: std::sync::OnceLock<u128> = std::sync::OnceLock::new();
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let seed = *SEED.get_or_init(|| {
        let key = ow_common::shared::content_key(&[
            &std::process::id().to_le_bytes(),
            &epoch_ms(SystemTime::now()).to_le_bytes(),
        ]);
        u128::from_le_bytes(key[..16].try_into().unwrap_or_default())
    });
    let n = u128::from(COUNTER.fetch_add(1, Ordering::Relaxed));
    format!(
        "{:032x}",
        seed.wrapping_add(n.wrapping_mul(0x9e37_79b9_7f4a_7c15_f39c_c060_5ced_c835))
    )
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Exists(what) => {
                ApiError::Conflict(format!("function {what} already exists"))
            }
            StoreError::NotFound(what) => ApiError::NotFound(format!("function {what}")),
            StoreError::BadName(why) => ApiError::BadRequest(why),
            StoreError::Db(detail) => ApiError::Internal(detail),
        }
    }
}

impl Functions {
    /// The functions of `store`.
    pub fn new(store: Store, credentials: Credentials, images: ow_oci::Puller) -> Self {
        Self {
            store: Arc::new(store),
            credentials,
            images: Arc::new(images),
            live: Mutex::default(),
            records: Mutex::default(),
        }
    }

    /// Check the request's basic auth against `--auth`.
    ///
    /// # Errors
    /// 401 when the credentials are missing or wrong.
    pub fn authorize(&self, req: &actix_web::HttpRequest) -> Result<(), ApiError> {
        let Some(expected) = &self.credentials.auth else {
            return Ok(());
        };
        match crate::auth::basic(req) {
            Some(given) if crate::auth::same_secret(&given, expected.as_bytes()) => Ok(()),
            _ => Err(ApiError::BadCredentials),
        }
    }

    /// The namespace a request names: `_`, empty or the key's own are the
    /// key's namespace; any other is refused (403).
    ///
    /// # Errors
    /// 403 for another namespace.
    pub fn namespace<'a>(&'a self, asked: Option<&'a str>) -> Result<&'a str, ApiError> {
        let own = self.credentials.namespace.as_str();
        match asked {
            None | Some("" | "_") => Ok(own),
            Some(ns) if ns == own => Ok(own),
            Some(ns) => Err(ApiError::Forbidden(format!(
                "The supplied authentication is not authorized to access '{ns}'."
            ))),
        }
    }

    fn live(&self, namespace: &str, name: &str) -> Arc<Live> {
        let mut live = self.live.lock().unwrap_or_else(|e| e.into_inner());
        Arc::clone(
            live.entry((namespace.to_owned(), name.to_owned()))
                .or_insert_with(|| {
                    Arc::new(Live {
                        replicas: AtomicU64::new(1),
                        ..Live::default()
                    })
                }),
        )
    }

    fn forget(&self, namespace: &str, name: &str) {
        self.live
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&(namespace.to_owned(), name.to_owned()));
    }

    /// The code of `image`: fetched from its registry or layout.
    ///
    /// # Errors
    /// 400 with the reason the image cannot be used.
    pub async fn fetch_image(&self, state: &AppState, image: &str) -> Result<Vec<u8>, ApiError> {
        // On the /init pool's runtime: registry connections live there,
        // whichever HTTP worker asked.
        let (images, owned) = (Arc::clone(&self.images), image.to_owned());
        state
            .background(async move { images.fetch(&owned).await })
            .await?
            .map(|module| module.bytes)
            .map_err(|e| ApiError::BadRequest(format!("cannot use image {image}: {e}")))
    }

    /// Deploy (or update, as `mode` says) `namespace/name`: the code is
    /// prepared first (a module that does not compile is refused and
    /// nothing is written), then written durably, then served.
    ///
    /// # Errors
    /// 400 for bad code or names, 409 / 404 as `mode` says, 500 when the
    /// store fails.
    pub async fn deploy(
        &self,
        state: &Data<AppState>,
        namespace: &str,
        name: &str,
        spec: FunctionSpec,
        code: Vec<u8>,
        mode: Mode,
    ) -> Result<Arc<Function>, ApiError> {
        ow_store::check_name("namespace", namespace)?;
        ow_store::check_name("function name", name)?;
        let existing = self.store.get(namespace, name);
        match (mode, &existing) {
            (Mode::Create, Some(_)) => {
                return Err(StoreError::Exists(format!("{namespace}/{name}")).into());
            }
            (Mode::Update, None) => {
                return Err(StoreError::NotFound(format!("{namespace}/{name}")).into());
            }
            _ => {}
        }
        // Megabytes are hashed off the HTTP workers, once.
        let (code, digest) = state
            .blocking(move || {
                let digest = ow_store::digest(&code);
                (Arc::new(code), digest)
            })
            .await?;
        let request = prepare_request(
            namespace,
            name,
            &spec,
            Code::Bytes {
                bytes: Arc::clone(&code),
                digest: digest.clone(),
            },
        );
        let (ready, _) = prepare(state, &state.loader, request)
            .await
            .map_err(|e| match e {
                ApiError::Load(why) => {
                    ApiError::BadRequest(format!("the code cannot be used: {why}"))
                }
                other => other,
            })?;
        let store = Arc::clone(&self.store);
        let (ns, n) = (namespace.to_owned(), name.to_owned());
        let function = state
            .blocking(move || store.put(&ns, &n, spec, ow_store::Code::new(&code, &digest), mode))
            .await??;
        let live = self.live(namespace, name);
        *live.lock_prepared() = Some((function.version, ready));
        tracing::info!(
            namespace,
            name,
            version = function.version,
            "function deployed"
        );
        Ok(function)
    }

    /// Delete `namespace/name`; calls in flight finish on what they run.
    ///
    /// # Errors
    /// 404 when there is no such function, 500 when the store fails.
    pub async fn delete(
        &self,
        state: &Data<AppState>,
        namespace: &str,
        name: &str,
    ) -> Result<Arc<Function>, ApiError> {
        let store = Arc::clone(&self.store);
        let (ns, n) = (namespace.to_owned(), name.to_owned());
        let function = state.blocking(move || store.delete(&ns, &n)).await??;
        self.forget(namespace, name);
        tracing::info!(namespace, name, "function deleted");
        Ok(function)
    }

    /// The function `namespace/name`, or 404.
    ///
    /// # Errors
    /// 404.
    pub fn get(&self, namespace: &str, name: &str) -> Result<Arc<Function>, ApiError> {
        self.store
            .get(namespace, name)
            .ok_or_else(|| ApiError::NotFound(format!("function {namespace}/{name}")))
    }

    /// How often the function was invoked since this process started.
    pub fn invocations(&self, f: &Function) -> u64 {
        self.live(&f.namespace, &f.name)
            .invocations
            .load(Ordering::Relaxed)
    }

    /// `(replicas asked for, replicas prepared and available)`.
    pub fn replicas(&self, f: &Function) -> (u64, u64) {
        let live = self.live(&f.namespace, &f.name);
        let wanted = live.replicas.load(Ordering::Relaxed);
        let available = live.current(f.version).is_some();
        (wanted, u64::from(available && wanted > 0))
    }

    /// Scale `f` to `replicas`: at 0 its prepared action is let go (the
    /// next invocation prepares it again); above 0 it is prepared now.
    ///
    /// # Errors
    /// When preparing fails.
    pub async fn scale(
        &self,
        state: &Data<AppState>,
        f: &Arc<Function>,
        replicas: u64,
    ) -> Result<(), ApiError> {
        let live = self.live(&f.namespace, &f.name);
        live.replicas.store(replicas, Ordering::Relaxed);
        if replicas == 0 {
            *live.lock_prepared() = None;
            return Ok(());
        }
        self.ready(state, &live, f).await.map(drop)
    }

    /// The prepared action of `f`'s version, preparing it if needed (after
    /// a restart, a scale to 0, or when another version was live); how long
    /// preparing took if this call did it.
    async fn ready(
        &self,
        state: &Data<AppState>,
        live: &Live,
        f: &Arc<Function>,
    ) -> Result<(Ready, Option<u64>), ApiError> {
        if let Some(ready) = live.current(f.version) {
            return Ok((ready, None));
        }
        let _preparing = live.preparing.lock().await;
        // Another call may have prepared it while this one waited.
        if let Some(ready) = live.current(f.version) {
            return Ok((ready, None));
        }
        let started = std::time::Instant::now();
        let request = prepare_request(
            &f.namespace,
            &f.name,
            &f.spec,
            Code::Stored {
                store: Arc::clone(&self.store),
                digest: f.code_digest.clone(),
            },
        );
        let (ready, _) = prepare(state, &state.loader, request).await?;
        *live.lock_prepared() = Some((f.version, ready.clone()));
        Ok((ready, Some(started.elapsed().as_millis() as u64)))
    }

    /// Invoke `namespace/name` with `params` (a JSON object's text; the
    /// function's default parameters are merged under it) and wait for it.
    /// With `record`, the OpenWhisk activation record is kept too.
    ///
    /// # Errors
    /// 404 for an unknown function, 400 for params that are not a JSON
    /// object, 429 when the executor is full; a failed activation is an
    /// `Ok` whose output says why.
    pub async fn invoke(
        self: &Arc<Self>,
        state: &Data<AppState>,
        namespace: &str,
        name: &str,
        params: Bytes,
        record: bool,
        origin: Origin,
    ) -> Result<Invocation, ApiError> {
        let id = new_activation_id();
        self.invoke_as(state, namespace, name, params, id, record, origin)
            .await
    }

    /// The prepared action of `namespace/name` and the context of its
    /// activation `activation_id` with `params` (its default parameters
    /// merged under them): what an embedding caller runs.
    ///
    /// # Errors
    /// 404 for an unknown function, 400 for params that are not a JSON
    /// object, or why it cannot be prepared.
    pub async fn prepared(
        &self,
        state: &Data<AppState>,
        namespace: &str,
        name: &str,
        params: Bytes,
        activation_id: &str,
    ) -> Result<(Ready, ActivationContext), ApiError> {
        let call = self
            .prepare_call(state, namespace, name, params, activation_id)
            .await?;
        Ok((call.ready, call.ctx))
    }

    /// What every invocation of `namespace/name` starts with: the function,
    /// its prepared action (and how long preparing took, if this call did
    /// it), its activation's context; counted in its invocations.
    async fn prepare_call(
        &self,
        state: &Data<AppState>,
        namespace: &str,
        name: &str,
        params: Bytes,
        activation_id: &str,
    ) -> Result<PreparedCall, ApiError> {
        let function = self.get(namespace, name)?;
        let params = merge_params(&function.spec.parameters, params)?;
        let live = self.live(namespace, name);
        let (ready, init_ms) = self.ready(state, &live, &function).await?;
        live.invocations.fetch_add(1, Ordering::Relaxed);
        let ctx = context(&function, params, activation_id, ready.max_duration, state);
        Ok(PreparedCall {
            function,
            live,
            ready,
            init_ms,
            ctx,
        })
    }

    /// Start an invocation of `namespace/name` in the background (its logs
    /// and OpenWhisk record are kept): its activation id.
    ///
    /// # Errors
    /// 404 for an unknown function.
    pub fn start(
        self: &Arc<Self>,
        state: &Data<AppState>,
        namespace: String,
        name: String,
        params: Bytes,
    ) -> Result<String, ApiError> {
        self.get(&namespace, &name)?;
        let id = new_activation_id();
        let (functions, state, task_id) = (Arc::clone(self), Data::clone(state), id.clone());
        actix_web::rt::spawn(async move {
            let invoked = functions
                .invoke_as(
                    &state,
                    &namespace,
                    &name,
                    params,
                    task_id,
                    true,
                    Origin::default(),
                )
                .await;
            if let Err(e) = invoked {
                tracing::warn!(namespace, name, "background invocation failed: {e}");
            }
        });
        Ok(id)
    }

    #[allow(clippy::too_many_arguments)]
    async fn invoke_as(
        self: &Arc<Self>,
        state: &Data<AppState>,
        namespace: &str,
        name: &str,
        params: Bytes,
        activation_id: String,
        record: bool,
        origin: Origin,
    ) -> Result<Invocation, ApiError> {
        let started = std::time::Instant::now();
        let PreparedCall {
            function,
            live,
            ready,
            init_ms,
            ctx,
        } = self
            .prepare_call(state, namespace, name, params, &activation_id)
            .await?;
        let start = SystemTime::now();
        let limits = match record {
            true => limits_json(&function, state.operator_limits()),
            false => Value::Null,
        };
        let record_limits = limits.clone();
        let (functions, f, id) = (
            Arc::clone(self),
            Arc::clone(&function),
            activation_id.clone(),
        );
        let called = origin.log_line();
        let finish = Finish::Record(Box::new(move |output: &ActivationOutput| {
            let end = SystemTime::now();
            live.append_logs(&id, called, output, end);
            if record {
                let invocation = InvocationView {
                    function: &f,
                    limits: record_limits,
                    activation_id: &id,
                    output,
                    start_ms: epoch_ms(start),
                    end_ms: epoch_ms(end),
                    init_ms,
                };
                functions.keep_record(&id, activation_record(&invocation));
            }
        }));
        let output = execute_counted(state, ready, ctx, finish, origin, started).await?;
        Ok(Invocation {
            activation_id,
            limits,
            function,
            output,
            start_ms: epoch_ms(start),
            end_ms: epoch_ms(SystemTime::now()),
            init_ms,
        })
    }

    fn keep_record(&self, id: &str, record: Value) {
        let mut records = self.records.lock().unwrap_or_else(|e| e.into_inner());
        records.by_id.insert(id.to_owned(), Arc::new(record));
        records.order.push_back(id.to_owned());
        while records.order.len() > MAX_RECORDS {
            if let Some(old) = records.order.pop_front() {
                records.by_id.remove(&old);
            }
        }
    }

    /// The activation record `id`, if it is kept and of `namespace`.
    pub fn record(&self, namespace: &str, id: &str) -> Option<Arc<Value>> {
        let records = self.records.lock().unwrap_or_else(|e| e.into_inner());
        records
            .by_id
            .get(id)
            .filter(|r| r["namespace"] == namespace)
            .cloned()
    }

    /// The newest records of `namespace` (of action `name` if given), newest first.
    pub fn records(
        &self,
        namespace: &str,
        name: Option<&str>,
        skip: usize,
        limit: usize,
    ) -> Vec<Arc<Value>> {
        let records = self.records.lock().unwrap_or_else(|e| e.into_inner());
        records
            .order
            .iter()
            .rev()
            .filter_map(|id| records.by_id.get(id))
            .filter(|r| r["namespace"] == namespace && name.is_none_or(|n| r["name"] == n))
            .skip(skip)
            .take(limit)
            .cloned()
            .collect()
    }

    /// The kept log lines of `namespace/name`: the last `tail` (all for
    /// `None`) from `since` on.
    pub fn logs(
        &self,
        namespace: &str,
        name: &str,
        since: Option<SystemTime>,
        tail: Option<usize>,
    ) -> Vec<LogLine> {
        let live = self.live(namespace, name);
        let logs = live.logs.lock().unwrap_or_else(|e| e.into_inner());
        let lines: Vec<LogLine> = logs
            .iter()
            .filter(|l| since.is_none_or(|s| l.time >= s))
            .cloned()
            .collect();
        let skip = tail.map_or(0, |t| lines.len().saturating_sub(t));
        lines.into_iter().skip(skip).collect()
    }
}

impl Live {
    fn lock_prepared(&self) -> std::sync::MutexGuard<'_, Option<(u64, Ready)>> {
        self.prepared.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The prepared action of `version`, if that is the one held.
    fn current(&self, version: u64) -> Option<Ready> {
        match self.lock_prepared().as_ref() {
            Some((v, ready)) if *v == version => Some(ready.clone()),
            _ => None,
        }
    }

    /// Keep an activation's log lines, after `first` (how it was called).
    fn append_logs(
        &self,
        id: &str,
        first: Option<String>,
        output: &ActivationOutput,
        time: SystemTime,
    ) {
        let mut logs = self.logs.lock().unwrap_or_else(|e| e.into_inner());
        let lines = log_lines(output).into_iter().map(|(_, text)| text);
        for text in first.into_iter().chain(lines) {
            logs.push_back(LogLine {
                time,
                instance: id.to_owned(),
                text,
            });
            if logs.len() > LOG_LINES_PER_FUNCTION {
                logs.pop_front();
            }
        }
    }
}

/// The output's lines as `(stream, text)`, stdout's first.
fn log_lines(output: &ActivationOutput) -> Vec<(&'static str, String)> {
    let mut lines = Vec::new();
    for (stream, bytes) in [("stdout", &output.stdout), ("stderr", &output.stderr)] {
        for line in String::from_utf8_lossy(bytes).lines() {
            lines.push((stream, line.to_owned()));
        }
    }
    lines
}

/// What prepares `name`'s action: its env with its limits and engine in
/// the keys /init reads them from, so that both kinds of action take one
/// path.
fn prepare_request(namespace: &str, name: &str, spec: &FunctionSpec, code: Code) -> Prepare {
    let mut env: BTreeMap<String, String> = spec.env.clone();
    if let Some(bytes) = spec.limits.memory_bytes {
        env.insert(
            "OW_MAX_MEMORY_MB".into(),
            (bytes.div_ceil(1 << 20)).to_string(),
        );
    }
    if let Some(ms) = spec.limits.timeout_ms {
        env.insert("OW_MAX_DURATION".into(), format!("{ms}ms"));
    }
    if let Some(engine) = &spec.engine {
        env.insert(crate::server::ENGINE_ENV_KEY.into(), engine.clone());
    }
    Prepare {
        name: Some(format!("/{namespace}/{name}")),
        entry: match spec.entry.as_str() {
            "" => ow_common::payload::DEFAULT_MAIN.to_owned(),
            entry => entry.to_owned(),
        },
        env,
        code,
    }
}

/// The invocation's params with the function's defaults under them.
///
/// # Errors
/// 400 when `params` is not a JSON object.
fn merge_params(defaults: &Map<String, Value>, params: Bytes) -> Result<Bytes, ApiError> {
    let given = match params.iter().find(|b| !b.is_ascii_whitespace()) {
        None => {
            return Ok(Bytes::from(
                serde_json::to_vec(defaults).unwrap_or_default(),
            ));
        }
        Some(b'{') => params,
        Some(_) => {
            return Err(ApiError::BadRequest(
                "the parameters must be a JSON object".into(),
            ));
        }
    };
    // Checked as /run checks them (depth, numbers), with one scan and no
    // copy of compact text; then merged if needed.
    let raw = ow_common::payload::checked_params(given)
        .map_err(|e| ApiError::BadRequest(format!("the parameters are not valid JSON: {e}")))?;
    if defaults.is_empty() {
        return Ok(raw);
    }
    let mut merged = defaults.clone();
    let given: Map<String, Value> = serde_json::from_slice(&raw)
        .map_err(|e| ApiError::BadRequest(format!("the parameters are not valid JSON: {e}")))?;
    merged.extend(given);
    Ok(Bytes::from(serde_json::to_vec(&merged).unwrap_or_default()))
}

/// The context of an invocation of `f`: what an invoker's /run would say.
fn context(
    f: &Function,
    params: Bytes,
    activation_id: &str,
    max_duration: Duration,
    state: &Data<AppState>,
) -> ActivationContext {
    let deadline = epoch_ms(SystemTime::now()) + max_duration.as_millis() as u64;
    let meta = [
        ("namespace", f.namespace.clone()),
        ("action_name", format!("/{}/{}", f.namespace, f.name)),
        ("action_version", format!("0.0.{}", f.version)),
        ("activation_id", activation_id.to_owned()),
        ("deadline", deadline.to_string()),
    ];
    let request = ow_common::payload::RunRequest {
        value: None,
        meta: meta
            .into_iter()
            .map(|(k, v)| (k.to_owned(), Value::String(v)))
            .collect(),
    };
    let mut ctx = request.into_context(state.api_host().map(str::to_owned));
    ctx.params = params;
    ctx
}

/// See [`Functions::prepare_call`].
struct PreparedCall {
    function: Arc<Function>,
    live: Arc<Live>,
    ready: Ready,
    init_ms: Option<u64>,
    ctx: ActivationContext,
}

struct InvocationView<'a> {
    function: &'a Function,
    limits: Value,
    activation_id: &'a str,
    output: &'a ActivationOutput,
    start_ms: u64,
    end_ms: u64,
    init_ms: Option<u64>,
}

impl Invocation {
    /// OpenWhisk's activation record of this invocation.
    pub fn record(&self) -> Value {
        activation_record(&InvocationView {
            function: &self.function,
            limits: self.limits.clone(),
            activation_id: &self.activation_id,
            output: &self.output,
            start_ms: self.start_ms,
            end_ms: self.end_ms,
            init_ms: self.init_ms,
        })
    }
}

/// OpenWhisk's `limits` of `f`: its own, else the operator's (ms, MB).
pub fn limits_json(f: &Function, operator: &ow_common::Limits) -> Value {
    let own = &f.spec.limits;
    json!({
        "timeout": own.timeout_ms.unwrap_or(operator.max_duration.as_millis() as u64),
        "memory": own.memory_bytes.unwrap_or(operator.max_memory_bytes as u64) >> 20,
        "logs": operator.max_log_bytes >> 20,
        "concurrency": 1,
    })
}

/// `(status, success, result)` of an output as OpenWhisk's `response`.
pub fn response_of(output: &ActivationOutput) -> (&'static str, bool, Value) {
    match &output.result {
        Ok(bytes) => match serde_json::from_slice::<Value>(bytes) {
            Ok(Value::Object(map)) if map.contains_key("error") => {
                ("application error", false, json!({ "error": map["error"] }))
            }
            Ok(value) => ("success", true, value),
            Err(_) => (
                "action developer error",
                false,
                json!({ "error": "The action did not produce a valid JSON response." }),
            ),
        },
        Err(e) => (
            "action developer error",
            false,
            json!({ "error": e.to_string() }),
        ),
    }
}

fn activation_record(v: &InvocationView<'_>) -> Value {
    let f = v.function;
    let (status, success, result) = response_of(v.output);
    let time = chrono_like(v.end_ms);
    let logs: Vec<String> = log_lines(v.output)
        .into_iter()
        .map(|(stream, text)| format!("{time} {stream}: {text}"))
        .collect();
    let limits = &v.limits;
    let kind = f
        .spec
        .extra
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or("wasm:0.1");
    let mut annotations = vec![
        json!({"key": "limits", "value": limits}),
        json!({"key": "path", "value": format!("{}/{}", f.namespace, f.name)}),
        json!({"key": "kind", "value": kind}),
        json!({"key": "timeout", "value": matches!(v.output.result, Err(ow_common::Error::Timeout(_)))}),
        json!({"key": "waitTime", "value": 0}),
    ];
    if let Some(init) = v.init_ms {
        annotations.push(json!({"key": "initTime", "value": init}));
    }
    json!({
        "namespace": f.namespace,
        "name": f.name,
        "subject": f.namespace,
        "activationId": v.activation_id,
        "start": v.start_ms,
        "end": v.end_ms,
        "duration": v.end_ms.saturating_sub(v.start_ms),
        "statusCode": match status { "success" => 0, "application error" => 1, _ => 2 },
        "response": { "status": status, "success": success, "result": result },
        "logs": logs,
        "version": format!("0.0.{}", f.version),
        "publish": false,
        "annotations": annotations,
    })
}

/// `ms` since the epoch as RFC 3339 UTC with milliseconds
/// (`2026-12-03T19:00:00.123Z`), as OpenWhisk's log lines start.
pub fn chrono_like(ms: u64) -> String {
    humantime::format_rfc3339_millis(UNIX_EPOCH + Duration::from_millis(ms)).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn merged(defaults: Value, params: &str) -> Result<Value, ApiError> {
        let defaults = defaults.as_object().cloned().unwrap_or_default();
        merge_params(&defaults, Bytes::from(params.to_owned()))
            .map(|b| serde_json::from_slice(&b).unwrap())
    }

    #[test]
    fn default_parameters_merge_under_the_invocations() {
        let defaults = json!({"a": 1, "b": {"deep": true}});
        assert_eq!(
            merged(defaults.clone(), r#"{"b": 2, "c": 3}"#).unwrap(),
            json!({"a": 1, "b": 2, "c": 3})
        );
        assert_eq!(merged(defaults.clone(), "").unwrap(), defaults);
        assert_eq!(
            merged(json!({}), r#"{"x": [1]}"#).unwrap(),
            json!({"x": [1]})
        );
    }

    #[test]
    fn parameters_must_be_a_json_object() {
        for bad in ["[1]", "42", "{\"a\": ", "{\"a\": 1e999}"] {
            assert!(
                matches!(merged(json!({"d": 1}), bad), Err(ApiError::BadRequest(_))),
                "{bad}"
            );
        }
        let deep = format!("{}{}", "{\"a\":".repeat(200), "}".repeat(200));
        assert!(merged(json!({}), &deep).is_err());
    }

    #[test]
    fn a_function_s_limits_and_engine_take_init_s_env_keys() {
        let mut spec = FunctionSpec::default();
        spec.limits.memory_bytes = Some(64 << 20);
        spec.limits.timeout_ms = Some(1500);
        spec.engine = Some("wamr".into());
        let request = prepare_request(
            "ns",
            "f",
            &spec,
            Code::Bytes {
                bytes: Arc::new(Vec::new()),
                digest: String::new(),
            },
        );
        assert_eq!(request.env["OW_MAX_MEMORY_MB"], "64");
        assert_eq!(request.env["OW_MAX_DURATION"], "1500ms");
        assert_eq!(request.env["OW_ENGINE"], "wamr");
        assert_eq!(request.entry, "main");
        assert_eq!(request.name.as_deref(), Some("/ns/f"));
    }

    #[test]
    fn activation_ids_are_32_hex_digits_and_distinct() {
        let (a, b) = (new_activation_id(), new_activation_id());
        assert_eq!(a.len(), 32);
        assert!(a.bytes().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
    }
}
