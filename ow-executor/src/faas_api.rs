//! OpenFaaS's faas-provider REST API (`/system/...`, `/function/{name}`,
//! `/async-function/{name}`, `/healthz`) and openEuler WasmEngine's routes
//! (`/function/deploy|delete|query|list|invoke`), over the function store.
//! Field names as OpenFaaS and WasmEngine spell them; see
//! docs/function-api.md.

use crate::error::ApiError;
use crate::functions::Functions;
use crate::server::{AppState, get_only, read_body};
use actix_web::web::{self, Bytes, Data, Payload};
use actix_web::{HttpRequest, HttpResponse};
use ow_store::{Function, FunctionSpec, Mode};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;
use std::sync::Arc;

/// Largest management request body that is not code (a deployment).
const MAX_JSON_BYTES: usize = 1 << 20;

/// The routes of both APIs.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/system/functions")
            .route(web::get().to(list))
            .route(web::post().to(deploy))
            .route(web::put().to(update))
            .route(web::delete().to(delete))
            .default_service(web::to(crate::server::method_not_allowed)),
    )
    .service(get_only("/system/function/{name}", status))
    .service(
        web::resource("/system/scale-function/{name}")
            .route(web::post().to(scale))
            .default_service(web::to(crate::server::method_not_allowed)),
    )
    .service(get_only("/system/info", info))
    .service(get_only("/system/namespaces", namespaces))
    .service(get_only("/system/logs", logs))
    .service(web::resource("/healthz").to(healthz))
    // WasmEngine's routes first: their names are reserved for functions.
    .service(web::resource("/function/deploy").route(web::post().to(we_deploy)))
    .service(web::resource("/function/delete").route(web::post().to(we_delete)))
    .service(web::resource("/function/query").route(web::post().to(we_query)))
    .service(web::resource("/function/list").route(web::get().to(we_list)))
    .service(web::resource("/function/invoke").route(web::post().to(we_invoke)))
    .service(web::resource(["/function/{name}", "/function/{name}/{path:.*}"]).to(invoke))
    .service(
        web::resource(["/async-function/{name}", "/async-function/{name}/{path:.*}"])
            .to(invoke_async),
    );
}

/// The functions, once the request's credentials are checked.
pub(crate) fn functions<'a>(
    state: &'a AppState,
    req: &HttpRequest,
) -> Result<&'a Arc<Functions>, ApiError> {
    let functions = state.functions().ok_or_else(|| {
        ApiError::NotFound(format!(
            "{} (the function APIs are served with --store-dir)",
            req.path()
        ))
    })?;
    functions.authorize(req)?;
    Ok(functions)
}

/// `{memory, cpu}` as Kubernetes quantities (`"128Mi"`, `"0.5"`).
#[derive(Debug, Default, Clone, Serialize, Deserialize, PartialEq)]
pub struct FunctionResources {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu: Option<String>,
}

/// faas-provider's `FunctionDeployment`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct FunctionDeployment {
    service: String,
    image: String,
    #[serde(default)]
    namespace: Option<String>,
    #[serde(default)]
    env_process: Option<String>,
    #[serde(default)]
    env_vars: BTreeMap<String, String>,
    #[serde(default)]
    constraints: Vec<String>,
    #[serde(default)]
    secrets: Vec<String>,
    #[serde(default)]
    labels: BTreeMap<String, String>,
    #[serde(default)]
    annotations: BTreeMap<String, String>,
    #[serde(default)]
    limits: Option<FunctionResources>,
    #[serde(default)]
    requests: Option<FunctionResources>,
    #[serde(default)]
    read_only_root_filesystem: bool,
}

