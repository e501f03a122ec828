//! A bad-input corpus at the HTTP level: every case gets a clear 4xx/5xx
//! JSON error (never 503), nothing panics, and a valid action still works
//! afterwards in the same process. Runs once, on the default engine; the
//! module-level cases run on every engine in `abi.rs`.

use crate::helpers::*;
use ow_test_modules as modules;
use serde_json::{Value, json};
use std::io::Write;

fn zip_of(entries: &[(&str, &[u8])], method: zip::CompressionMethod) -> Vec<u8> {
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(method)
        .large_file(true);
    for (name, data) in entries {
        w.start_file(*name, options).unwrap();
        w.write_all(data).unwrap();
    }
    w.finish().unwrap().into_inner()
}

fn binary_init(code: &[u8]) -> Vec<u8> {
    serde_json::to_vec(&json!({"value": {"main": "main", "binary": true, "code": b64(code)}}))
        .unwrap()
}

fn wat(text: &str) -> Vec<u8> {
    wat::parse_str(text).unwrap()
}

/// (name, path, body, expected status)
type Case = (&'static str, &'static str, Vec<u8>, u16);

fn init_cases() -> Vec<Case> {
    let stored = zip::CompressionMethod::Stored;
    let deflated = zip::CompressionMethod::Deflated;
    let many: Vec<(String, Vec<u8>)> = (0..3000)
        .map(|i| (format!("f{i}.txt"), vec![b'x']))
        .collect();
    let many_refs: Vec<(&str, &[u8])> = many
        .iter()
        .map(|(n, d)| (n.as_str(), d.as_slice()))
        .collect();
    let bomb = vec![0u8; 64 << 20];
    let mut truncated_zip = zip_of(&[("a.wasm", modules::ADD)], stored);
    truncated_zip.truncate(truncated_zip.len() / 2);
    let t = |s: &str| s.as_bytes().to_vec();
    vec![
        ("empty body means {}", "/init", Vec::new(), 403),
        ("open brace", "/init", t("{"), 400),
        ("truncated value", "/init", t(r#"{"value": "#), 400),
        ("null body", "/init", t("null"), 400),
        ("array body", "/init", t("[]"), 400),
        ("string body", "/init", t(r#""code""#), 400),
        ("number body", "/init", t("123"), 400),
        ("trailing garbage", "/init", t("{} x"), 400),
        ("value null", "/init", t(r#"{"value": null}"#), 403),
        ("value array", "/init", t(r#"{"value": []}"#), 400),
        ("value string", "/init", t(r#"{"value": "x"}"#), 400),
        ("code null", "/init", t(r#"{"value": {"code": null}}"#), 403),
        ("code number", "/init", t(r#"{"value": {"code": 5}}"#), 400),
        ("code empty", "/init", t(r#"{"value": {"code": ""}}"#), 403),
        ("code blank", "/init", t(r#"{"value": {"code": "   "}}"#), 403),
        ("main number", "/init", t(r#"{"value": {"main": 7, "code": "AA=="}}"#), 400),
        ("binary string", "/init", t(r#"{"value": {"binary": "yes", "code": "AA=="}}"#), 400),
        ("env string", "/init", t(r#"{"value": {"env": "x", "code": "AA=="}}"#), 400),
        ("env array", "/init", t(r#"{"value": {"env": [1], "code": "AA=="}}"#), 400),
        ("duplicate field, last wins, text code", "/init", t(r#"{"value": {"code": "a", "code": "b"}}"#), 502),
        ("invalid utf-8", "/init", b"{\"value\": {\"code\": \"\xff\xfe\"}}".to_vec(), 400),
        ("lone surrogate", "/init", t(r#"{"value": {"code": "\ud800"}}"#), 400),
        ("deeply nested", "/init", format!("{{\"value\": {}{}}}", "[".repeat(10_000), "]".repeat(10_000)).into_bytes(), 400),
        ("bad base64", "/init", t(r#"{"value": {"binary": true, "code": "%%%"}}"#), 400),
        ("not wasm", "/init", binary_init(b"hello world"), 502),
        ("wasm magic only", "/init", binary_init(b"\0asm"), 502),
        ("wasm header and garbage", "/init", binary_init(b"\0asm\x01\0\0\0\x01\xff\xff\xff"), 502),
        ("elf binary", "/init", binary_init(b"\x7fELF\x02\x01\x01\0"), 502),
        ("not a zip", "/init", binary_init(&[b"PK\x03\x04".as_slice(), &[0u8; 64]].concat()), 502),
        ("truncated zip", "/init", binary_init(&truncated_zip), 502),
        ("zip bomb", "/init", binary_init(&zip_of(&[("bomb.wasm", &bomb)], deflated)), 502),
        ("zip with thousands of entries", "/init", binary_init(&zip_of(&many_refs, stored)), 502),
        ("zip with ../ name", "/init", binary_init(&zip_of(&[("../../evil.wasm", modules::ADD)], stored)), 502),
        ("zip with absolute name", "/init", binary_init(&zip_of(&[("/tmp/evil.wasm", modules::ADD)], stored)), 502),
        ("zip without wasm", "/init", binary_init(&zip_of(&[("README", b"hi")], stored)), 502),
        ("zip with two modules", "/init", binary_init(&zip_of(&[("a.wasm", modules::ADD), ("b.wasm", modules::ECHO)], stored)), 502),
        ("zip with a non-wasm .wasm", "/init", binary_init(&zip_of(&[("a.wasm", b"text")], stored)), 502),
        ("text code", "/init", t(r#"{"value": {"binary": false, "code": "function main(a) { return a }"}}"#), 502),
        ("no exports", "/init", binary_init(&wat("(module)")), 502),
        ("missing entry", "/init", binary_init(&wat(r#"(module (memory (export "memory") 1) (func (export "ow_alloc") (param i32) (result i32) (i32.const 0)))"#)), 502),
        ("wrong entry signature", "/init", binary_init(&wat(r#"(module (memory (export "memory") 1) (func (export "ow_alloc") (param i32) (result i32) (i32.const 0)) (func (export "main")))"#)), 502),
        ("wrong alloc signature", "/init", binary_init(&wat(r#"(module (memory (export "memory") 1) (func (export "ow_alloc")) (func (export "main") (param i32 i32) (result i64) (i64.const 0)))"#)), 502),
        ("start with params", "/init", binary_init(&wat(r#"(module (memory (export "memory") 1) (func (export "_start") (param i32)))"#)), 502),
        ("unknown import", "/init", binary_init(&wat(r#"(module (import "env" "f" (func)) (memory (export "memory") 1) (func (export "_start")))"#)), 502),
        ("unknown engine", "/init", serde_json::to_vec(&json!({"value": {"binary": true, "code": b64(modules::ADD), "env": {"OW_ENGINE": "v8"}}})).unwrap(), 400),
    ]
}

fn run_cases() -> Vec<Case> {
    let t = |s: &str| s.as_bytes().to_vec();
    vec![
        ("run: open brace", "/echo/run", t("{"), 400),
        ("run: array body", "/echo/run", t("[]"), 400),
        ("run: string body", "/echo/run", t(r#""x""#), 400),
        (
            "run: invalid utf-8",
            "/echo/run",
            b"{\"value\": {\"a\": \"\xff\"}}".to_vec(),
            400,
        ),
        (
            "run: lone surrogate",
            "/echo/run",
            t(r#"{"value": {"a": "\udc00"}}"#),
            400,
        ),
        (
            "run: deeply nested",
            "/echo/run",
            format!(
                "{{\"value\": {{\"a\": {}{}}}}}",
                "[".repeat(5_000),
                "]".repeat(5_000)
            )
            .into_bytes(),
            400,
        ),
        ("run: value number", "/echo/run", t(r#"{"value": 5}"#), 502),
        (
            "run: value string",
            "/echo/run",
            t(r#"{"value": "s"}"#),
            502,
        ),
        (
            "run: unknown container",
            "/nobody/run",
            t(r#"{"value": {}}"#),
            403,
        ),
        (
            "destroy: unknown container",
            "/nobody/destroy",
            t("{}"),
            404,
        ),
        ("unknown path", "/a/b/c/d", t("{}"), 404),
        (
            "run too large",
            "/echo/run",
            format!(r#"{{"value": {{"a": "{}"}}}}"#, "x".repeat(9 << 20)).into_bytes(),
            413,
        ),
    ]
}

#[test]
fn every_bad_input_gets_a_clear_json_error_and_the_executor_survives() {
    let app = spawn_app("wasmtime");
    let (status, body) = app.post("/echo/init", &init_body(modules::ECHO, "main", Value::Null));
    assert_eq!(status, 200, "{body}");
    let cases: Vec<Case> = init_cases().into_iter().chain(run_cases()).collect();
    assert!(cases.len() >= 50, "the corpus has {} cases", cases.len());
    for (name, path, body, expected) in &cases {
        let (status, resp) = app.post_raw(path, body);
        assert_eq!(status, *expected, "{name}: {resp}");
        assert!(
            resp["error"].as_str().is_some_and(|e| !e.is_empty()),
            "{name}: {resp}"
        );
    }
    for (method, path, expected) in [
        ("GET", "/run", 405),
        ("PUT", "/init", 405),
        ("DELETE", "/x/run", 405),
        ("GET", "/", 404),
    ] {
        let (status, resp) = app.request(method, path);
        assert_eq!(status, expected, "{method} {path}: {resp}");
        assert!(resp["error"].is_string());
    }
    // A valid action still works in the same process, standard mode included.
    assert_eq!(
        app.post("/echo/run", &json!({"value": {"ok": 1}})),
        (200, json!({"ok": 1}))
    );
    app.init_ok(modules::ADD);
    assert_eq!(
        app.run(json!({"param1": 2, "param2": 3})),
        (200, json!({"result": 5}))
    );
    let streams = app.stop();
    assert!(!streams.stderr.contains("panicked"), "{}", streams.stderr);
}

#[test]
fn nested_params_within_the_limit_are_fine() {
    let app = spawn_app("wasmtime");
    app.init_ok(modules::ECHO);
    let mut nested = json!("leaf");
    for _ in 0..100 {
        nested = json!([nested]);
    }
    assert_eq!(app.run(json!({"n": nested})), (200, json!({"n": nested})));
}
