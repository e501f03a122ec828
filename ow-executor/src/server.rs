//! The HTTP side: routes, handlers and the executor's state.

use crate::budget::MemoryBudget;
use crate::engines::Engines;
use crate::error::ApiError;
use crate::load::{LoadPath, Loader};
use crate::logs::LogSink;
use crate::metrics::{InitLabels, Metrics, RunLabels};
use crate::registry::{Completion, Ready, Registry, Ticket};
use actix_web::dev::Server;
use actix_web::web::{self, Data, Payload};
use actix_web::{HttpRequest, HttpResponse, HttpServer};
use ow_common::payload::{InitRequest, RunRequest};
use ow_common::{
    ActionSpec, Activation, ActivationOutput, Deadline, Error as ActionError, run_to_deadline,
};
use serde::de::DeserializeOwned;
use serde_json::json;
use std::net::TcpListener;
use std::sync::Arc;

/// The container id of standard mode (`POST /init`, `POST /run`).
const STANDARD: &str = "";

/// How long past an activation's time limit the executor waits for the
/// engine to stop it before answering anyway (a backstop: every engine
/// stops its guest at the deadline).
pub const DEADLINE_GRACE: std::time::Duration = std::time::Duration::from_secs(1);

/// The /init `env` key that picks the engine for one action.
pub const ENGINE_ENV_KEY: &str = "OW_ENGINE";

/// Settings of the HTTP layer.
#[derive(Debug, Clone)]
pub struct ServerSettings {
    /// Largest /init body in bytes.
    pub max_init_bytes: usize,
    /// Largest /run body in bytes.
    pub max_run_bytes: usize,
    /// HTTP worker threads; 0 for one per core. Activations run on them
    /// (wasmtime's as coroutines; the other engines' on pools of their own,
    /// awaited here).
    pub http_workers: usize,
    /// Log bytes kept per stream and activation (for the truncation notice).
    pub max_log_bytes: usize,
    /// Activations that may run at once.
    pub max_concurrency: usize,
    /// How long a /run waits for a slot before 429.
    pub max_queue_wait: std::time::Duration,
    /// Native stack of the threads that read and compile code at /init.
    pub init_thread_stack_bytes: usize,
    /// Parent of per-activation scratch directories.
    pub scratch_dir: std::path::PathBuf,
    /// How long a graceful shutdown (SIGTERM) waits for in-flight requests.
    pub shutdown_timeout: std::time::Duration,
    /// The memory all activations and /inits may reserve together, in
    /// bytes; `None` for no budget.
    pub memory_budget: Option<u64>,
    /// /inits that may read and prepare code at once.
    pub max_concurrent_inits: usize,
    /// The operator's bearer token for `/state/{namespace}/{key}`; the
    /// endpoint is closed without one.
    pub admin_token: Option<String>,
}

/// What the handlers share.
pub struct AppState {
    engines: Engines,
    containers: Registry,
    logs: LogSink,
    api_host: Option<String>,
    settings: ServerSettings,
    /// Parses, decodes and compiles /init bodies, off the HTTP workers.
    init_pool: InitPool,
    /// One permit per activation that may run at once.
    slots: Arc<tokio::sync::Semaphore>,
    /// One permit per /init that may read and prepare code at once.
    init_slots: Arc<tokio::sync::Semaphore>,
    /// What activations and /inits reserve before they start.
    budget: Option<MemoryBudget>,
    /// Precompiled artifacts and the compile cache.
    pub(crate) loader: Arc<Loader>,
    /// What `GET /metrics` reports.
    metrics: Metrics,
    /// The actions' key-value state (ABI version 2).
    pub(crate) state: ow_state::State,
    /// The function store and its APIs (`--store-dir`).
    functions: Option<Arc<crate::functions::Functions>>,
    /// Calls of actions by actions.
    chaining: crate::chain::Chaining,
}

