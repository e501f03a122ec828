//! Regression tests of the hardening issue: host memory safety of exports
//! the host calls, activation slots that always come back, duration
//! arithmetic, graceful shutdown of long activations, the memory budget.

use crate::helpers::*;
use ow_test_modules as modules;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A command module with `_start` and an `_initialize` of type `ty`
/// (importing WASI or not).
fn command_with_initialize(ty: &str, wasi: bool) -> Vec<u8> {
    let import = match wasi {
        true => r#"(import "wasi_snapshot_preview1" "proc_exit" (func (param i32)))"#,
        false => "",
    };
    wat::parse_str(format!(
        r#"(module {import}
             (memory (export "memory") 1)
             (func (export "_initialize") {ty})
             (func (export "_start")))"#
    ))
    .unwrap()
}

pub fn an_initialize_with_results_is_refused_at_init(engine: &str) {
    let app = spawn_app(engine);
    for wasi in [false, true] {
        let wasm = command_with_initialize("(result i64) i64.const 0", wasi);
        let (status, body) = app.post("/bad/init", &init_body(&wasm, "main", Value::Null));
        assert_eq!(status, 502, "{body}");
        let error = body["error"].as_str().unwrap();
        assert!(
            error.contains("`_initialize`") && error.contains("() -> (i64)"),
            "{error}"
        );
    }
    // The SDK ABI too, and with parameters.
    let sdk = wat::parse_str(
        r#"(module (memory (export "memory") 1)
             (func (export "ow_alloc") (param i32) (result i32) (i32.const 0))
             (func (export "_initialize") (param i32))
             (func (export "main") (param i32 i32) (result i64) (i64.const 0)))"#,
    )
    .unwrap();
    let (status, body) = app.post("/sdk/init", &init_body(&sdk, "main", Value::Null));
    assert_eq!(status, 502, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("(i32) -> ()"),
        "{body}"
    );
    // A well-typed one is called and the action runs.
    init_at(&app, "good", &command_with_initialize("", true));
    assert_eq!(run_at(&app, "good", json!({})).0, 502, "no result line");
    init_at(&app, "add", modules::ADD);
    assert_eq!(
        run_at(&app, "add", json!({"param1": 1, "param2": 2})),
        (200, json!({"result": 3}))
    );
}

/// One slot: after a stuck activation is answered, the next one must get
/// the slot within the deadline guard's grace (1 s), not wait and get 429.
fn the_slot_comes_back(app: &TestApp, stuck: &str, params: Value) {
    let started = Instant::now();
    let (status, body) = run_at(app, stuck, params);
    assert_eq!(status, 502, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("exceeded its time limits"),
        "{body}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    let next = Instant::now();
    assert_eq!(
        run_at(app, "add", json!({"param1": 20, "param2": 22})),
        (200, json!({"result": 42}))
    );
    assert!(
        next.elapsed() < Duration::from_secs(2),
        "{:?}",
        next.elapsed()
    );
}

fn one_slot(engine: &str) -> TestApp {
    spawn_app_with(
        engine,
        &[
            "--max-concurrency",
            "1",
            "--max-duration",
            "400ms",
            "--max-queue-wait",
            "4s",
        ],
        &[],
    )
}

pub fn a_guest_asleep_past_its_limit_gives_its_slot_back(engine: &str) {
    let app = one_slot(engine);
    init_at(&app, "sleep", modules::SLEEP);
    init_at(&app, "add", modules::ADD);
    // Ten minutes asleep in WASI's poll_oneoff.
    the_slot_comes_back(&app, "sleep", json!({"ms": 600_000}));
    the_slot_comes_back(&app, "sleep", json!({"ms": 600_000}));
}

pub fn a_guest_spinning_while_it_is_instantiated_gives_its_slot_back(engine: &str) {
    let app = one_slot(engine);
    init_at(&app, "add", modules::ADD);
    let spin = "(loop $l (br $l))";
    let cases = [
        // The start section.
        format!(
            r#"(module (memory (export "memory") 1)
                 (func $s {spin}) (start $s) (func (export "_start")))"#
        ),
        // `_initialize` of a WASI module (WAMR calls it while instantiating).
        format!(
            r#"(module (import "wasi_snapshot_preview1" "proc_exit" (func (param i32)))
                 (memory (export "memory") 1)
                 (func (export "_initialize") {spin}) (func (export "_start")))"#
        ),
        // `_initialize` of a module without WASI.
        format!(
            r#"(module (memory (export "memory") 1)
                 (func (export "_initialize") {spin}) (func (export "_start")))"#
        ),
    ];
    for (i, wat) in cases.iter().enumerate() {
        let name = format!("spin{i}");
        init_at(&app, &name, &wat::parse_str(wat).unwrap());
        the_slot_comes_back(&app, &name, json!({}));
    }
    // No engine runs the legacy constructors WAMR used to call by itself.
    let ctors = wat::parse_str(format!(
        r#"(module (import "wasi_snapshot_preview1" "fd_write" (func $w (param i32 i32 i32 i32) (result i32)))
             (memory (export "memory") 1)
             (data (i32.const 16) "{{}}\n")
             (func (export "__wasm_call_ctors") {spin})
             (func (export "__post_instantiate") {spin})
             (func (export "_start")
               (i32.store (i32.const 0) (i32.const 16))
               (i32.store (i32.const 4) (i32.const 3))
               (drop (call $w (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))))"#
    ))
    .unwrap();
    init_at(&app, "ctors", &ctors);
    assert_eq!(run_at(&app, "ctors", json!({})), (200, json!({})));
}

