//! Actions that call actions: `call` and `await_call` of `ow_host_v1`
//! (docs/abi.md, "Calling other actions").
//!
//! Each activation's host context has a [`Calls`] table. `call` resolves the
//! name and starts the callee on the cheapest path its locality allows:
//!
//! - **embedded**: the caller's /init env names the callee in `OW_EMBED`
//!   and it is an action of this executor in the caller's namespace: the
//!   callee runs when it is awaited, on the caller's task (no slot, no
//!   spawn, no HTTP), its params and result handed over as bytes;
//! - **local**: an action of this executor in the caller's namespace (the
//!   function store, or a container initialised here under that name):
//!   an activation of its own (slot, limits, logs), started at once as a
//!   task, the params handed over as they are (no HTTP, no re-encoding);
//! - **networked**: the OpenWhisk API at `__OW_API_HOST` with the
//!   activation's API key, then each `--peer` executor's function API.
//!
//! The callee gets the caller's deadline, namespace and lineage (the
//! actions from the root activation down); a chain deeper than
//! `--max-call-depth` or a call of an action already in the lineage (a
//! cycle) is answered with an error result, never run.

use crate::server::{AppState, Finish};
use actix_web::web::Bytes;
use actix_web::web::Data;
use ow_common::state::{StateError, StateReply, StateResult};
use ow_common::{ActivationOutput, BoxFuture, Deadline};
use serde_json::json;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The /init env key naming the actions a caller may embed (`a,b,c`).
pub const EMBED_ENV_KEY: &str = "OW_EMBED";
/// Header carrying the lineage of a networked call (`ns/a,ns/b`).
pub const LINEAGE_HEADER: &str = "X-Ow-Call-Lineage";
/// Header carrying the caller's deadline, epoch milliseconds.
pub const DEADLINE_HEADER: &str = "X-Ow-Deadline";

/// The executor's chaining settings (`--max-call-depth`,
/// `--max-calls-in-flight`, `--peer`).
#[derive(Debug, Clone)]
pub struct ChainSettings {
    /// Activations a chain may have, the root included.
    pub max_depth: usize,
    /// Calls one activation may have started and not yet awaited.
    pub max_in_flight: usize,
    /// Executors whose function API is tried after the OpenWhisk API.
    pub peers: Vec<String>,
}

impl Default for ChainSettings {
    fn default() -> Self {
        Self {
            max_depth: 16,
            max_in_flight: 1000,
            peers: Vec::new(),
        }
    }
}

/// What the executor shares between the activations' call tables.
pub struct Chaining {
    settings: ChainSettings,
    /// Made at the first networked call: building one reads the system's CA
    /// certificates, which an image without them does not have (then only
    /// networked calls fail, with the reason).
    client: std::sync::OnceLock<Result<reqwest::Client, String>>,
}

impl Chaining {
    /// Chaining with `settings`.
    pub fn new(settings: ChainSettings) -> Self {
        // Peers and API hosts may use https: the client needs a provider.
        ow_oci::install_tls_provider();
        Self {
            settings,
            client: std::sync::OnceLock::new(),
        }
    }

    fn client(&self) -> Result<reqwest::Client, String> {
        self.client
            .get_or_init(|| {
                reqwest::Client::builder()
                    .build()
                    .map_err(|e| format!("cannot make an HTTP client: {}", error_chain(&e)))
            })
            .clone()
    }
}

/// The data path a call took: the `path` label of `ow_calls_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallPath {
    Embedded,
    Local,
    Networked,
}

impl CallPath {
    pub fn name(self) -> &'static str {
        match self {
            CallPath::Embedded => "embedded",
            CallPath::Local => "local",
            CallPath::Networked => "networked",
        }
    }
}

/// The actions of a chain, from the root activation down, each as
/// `namespace/name`.
#[derive(Debug, Clone, Default)]
pub struct Lineage(Arc<[String]>);

impl Lineage {
    /// The lineage a networked call carries in [`LINEAGE_HEADER`].
    pub fn parse(header: &str) -> Self {
        Self(
            header
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect(),
        )
    }

