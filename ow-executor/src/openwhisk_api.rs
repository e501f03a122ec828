//! The part of OpenWhisk's controller API that `wsk` and the `openwhisk`
//! npm client use for actions and activations
//! (`/api/v1/namespaces/{ns}/actions|activations/...`), over the function
//! store: try an action locally without deploying OpenWhisk.

use crate::error::ApiError;
use crate::faas_api::functions;
use crate::functions::{Functions, limits_json, response_of};
use crate::server::{AppState, read_body};
use actix_web::web::{self, Data, Payload};
use actix_web::{HttpRequest, HttpResponse};
use ow_store::{Function, Mode};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use std::sync::Arc;

/// The kind of the actions this executor runs.
pub const KIND: &str = "wasm:0.1";

/// The routes.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/api/v1/namespaces").route(web::get().to(namespaces)))
        .service(web::resource("/api/v1/namespaces/{ns}/actions").route(web::get().to(list)))
        .service(
            web::resource("/api/v1/namespaces/{ns}/actions/{name}")
                .route(web::put().to(put))
                .route(web::get().to(get))
                .route(web::delete().to(delete))
                .route(web::post().to(invoke))
                .default_service(web::to(crate::server::method_not_allowed)),
        )
        .service(
            web::resource("/api/v1/namespaces/{ns}/activations").route(web::get().to(activations)),
        )
        .service(
            web::resource("/api/v1/namespaces/{ns}/activations/{id}")
                .route(web::get().to(activation)),
        )
        .service(
            web::resource("/api/v1/namespaces/{ns}/activations/{id}/{part}")
                .route(web::get().to(activation_part)),
        );
}

/// The functions and the namespace the path names, credentials checked.
fn scope<'a>(
    state: &'a AppState,
    req: &HttpRequest,
) -> Result<(&'a Arc<Functions>, String), ApiError> {
    let functions = functions(state, req)?;
    let ns = functions.namespace(req.match_info().get("ns"))?.to_owned();
    Ok((functions, ns))
}

/// The query parameter `name`, if any (a bare `?` is no query).
fn query(req: &HttpRequest, name: &str) -> Option<String> {
    web::Query::<std::collections::HashMap<String, String>>::from_query(req.query_string())
        .ok()?
        .remove(name)
}

/// A query flag (`true`/`false` text).
fn flag(req: &HttpRequest, name: &str) -> bool {
    query(req, name).is_some_and(|v| v == "true")
}

fn number(req: &HttpRequest, name: &str) -> Option<usize> {
    query(req, name)?.parse().ok()
}

async fn namespaces(state: Data<AppState>, req: HttpRequest) -> Result<HttpResponse, ApiError> {
    let functions = functions(&state, &req)?;
    Ok(HttpResponse::Ok().json([&functions.credentials.namespace]))
}

fn key_values(map: &Map<String, Value>) -> Vec<Value> {
    map.iter()
        .map(|(k, v)| json!({ "key": k, "value": v }))
        .collect()
}

/// The action JSON of `f` (with its code, base64, when `code` is asked for).
fn action_json(f: &Function, operator: &ow_common::Limits, code: Option<&[u8]>) -> Value {
    let kind = f
        .spec
        .extra
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or(KIND);
    let mut annotations = key_values(&f.spec.annotations);
    annotations.push(json!({ "key": "exec", "value": kind }));
    let mut exec = json!({ "kind": kind, "binary": true });
    if !f.spec.entry.is_empty() {
        exec["main"] = json!(f.spec.entry);
    }
    if let Some(image) = &f.spec.image {
        exec["image"] = json!(image);
    }
    if let Some(code) = code {
        use base64::Engine as _;
        exec["code"] = json!(base64::engine::general_purpose::STANDARD.encode(code));
    }
    json!({
        "namespace": f.namespace,
        "name": f.name,
        "version": format!("0.0.{}", f.version),
        "publish": f.spec.extra.get("publish").and_then(Value::as_bool).unwrap_or(false),
        "exec": exec,
        "annotations": annotations,
        "parameters": key_values(&f.spec.parameters),
        "limits": limits_json(f, operator),
        "updated": f.updated_ms,
    })
}

async fn list(state: Data<AppState>, req: HttpRequest) -> Result<HttpResponse, ApiError> {
    let (functions, ns) = scope(&state, &req)?;
    let skip = number(&req, "skip").unwrap_or(0);
    let limit = number(&req, "limit")
        .filter(|l| *l > 0)
        .unwrap_or(usize::MAX);
    let all = functions.store.list(Some(&ns));
    if flag(&req, "count") {
        return Ok(HttpResponse::Ok().json(json!({ "actions": all.len() })));
    }
    let actions: Vec<Value> = all
        .iter()
        .skip(skip)
        .take(limit)
        .map(|f| action_json(f, state.operator_limits(), None))
        .collect();
    Ok(HttpResponse::Ok().json(actions))
}