/// A Kubernetes memory quantity in bytes: `128Mi`, `1Gi`, `500M`, `1e6`, `134217728`.
fn memory_bytes(quantity: &str) -> Result<u64, ApiError> {
    let q = quantity.trim();
    let split = q
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(q.len());
    let (number, unit) = q.split_at(split);
    let multiplier: f64 = match unit {
        "" => 1.0,
        "k" | "K" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "Ki" => 1024.0,
        "Mi" => 1024.0 * 1024.0,
        "Gi" => 1024.0 * 1024.0 * 1024.0,
        _ => {
            return Err(ApiError::BadRequest(format!(
                "invalid memory limit {quantity:?}: use a quantity such as 128Mi"
            )));
        }
    };
    let n: f64 = number
        .parse()
        .map_err(|_| ApiError::BadRequest(format!("invalid memory limit {quantity:?}")))?;
    Ok((n * multiplier) as u64)
}

impl FunctionDeployment {
    fn into_spec(self) -> Result<(String, FunctionSpec), ApiError> {
        if self.service.trim().is_empty() || self.image.trim().is_empty() {
            return Err(ApiError::BadRequest(
                "service and image are required".into(),
            ));
        }
        let mut spec = FunctionSpec {
            image: Some(self.image),
            env: self.env_vars,
            labels: self.labels,
            annotations: self
                .annotations
                .into_iter()
                .map(|(k, v)| (k, Value::String(v)))
                .collect(),
            ..FunctionSpec::default()
        };
        if let Some(memory) = self.limits.as_ref().and_then(|l| l.memory.as_deref()) {
            spec.limits.memory_bytes = Some(memory_bytes(memory)?);
        }
        let extra = &mut spec.extra;
        extra.insert("envProcess".into(), json!(self.env_process));
        extra.insert("constraints".into(), json!(self.constraints));
        extra.insert("secrets".into(), json!(self.secrets));
        extra.insert("limits".into(), json!(self.limits));
        extra.insert("requests".into(), json!(self.requests));
        extra.insert(
            "readOnlyRootFilesystem".into(),
            json!(self.read_only_root_filesystem),
        );
        Ok((self.service, spec))
    }
}

fn parse<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(bytes).map_err(|e| ApiError::BadRequest(e.to_string()))
}

/// faas-provider's `FunctionStatus` of `f`.
fn function_status(functions: &Functions, f: &Function) -> Value {
    let (replicas, available) = functions.replicas(f);
    let extra = |key: &str| f.spec.extra.get(key).cloned().unwrap_or(Value::Null);
    let mut status = json!({
        "name": f.name,
        "image": f.spec.image,
        "namespace": f.namespace,
        "envProcess": extra("envProcess"),
        "envVars": f.spec.env,
        "constraints": extra("constraints"),
        "secrets": extra("secrets"),
        "labels": f.spec.labels,
        "annotations": f.spec.annotations,
        "limits": extra("limits"),
        "requests": extra("requests"),
        "readOnlyRootFilesystem": extra("readOnlyRootFilesystem").as_bool().unwrap_or(false),
        "invocationCount": functions.invocations(f),
        "replicas": replicas,
        "availableReplicas": available,
        "createdAt": crate::functions::chrono_like(f.created_ms),
    });
    if let Some(map) = status.as_object_mut() {
        map.retain(|_, v| !v.is_null());
    }
    status
}

#[derive(Deserialize)]
struct NamespaceQuery {
    namespace: Option<String>,
}

async fn list(
    state: Data<AppState>,
    req: HttpRequest,
    query: web::Query<NamespaceQuery>,
) -> Result<HttpResponse, ApiError> {
    let functions = functions(&state, &req)?;
    let ns = functions.namespace(query.namespace.as_deref())?;
    let list: Vec<Value> = functions
        .store
        .list(Some(ns))
        .iter()
        .map(|f| function_status(functions, f))
        .collect();
    Ok(HttpResponse::Ok().json(list))
}