    fn header(&self) -> String {
        self.0.join(",")
    }

    fn child(&self, key: String) -> Self {
        Self(self.0.iter().cloned().chain([key]).collect())
    }

    fn contains(&self, key: &str) -> bool {
        self.0.iter().any(|k| k == key)
    }

    fn path(&self, then: &str) -> String {
        let mut path = self.0.join(" -> ");
        path.push_str(" -> ");
        path.push_str(then);
        path
    }
}

/// Where an activation comes from, when another activation called it.
#[derive(Debug, Clone, Default)]
pub struct Origin {
    /// The caller's lineage (empty for an activation nobody called).
    pub lineage: Lineage,
    /// The caller's deadline, epoch milliseconds: the callee's is no later.
    pub deadline_ms: Option<u64>,
    /// The caller's API key, for the callee's own networked calls.
    pub api_key: Option<String>,
    /// The path the call took to this executor.
    pub path: Option<CallPath>,
}

impl Origin {
    /// The origin a networked call's headers give (none: a root).
    pub fn from_request(req: &actix_web::HttpRequest) -> Self {
        let header = |name| {
            req.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        Self {
            lineage: header(LINEAGE_HEADER)
                .map(|h| Lineage::parse(&h))
                .unwrap_or_default(),
            deadline_ms: header(DEADLINE_HEADER).and_then(|d| d.parse().ok()),
            api_key: None,
            path: header(LINEAGE_HEADER).map(|_| CallPath::Networked),
        }
    }

    /// The line a called activation's log starts with: who called it, over
    /// which path (none for an activation nobody called).
    pub fn log_line(&self) -> Option<String> {
        let path = self.path?;
        let caller = self.lineage.0.last().map_or("?", String::as_str);
        Some(format!(
            "chained call: path={} caller={caller}",
            path.name()
        ))
    }

    /// Apply to a callee's context: the earlier deadline, the caller's key
    /// when the callee has none.
    pub fn apply(&self, ctx: &mut ow_common::ActivationContext) {
        if let Some(deadline) = self.deadline_ms {
            ctx.deadline_ms = Some(ctx.deadline_ms.map_or(deadline, |d| d.min(deadline)));
        }
        if ctx.api_key.is_none() {
            ctx.api_key.clone_from(&self.api_key);
        }
    }
}

/// `namespace/name` of an activation of `action_name` in `ns` (its
/// lineage entry).
fn lineage_key(ns: &str, action_name: Option<&str>) -> String {
    match action_name.map(|n| n.trim_start_matches('/')) {
        // OpenWhisk's names are fully qualified: `/ns/pkg/action`.
        Some(name) if name.starts_with(&format!("{ns}/")) => name.to_owned(),
        Some(name) => format!("{ns}/{name}"),
        None => format!("{ns}/"),
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// The `{"error": ...}` result of a call that did not give one of its own.
fn error_result(message: impl std::fmt::Display) -> Bytes {
    Bytes::from(json!({ "error": message.to_string() }).to_string())
}

/// A callee's result as the caller reads it: its JSON, or its error.
fn output_result(output: Result<ActivationOutput, crate::error::ApiError>) -> Bytes {
    match output.map(|o| o.result) {
        Ok(Ok(bytes)) => Bytes::from(bytes),
        Ok(Err(e)) => error_result(e),
        Err(e) => error_result(e),
    }
}

/// One call of the table.
enum Entry {
    /// Running as a task of its own; the result comes on the channel.
    Running(tokio::sync::watch::Receiver<Option<Bytes>>),
    /// Embedded: runs when awaited, on the caller's task.
    Deferred(BoxFuture<'static, Bytes>),
    /// Finished, not yet read by an await with room for it.
    Done(Bytes),
}

/// What a calling action's settings say about its calls.
pub struct Caller {
    /// The actions it may embed (its /init env's `OW_EMBED`).
    embed: Arc<[String]>,
    /// The most bytes of params and results its calls may hold at once:
    /// its own memory reservation, so that a guest cannot make the host
    /// hold more than it could hold itself.
    max_bytes: usize,
}

impl Caller {
    /// The caller settings of the action `ready`.
    pub fn of(ready: &crate::registry::Ready) -> Self {
        Self {
            embed: Arc::clone(&ready.embed),
            max_bytes: usize::try_from(ready.memory_bytes).unwrap_or(usize::MAX),
        }
    }
}

/// One activation's calls, and what its callees inherit.
pub struct Calls {
    state: Data<AppState>,
    /// The invoker's `namespace` of the activation (none: `_`).
    namespace: Option<String>,
    /// Its action's name, for its lineage entry.
    action_name: Option<String>,
    /// The caller's lineage.
    parent: Lineage,
    /// This activation's lineage (itself last), made at its first call:
    /// activations that call nothing never build it.
    lineage: std::sync::OnceLock<Lineage>,
    caller: Caller,
    deadline: Deadline,
    api_key: Option<String>,
    table: Mutex<Table>,
}

#[derive(Default)]
struct Table {
    last_id: i64,
    /// Each call's entry and the bytes it holds (its params until read).
    calls: HashMap<i64, (Entry, usize)>,
    /// The bytes all of them hold.
    bytes: usize,
}

impl Table {
    fn take(&mut self, id: i64) -> Option<(Entry, usize)> {
        let taken = self.calls.remove(&id);
        if let Some((_, bytes)) = &taken {
            self.bytes -= bytes;
        }
        taken
    }

    fn put(&mut self, id: i64, entry: Entry, bytes: usize) {
        self.bytes += bytes;
        if let Some((_, old)) = self.calls.insert(id, (entry, bytes)) {
            self.bytes -= old;
        }
    }
}

impl std::fmt::Debug for Calls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Calls")
            .field("lineage", &self.lineage.get())
            .finish_non_exhaustive()
    }
}

/// A callee found in this executor.
enum Local {
    Function,
    Container(crate::registry::Ready),
}

impl Calls {
    /// The call table of the activation `ctx`, called from `origin`.
    pub fn new(
        state: &Data<AppState>,
        ctx: &ow_common::ActivationContext,
        deadline: &Deadline,
        origin: &Origin,
        caller: Caller,
    ) -> Self {
        Self {
            state: Data::clone(state),
            namespace: ctx.namespace.clone(),
            action_name: ctx.action_name.clone(),
            parent: origin.lineage.clone(),
            lineage: std::sync::OnceLock::new(),
            caller,
            deadline: deadline.clone(),
            api_key: ctx.api_key.clone(),
            table: Mutex::new(Table::default()),
        }
    }

    /// The invoker's `namespace` of the activation, if it gave one.
    pub fn request_namespace(&self) -> Option<&str> {
        self.namespace.as_deref()
    }

    /// The namespace calls are resolved in.
    fn ns(&self) -> &str {
        self.namespace
            .as_deref()
            .unwrap_or(crate::host::DEFAULT_NAMESPACE)
    }

    fn lineage(&self) -> &Lineage {
        self.lineage.get_or_init(|| {
            let key = lineage_key(self.ns(), self.action_name.as_deref());
            self.parent.child(key)
        })
    }

    /// `__OW_API_HOST` of the executor: the OpenWhisk API.
    fn api_host(&self) -> Option<&str> {
        self.state.api_host()
    }

    fn table(&self) -> std::sync::MutexGuard<'_, Table> {
        // Consistent between statements: poisoning is harmless.
        self.table.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// What a callee on `path` inherits.
    fn origin(&self, path: CallPath) -> Origin {
        let left = self.deadline.remaining();
        Origin {
            lineage: self.lineage().clone(),
            deadline_ms: Some(now_ms() + left.as_millis() as u64),
            api_key: self.api_key.clone(),
            path: Some(path),
        }
    }

    fn chaining(&self) -> &Chaining {
        self.state.chaining()
    }

    /// An action of this executor in the caller's namespace.
    fn local(&self, name: &str) -> Option<Local> {
        if let Some(functions) = self.state.functions()
            && functions.store.get(self.ns(), name).is_some()
        {
            return Some(Local::Function);
        }
        self.state
            .containers()
            .find(name, self.ns())
            .map(Local::Container)
    }

    /// `call`: start the callee; its id.
    pub fn call(&self, name: String, params: Vec<u8>) -> Result<i64, StateError> {
        let settings = &self.chaining().settings;
        {
            let table = self.table();
            if table.calls.len() >= settings.max_in_flight
                || table.bytes.saturating_add(params.len()) > self.caller.max_bytes
            {
                return Err(StateError::TooManyCalls);
            }
        }
        let held = params.len();
        let params = Bytes::from(params);
        let key = format!("{}/{name}", self.ns());
        let local = self.local(&name);
        // A name that cannot be a URL path's segments is nobody's there.
        let networked = (self.api_host().is_some() && self.api_key.is_some()
            || !settings.peers.is_empty())
            && url_path(&name).is_some();
        let entry = if local.is_none() && !networked {
            return Err(StateError::Absent);
        } else if self.lineage().0.len() >= settings.max_depth {
            Entry::Done(error_result(format!(
                "the call chain is deeper than {} activations: {}",
                settings.max_depth,
                self.lineage().path(&key)
            )))
        } else if self.lineage().contains(&key) {
            Entry::Done(error_result(format!(
                "call cycle: {}",
                self.lineage().path(&key)
            )))
        } else {
            match local {
                Some(local) if self.caller.embed.contains(&name) => {
                    Entry::Deferred(self.embedded(local, name, params))
                }
                Some(local) => self.spawn(CallPath::Local, self.run_local(local, name, params)),
                None => self.spawn(CallPath::Networked, self.networked(name, params)),
            }
        };
        let mut table = self.table();
        table.last_id += 1;
        let id = table.last_id;
        table.put(id, entry, held);
        Ok(id)
    }

    /// Run `call` as a task of its own, counted under `path`.
    fn spawn(&self, path: CallPath, call: BoxFuture<'static, Bytes>) -> Entry {
        self.state.count_call(path);
        let (tx, rx) = tokio::sync::watch::channel(None);
        // On whichever runtime the caller's host call runs: an HTTP worker
        // (wasmtime) or an engine's pool (wasmer, WAMR).
        tokio::spawn(async move {
            let result = call.await;
            let _ = tx.send(Some(result));
        });
        Entry::Running(rx)
    }

    fn log(&self, path: CallPath, name: &str, activation_id: &str) {
        tracing::info!(
            path = path.name(),
            caller = self.lineage().0.last().map(String::as_str),
            callee = %format!("{}/{name}", self.ns()),
            activation_id,
            "chained call"
        );
    }

    /// A callee's context: its params, the caller's namespace, deadline and
    /// API host and key.
    fn context(
        &self,
        name: &str,
        params: Bytes,
        id: &str,
        origin: &Origin,
    ) -> ow_common::ActivationContext {
        let mut ctx = ow_common::ActivationContext {
            params,
            namespace: Some(self.ns().to_owned()),
            action_name: Some(format!("/{}/{name}", self.ns())),
            activation_id: Some(id.to_owned()),
            api_host: self.api_host().map(str::to_owned),
            ..Default::default()
        };
        origin.apply(&mut ctx);
        ctx
    }

    fn run_local(&self, local: Local, name: String, params: Bytes) -> BoxFuture<'static, Bytes> {
        let state = Data::clone(&self.state);
        let origin = self.origin(CallPath::Local);
        match local {
            Local::Function => {
                let ns = self.ns().to_owned();
                // Its logs go to the function's, under its activation id.
                self.log(CallPath::Local, &name, "-");
                Box::pin(async move {
                    let Some(functions) = state.functions() else {
                        return error_result("the function store went away");
                    };
                    let invocation = functions
                        .invoke(&state, &ns, &name, params, false, origin)
                        .await;
                    output_result(invocation.map(|i| i.output))
                })
            }
            Local::Container(ready) => {
                let id = crate::functions::new_activation_id();
                self.log(CallPath::Local, &name, &id);
                let ctx = self.context(&name, params, &id, &origin);
                let line = origin.log_line();
                Box::pin(async move {
                    let finish = Finish::Record(Box::new(move |output: &ActivationOutput| {
                        log_output(&id, line.as_deref(), output);
                    }));
                    let started = std::time::Instant::now();
                    let output =
                        crate::server::execute_counted(&state, ready, ctx, finish, origin, started)
                            .await;
                    output_result(output)
                })
            }
        }
    }

    /// The embedded path: the callee's activation, run on the awaiting
    /// caller's task within the caller's slot.
    fn embedded(&self, local: Local, name: String, params: Bytes) -> BoxFuture<'static, Bytes> {
        let state = Data::clone(&self.state);
        let origin = self.origin(CallPath::Embedded);
        let id = crate::functions::new_activation_id();
        self.log(CallPath::Embedded, &name, &id);
        self.state.count_call(CallPath::Embedded);
        let ns = self.ns().to_owned();
        // A container's context is made here; a function's by the store.
        let container = match local {
            Local::Container(ready) => {
                Some((ready, self.context(&name, params.clone(), &id, &origin)))
            }
            Local::Function => None,
        };
        let line = origin.log_line();
        Box::pin(async move {
            let (ready, ctx) = match container {
                Some(container) => container,
                None => {
                    let Some(functions) = state.functions() else {
                        return error_result("the function store went away");
                    };
                    match functions.prepared(&state, &ns, &name, params, &id).await {
                        Ok(prepared) => prepared,
                        Err(e) => return error_result(e),
                    }
                }
            };
            let output = crate::server::run_embedded(&state, ready, ctx, origin).await;
            log_output(&id, line.as_deref(), &output);
            output_result(Ok(output))
        })
    }