impl AppState {
    /// State for a server running actions on `engines`.
    ///
    /// # Errors
    /// When the /init thread pool cannot be created.
    pub fn new(
        engines: Engines,
        loader: Loader,
        settings: ServerSettings,
        state: ow_state::State,
    ) -> std::io::Result<Self> {
        let init_pool = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .max_blocking_threads(settings.max_concurrent_inits.max(1))
            .thread_name("ow-init")
            .thread_stack_size(settings.init_thread_stack_bytes)
            .thread_keep_alive(std::time::Duration::from_secs(300))
            .enable_all()
            .build()?;
        let init_pool = InitPool::new(init_pool);
        Ok(Self {
            engines,
            containers: Registry::default(),
            logs: LogSink::default(),
            api_host: std::env::var("__OW_API_HOST").ok(),
            slots: Arc::new(tokio::sync::Semaphore::new(settings.max_concurrency.max(1))),
            init_slots: Arc::new(tokio::sync::Semaphore::new(
                settings.max_concurrent_inits.max(1),
            )),
            budget: settings.memory_budget.map(MemoryBudget::new),
            settings,
            init_pool,
            metrics: {
                let metrics = Metrics::default();
                metrics
                    .trust_unsigned
                    .set(i64::from(loader.trusts_unsigned()));
                metrics
            },
            loader: Arc::new(loader),
            state,
            functions: None,
            chaining: crate::chain::Chaining::new(Default::default()),
        })
    }

    /// Chain calls with these settings (`--max-call-depth`, `--peer`, ...).
    pub fn with_chaining(mut self, settings: crate::chain::ChainSettings) -> Self {
        self.chaining = crate::chain::Chaining::new(settings);
        self
    }

    pub(crate) fn chaining(&self) -> &crate::chain::Chaining {
        &self.chaining
    }

    /// This executor's containers.
    pub(crate) fn containers(&self) -> &Registry {
        &self.containers
    }

    /// Count a call of an action by an action in `ow_calls_total`.
    pub(crate) fn count_call(&self, path: crate::chain::CallPath) {
        self.metrics.call(path.name());
    }

    /// Serve the functions of a store too.
    pub fn with_functions(mut self, functions: crate::functions::Functions) -> Self {
        self.functions = Some(Arc::new(functions));
        self
    }

    /// The server's settings.
    pub(crate) fn settings(&self) -> &ServerSettings {
        &self.settings
    }

    /// Count an activation in `ow_activations_total` and time it from `started`.
    pub(crate) fn observe_run(
        &self,
        engine: &'static str,
        outcome: &'static str,
        started: std::time::Instant,
    ) {
        self.metrics.run(
            RunLabels { engine, outcome },
            started.elapsed().as_secs_f64(),
        );
    }

    /// The operator's limits (what an action's own may only lower).
    pub(crate) fn operator_limits(&self) -> &ow_common::Limits {
        self.engines.limits()
    }

    /// `__OW_API_HOST` of the executor's environment.
    pub(crate) fn api_host(&self) -> Option<&str> {
        self.api_host.as_deref()
    }

    /// The function store's functions, when `--store-dir` enabled them.
    pub(crate) fn functions(&self) -> Option<&Arc<crate::functions::Functions>> {
        self.functions.as_ref()
    }

    /// One of `slots` (`total` in all), waiting at most the queue wait,
    /// then 429.
    async fn slot(
        &self,
        slots: &Arc<tokio::sync::Semaphore>,
        total: usize,
    ) -> Result<tokio::sync::OwnedSemaphorePermit, ApiError> {
        tokio::time::timeout(
            self.settings.max_queue_wait,
            Arc::clone(slots).acquire_owned(),
        )
        .await
        .map_err(|_| ApiError::Busy(total))?
        .map_err(|e| ApiError::Internal(format!("slots closed: {e}")))
    }

    /// Reserve `bytes` of the memory budget (nothing without a budget),
    /// waiting at most the queue wait.
    async fn reserve(
        &self,
        bytes: u64,
    ) -> Result<Option<tokio::sync::OwnedSemaphorePermit>, ApiError> {
        let Some(budget) = &self.budget else {
            return Ok(None);
        };
        let permit = budget
            .reserve(bytes, self.settings.max_queue_wait)
            .await
            .map_err(|over| ApiError::OverBudget {
                needed_mib: over.needed_mib,
                budget_mib: over.budget_mib,
            })?;
        Ok(Some(permit))
    }

    /// Run the future `f` on the /init pool's runtime and wait for it.
    pub(crate) async fn background<T: Send + 'static>(
        &self,
        f: impl std::future::Future<Output = T> + Send + 'static,
    ) -> Result<T, ApiError> {
        self.init_pool
            .handle()
            .spawn(f)
            .await
            .map_err(|e| ApiError::Internal(format!("background task failed: {e}")))
    }

    /// Run `f` on the /init pool and wait for it without blocking the worker.
    pub(crate) async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, ApiError> {
        self.init_pool
            .handle()
            .spawn_blocking(f)
            .await
            .map_err(|e| ApiError::Internal(format!("/init task failed: {e}")))
    }
}

