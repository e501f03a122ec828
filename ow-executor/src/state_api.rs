//! The operator's upload endpoint for data sets (Faasm's `PUT /s/<user>/<key>`):
//! `PUT`, `GET` and `DELETE /state/{namespace}/{key}` with the raw bytes of
//! a value, in the same state the actions of that namespace read. Only with
//! the operator's token (`--admin-token`, `Authorization: Bearer ...`);
//! closed (403) when the executor has none.

use crate::error::ApiError;
use crate::server::{AppState, read_body};
use actix_web::web::{self, Data, Payload};
use actix_web::{HttpRequest, HttpResponse};
use ow_common::state::StateError;

/// The resource, with the key the rest of the path (it may hold `/`).
pub fn resource() -> actix_web::Resource {
    web::resource("/state/{namespace}/{key:.+}")
        .route(web::put().to(put))
        .route(web::get().to(get))
        .route(web::delete().to(delete))
        .default_service(web::to(crate::server::method_not_allowed))
}

/// Check the bearer token, in time that does not depend on where the
/// guess first differs.
fn authorize(state: &AppState, req: &HttpRequest) -> Result<(), ApiError> {
    let Some(token) = state.settings().admin_token.as_deref() else {
        return Err(ApiError::Disabled(
            "The state endpoint is disabled: the executor was started without --admin-token."
                .into(),
        ));
    };
    let same = crate::auth::same_secret(crate::auth::bearer(req).as_bytes(), token.as_bytes());
    match same {
        true => Ok(()),
        false => Err(ApiError::Unauthorized),
    }
}

fn state_error(e: StateError, max: usize) -> ApiError {
    match e {
        StateError::TooLarge => ApiError::TooLarge(max),
        _ => ApiError::StateUnavailable,
    }
}

/// The authorised request's namespace and key.
fn target(
    state: &AppState,
    req: &HttpRequest,
    path: web::Path<(String, String)>,
) -> Result<(String, String), ApiError> {
    authorize(state, req)?;
    let (namespace, key) = path.into_inner();
    check_key(&key)?;
    Ok((namespace, key))
}

async fn put(
    state: Data<AppState>,
    req: HttpRequest,
    path: web::Path<(String, String)>,
    body: Payload,
) -> Result<HttpResponse, ApiError> {
    let (namespace, key) = target(&state, &req, path)?;
    let max = state.state.max_value_bytes();
    let bytes = read_body(body, max).await?;
    state
        .state
        .write(&namespace, &key, bytes.to_vec())
        .await
        .map_err(|e| state_error(e, max))?;
    Ok(HttpResponse::NoContent().finish())
}

async fn get(
    state: Data<AppState>,
    req: HttpRequest,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (namespace, key) = target(&state, &req, path)?;
    let max = state.state.max_value_bytes();
    match state
        .state
        .read(&namespace, &key)
        .await
        .map_err(|e| state_error(e, max))?
    {
        Some(value) => Ok(HttpResponse::Ok()
            .content_type("application/octet-stream")
            .body(value)),
        None => Err(ApiError::NotFound(format!(
            "state key {key} of {namespace}"
        ))),
    }
}

async fn delete(
    state: Data<AppState>,
    req: HttpRequest,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (namespace, key) = target(&state, &req, path)?;
    let max = state.state.max_value_bytes();
    match state
        .state
        .remove(&namespace, &key)
        .await
        .map_err(|e| state_error(e, max))?
    {
        true => Ok(HttpResponse::NoContent().finish()),
        false => Err(ApiError::NotFound(format!(
            "state key {key} of {namespace}"
        ))),
    }
}

/// The same rule as the guest's: at most 1 KiB.
fn check_key(key: &str) -> Result<(), ApiError> {
    match key.len() <= ow_common::state::MAX_KEY_BYTES {
        true => Ok(()),
        false => Err(ApiError::BadRequest(format!(
            "the key is {} bytes long, over the limit of {}",
            key.len(),
            ow_common::state::MAX_KEY_BYTES
        ))),
    }
}