#[derive(Deserialize, Default)]
struct KeyValue {
    key: String,
    #[serde(default)]
    value: Value,
}

#[derive(Deserialize, Default)]
struct Exec {
    #[serde(default)]
    kind: Option<String>,
    #[serde(default)]
    code: Option<String>,
    #[serde(default)]
    image: Option<String>,
    #[serde(default)]
    main: Option<String>,
}

#[derive(Deserialize, Default)]
struct Limits {
    #[serde(default)]
    timeout: Option<u64>,
    #[serde(default)]
    memory: Option<u64>,
}

#[derive(Deserialize, Default)]
struct ActionPut {
    #[serde(default)]
    exec: Option<Exec>,
    #[serde(default)]
    parameters: Option<Vec<KeyValue>>,
    #[serde(default)]
    annotations: Option<Vec<KeyValue>>,
    #[serde(default)]
    limits: Option<Limits>,
    #[serde(default)]
    publish: Option<bool>,
}

fn to_map(pairs: Vec<KeyValue>) -> Map<String, Value> {
    pairs.into_iter().map(|kv| (kv.key, kv.value)).collect()
}

/// The code of an `exec`: base64 of a module or zip (as OpenWhisk decides
/// `binary`: code that decodes is binary), else an image reference
/// (`exec.image`, or the code itself).
async fn exec_code(
    state: &AppState,
    functions: &Functions,
    exec: &Exec,
) -> Result<(Vec<u8>, Option<String>), ApiError> {
    let code = exec.code.as_deref().unwrap_or("").trim();
    if !code.is_empty()
        && let Ok(bytes) = base64_simd::forgiving_decode_to_vec(code.as_bytes())
        && (bytes.starts_with(b"\0asm") || bytes.starts_with(b"PK\x03\x04"))
    {
        return Ok((bytes, None));
    }
    let image = exec
        .image
        .as_deref()
        .filter(|i| !i.trim().is_empty())
        .unwrap_or(code);
    let looks_like_image = !image.is_empty()
        && !image.contains(char::is_whitespace)
        && (image.starts_with("oci:") || image.contains('/'));
    if !looks_like_image {
        return Err(ApiError::BadRequest(
            "exec.code must be base64 of a WebAssembly module or a zip holding one, \
             or an OCI image reference (registry/repository:tag, or oci:<layout dir>:<tag>)"
                .into(),
        ));
    }
    let bytes = functions.fetch_image(state, image).await?;
    Ok((bytes, Some(image.to_owned())))
}

/// `PUT .../actions/{name}[?overwrite=true]`.
async fn put(
    state: Data<AppState>,
    req: HttpRequest,
    path: web::Path<(String, String)>,
    body: Payload,
) -> Result<HttpResponse, ApiError> {
    let (functions, ns) = scope(&state, &req)?;
    let name = &path.1;
    let body = read_body(body, state.settings().max_init_bytes).await?;
    let action: ActionPut = state
        .blocking(move || serde_json::from_slice(&body))
        .await?
        .map_err(|e| ApiError::BadRequest(e.to_string()))?;
    let overwrite = flag(&req, "overwrite");
    let existing = functions.store.get(&ns, name);
    if existing.is_some() && !overwrite {
        return Err(ApiError::Conflict("resource already exists".into()));
    }
    // An update may leave out what does not change (`wsk action update
    // name --param k v` sends no code).
    let mut spec = existing
        .as_ref()
        .map(|f| f.spec.clone())
        .unwrap_or_default();
    let code = match (&action.exec, &existing) {
        (Some(exec), _) => {
            let kind = exec.kind.as_deref().unwrap_or(KIND);
            if !(kind.starts_with("wasm") || kind == "blackbox") {
                return Err(ApiError::BadRequest(format!(
                    "kind {kind:?} is not supported by this executor: use {KIND}"
                )));
            }
            spec.extra.insert("kind".into(), json!(kind));
            spec.entry = exec.main.clone().unwrap_or_default();
            let (code, image) = exec_code(&state, functions, exec).await?;
            spec.image = image;
            code
        }
        (None, Some(f)) => {
            let store = Arc::clone(&functions.store);
            let digest = f.code_digest.clone();
            state
                .blocking(move || store.code(&digest))
                .await??
                .ok_or_else(|| ApiError::Internal("the stored code is missing".into()))?
        }
        (None, None) => {
            return Err(ApiError::BadRequest(
                "exec is required for a new action".into(),
            ));
        }
    };
    if let Some(parameters) = action.parameters {
        spec.parameters = to_map(parameters);
    }
    if let Some(annotations) = action.annotations {
        spec.annotations = to_map(annotations);
    }
    if let Some(limits) = action.limits {
        spec.limits.timeout_ms = limits.timeout.or(spec.limits.timeout_ms);
        spec.limits.memory_bytes = limits
            .memory
            .map(|mb| mb << 20)
            .or(spec.limits.memory_bytes);
    }
    if let Some(publish) = action.publish {
        spec.extra.insert("publish".into(), json!(publish));
    }
    let mode = match overwrite {
        true => Mode::Upsert,
        false => Mode::Create,
    };
    let f = functions
        .deploy(&state, &ns, name, spec, code, mode)
        .await?;
    Ok(HttpResponse::Ok().json(action_json(&f, state.operator_limits(), None)))
}