/// The runtime whose blocking pool serves /init. It is dropped with the
/// server's state, possibly on an async worker, where a blocking shutdown
/// would panic: it shuts down in the background instead.
struct InitPool {
    handle: tokio::runtime::Handle,
    runtime: Option<tokio::runtime::Runtime>,
}

impl InitPool {
    fn new(runtime: tokio::runtime::Runtime) -> Self {
        Self {
            handle: runtime.handle().clone(),
            runtime: Some(runtime),
        }
    }

    fn handle(&self) -> &tokio::runtime::Handle {
        &self.handle
    }
}

impl Drop for InitPool {
    fn drop(&mut self) {
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

/// A module of the SDK ABI answering `{}`, run once per engine at start-up.
const WARM_UP_WAT: &str = r#"(module (memory (export "memory") 1)
  (data (i32.const 16) "{}")
  (func (export "ow_alloc") (param i32) (result i32) (i32.const 1024))
  (func (export "main") (param i32 i32) (result i64) (i64.const 0x1000000002)))"#;

/// Before the port is bound: take every engine once through what the first
/// /init and /run of a process would otherwise do lazily (the /init pool's
/// threads, the code decoders, compilation and loading of a precompiled
/// module, a pooled instance slot, a fiber stack, a WASI context, the
/// activation path). Nothing is logged and nothing stays registered.
///
/// # Errors
/// When an engine fails to run the warm-up module: it could not run actions.
pub async fn warm_up(state: &Data<AppState>) -> Result<(), String> {
    use base64::Engine as _;
    let wasm = wat::parse_str(WARM_UP_WAT).map_err(|e| e.to_string())?;
    let code = base64::engine::general_purpose::STANDARD.encode(&wasm);
    // The /init path without the compile cache: nothing is written.
    let warm_loader = Arc::new(state.loader.without_cache());
    for (kind, runtime) in state.engines.created() {
        let engine = kind.name();
        let failed = |what: &str, e: &dyn std::fmt::Display| format!("{engine} {what}: {e}");
        let req: InitRequest = serde_json::from_value(json!({"value": {
            "name": "warm-up", "binary": true, "main": "main", "code": code,
            "env": { ENGINE_ENV_KEY: engine },
        }}))
        .map_err(|e| failed("warm-up request", &e))?;
        let (ready, _) = prepare(state, &warm_loader, Prepare::from_init(req))
            .await
            .map_err(|e| failed("warm-up /init", &e))?;
        let mut actions = vec![ready.action];
        if runtime.compatibility_hash().is_some() {
            let artifact = runtime
                .precompile(&wasm)
                .map_err(|e| failed("warm-up precompile", &e))?;
            let spec = ActionSpec {
                entry: "main".into(),
                ..ActionSpec::default()
            };
            // SAFETY: the artifact was made just above, in this process, by
            // this very engine.
            let loaded = unsafe { runtime.prepare_precompiled(&wasm, &artifact, spec) };
            actions.push(loaded.map_err(|e| failed("warm-up precompiled load", &e))?);
        }
        for action in actions {
            let activation =
                Activation::new(Default::default(), std::time::Duration::from_secs(10));
            let output = run_to_deadline(action, activation, DEADLINE_GRACE).await;
            match output.map(|o| o.result) {
                Some(Ok(result)) if result == b"{}" => {}
                other => return Err(failed("warm-up run", &format!("{other:?}"))),
            }
        }
        tracing::debug!(engine, "warmed up");
    }
    Ok(())
}

/// Bind `listener` and serve until the server is stopped.
///
/// # Errors
/// When the listener cannot be used.
pub fn serve(state: Data<AppState>, listener: TcpListener) -> std::io::Result<Server> {
    let workers = match state.settings.http_workers {
        0 => std::thread::available_parallelism().map_or(2, |n| n.get()),
        n => n,
    };
    // Wait for in-flight activations up to their own limit (the deadline
    // guard answers every one by then), not actix's default of 30 s.
    let shutdown_secs = state.settings.shutdown_timeout.as_secs().max(1);
    let server = HttpServer::new(move || {
        actix_web::App::new()
            .app_data(state.clone())
            .configure(routes)
            .default_service(web::to(not_found))
    })
    .workers(workers)
    .shutdown_timeout(shutdown_secs)
    .listen(listener)?
    .run();
    Ok(server)
}

/// The protocol's routes: standard mode and multi-action mode on the same handlers.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(get_only("/engines", list_engines))
        .service(get_only("/metrics", metrics))
        .service(post_only("/init", init_standard))
        .service(post_only("/run", run_standard))
        .service(post_only("/{container_id}/init", init_container))
        .service(post_only("/{container_id}/run", run_container))
        .service(post_only("/{container_id}/destroy", destroy_container))
        .service(crate::state_api::resource())
        .configure(crate::faas_api::routes)
        .configure(crate::openwhisk_api::routes);
}