    /// The networked path: the OpenWhisk API, then each peer, until one
    /// knows the action.
    fn networked(&self, name: String, params: Bytes) -> BoxFuture<'static, Bytes> {
        let client = match self.chaining().client() {
            Ok(client) => client,
            Err(e) => return Box::pin(std::future::ready(error_result(e))),
        };
        let peers = self.chaining().settings.peers.clone();
        let origin = self.origin(CallPath::Networked);
        let ns = self.ns().to_owned();
        let api = self.api_host().map(str::to_owned).zip(self.api_key.clone());
        let deadline = self.deadline.clone();
        let lineage = self.lineage().header();
        let max_result = self.state.operator_limits().max_result_bytes;
        self.log(CallPath::Networked, &name, "-");
        // Checked by `call`; escaped, so that a guest's name cannot reach
        // another route with the caller's credentials.
        let path = url_path(&name).unwrap_or_default();
        Box::pin(async move {
            let mut targets = Vec::new();
            if let Some((host, key)) = api {
                let url = format!(
                    "{}/api/v1/namespaces/{}/actions/{path}?blocking=true&result=true",
                    host.trim_end_matches('/'),
                    urlencoding(&ns)
                );
                targets.push((url, Some(key)));
            }
            for peer in peers {
                let function = match ns.as_str() {
                    crate::host::DEFAULT_NAMESPACE => path.clone(),
                    ns => format!("{path}.{}", urlencoding(ns)),
                };
                let url = format!("{}/function/{function}", peer.trim_end_matches('/'));
                targets.push((url, origin.api_key.clone()));
            }
            let mut unreachable = Vec::new();
            for (url, key) in targets {
                let mut request = client
                    .post(&url)
                    .header("Content-Type", "application/json")
                    .header(LINEAGE_HEADER, &lineage)
                    .timeout(deadline.remaining().max(Duration::from_millis(1)))
                    .body(params.clone());
                if let Some(deadline) = origin.deadline_ms {
                    request = request.header(DEADLINE_HEADER, deadline.to_string());
                }
                // Credentials in the URL win over the activation's key.
                if let (Some(key), false) = (key, url_has_credentials(&url)) {
                    let (user, pass) = key.split_once(':').unwrap_or((&key, ""));
                    request = request.basic_auth(user, Some(pass));
                }
                let response = match request.send().await {
                    Ok(response) => response,
                    Err(e) => {
                        let cause = error_chain(&e);
                        tracing::warn!(url = %redact(&url), "networked call failed: {cause}");
                        if e.is_timeout() || deadline.remaining().is_zero() {
                            return error_result(format!(
                                "the call of {name} ran past the caller's deadline"
                            ));
                        }
                        // Never reached: the next target may have it. Once
                        // sent, the callee may be running: not sent twice.
                        if e.is_connect() {
                            unreachable.push(format!("{}: {cause}", redact(&url)));
                            continue;
                        }
                        return error_result(format!("the call of {name} failed: {cause}"));
                    }
                };
                let status = response.status();
                if status == reqwest::StatusCode::NOT_FOUND {
                    continue;
                }
                let body = match read_limited(response, max_result).await {
                    Ok(body) => body,
                    Err(e) => return error_result(format!("the call of {name} failed: {e}")),
                };
                if status.is_success() || looks_like_object(&body) {
                    return body;
                }
                return error_result(format!("the call of {name} answered {status}"));
            }
            match unreachable.is_empty() {
                true => error_result(format!(
                    "no action {name} in namespace {ns}, here or on the network"
                )),
                false => error_result(format!(
                    "the call of {name} failed: no action {name} in namespace {ns} here, \
                     and unreachable: {}",
                    unreachable.join("; ")
                )),
            }
        })
    }

    /// `await_call`: wait for call `id`; its result, forgotten once read by
    /// a buffer with room for it.
    pub async fn await_call(&self, id: i64, cap: u32) -> StateResult {
        let entry = {
            let mut table = self.table();
            match table.calls.get(&id) {
                None => return Err(StateError::Absent),
                Some((Entry::Done(bytes), _)) => Entry::Done(bytes.clone()),
                Some((Entry::Running(rx), _)) => Entry::Running(rx.clone()),
                // Taken out to run: it comes back as Done if it does not fit.
                Some((Entry::Deferred(_), _)) => match table.take(id) {
                    Some((entry, _)) => entry,
                    None => return Err(StateError::Absent),
                },
            }
        };
        let result = match entry {
            Entry::Done(bytes) => bytes,
            Entry::Running(mut rx) => {
                let wait = rx.wait_for(Option::is_some);
                let result = tokio::select! {
                    biased;
                    () = self.deadline.expired() => return Err(StateError::Unavailable),
                    result = wait => result.map(|r| r.clone()),
                };
                match result {
                    Ok(Some(bytes)) => bytes,
                    _ => error_result("the call's task ended without a result"),
                }
            }
            Entry::Deferred(call) => {
                let bytes = tokio::select! {
                    biased;
                    () = self.deadline.expired() => return Err(StateError::Unavailable),
                    bytes = call => bytes,
                };
                bytes
            }
        };
        // Read whole: forgotten. Else kept, holding its bytes, for a later
        // await with room for it.
        let mut table = self.table();
        table.take(id);
        if result.len() > cap as usize {
            table.put(id, Entry::Done(result.clone()), result.len());
        }
        drop(table);
        Ok(StateReply {
            value: result.len() as i64,
            data: result.into(),
        })
    }
}