async fn write(
    state: Data<AppState>,
    req: HttpRequest,
    body: Payload,
    mode: Mode,
) -> Result<Arc<Function>, ApiError> {
    let functions = functions(&state, &req)?;
    let deployment: FunctionDeployment = parse(&read_body(body, MAX_JSON_BYTES).await?)?;
    let ns = functions
        .namespace(deployment.namespace.as_deref())?
        .to_owned();
    let (name, spec) = deployment.into_spec()?;
    ow_store::check_name("function name", &name)?;
    // A duplicate is refused before anything is pulled.
    if mode == Mode::Create && functions.store.get(&ns, &name).is_some() {
        return Err(ApiError::BadRequest(format!(
            "function {name} already exists"
        )));
    }
    if mode == Mode::Update {
        functions.get(&ns, &name)?;
    }
    let image = spec.image.clone().unwrap_or_default();
    let code = functions.fetch_image(&state, &image).await?;
    functions
        .deploy(&state, &ns, &name, spec, code, mode)
        .await
        .map_err(|e| match e {
            // faasd answers a duplicate deploy with 400.
            ApiError::Conflict(why) => ApiError::BadRequest(why),
            other => other,
        })
}

/// `POST /system/functions`: 202.
async fn deploy(
    state: Data<AppState>,
    req: HttpRequest,
    body: Payload,
) -> Result<HttpResponse, ApiError> {
    write(state, req, body, Mode::Create).await?;
    Ok(HttpResponse::Accepted().finish())
}

/// `PUT /system/functions`: 200 (a new image, env or limits; calls in
/// flight finish on the old version).
async fn update(
    state: Data<AppState>,
    req: HttpRequest,
    body: Payload,
) -> Result<HttpResponse, ApiError> {
    write(state, req, body, Mode::Update).await?;
    Ok(HttpResponse::Ok().finish())
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct DeleteFunctionRequest {
    function_name: String,
    #[serde(default)]
    namespace: Option<String>,
}

/// `DELETE /system/functions`: 200, 404.
async fn delete(
    state: Data<AppState>,
    req: HttpRequest,
    body: Payload,
) -> Result<HttpResponse, ApiError> {
    let functions = functions(&state, &req)?;
    let request: DeleteFunctionRequest = parse(&read_body(body, MAX_JSON_BYTES).await?)?;
    let ns = functions.namespace(request.namespace.as_deref())?;
    functions.delete(&state, ns, &request.function_name).await?;
    Ok(HttpResponse::Ok().finish())
}

/// A function's name in a path: `name` or `name.namespace` (OpenFaaS).
fn split_name<'a>(
    functions: &'a Functions,
    name: &'a str,
    namespace: Option<&'a str>,
) -> Result<(&'a str, &'a str), ApiError> {
    if namespace.is_none()
        && let Some((n, ns)) = name.rsplit_once('.')
        && ns == functions.credentials.namespace
    {
        return Ok((functions.namespace(Some(ns))?, n));
    }
    Ok((functions.namespace(namespace)?, name))
}