pub(crate) fn get_only<F, Args>(path: &str, handler: F) -> actix_web::Resource
where
    F: actix_web::Handler<Args>,
    Args: actix_web::FromRequest + 'static,
    F::Output: actix_web::Responder + 'static,
{
    web::resource(path)
        .route(web::get().to(handler))
        .default_service(web::to(method_not_allowed))
}

fn post_only<F, Args>(path: &str, handler: F) -> actix_web::Resource
where
    F: actix_web::Handler<Args>,
    Args: actix_web::FromRequest + 'static,
    F::Output: actix_web::Responder + 'static,
{
    web::resource(path)
        .route(web::post().to(handler))
        .default_service(web::to(method_not_allowed))
}

async fn not_found(req: HttpRequest) -> Result<HttpResponse, ApiError> {
    Err(ApiError::NotFound(req.path().to_owned()))
}

pub(crate) async fn method_not_allowed(req: HttpRequest) -> Result<HttpResponse, ApiError> {
    Err(ApiError::MethodNotAllowed(req.method().to_string()))
}

/// `GET /metrics`: Prometheus (OpenMetrics) text.
async fn metrics(state: Data<AppState>) -> HttpResponse {
    if let Some(budget) = &state.budget {
        state
            .metrics
            .budget_used_mib
            .set(i64::from(budget.used_mib()));
    }
    HttpResponse::Ok()
        .content_type("application/openmetrics-text; version=1.0.0; charset=utf-8")
        .body(state.metrics.encode())
}

/// `GET /engines`: the engines of this binary, their versions, the default.
async fn list_engines(state: Data<AppState>) -> HttpResponse {
    let engines: Vec<_> = crate::cli::EngineKind::ALL
        .iter()
        .map(|&kind| match state.engines.get(kind) {
            Ok(rt) => json!({ "name": kind.name(), "version": rt.version() }),
            Err(e) => json!({ "name": kind.name(), "error": e.to_string() }),
        })
        .collect();
    HttpResponse::Ok().json(json!({
        "default": state.engines.default_kind().name(),
        "engines": engines,
        // Said wherever an operator looks: native code from any upload runs.
        "trust_unsigned_artifacts": state.loader.trusts_unsigned(),
    }))
}

async fn init_standard(state: Data<AppState>, body: Payload) -> Result<HttpResponse, ApiError> {
    init(state, STANDARD.to_owned(), body).await
}

async fn run_standard(state: Data<AppState>, body: Payload) -> Result<HttpResponse, ApiError> {
    run(state, STANDARD, body).await
}

async fn init_container(
    state: Data<AppState>,
    id: web::Path<String>,
    body: Payload,
) -> Result<HttpResponse, ApiError> {
    init(state, id.into_inner(), body).await
}

async fn run_container(
    state: Data<AppState>,
    id: web::Path<String>,
    body: Payload,
) -> Result<HttpResponse, ApiError> {
    run(state, &id, body).await
}

async fn destroy_container(
    state: Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    // Wins over an /init in progress: its result is dropped (see `registry`).
    match state.containers.destroy(id.as_str()) {
        true => Ok(HttpResponse::Ok().json(json!({ "ok": true }))),
        false => Err(ApiError::NotFound(format!("container {}", id.as_str()))),
    }
}

/// Read a JSON body of at most `limit` bytes; an empty body is `{}`.
async fn read_json<T: DeserializeOwned + Default>(
    body: Payload,
    limit: usize,
) -> Result<T, ApiError> {
    parse_json(&read_body(body, limit).await?)
}

/// Read a body of at most `limit` bytes.
pub(crate) async fn read_body(
    body: Payload,
    limit: usize,
) -> Result<actix_web::web::Bytes, ApiError> {
    match body.to_bytes_limited(limit).await {
        Ok(Ok(bytes)) => Ok(bytes),
        Ok(Err(e)) => Err(ApiError::BadRequest(format!("cannot read the body: {e}"))),
        Err(_) => Err(ApiError::TooLarge(limit)),
    }
}