/// A callee's logs, in the executor's log (a callee has no invoker reading
/// its stdout), after the line saying how it was called.
fn log_output(activation_id: &str, first: Option<&str>, output: &ActivationOutput) {
    if let Some(line) = first {
        tracing::info!(activation_id, stream = "stderr", "{line}");
    }
    for (stream, bytes) in [("stdout", &output.stdout), ("stderr", &output.stderr)] {
        for line in String::from_utf8_lossy(bytes).lines() {
            tracing::info!(activation_id, stream, "{line}");
        }
    }
}

/// A response's body, refused past `limit` bytes (the largest result).
async fn read_limited(mut response: reqwest::Response, limit: usize) -> Result<Bytes, String> {
    let too_large = || format!("the result exceeds the limit of {limit} bytes");
    if response.content_length().is_some_and(|n| n > limit as u64) {
        return Err(too_large());
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| e.to_string())? {
        if body.len() + chunk.len() > limit {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Bytes::from(body))
}

/// An error and its causes, `outer: inner: ...`.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

fn looks_like_object(body: &[u8]) -> bool {
    let body = body.trim_ascii();
    body.first() == Some(&b'{') && body.last() == Some(&b'}')
}

fn url_has_credentials(url: &str) -> bool {
    reqwest::Url::parse(url).is_ok_and(|u| !u.username().is_empty())
}

/// `url` without its password, for logs.
fn redact(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(mut u) => {
            let _ = u.set_password(None);
            u.to_string()
        }
        Err(_) => "(unparsable url)".into(),
    }
}