async fn status(
    state: Data<AppState>,
    req: HttpRequest,
    name: web::Path<String>,
    query: web::Query<NamespaceQuery>,
) -> Result<HttpResponse, ApiError> {
    let functions = functions(&state, &req)?;
    let (ns, name) = split_name(functions, &name, query.namespace.as_deref())?;
    let f = functions.get(ns, name)?;
    Ok(HttpResponse::Ok().json(function_status(functions, &f)))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ScaleServiceRequest {
    #[serde(default)]
    service_name: Option<String>,
    replicas: u64,
    #[serde(default)]
    namespace: Option<String>,
}

/// `POST /system/scale-function/{name}`: 202. At 0 replicas the prepared
/// action is let go; above 0 it is prepared now.
async fn scale(
    state: Data<AppState>,
    req: HttpRequest,
    name: web::Path<String>,
    body: Payload,
) -> Result<HttpResponse, ApiError> {
    let functions = functions(&state, &req)?;
    let request: ScaleServiceRequest = parse(&read_body(body, MAX_JSON_BYTES).await?)?;
    if request
        .service_name
        .as_deref()
        .is_some_and(|s| !s.is_empty() && s != name.as_str())
    {
        return Err(ApiError::BadRequest(
            "serviceName differs from the function in the path".into(),
        ));
    }
    let ns = functions.namespace(request.namespace.as_deref())?;
    let f = functions.get(ns, &name)?;
    functions.scale(&state, &f, request.replicas).await?;
    Ok(HttpResponse::Accepted().finish())
}

async fn info(state: Data<AppState>, req: HttpRequest) -> Result<HttpResponse, ApiError> {
    functions(&state, &req)?;
    Ok(HttpResponse::Ok().json(json!({
        "provider": "ow-executor",
        "version": {
            "sha": option_env!("OW_GIT_SHA").unwrap_or("unknown"),
            "release": env!("CARGO_PKG_VERSION"),
        },
        "orchestration": "wasm",
    })))
}

async fn namespaces(state: Data<AppState>, req: HttpRequest) -> Result<HttpResponse, ApiError> {
    let functions = functions(&state, &req)?;
    Ok(HttpResponse::Ok().json([&functions.credentials.namespace]))
}

#[derive(Deserialize)]
struct LogsQuery {
    name: String,
    namespace: Option<String>,
    tail: Option<usize>,
    since: Option<String>,
}

/// `GET /system/logs?name=&tail=&since=`: ndjson, one message per line.
async fn logs(
    state: Data<AppState>,
    req: HttpRequest,
    query: web::Query<LogsQuery>,
) -> Result<HttpResponse, ApiError> {
    let functions = functions(&state, &req)?;
    let ns = functions.namespace(query.namespace.as_deref())?;
    functions.get(ns, &query.name)?;
    let since = match query.since.as_deref() {
        None | Some("") => None,
        Some(s) => Some(humantime::parse_rfc3339_weak(s).map_err(|e| {
            ApiError::BadRequest(format!("invalid since {s:?} (RFC 3339 expected): {e}"))
        })?),
    };
    let mut body = Vec::new();
    for line in functions.logs(ns, &query.name, since, query.tail) {
        let message = json!({
            "name": query.name,
            "namespace": ns,
            "instance": line.instance,
            "timestamp": humantime::format_rfc3339_nanos(line.time).to_string(),
            "text": line.text,
        });
        serde_json::to_writer(&mut body, &message)
            .map_err(|e| ApiError::Internal(e.to_string()))?;
        body.push(b'\n');
    }
    Ok(HttpResponse::Ok()
        .content_type("application/x-ndjson")
        .body(body))
}

async fn healthz() -> HttpResponse {
    HttpResponse::Ok().body("OK")
}

/// The params of an HTTP invocation: a JSON object body as it is, the
/// query string's pairs for an empty body, and anything else as
/// `__ow_body` (with `__ow_method`, `__ow_path`, `__ow_query`), as
/// OpenWhisk's raw web actions receive it.
fn http_params(req: &HttpRequest, path: &str, body: &Bytes) -> Result<Bytes, ApiError> {
    let first = body.iter().find(|b| !b.is_ascii_whitespace());
    match first {
        Some(b'{') => Ok(body.clone()),
        None => {
            let pairs = web::Query::<BTreeMap<String, String>>::from_query(req.query_string())
                .map_err(|e| ApiError::BadRequest(format!("invalid query string: {e}")))?;
            Ok(Bytes::from(
                serde_json::to_vec(&pairs.into_inner()).unwrap_or_default(),
            ))
        }
        Some(_) => {
            let text = match std::str::from_utf8(body) {
                Ok(text) => text.to_owned(),
                Err(_) => {
                    use base64::Engine as _;
                    base64::engine::general_purpose::STANDARD.encode(body)
                }
            };
            let params = json!({
                "__ow_body": text,
                "__ow_method": req.method().as_str().to_ascii_lowercase(),
                "__ow_path": path,
                "__ow_query": req.query_string(),
            });
            Ok(Bytes::from(params.to_string()))
        }
    }
}

/// The answer of an invocation: the result with 200, or the error.
fn answer(id: &str, output: ow_common::ActivationOutput) -> Result<HttpResponse, ApiError> {
    let result = output.result.map_err(ApiError::Action)?;
    Ok(HttpResponse::Ok()
        .insert_header(("X-Ow-Activation-Id", id))
        .content_type(actix_web::http::header::ContentType::json())
        .body(result))
}

async fn invocation_target<'a>(
    state: &'a AppState,
    req: &HttpRequest,
    body: Payload,
) -> Result<(&'a Arc<Functions>, String, String, Bytes), ApiError> {
    let functions = functions(state, req)?;
    let name = req.match_info().get("name").unwrap_or_default().to_owned();
    let path = req.match_info().get("path").unwrap_or_default().to_owned();
    let (ns, name) = split_name(functions, &name, None)?;
    let (ns, name) = (ns.to_owned(), name.to_owned());
    let body = read_body(body, state.settings().max_run_bytes).await?;
    let params = http_params(req, &format!("/{path}"), &body)?;
    Ok((functions, ns, name, params))
}

