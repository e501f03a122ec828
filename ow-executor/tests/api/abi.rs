//! The action ABI (docs/abi.md) through the real executor: both module
//! kinds, entry points, bounds checks, broken results, missing exports.

use crate::helpers::*;
use ow_test_modules as modules;
use serde_json::{Value, json};

fn init_error(app: &TestApp, wasm: &[u8], main: &str) -> String {
    let (status, body) = app.init_with(wasm, main, Value::Null);
    assert_eq!(status, 502, "{body}");
    body["error"].as_str().unwrap().to_owned()
}

fn run_error(app: &TestApp, params: Value) -> String {
    let (status, body) = app.run(params);
    assert_eq!(status, 502, "{body}");
    body["error"].as_str().unwrap().to_owned()
}

/// After a failure the same process must keep serving correct results.
fn still_serves(app: &TestApp) {
    let (status, body) = app.post("/probe/init", &init_body(modules::ADD, "main", Value::Null));
    assert_eq!(status, 200, "{body}");
    let (status, body) = app.post("/probe/run", &json!({"value": {"param1": 2, "param2": 40}}));
    assert_eq!((status, body), (200, json!({"result": 42})));
}

pub fn sdk_module_add_and_its_application_error(engine: &str) {
    let app = spawn_app(engine);
    app.init_ok(modules::ADD);
    assert_eq!(
        app.run(json!({"param1": 20, "param2": 22})),
        (200, json!({"result": 42}))
    );
    assert_eq!(
        app.run(json!({"param1": 0.5, "param2": 1})),
        (200, json!({"result": 1.5}))
    );
    let (status, body) = app.run(json!({"param2": 1}));
    assert_eq!(status, 200);
    assert!(body["error"].as_str().unwrap().contains("param1"), "{body}");
}

pub fn hash_is_blake3_chained(engine: &str) {
    let app = spawn_app(engine);
    app.init_ok(modules::HASH);
    let (status, body) = app.run(json!({"input": "abc", "iterations": 1}));
    assert_eq!(status, 200);
    // blake3("abc"), the reference test vector.
    assert_eq!(
        body["hash"],
        "6437b3ac38465133ffb63b75273a8db548c558465d79db03fd359c6cd5bd9d85"
    );
    let (_, twice) = app.run(json!({"input": "abc", "iterations": 2}));
    assert_ne!(twice["hash"], body["hash"]);
}

pub fn command_module_reads_stdin_and_answers_on_its_last_line(engine: &str) {
    let app = spawn_app(engine);
    app.init_ok(modules::CMD_ECHO);
    let params = json!({"hello": "world", "n": [1, 2]});
    assert_eq!(app.run(params.clone()), (200, params));
    let streams = app.stop();
    // The result line is not a log line; the log line before it is.
    let expected_bytes = json!({"hello": "world", "n": [1, 2]}).to_string().len();
    assert_eq!(
        streams.stdout,
        format!("cmd_echo: read {expected_bytes} bytes from stdin\n{SENTINEL}\n")
    );
    assert_eq!(streams.stderr, format!("{SENTINEL}\n"));
}

pub fn command_module_non_zero_exit_is_an_action_error_with_logs(engine: &str) {
    let wasm = wat::parse_str(
        r#"(module
          (import "wasi_snapshot_preview1" "fd_write" (func $w (param i32 i32 i32 i32) (result i32)))
          (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
          (memory (export "memory") 1)
          (data (i32.const 16) "going down\n")
          (func (export "_start")
            (i32.store (i32.const 0) (i32.const 16))
            (i32.store (i32.const 4) (i32.const 11))
            (drop (call $w (i32.const 2) (i32.const 0) (i32.const 1) (i32.const 8)))
            (call $exit (i32.const 3))))"#,
    )
    .unwrap();
    let app = spawn_app(engine);
    app.init_ok(&wasm);
    assert_eq!(run_error(&app, json!({})), "The action exited with code 3.");
    still_serves(&app);
    let streams = app.stop();
    assert!(
        streams
            .stderr
            .starts_with(&format!("going down\n{SENTINEL}\n")),
        "{:?}",
        streams.stderr
    );
}

pub fn command_module_without_output_did_not_return_a_dictionary(engine: &str) {
    let wasm = wat::parse_str(r#"(module (memory (export "memory") 1) (func (export "_start")))"#)
        .unwrap();
    let app = spawn_app(engine);
    app.init_ok(&wasm);
    assert_eq!(
        run_error(&app, json!({})),
        "The action did not return a dictionary or array."
    );
}

pub fn missing_entry_point_fails_init_naming_it(engine: &str) {
    let app = spawn_app(engine);
    let error = init_error(&app, modules::ADD, "nope");
    assert!(error.contains("`nope`"), "{error}");
    // The failed /init leaves the container free for a good one.
    app.init_ok(modules::ADD);
}

pub fn wrong_entry_signature_fails_init(engine: &str) {
    let wasm = wat::parse_str(
        r#"(module (memory (export "memory") 1)
             (func (export "ow_alloc") (param i32) (result i32) (i32.const 0))
             (func (export "main") (param i32) (result i32) (i32.const 0)))"#,
    )
    .unwrap();
    let app = spawn_app(engine);
    let error = init_error(&app, &wasm, "main");
    assert!(
        error.contains("main") && error.contains("(i32, i32) -> (i64)"),
        "{error}"
    );
}