async fn get(
    state: Data<AppState>,
    req: HttpRequest,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (functions, ns) = scope(&state, &req)?;
    let f = functions.get(&ns, &path.1)?;
    let wants_code = query(&req, "code").as_deref() != Some("false");
    let code = match wants_code {
        true => {
            let (store, digest) = (Arc::clone(&functions.store), f.code_digest.clone());
            state.blocking(move || store.code(&digest)).await??
        }
        false => None,
    };
    Ok(HttpResponse::Ok().json(action_json(&f, state.operator_limits(), code.as_deref())))
}

async fn delete(
    state: Data<AppState>,
    req: HttpRequest,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (functions, ns) = scope(&state, &req)?;
    let f = functions.delete(&state, &ns, &path.1).await?;
    Ok(HttpResponse::Ok().json(action_json(&f, state.operator_limits(), None)))
}

/// `POST .../actions/{name}[?blocking=true[&result=true]]`: the body is the
/// params. Blocking: the activation record (200 success, 502 otherwise), or
/// its result with `result=true`. Otherwise 202 `{"activationId"}` at once.
async fn invoke(
    state: Data<AppState>,
    req: HttpRequest,
    path: web::Path<(String, String)>,
    body: Payload,
) -> Result<HttpResponse, ApiError> {
    let (functions, ns) = scope(&state, &req)?;
    let name = path.1.clone();
    // An empty body is `{}`: the action's default parameters alone.
    let params = read_body(body, state.settings().max_run_bytes).await?;
    if !flag(&req, "blocking") {
        let id = functions.start(&state, ns, name, params)?;
        return Ok(HttpResponse::Accepted()
            .insert_header(("x-openwhisk-activation-id", id.as_str()))
            .json(json!({ "activationId": id })));
    }
    let origin = crate::chain::Origin::from_request(&req);
    let invocation = functions
        .invoke(&state, &ns, &name, params, true, origin)
        .await?;
    let id = invocation.activation_id.as_str();
    let (_, success, result) = response_of(&invocation.output);
    let mut answer = match success {
        true => HttpResponse::Ok(),
        false => HttpResponse::BadGateway(),
    };
    answer.insert_header(("x-openwhisk-activation-id", id));
    Ok(match flag(&req, "result") {
        true => answer.json(result),
        false => answer.json(invocation.record()),
    })
}

fn summary(record: &Value) -> Value {
    let mut summary = record.clone();
    if let Some(map) = summary.as_object_mut() {
        map.remove("logs");
        map.remove("response");
        map.remove("subject");
    }
    summary
}

async fn activations(state: Data<AppState>, req: HttpRequest) -> Result<HttpResponse, ApiError> {
    let (functions, ns) = scope(&state, &req)?;
    let name = query(&req, "name");
    let skip = number(&req, "skip").unwrap_or(0);
    let limit = number(&req, "limit")
        .filter(|l| *l > 0)
        .unwrap_or(30)
        .min(200);
    let docs = flag(&req, "docs");
    let records: Vec<Value> = functions
        .records(&ns, name.as_deref(), skip, limit)
        .iter()
        .map(|r| if docs { (**r).clone() } else { summary(r) })
        .collect();
    Ok(HttpResponse::Ok().json(records))
}

fn find(functions: &Functions, ns: &str, id: &str) -> Result<Arc<Value>, ApiError> {
    functions
        .record(ns, id)
        .ok_or_else(|| ApiError::NotFound(format!("activation {id}")))
}

async fn activation(
    state: Data<AppState>,
    req: HttpRequest,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (functions, ns) = scope(&state, &req)?;
    Ok(HttpResponse::Ok().json(&*find(functions, &ns, &path.1)?))
}

async fn activation_part(
    state: Data<AppState>,
    req: HttpRequest,
    path: web::Path<(String, String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (functions, ns) = scope(&state, &req)?;
    let record = find(functions, &ns, &path.1)?;
    match path.2.as_str() {
        "logs" => Ok(HttpResponse::Ok().json(json!({ "logs": record["logs"] }))),
        "result" => Ok(HttpResponse::Ok().json(&record["response"])),
        other => Err(ApiError::NotFound(format!("activation part {other}"))),
    }
}