/// `/function/{name}[/{path}]`, any method: the body is the params, the
/// answer the result.
async fn invoke(
    state: Data<AppState>,
    req: HttpRequest,
    body: Payload,
) -> Result<HttpResponse, ApiError> {
    let (functions, ns, name, params) = invocation_target(&state, &req, body).await?;
    let origin = crate::chain::Origin::from_request(&req);
    let invocation = functions
        .invoke(&state, &ns, &name, params, false, origin)
        .await?;
    answer(&invocation.activation_id, invocation.output)
}

/// `/async-function/{name}`: 202 at once with `X-Call-Id`; the function
/// runs in the background (its logs and OpenWhisk record are kept).
async fn invoke_async(
    state: Data<AppState>,
    req: HttpRequest,
    body: Payload,
) -> Result<HttpResponse, ApiError> {
    let (functions, ns, name, params) = invocation_target(&state, &req, body).await?;
    let id = functions.start(&state, ns, name, params)?;
    Ok(HttpResponse::Accepted()
        .insert_header(("X-Call-Id", id.as_str()))
        .finish())
}

// WasmEngine's routes. Its answers are text, `status code: 200, message:
// ...`, which its users' scripts read; errors here are JSON with their own
// status (WasmEngine answered them all with a 500).

fn we_text(message: String) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; charset=utf-8")
        .body(format!("status code: 200, message: {message}"))
}

#[derive(Deserialize)]
struct FunctionInfo {
    function_name: String,
    #[serde(default)]
    function_image: Option<String>,
    #[serde(default)]
    wasi_cap: Option<bool>,
}

async fn we_deploy(
    state: Data<AppState>,
    req: HttpRequest,
    body: Payload,
) -> Result<HttpResponse, ApiError> {
    let functions = functions(&state, &req)?;
    let info: FunctionInfo = parse(&read_body(body, MAX_JSON_BYTES).await?)?;
    let ns = functions.namespace(None)?.to_owned();
    let image = info
        .function_image
        .filter(|i| !i.trim().is_empty())
        .ok_or_else(|| ApiError::BadRequest("function_image is required".into()))?;
    ow_store::check_name("function name", &info.function_name)?;
    if functions.store.get(&ns, &info.function_name).is_some() {
        return Err(ApiError::Conflict(format!(
            "function {} already exists in the local function store",
            info.function_name
        )));
    }
    let code = functions.fetch_image(&state, &image).await?;
    let mut spec = FunctionSpec {
        image: Some(image),
        ..FunctionSpec::default()
    };
    spec.extra
        .insert("wasi_cap".into(), json!(info.wasi_cap.unwrap_or(false)));
    functions
        .deploy(&state, &ns, &info.function_name, spec, code, Mode::Create)
        .await?;
    Ok(we_text(format!(
        "deploy function {} successfully!\n",
        info.function_name
    )))
}