/// Parse a protocol body: a JSON object; an empty body is `{}`.
fn parse_json<T: DeserializeOwned + Default>(bytes: &[u8]) -> Result<T, ApiError> {
    match bytes.iter().find(|b| !b.is_ascii_whitespace()) {
        None => return Ok(T::default()),
        Some(b'{') => {}
        // serde would read a struct from an array too: the protocol's bodies are objects.
        Some(_) => {
            return Err(ApiError::BadRequest(
                "the body must be a JSON object".into(),
            ));
        }
    }
    serde_json::from_slice(bytes).map_err(|e| ApiError::BadRequest(e.to_string()))
}

async fn init(state: Data<AppState>, id: String, body: Payload) -> Result<HttpResponse, ApiError> {
    // From the headers on: reading and parsing megabytes of code counts too.
    let started = std::time::Instant::now();
    // Bounded: at most this many bodies of up to --max-init-bytes are read
    // and compiled at once.
    let _init_slot = state
        .slot(&state.init_slots, state.settings.max_concurrent_inits)
        .await?;
    let bytes = read_body(body, state.settings.max_init_bytes).await?;
    let _reserved = state
        .reserve(bytes.len() as u64 * crate::budget::INIT_BYTES_PER_BODY_BYTE)
        .await?;
    // Tens of megabytes of JSON are parsed off the HTTP workers.
    let req: InitRequest = state.blocking(move || parse_json(&bytes)).await??;
    let has_code = req
        .value
        .as_ref()
        .and_then(|v| v.code.as_deref())
        .is_some_and(|c| !c.trim().is_empty());
    let ticket = match state.containers.begin_init(&id) {
        Ok(ticket) => ticket,
        Err(crate::registry::Refusal::AlreadyInitialized) => {
            let err = ApiError::AlreadyInitialized;
            // The compliance suite looks for the message in the logs too.
            state.logs.stderr_line(&err.to_string());
            return Err(err);
        }
    };
    // If this future is dropped mid-way (the client went away), the id must
    // not stay `Initializing` forever.
    let mut pending = PendingInit {
        state: Data::clone(&state),
        ticket,
        done: false,
    };
    let result = match has_code {
        true => prepare(&state, &state.loader, Prepare::from_init(req)).await,
        false => Err(ApiError::MissingCode),
    };
    pending.done = true;
    let ticket = &pending.ticket;
    let (engine, path) = match &result {
        Ok((ready, path)) => (ready.engine, path.name()),
        Err(_) => ("unknown", "failed"),
    };
    state
        .metrics
        .init(InitLabels { engine, path }, started.elapsed().as_secs_f64());
    match result {
        Ok((ready, path)) => match state.containers.complete(ticket, ready) {
            Completion::Ready => Ok(HttpResponse::Ok()
                .insert_header(("X-Ow-Init-Path", path.name()))
                .json(json!({ "ok": true }))),
            Completion::Destroyed => Err(ApiError::NotFound(format!(
                "container {id} was destroyed during its /init"
            ))),
        },
        Err(e) => {
            // A failed /init leaves the container uninitialised: it may be retried.
            state.containers.abandon(ticket);
            Err(e)
        }
    }
}

/// Where an action's code comes from.
pub(crate) enum Code {
    /// /init's `code`: base64 (or text, which is refused).
    Init { code: String, binary: bool },
    /// A module or zip in the function store, by its SHA-256; read only
    /// when no live action with the same code and settings can be shared.
    Stored {
        store: Arc<ow_store::Store>,
        digest: String,
    },
    /// A module or zip being deployed (shared like the stored code it becomes).
    Bytes { bytes: Arc<Vec<u8>>, digest: String },
}

/// What an action is prepared from: /init's value, or a stored function.
pub(crate) struct Prepare {
    pub name: Option<String>,
    pub entry: String,
    /// The action's env: its limits (`OW_MAX_*`), engine (`OW_ENGINE`) and
    /// scratch choice are read from here, for both kinds of action.
    pub env: std::collections::BTreeMap<String, String>,
    pub code: Code,
}

impl Prepare {
    fn from_init(req: InitRequest) -> Self {
        let value = req.value.unwrap_or_default();
        Self {
            env: value.env_strings(),
            entry: value.entry().to_owned(),
            name: value.name,
            code: Code::Init {
                code: value.code.unwrap_or_default(),
                binary: value.binary.unwrap_or(false),
            },
        }
    }
}