pub fn a_huge_max_duration_does_not_overflow(engine: &str) {
    let app = spawn_app_with(engine, &["--max-duration", "18446744073709551615s"], &[]);
    init_at(&app, "add", modules::ADD);
    init_at(&app, "cmd", modules::CMD_ECHO);
    assert_eq!(
        run_at(&app, "add", json!({"param1": 1, "param2": 1})),
        (200, json!({"result": 2}))
    );
    assert_eq!(run_at(&app, "cmd", json!({"a": 1})), (200, json!({"a": 1})));
    assert_eq!(app.stop().sentinels(), (2, 2));
}

/// actix's default shutdown timeout is 30 s: an activation admitted before
/// SIGTERM must still be answered after that, with its sentinels.
pub fn sigterm_waits_for_an_activation_longer_than_30_seconds(engine: &str) {
    let app = Arc::new(spawn_app_with(engine, &["--max-duration", "60s"], &[]));
    app.init_ok(modules::SLEEP);
    let in_flight = {
        let app = Arc::clone(&app);
        std::thread::spawn(move || app.run(json!({"ms": 31_000})))
    };
    await_in_flight(&app, 1);
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &app.pid().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    assert_eq!(
        in_flight.join().unwrap(),
        (200, json!({"slept_ms": 31_000}))
    );
    let app = Arc::into_inner(app).expect("no other user");
    let (code, streams) = app.wait_exit(Duration::from_secs(10));
    assert_eq!(code, Some(0));
    assert_eq!(streams.sentinels(), (1, 1));
}

pub fn the_memory_budget_admits_what_fits_and_refuses_the_rest_with_429(engine: &str) {
    let app = Arc::new(spawn_app_with(
        engine,
        &["--memory-budget", "100", "--max-queue-wait", "300ms"],
        &[],
    ));
    // Each activation reserves 40 MiB of memory + 2 x 1 MiB of logs.
    let env = json!({"OW_MAX_MEMORY_MB": "40", "OW_MAX_LOG_BYTES": "1048576"});
    let (status, body) = app.post("/sleep/init", &init_body(modules::SLEEP, "main", env));
    assert_eq!(status, 200, "{body}");
    let sleepers: Vec<_> = (0..2)
        .map(|_| {
            let app = Arc::clone(&app);
            std::thread::spawn(move || run_at(&app, "sleep", json!({"ms": 3000})))
        })
        .collect();
    await_in_flight(&app, 2);
    assert_eq!(metric(&app, "ow_memory_budget_used_mib"), Some(84.0));
    // A third does not fit in the 16 MiB left: 429 after the queue wait.
    let (status, body) = run_at(&app, "sleep", json!({"ms": 1}));
    assert_eq!(status, 429, "{body}");
    assert!(body["error"].as_str().unwrap().contains("memory"), "{body}");
    // Nor does an /init of 2.5 MB (8 x its body).
    let mut big = init_body(modules::ADD, "main", Value::Null);
    big["value"]["name"] = json!(" ".repeat(2_500_000));
    let (status, body) = app.post("/big/init", &big);
    assert_eq!(status, 429, "{body}");
    for sleeper in sleepers {
        assert_eq!(sleeper.join().unwrap(), (200, json!({"slept_ms": 3000})));
    }
    // Once they are done, both fit again.
    assert_eq!(
        run_at(&app, "sleep", json!({"ms": 1})),
        (200, json!({"slept_ms": 1}))
    );
    assert_eq!(app.post("/big/init", &big).0, 200);
    assert_eq!(metric(&app, "ow_memory_budget_used_mib"), Some(0.0));
}