async fn we_delete(
    state: Data<AppState>,
    req: HttpRequest,
    body: Payload,
) -> Result<HttpResponse, ApiError> {
    let functions = functions(&state, &req)?;
    let info: FunctionInfo = parse(&read_body(body, MAX_JSON_BYTES).await?)?;
    let ns = functions.namespace(None)?;
    functions.delete(&state, ns, &info.function_name).await?;
    Ok(we_text(format!(
        "delete function {} successfully!\n",
        info.function_name
    )))
}

fn we_entry(f: &Function) -> String {
    format!(
        "FunctionEntry {{ func_name: {:?}, func_image_name: {:?}, func_digest: \"sha256:{}\", wasi_cap: {} }}",
        f.name,
        f.spec.image.as_deref().unwrap_or(""),
        f.code_digest,
        f.spec
            .extra
            .get("wasi_cap")
            .and_then(Value::as_bool)
            .unwrap_or(false)
    )
}

async fn we_query(
    state: Data<AppState>,
    req: HttpRequest,
    body: Payload,
) -> Result<HttpResponse, ApiError> {
    let functions = functions(&state, &req)?;
    let info: FunctionInfo = parse(&read_body(body, MAX_JSON_BYTES).await?)?;
    let f = functions.get(functions.namespace(None)?, &info.function_name)?;
    Ok(we_text(format!(
        "queried function info: {}\n",
        we_entry(&f)
    )))
}

async fn we_list(state: Data<AppState>, req: HttpRequest) -> Result<HttpResponse, ApiError> {
    let functions = functions(&state, &req)?;
    let entries: Vec<String> = functions
        .store
        .list(Some(functions.namespace(None)?))
        .iter()
        .map(|f| {
            format!(
                "{{func_name: {}, func_image_name: {}, wasi_cap: {}}}",
                f.name,
                f.spec.image.as_deref().unwrap_or(""),
                f.spec
                    .extra
                    .get("wasi_cap")
                    .and_then(Value::as_bool)
                    .unwrap_or(false)
            )
        })
        .collect();
    Ok(we_text(format!(
        "all deployed function info: [{}]\n",
        entries.join(", ")
    )))
}

#[derive(Deserialize)]
struct FuncInvokeReq {
    function_name: String,
    #[serde(default)]
    args: Option<Map<String, Value>>,
}

async fn we_invoke(
    state: Data<AppState>,
    req: HttpRequest,
    body: Payload,
) -> Result<HttpResponse, ApiError> {
    let functions = functions(&state, &req)?;
    let request: FuncInvokeReq = parse(&read_body(body, state.settings().max_run_bytes).await?)?;
    let ns = functions.namespace(None)?.to_owned();
    let params =
        Bytes::from(serde_json::to_vec(&request.args.unwrap_or_default()).unwrap_or_default());
    let invocation = functions
        .invoke(
            &state,
            &ns,
            &request.function_name,
            params,
            false,
            Default::default(),
        )
        .await?;
    let result = invocation.output.result.map_err(ApiError::Action)?;
    Ok(we_text(String::from_utf8_lossy(&result).into_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_quantities_parse_as_kubernetes_spells_them() {
        assert_eq!(memory_bytes("128Mi").unwrap(), 128 << 20);
        assert_eq!(memory_bytes("1Gi").unwrap(), 1 << 30);
        assert_eq!(memory_bytes("500M").unwrap(), 500_000_000);
        assert_eq!(memory_bytes("134217728").unwrap(), 134_217_728);
        assert!(memory_bytes("lots").is_err());
        assert!(memory_bytes("12Xi").is_err());
    }
}