pub fn sdk_module_without_memory_fails_init(engine: &str) {
    let wasm = wat::parse_str(
        r#"(module (func (export "ow_alloc") (param i32) (result i32) (i32.const 0))
                   (func (export "main") (param i32 i32) (result i64) (i64.const 0)))"#,
    )
    .unwrap();
    let app = spawn_app(engine);
    assert!(init_error(&app, &wasm, "main").contains("memory"));
}

pub fn module_following_neither_abi_fails_init(engine: &str) {
    let wasm = wat::parse_str(r#"(module (func (export "hello")))"#).unwrap();
    let app = spawn_app(engine);
    assert!(init_error(&app, &wasm, "main").contains("not an OpenWhisk action"));
}

pub fn invalid_wasm_and_unknown_imports_fail_init(engine: &str) {
    let app = spawn_app(engine);
    let error = init_error(&app, b"\0asm\x01\0\0\0garbage", "main");
    assert!(error.starts_with("invalid WebAssembly module"), "{error}");
    let wasm = wat::parse_str(
        r#"(module (import "ow_host_v1" "state_get" (func))
             (memory (export "memory") 1) (func (export "_start")))"#,
    )
    .unwrap();
    let error = init_error(&app, &wasm, "main");
    assert!(error.contains("state_get"), "{error}");
    still_serves(&app);
}

pub fn result_pointer_past_memory_is_an_action_error(engine: &str) {
    let app = spawn_app(engine);
    app.init_ok(&sdk_wat("", &packed(0xffff_0000, 16)));
    let error = run_error(&app, json!({}));
    assert!(
        error.starts_with("The action broke the ABI") && error.contains("outside"),
        "{error}"
    );
    // A length that runs off the end of memory, from a valid start.
    let app2 = spawn_app(engine);
    app2.init_ok(&sdk_wat("", &packed(65_000, 1_000)));
    assert!(run_error(&app2, json!({})).contains("outside"));
    still_serves(&app);
}

pub fn alloc_returning_a_bad_buffer_is_an_action_error(engine: &str) {
    let wasm = wat::parse_str(
        r#"(module (memory (export "memory") 1)
             (func (export "ow_alloc") (param i32) (result i32) (i32.const -8))
             (func (export "main") (param i32 i32) (result i64) (i64.const 0)))"#,
    )
    .unwrap();
    let app = spawn_app(engine);
    app.init_ok(&wasm);
    assert!(run_error(&app, json!({"a": 1})).contains("ow_alloc"));
}

pub fn result_that_is_not_utf8_or_not_json_is_an_action_error(engine: &str) {
    let app = spawn_app(engine);
    app.init_ok(&sdk_wat("\\ff\\fe\\fd", &packed(16, 3)));
    assert!(run_error(&app, json!({})).contains("not UTF-8"));
    let app = spawn_app(engine);
    app.init_ok(&sdk_wat("{not json", &packed(16, 9)));
    assert!(run_error(&app, json!({})).contains("not valid JSON"));
}

pub fn a_trap_is_an_action_error_and_the_executor_survives(engine: &str) {
    let app = spawn_app(engine);
    app.init_ok(&sdk_wat("", "unreachable"));
    let error = run_error(&app, json!({}));
    assert!(
        error.starts_with("The action failed") && error.contains("unreachable"),
        "{error}"
    );
    still_serves(&app);
    assert_eq!(app.stop().sentinels(), (2, 2));
}

pub fn initialize_runs_before_the_entry_point(engine: &str) {
    let wasm = wat::parse_str(format!(
        r#"(module (memory (export "memory") 1)
             (global $ready (mut i32) (i32.const 0))
             (data (i32.const 16) "{{\"init\":1}}")
             (data (i32.const 32) "{{\"init\":0}}")
             (func (export "_initialize") (global.set $ready (i32.const 1)))
             (func (export "ow_alloc") (param i32) (result i32) (i32.const 1024))
             (func (export "main") (param i32 i32) (result i64)
               (if (result i64) (global.get $ready) (then {}) (else {}))))"#,
        packed(16, 10),
        packed(32, 10)
    ))
    .unwrap();
    let app = spawn_app(engine);
    app.init_ok(&wasm);
    assert_eq!(app.run(json!({})), (200, json!({"init": 1})));
}

pub fn every_activation_gets_a_fresh_instance(engine: &str) {
    // Counts its calls in its memory: `{"n":0}` becomes `{"n":1}` on the first
    // call; a reused instance would answer 2 on the second.
    let body = format!(
        r#"(i32.store8 (i32.const 21) (i32.add (i32.load8_u (i32.const 21)) (i32.const 1)))
           {}"#,
        packed(16, 7)
    );
    let app = spawn_app(engine);
    app.init_ok(&sdk_wat(r#"{\"n\":0}"#, &body));
    for _ in 0..3 {
        assert_eq!(app.run(json!({})), (200, json!({"n": 1})));
    }
}

pub fn time_limit_interrupts_an_infinite_loop(engine: &str) {
    let app = spawn_app_with(engine, &["--max-duration", "300ms"], &[]);
    app.init_ok(&sdk_wat("", "(loop $spin (br $spin)) (i64.const 0)"));
    let started = std::time::Instant::now();
    let error = run_error(&app, json!({}));
    assert_eq!(
        error,
        "The action exceeded its time limits of 300 milliseconds."
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
    still_serves(&app);
}
