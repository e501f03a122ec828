//! Registries that misbehave, served by a thread of the test; the layouts
//! and the real registry are `ow_test_modules::oci`'s.

pub use ow_test_modules::oci::*;
use std::io::{Read as _, Write as _};
use std::net::TcpListener;

/// A registry that answers every request with `respond(path)`:
/// `(status, content type, body)`, or `None` to accept and never answer.
/// Serves until the test ends.
pub fn fake_registry(
    respond: impl Fn(&str) -> Option<(u16, String, Vec<u8>)> + Send + Sync + 'static,
) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let host = listener.local_addr().unwrap().to_string();
    let respond = std::sync::Arc::new(respond);
    std::thread::spawn(move || {
        let mut silent = Vec::new();
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let respond = std::sync::Arc::clone(&respond);
            let mut buf = [0u8; 8192];
            let n = stream.read(&mut buf).unwrap_or(0);
            let request = String::from_utf8_lossy(&buf[..n]).into_owned();
            let path = request.split_whitespace().nth(1).unwrap_or("/").to_owned();
            match respond(&path) {
                None => silent.push(stream),
                Some((status, content_type, body)) => {
                    let head = format!(
                        "HTTP/1.1 {status} X\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                        body.len()
                    );
                    let _ = stream.write_all(head.as_bytes());
                    let _ = stream.write_all(&body);
                }
            }
        }
    });
    host
}