pub(crate) async fn prepare(
    state: &Data<AppState>,
    loader: &Arc<Loader>,
    req: Prepare,
) -> Result<(Ready, LoadPath), ApiError> {
    let env = req.env;
    let limits =
        crate::cli::action_limits(state.engines.limits(), &env).map_err(ApiError::BadRequest)?;
    let max_duration = limits.max_duration;
    let embed: Arc<[String]> = env
        .get(crate::chain::EMBED_ENV_KEY)
        .map(|names| {
            names
                .split(',')
                .map(str::trim)
                .filter(|n| !n.is_empty())
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    // The most one activation may hold: its memory and its two log buffers.
    let memory_bytes = limits.max_memory_bytes as u64 + 2 * limits.max_log_bytes as u64;
    let scratch = crate::cli::wants_scratch(&env)
        .map_err(ApiError::BadRequest)?
        .then(|| state.settings.scratch_dir.clone());
    let spec = ActionSpec {
        name: req.name.clone(),
        entry: req.entry,
        env,
        limits,
        scratch,
    };
    let runtime = match spec.env.get(ENGINE_ENV_KEY) {
        Some(name) if !name.trim().is_empty() => state.engines.by_name(name),
        _ => state.engines.get(state.engines.default_kind()),
    }
    .map_err(|e| match e {
        crate::engines::EngineError::Unknown(..) => ApiError::BadRequest(e.to_string()),
        crate::engines::EngineError::Start(..) => ApiError::Internal(e.to_string()),
    })?;
    let engine = runtime.name();
    // Proto-function snapshots are made by wasmtime for every engine.
    let snapshots = state.engines.by_name("wasmtime").ok();
    let code = req.code;
    let started = std::time::Instant::now();
    let loader = Arc::clone(loader);
    let prepared = state
        .blocking(move || {
            let key = match &code {
                Code::Init { code, binary } => Loader::shared_key(
                    engine,
                    &[b"init", &[u8::from(*binary)], code.as_bytes()],
                    &spec,
                ),
                Code::Stored { digest, .. } | Code::Bytes { digest, .. } => {
                    Loader::shared_key(engine, &[b"sha256", digest.as_bytes()], &spec)
                }
            };
            loader.shared_or(key, || {
                let package = match code {
                    Code::Init { code, binary } => ow_artifact::decode_package(&code, binary),
                    Code::Stored { store, digest } => {
                        let bytes = store
                            .code(&digest)
                            .map_err(|e| ApiError::Internal(e.to_string()))?
                            .ok_or_else(|| {
                                ApiError::Internal(format!("stored code {digest} is missing"))
                            })?;
                        ow_artifact::package_from_bytes(bytes)
                    }
                    Code::Bytes { bytes, .. } => {
                        ow_artifact::package_from_bytes(Arc::unwrap_or_clone(bytes))
                    }
                }
                .map_err(|e| match e {
                    ow_artifact::ArtifactError::BadBase64(_) => ApiError::BadRequest(e.to_string()),
                    ow_artifact::ArtifactError::Load(_) => ApiError::Load(e.to_string()),
                })?;
                let package = snapshot(snapshots.as_deref(), package, &spec)?;
                loader
                    .load(&*runtime, package, spec)
                    .map_err(|e| ApiError::Load(e.to_string()))
            })
        })
        .await??;
    let (prepared, path) = prepared;
    tracing::info!(
        engine,
        abi = %prepared.abi(),
        path = path.name(),
        elapsed = ?started.elapsed(),
        "initialized"
    );
    Ok((
        Ready {
            action: prepared,
            max_duration,
            engine,
            memory_bytes,
            name: req.name,
            embed,
            namespace: Arc::default(),
        },
        path,
    ))
}

async fn run(state: Data<AppState>, id: &str, body: Payload) -> Result<HttpResponse, ApiError> {
    let started = std::time::Instant::now();
    let Some(ready) = state.containers.ready(id) else {
        return Err(ApiError::NotInitialized);
    };
    let engine = ready.engine;
    let result = activate(&state, ready, body).await;
    let outcome = match &result {
        Ok(bytes) => action_outcome(Ok(bytes)),
        Err(e) => error_outcome(e),
    };
    state.observe_run(engine, outcome, started);
    result.map(|bytes| {
        HttpResponse::Ok()
            .content_type(actix_web::http::header::ContentType::json())
            .body(bytes)
    })
}

/// The `outcome` label of an activation's result.
fn action_outcome(result: Result<&[u8], &ActionError>) -> &'static str {
    match result {
        Ok(bytes) if has_error_field(bytes) => "application_error",
        Ok(_) => "success",
        Err(ActionError::Timeout(_)) => "timeout",
        Err(_) => "action_error",
    }
}

/// The `outcome` label of an activation that ended in an error answer.
fn error_outcome(e: &ApiError) -> &'static str {
    match e {
        ApiError::Action(e) => action_outcome(Err(e)),
        ApiError::Busy(_) | ApiError::OverBudget { .. } => "rejected",
        ApiError::Internal(_) => "internal",
        _ => "bad_request",
    }
}

