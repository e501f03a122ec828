//! Credentials on requests: the operator's bearer token (`/state`) and the
//! function APIs' basic auth (`--auth uuid:key`), both compared in time
//! that does not depend on where a guess first differs.

use actix_web::HttpRequest;
use actix_web::http::header::AUTHORIZATION;
use base64::Engine as _;

/// Whether `given` equals `secret`, in time that depends on their lengths only.
pub fn same_secret(given: &[u8], secret: &[u8]) -> bool {
    given.len() == secret.len()
        && given
            .iter()
            .zip(secret)
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
}

/// The token of an `Authorization: Bearer <token>` header, or `""`.
pub fn bearer(req: &HttpRequest) -> &str {
    req.headers()
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("")
}

/// The `user:password` of an `Authorization: Basic ...` header.
pub fn basic(req: &HttpRequest) -> Option<Vec<u8>> {
    let value = req.headers().get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, encoded) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_credentials_are_decoded_and_compared_whole() {
        let req = actix_web::test::TestRequest::default()
            .insert_header((AUTHORIZATION, "Basic dXVpZDprZXk="))
            .to_http_request();
        let given = basic(&req).unwrap();
        assert!(same_secret(&given, b"uuid:key"));
        assert!(!same_secret(&given, b"uuid:kez"));
        assert!(!same_secret(&given, b"uuid:key2"));
        let bearer_req = actix_web::test::TestRequest::default()
            .insert_header((AUTHORIZATION, "Bearer t"))
            .to_http_request();
        assert!(basic(&bearer_req).is_none());
        assert_eq!(bearer(&bearer_req), "t");
    }
}