/// `name` (`action` or `package/action`) as URL path segments, each
/// escaped; `None` for empty, `.` or `..` segments or more than two.
fn url_path(name: &str) -> Option<String> {
    let segments: Vec<&str> = name.split('/').collect();
    let valid = |s: &&str| !s.is_empty() && *s != "." && *s != "..";
    (segments.len() <= 2 && segments.iter().all(valid)).then(|| {
        segments
            .iter()
            .map(|s| urlencoding(s))
            .collect::<Vec<_>>()
            .join("/")
    })
}

/// A namespace in a URL path (`_` and names of `[A-Za-z0-9_.@-]` need no
/// escaping; anything else is percent-encoded).
fn urlencoding(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'_' | b'.' | b'-' | b'@' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lineage_keys_are_namespace_and_name() {
        assert_eq!(lineage_key("guest", Some("/guest/pkg/a")), "guest/pkg/a");
        assert_eq!(lineage_key("guest", Some("b")), "guest/b");
        assert_eq!(lineage_key("_", None), "_/");
        let lineage = Lineage::parse(" guest/a, guest/b ,");
        assert!(lineage.contains("guest/b"));
        assert_eq!(lineage.header(), "guest/a,guest/b");
        assert_eq!(lineage.path("guest/a"), "guest/a -> guest/b -> guest/a");
    }

    #[test]
    fn the_earlier_deadline_and_a_missing_key_are_inherited() {
        let origin = Origin {
            lineage: Lineage::parse("guest/a"),
            deadline_ms: Some(1000),
            api_key: Some("u:k".into()),
            path: Some(CallPath::Local),
        };
        assert_eq!(
            origin.log_line().as_deref(),
            Some("chained call: path=local caller=guest/a")
        );
        assert_eq!(Origin::default().log_line(), None);
        let mut ctx = ow_common::ActivationContext {
            deadline_ms: Some(2000),
            ..Default::default()
        };
        origin.apply(&mut ctx);
        assert_eq!(ctx.deadline_ms, Some(1000));
        assert_eq!(ctx.api_key.as_deref(), Some("u:k"));
        ctx.deadline_ms = Some(500);
        ctx.api_key = Some("own".into());
        origin.apply(&mut ctx);
        assert_eq!(ctx.deadline_ms, Some(500));
        assert_eq!(ctx.api_key.as_deref(), Some("own"));
    }

    #[test]
    fn urls_are_redacted_and_namespaces_escaped() {
        assert_eq!(redact("http://u:secret@h:1/x"), "http://u@h:1/x");
        assert!(url_has_credentials("http://u:p@h/"));
        assert!(!url_has_credentials("http://h/"));
        assert_eq!(urlencoding("a b/_"), "a%20b%2F_");
        assert_eq!(url_path("pkg/a?b#c").as_deref(), Some("pkg/a%3Fb%23c"));
        assert_eq!(url_path("x/../../system/functions"), None);
        assert_eq!(url_path("../a"), None);
        assert_eq!(url_path("a//b"), None);
        assert_eq!(url_path(""), None);
    }
}
