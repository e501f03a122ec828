//! The one place where errors become HTTP responses.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use serde_json::json;

/// Every error a handler can answer with. Each maps to one status and a
/// `{"error": "..."}` body; the protocol's exact strings live here.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// A second /init for the same container.
    #[error("Cannot initialize the action more than once.")]
    AlreadyInitialized,
    /// /init without code.
    #[error("Missing main/no code to execute.")]
    MissingCode,
    /// /run before a successful /init (or after /destroy).
    #[error("System not initialized.")]
    NotInitialized,
    /// The body is not the JSON the protocol describes.
    #[error("The request body is not valid: {0}")]
    BadRequest(String),
    /// The body is larger than allowed.
    #[error("The request body exceeds the limit of {0} bytes.")]
    TooLarge(usize),
    /// The action's code cannot be loaded (not wasm, bad zip, compile error).
    #[error("{0}")]
    Load(String),
    /// The activation failed; the message is the engine-neutral one.
    #[error(transparent)]
    Action(ow_common::Error),
    /// A create of something that exists.
    #[error("{0}")]
    Conflict(String),
    /// Credentials that do not let the caller at this resource.
    #[error("{0}")]
    Forbidden(String),
    /// Unknown path.
    #[error("The requested resource does not exist: {0}")]
    NotFound(String),
    /// Known path, wrong method.
    #[error("Method {0} is not allowed here.")]
    MethodNotAllowed(String),
    /// Every activation slot stayed busy for the whole queue wait.
    #[error("Too many concurrent activations: all {0} slots stayed busy; retry later.")]
    Busy(usize),
    /// The memory budget stayed in use for the whole queue wait.
    #[error(
        "Not enough memory for the request: it reserves {needed_mib} MiB and the executor's \
         budget of {budget_mib} MiB stayed in use; retry later."
    )]
    OverBudget {
        /// What the request reserves, in MiB.
        needed_mib: u32,
        /// The whole budget, in MiB.
        budget_mib: u32,
    },
    /// A request to an operator endpoint without the right bearer token.
    #[error("Unauthorized: this endpoint needs the operator's bearer token.")]
    Unauthorized,
    /// A function API request without the credentials of `--auth`.
    #[error("The supplied authentication is invalid.")]
    BadCredentials,
    /// An endpoint the operator did not enable.
    #[error("{0}")]
    Disabled(String),
    /// The state backend (Redis) cannot be reached.
    #[error("The state backend is unavailable; retry later.")]
    StateUnavailable,
    /// A bug or a failed host resource; details go to the log only.
    #[error("Internal error: the executor could not complete the request.")]
    Internal(String),
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        use ow_common::Error as E;
        match self {
            ApiError::AlreadyInitialized | ApiError::MissingCode | ApiError::NotInitialized => {
                StatusCode::FORBIDDEN
            }
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::Load(_) => StatusCode::BAD_GATEWAY,
            ApiError::Action(E::Resources(_)) | ApiError::Busy(_) | ApiError::OverBudget { .. } => {
                StatusCode::TOO_MANY_REQUESTS
            }
            ApiError::Action(_) => StatusCode::BAD_GATEWAY,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::Unauthorized | ApiError::BadCredentials => StatusCode::UNAUTHORIZED,
            ApiError::Disabled(_) => StatusCode::FORBIDDEN,
            ApiError::StateUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        match self {
            ApiError::Internal(detail) => tracing::error!(%detail, "internal error"),
            other => tracing::debug!(error = %other, "request failed"),
        }
        let mut response = HttpResponse::build(self.status_code());
        match self {
            ApiError::Unauthorized => {
                response.insert_header(("WWW-Authenticate", "Bearer"));
            }
            ApiError::BadCredentials => {
                response.insert_header(("WWW-Authenticate", "Basic realm=\"ow-executor\""));
            }
            _ => {}
        }
        response.json(json!({ "error": self.to_string() }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::body::to_bytes;

    #[actix_web::test]
    async fn protocol_strings_and_statuses_are_exact() {
        let cases = [
            (
                ApiError::AlreadyInitialized,
                403,
                r#"{"error":"Cannot initialize the action more than once."}"#,
            ),
            (
                ApiError::MissingCode,
                403,
                r#"{"error":"Missing main/no code to execute."}"#,
            ),
            (
                ApiError::Action(ow_common::Error::NotDictionary),
                502,
                r#"{"error":"The action did not return a dictionary or array."}"#,
            ),
            (
                ApiError::Internal("secret detail".into()),
                500,
                r#"{"error":"Internal error: the executor could not complete the request."}"#,
            ),
        ];
        for (err, status, body) in cases {
            let resp = err.error_response();
            assert_eq!(resp.status().as_u16(), status);
            let bytes = to_bytes(resp.into_body()).await.unwrap();
            assert_eq!(std::str::from_utf8(&bytes).unwrap(), body);
        }
    }
}
