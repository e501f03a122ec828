//! HTTP-level behaviour: bad bodies, unknown paths and methods, size limits.
//! Every answer is JSON with Content-Length (checked in `post_raw`).

use crate::helpers::*;
use ow_test_modules as modules;
use serde_json::json;

pub fn malformed_json_is_a_400_with_a_json_error(engine: &str) {
    let app = spawn_app(engine);
    for body in [
        &b"{"[..],
        b"{\"value\": ",
        b"[1,2",
        b"\xff\xfe",
        b"{\"value\": {\"code\": 5}}",
    ] {
        let (status, resp) = app.post_raw("/init", body);
        assert_eq!(status, 400, "{body:?}: {resp}");
        assert!(resp["error"].is_string());
    }
    app.init_ok(modules::ECHO);
    let (status, resp) = app.post_raw("/run", b"{\"value\": ");
    assert_eq!(status, 400, "{resp}");
    let (status, resp) = app.post_raw("/run", b"[]");
    assert_eq!(status, 400, "{resp}");
    // The action still works.
    assert_eq!(app.run(json!({"ok": true})), (200, json!({"ok": true})));
}

pub fn bad_base64_is_a_400_and_text_code_is_refused(engine: &str) {
    let app = spawn_app(engine);
    let (status, resp) = app.post(
        "/init",
        &json!({"value": {"binary": true, "code": "%%%not base64%%%"}}),
    );
    assert_eq!(status, 400, "{resp}");
    assert!(resp["error"].as_str().unwrap().contains("base64"));
    let (status, resp) = app.post(
        "/init",
        &json!({"value": {"binary": false, "code": "function main(args) { return args }"}}),
    );
    assert_eq!(status, 502, "{resp}");
    assert!(
        resp["error"].as_str().unwrap().contains("WebAssembly"),
        "{resp}"
    );
}

pub fn raw_wasm_is_accepted_without_the_binary_flag(engine: &str) {
    let app = spawn_app(engine);
    let (status, resp) = app.post("/init", &json!({"value": {"code": b64(modules::ADD)}}));
    assert_eq!(status, 200, "{resp}");
    assert_eq!(
        app.run(json!({"param1": 1, "param2": 1})),
        (200, json!({"result": 2}))
    );
}

pub fn zipped_action_is_accepted(engine: &str) {
    use std::io::Write;
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    zip.start_file("bin/echo.wasm", zip::write::SimpleFileOptions::default())
        .unwrap();
    zip.write_all(modules::ECHO).unwrap();
    zip.start_file("README.md", zip::write::SimpleFileOptions::default())
        .unwrap();
    zip.write_all(b"an action").unwrap();
    let zip = zip.finish().unwrap().into_inner();
    let app = spawn_app(engine);
    app.init_ok(&zip);
    assert_eq!(
        app.run(json!({"zipped": true})),
        (200, json!({"zipped": true}))
    );
}

pub fn unknown_paths_and_methods_get_json_errors(engine: &str) {
    let app = spawn_app(engine);
    let (status, resp) = app.post("/nope/nope/nope", &json!({}));
    assert_eq!(status, 404);
    assert!(resp["error"].is_string());
    let (status, resp) = app.get("/init");
    assert_eq!(status, 405);
    assert!(resp["error"].is_string());
    let (status, _) = app.get("/");
    assert_eq!(status, 404);
}

pub fn oversized_bodies_get_413(engine: &str) {
    let app = spawn_app_with(
        engine,
        &["--max-run-bytes", "1000", "--max-init-bytes", "2000"],
        &[],
    );
    let (status, resp) = app.post(
        "/init",
        &json!({"value": {"binary": true, "code": "A".repeat(5000)}}),
    );
    assert_eq!(status, 413, "{resp}");
    // Before /init, a /run is refused as not initialised whatever its size.
    let (status, resp) = app.post("/run", &json!({"value": {"x": "y".repeat(2000)}}));
    assert_eq!(status, 403, "{resp}");
    let small = wat::parse_str(r#"(module (memory (export "memory") 1) (func (export "_start")))"#)
        .unwrap();
    app.init_ok(&small);
    let (status, resp) = app.post("/run", &json!({"value": {"x": "y".repeat(2000)}}));
    assert_eq!(status, 413, "{resp}");
    assert!(resp["error"].as_str().unwrap().contains("1000"));
}