/// Whether a result object has a top-level `error` field (an application
/// error, as OpenWhisk counts it), found without building the object.
fn has_error_field(result: &[u8]) -> bool {
    #[derive(serde::Deserialize)]
    struct Probe {
        error: Option<serde::de::IgnoredAny>,
    }
    serde_json::from_slice::<Probe>(result).is_ok_and(|probe| probe.error.is_some())
}

/// Gives up an /init's ticket if the /init never finishes (its request
/// future was dropped): the id is not left `Initializing` for good.
struct PendingInit {
    state: Data<AppState>,
    ticket: Ticket,
    /// Set once the /init finished: it completes or abandons the ticket itself.
    done: bool,
}

impl Drop for PendingInit {
    fn drop(&mut self) {
        if !self.done {
            self.state.containers.abandon(&self.ticket);
        }
    }
}

/// Counts an activation in flight for as long as it lives.
struct InFlight(prometheus_client::metrics::gauge::Gauge);

impl InFlight {
    fn new(gauge: &prometheus_client::metrics::gauge::Gauge) -> Self {
        gauge.inc();
        Self(gauge.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// Logs up to this size are written on the HTTP worker; larger ones on the
/// /init pool, so a slow reader of the executor's stdout cannot stall a
/// worker for long.
const INLINE_LOG_BYTES: usize = 64 << 10;

/// The package of a proto-function (a module exporting `ow_zygote`): its
/// snapshot, made with the init-time environment; any other package as it
/// is. A zip's precompiled artifacts were made from the module before its
/// zygote ran, so they are left out (`ow-precompiler --snapshot` makes
/// zips of the snapshot instead).
fn snapshot(
    maker: Option<&dyn ow_common::WasmRuntime>,
    package: ow_artifact::Package,
    spec: &ActionSpec,
) -> Result<ow_artifact::Package, ApiError> {
    if !ow_common::abi::exports_function(package.wasm(), ow_common::abi::EXPORT_ZYGOTE) {
        return Ok(package);
    }
    let maker = maker.ok_or_else(|| {
        ApiError::Load("proto-function snapshots need the wasmtime engine in this build".into())
    })?;
    let env: Vec<(String, String)> = spec
        .env
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let started = std::time::Instant::now();
    let wasm = maker
        .snapshot(package.wasm(), &env, spec.limits.max_duration)
        .map_err(|e| ApiError::Load(e.to_string()))?;
    tracing::info!(elapsed = ?started.elapsed(), bytes = wasm.len(), "proto-function snapshot made");
    Ok(ow_artifact::Package::from_wasm(wasm))
}

/// Run one /run activation of `action`: its result (JSON text), or why
/// there is none. Its logs go to the executor's stdout for the invoker.
async fn activate(
    state: &Data<AppState>,
    ready: Ready,
    body: Payload,
) -> Result<Vec<u8>, ApiError> {
    let req: RunRequest = read_json(body, state.settings.max_run_bytes).await?;
    let ctx = req.into_context(state.api_host.clone());
    // The first activation makes the container its namespace's (what
    // other actions' calls of it are checked against).
    ready.serves(
        ctx.namespace
            .as_deref()
            .unwrap_or(crate::host::DEFAULT_NAMESPACE),
    );
    let output = execute(state, ready, ctx, Finish::Invoker, Default::default()).await?;
    output.result.map_err(ApiError::Action)
}

/// What happens to an activation's output before its answer is sent (and
/// even if nobody waits for the answer any more).
pub(crate) enum Finish {
    /// Written to the executor's stdout and stderr with the sentinels.
    Invoker,
    /// Handed to the function store's records (logs, activation records).
    Record(Box<dyn FnOnce(&ActivationOutput) + Send>),
}

/// Run one activation of `ready` in context `ctx`, called from `origin`
/// (nobody's for /run), holding a slot and its memory reservation until it
/// ends. The activation is a task of its own: if the caller goes away it
/// still ends, `finish`es and gives its slot back.
pub(crate) async fn execute(
    state: &Data<AppState>,
    ready: Ready,
    mut ctx: ow_common::ActivationContext,
    finish: Finish,
    origin: crate::chain::Origin,
) -> Result<ActivationOutput, ApiError> {
    origin.apply(&mut ctx);
    let caller = crate::chain::Caller::of(&ready);
    let Ready {
        action,
        max_duration,
        memory_bytes,
        ..
    } = ready;
    let slot = state
        .slot(&state.slots, state.settings.max_concurrency)
        .await?;
    // Held, like the slot, until the activation ends: the memory is in use
    // until then.
    let reserved = state.reserve(memory_bytes).await?;
    let time_limit = ctx.time_limit(max_duration);
    let activation = activation(state, ctx, time_limit, &origin, caller);
    let state = Data::clone(state);
    // A Send task of the current runtime: an HTTP worker's, or an engine
    // pool's when a caller's host call starts it.
    let task = tokio::spawn(async move {
        // In flight from the slot on (the body is read, the activation runs).
        let _in_flight = InFlight::new(&state.metrics.in_flight);
        let output = match run_to_deadline(action, activation, DEADLINE_GRACE).await {
            Some(output) => output,
            None => {
                // Every engine stops its guest at the deadline; this is the
                // backstop should one not return within the grace.
                tracing::warn!(?time_limit, "activation abandoned after its time limit");
                let notice = "The activation was abandoned at its time limit; its logs are lost.";
                ActivationOutput {
                    result: Err(ActionError::Timeout(time_limit.as_millis() as u64)),
                    stdout: Vec::new(),
                    stderr: notice.as_bytes().to_vec(),
                    logs_truncated: false,
                }
            }
        };
        match finish {
            Finish::Invoker => write_logs(&state, &output).await,
            Finish::Record(record) => record(&output),
        }
        drop((slot, reserved));
        output
    });
    task.await
        .map_err(|e| ApiError::Internal(format!("activation task failed: {e}")))
}

/// [`execute`], counted in `ow_activations_total` and timed from
/// `started`: for activations no /run counts (functions, callees).
pub(crate) async fn execute_counted(
    state: &Data<AppState>,
    ready: Ready,
    ctx: ow_common::ActivationContext,
    finish: Finish,
    origin: crate::chain::Origin,
    started: std::time::Instant,
) -> Result<ActivationOutput, ApiError> {
    let engine = ready.engine;
    let output = execute(state, ready, ctx, finish, origin).await;
    let outcome = match &output {
        Ok(output) => action_outcome(output.result.as_deref()),
        Err(e) => error_outcome(e),
    };
    state.observe_run(engine, outcome, started);
    output
}

/// An activation in context `ctx` that must end within `time_limit`, with
/// its host context.
fn activation(
    state: &Data<AppState>,
    ctx: ow_common::ActivationContext,
    time_limit: std::time::Duration,
    origin: &crate::chain::Origin,
    caller: crate::chain::Caller,
) -> Activation {
    let deadline = Deadline::new(time_limit);
    Activation {
        host: Arc::new(crate::host::ActivationHost::new(
            state, &ctx, &deadline, origin, caller,
        )),
        deadline,
        ctx,
    }
}

/// Run an embedded callee's activation of `ready` right here, on its
/// caller's task and within its caller's slot and deadline.
pub(crate) async fn run_embedded(
    state: &Data<AppState>,
    ready: Ready,
    mut ctx: ow_common::ActivationContext,
    origin: crate::chain::Origin,
) -> ActivationOutput {
    origin.apply(&mut ctx);
    let time_limit = ctx.time_limit(ready.max_duration);
    let caller = crate::chain::Caller::of(&ready);
    let activation = activation(state, ctx, time_limit, &origin, caller);
    run_to_deadline(ready.action, activation, DEADLINE_GRACE)
        .await
        .unwrap_or_else(|| {
            ActivationOutput::failed(ActionError::Timeout(time_limit.as_millis() as u64))
        })
}

/// Write an activation's logs and the sentinels (before its answer is sent).
async fn write_logs(state: &Data<AppState>, output: &ActivationOutput) {
    let notice = output.logs_truncated.then(|| {
        format!(
            "Logs were truncated because the total bytes size exceeds the limit of {} bytes.",
            state.settings.max_log_bytes
        )
    });
    if output.stdout.len() + output.stderr.len() <= INLINE_LOG_BYTES {
        state
            .logs
            .activation(&output.stdout, &output.stderr, notice.as_deref());
        return;
    }
    let (writer, stdout, stderr) = (
        Data::clone(state),
        output.stdout.clone(),
        output.stderr.clone(),
    );
    let written = state
        .blocking(move || writer.logs.activation(&stdout, &stderr, notice.as_deref()))
        .await;
    if let Err(e) = written {
        tracing::warn!("cannot write an activation's logs: {e}");
    }
}
