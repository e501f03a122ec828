//! Hostile actions (the `ow-wasm-action` examples of that name): each gets a
//! bounded time, the right JSON error, and the executor keeps serving.

use crate::helpers::*;
use ow_test_modules as modules;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub fn infinite_loop_is_stopped_while_others_are_served(engine: &str) {
    let app = Arc::new(spawn_app_with(engine, &["--max-duration", "1500ms"], &[]));
    init_at(&app, "loop", modules::LOOP);
    init_at(&app, "echo", modules::ECHO);
    let started = Instant::now();
    let spinner = {
        let app = Arc::clone(&app);
        std::thread::spawn(move || run_at(&app, "loop", json!({})))
    };
    std::thread::sleep(Duration::from_millis(100));
    let clients: Vec<_> = (0..200)
        .map(|i| {
            let app = Arc::clone(&app);
            std::thread::spawn(move || run_at(&app, "echo", json!({ "i": i })))
        })
        .collect();
    for (i, client) in clients.into_iter().enumerate() {
        assert_eq!(client.join().unwrap(), (200, json!({ "i": i })));
    }
    let (status, body) = spinner.join().unwrap();
    assert_eq!(status, 502, "{body}");
    assert_eq!(
        body["error"],
        "The action exceeded its time limits of 1500 milliseconds."
    );
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
}

pub fn memory_bomb_is_refused_at_the_cap(engine: &str) {
    let app = spawn_app_with(engine, &["--max-memory-mb", "64"], &[]);
    init_at(&app, "bomb", modules::MEMBOMB);
    let (status, body) = run_at(&app, "bomb", json!({}));
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["refused"], true, "{body}");
    assert!(body["bytes"].as_u64().unwrap() <= 64 << 20, "{body}");
    init_at(&app, "add", modules::ADD);
    assert_eq!(
        run_at(&app, "add", json!({"param1": 1, "param2": 1})),
        (200, json!({"result": 2}))
    );
}

pub fn stack_bomb_traps(engine: &str) {
    let app = spawn_app(engine);
    init_at(&app, "bomb", modules::STACKBOMB);
    let (status, body) = run_at(&app, "bomb", json!({}));
    assert_eq!(status, 502, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .starts_with("The action failed"),
        "{body}"
    );
    init_at(&app, "add", modules::ADD);
    assert_eq!(
        run_at(&app, "add", json!({"param1": 1, "param2": 1})),
        (200, json!({"result": 2}))
    );
}

pub fn unreachable_traps(engine: &str) {
    let app = spawn_app(engine);
    init_at(&app, "trap", modules::TRAP);
    let (status, body) = run_at(&app, "trap", json!({}));
    assert_eq!(status, 502, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("unreachable"),
        "{body}"
    );
}

pub fn oversized_result_is_refused(engine: &str) {
    let app = spawn_app(engine);
    init_at(&app, "big", modules::BIGRESULT);
    let (status, body) = run_at(&app, "big", json!({}));
    assert_eq!(status, 502, "{body}");
    let error = body["error"].as_str().unwrap();
    assert!(
        error.starts_with("The action produced a response that exceeded the allowed length:")
            && error.ends_with("> 1048576 bytes."),
        "{error}"
    );
}

pub fn log_flood_is_cut_with_a_notice(engine: &str) {
    let app = spawn_app_with(engine, &["--max-log-bytes", "100000"], &[]);
    init_at(&app, "flood", modules::LOGFLOOD);
    assert_eq!(
        run_at(&app, "flood", json!({"mb": 20})),
        (200, json!({"wrote_mb": 20}))
    );
    let streams = app.stop();
    assert!(
        streams.stdout.len() <= 100_000 + 2 + SENTINEL.len(),
        "{}",
        streams.stdout.len()
    );
    assert!(streams.stdout.ends_with(&format!("\n{SENTINEL}\n")));
    assert!(
        streams.stderr.contains("Logs were truncated"),
        "{:?}",
        streams.stderr
    );
    assert_eq!(streams.sentinels(), (1, 1));
}

pub fn exit_in_the_middle_is_an_action_error(engine: &str) {
    let app = spawn_app(engine);
    init_at(&app, "exit", modules::EXIT_CODE);
    let (status, body) = run_at(&app, "exit", json!({}));
    assert_eq!(
        (status, body),
        (502, json!({"error": "The action exited with code 3."}))
    );
    let streams = app.stop();
    assert_eq!(streams.stderr, format!("exiting with 3\n{SENTINEL}\n"));
}

pub fn clock_sleep_works(engine: &str) {
    let app = spawn_app(engine);
    init_at(&app, "sleep", modules::SLEEP);
    let started = Instant::now();
    assert_eq!(
        run_at(&app, "sleep", json!({"ms": 200})),
        (200, json!({"slept_ms": 200}))
    );
    assert!(started.elapsed() >= Duration::from_millis(200));
}

pub fn the_sandbox_shows_no_host_files_or_environment(engine: &str) {
    let app = spawn_app_with(engine, &[], &[("HOST_SECRET", "leak")]);
    let (status, body) = app.post(
        "/probe/init",
        &init_body(modules::FSPROBE, "main", json!({"MINE": "ok"})),
    );
    assert_eq!(status, 200, "{body}");
    let (status, body) = app.post("/probe/run", &json!({"value": {}, "activation_id": "a1"}));
    assert_eq!(status, 200, "{body}");
    assert!(body["passwd"]["error"].is_string(), "{body}");
    let host_dirs = ["proc", "home", "root", "usr", "var", "sys"];
    if let Some(entries) = body["root"]["entries"].as_array() {
        assert!(
            entries
                .iter()
                .all(|e| !host_dirs.contains(&e.as_str().unwrap())),
            "{body}"
        );
    }
    let mut env: Vec<&str> = body["env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k.as_str().unwrap())
        .collect();
    env.sort();
    assert_eq!(env, ["MINE", "__OW_ACTIVATION_ID"], "{body}");
}

pub fn a_sleep_past_the_time_limit_is_answered_in_time(engine: &str) {
    let app = spawn_app_with(engine, &["--max-duration", "500ms"], &[]);
    init_at(&app, "sleep", modules::SLEEP);
    let started = Instant::now();
    let (status, body) = run_at(&app, "sleep", json!({"ms": 2500}));
    assert_eq!(
        (status, body),
        (
            502,
            json!({"error": "The action exceeded its time limits of 500 milliseconds."})
        )
    );
    // The engine stops it, or the executor answers one grace second later.
    assert!(
        started.elapsed() < Duration::from_millis(2200),
        "{:?}",
        started.elapsed()
    );
    // Whatever the sleeping thread does later, the activation has one sentinel per stream.
    std::thread::sleep(Duration::from_millis(2500));
    init_at(&app, "add", modules::ADD);
    assert_eq!(
        run_at(&app, "add", json!({"param1": 1, "param2": 1})),
        (200, json!({"result": 2}))
    );
    assert_eq!(app.stop().sentinels(), (2, 2));
}

pub fn an_action_may_lower_its_own_limits(engine: &str) {
    let app = spawn_app(engine);
    let (status, body) = app.post(
        "/bomb/init",
        &init_body(modules::MEMBOMB, "main", json!({"OW_MAX_MEMORY_MB": "32"})),
    );
    assert_eq!(status, 200, "{body}");
    let (status, body) = run_at(&app, "bomb", json!({}));
    assert_eq!(status, 200, "{body}");
    assert!(body["bytes"].as_u64().unwrap() <= 32 << 20, "{body}");
    let (status, body) = app.post(
        "/loop/init",
        &init_body(modules::LOOP, "main", json!({"OW_MAX_DURATION": "300ms"})),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        run_at(&app, "loop", json!({})),
        (
            502,
            json!({"error": "The action exceeded its time limits of 300 milliseconds."})
        )
    );
    // Asking for more than the operator allows gets the operator's limit.
    let app = spawn_app_with(engine, &["--max-memory-mb", "16"], &[]);
    let (status, body) = app.post(
        "/bomb/init",
        &init_body(
            modules::MEMBOMB,
            "main",
            json!({"OW_MAX_MEMORY_MB": "4096"}),
        ),
    );
    assert_eq!(status, 200, "{body}");
    let (_, body) = run_at(&app, "bomb", json!({}));
    assert!(body["bytes"].as_u64().unwrap() <= 16 << 20, "{body}");
    let (status, body) = app.post(
        "/bad/init",
        &init_body(modules::ADD, "main", json!({"OW_MAX_DURATION": "soon"})),
    );
    assert_eq!(status, 400, "{body}");
}

pub fn sigterm_lets_the_in_flight_activation_finish_then_exits_0(engine: &str) {
    let app = Arc::new(spawn_app(engine));
    app.init_ok(modules::SLEEP);
    let in_flight = {
        let app = Arc::clone(&app);
        std::thread::spawn(move || app.run(json!({"ms": 1000})))
    };
    std::thread::sleep(Duration::from_millis(300));
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &app.pid().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let answer = in_flight.join().unwrap();
    assert_eq!(answer, (200, json!({"slept_ms": 1000})));
    let app = Arc::into_inner(app).expect("no other user");
    let (code, streams) = app.wait_exit(Duration::from_secs(10));
    assert_eq!(code, Some(0));
    assert_eq!(streams.sentinels(), (1, 1));
}

pub fn memory_bomb_does_not_disturb_other_activations(engine: &str) {
    let app = Arc::new(spawn_app_with(engine, &["--max-memory-mb", "128"], &[]));
    init_at(&app, "bomb", modules::MEMBOMB);
    init_at(&app, "echo", modules::ECHO);
    let bombs: Vec<_> = (0..4)
        .map(|_| {
            let app = Arc::clone(&app);
            std::thread::spawn(move || run_at(&app, "bomb", json!({})))
        })
        .collect();
    let clients: Vec<_> = (0..200)
        .map(|i| {
            let app = Arc::clone(&app);
            std::thread::spawn(move || run_at(&app, "echo", json!({ "i": i })))
        })
        .collect();
    for (i, client) in clients.into_iter().enumerate() {
        assert_eq!(client.join().unwrap(), (200, json!({ "i": i })));
    }
    for bomb in bombs {
        let (status, body) = bomb.join().unwrap();
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["refused"], true, "{body}");
        assert!(body["bytes"].as_u64().unwrap() <= 128 << 20, "{body}");
    }
}

pub fn a_scratch_directory_is_private_to_each_activation_and_removed(engine: &str) {
    let parent = tempfile::tempdir().unwrap();
    let app = Arc::new(spawn_app_with(
        engine,
        &["--scratch-dir", parent.path().to_str().unwrap()],
        &[],
    ));
    let (status, body) = app.post(
        "/tmp/init",
        &init_body(modules::SCRATCH, "main", json!({"OW_SCRATCH": "1"})),
    );
    assert_eq!(status, 200, "{body}");
    // Concurrent activations each see an empty directory of their own.
    let clients: Vec<_> = (0..16)
        .map(|i| {
            let app = Arc::clone(&app);
            std::thread::spawn(move || {
                run_at(
                    &app,
                    "tmp",
                    json!({"name": format!("f{i}"), "data": format!("d{i}")}),
                )
            })
        })
        .collect();
    for (i, client) in clients.into_iter().enumerate() {
        let (status, body) = client.join().unwrap();
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["before"], json!([]), "{body}");
        assert_eq!(body["read"], json!(format!("d{i}")), "{body}");
        assert_eq!(body["escaped_reads"], json!([]), "{body}");
        assert_eq!(body["escaped_writes"], json!([]), "{body}");
    }
    let left: Vec<_> = std::fs::read_dir(parent.path()).unwrap().collect();
    assert!(left.is_empty(), "scratch left behind: {left:?}");
    // Another action that did not ask for one has no directory.
    init_at(&app, "plain", modules::SCRATCH);
    let (status, body) = run_at(&app, "plain", json!({}));
    assert_eq!(status, 200, "{body}");
    assert!(
        body["error"]
            .as_str()
            .is_some_and(|e| e.contains("no scratch directory")),
        "{body}"
    );
    let (status, body) = app.post(
        "/typo/init",
        &init_body(modules::SCRATCH, "main", json!({"OW_SCRATCH": "sure"})),
    );
    assert_eq!(status, 400, "{body}");
}

pub fn table_and_stack_limits_are_flags(engine: &str) {
    let app = spawn_app_with(
        engine,
        &["--max-table-elements", "1000", "--max-stack-kb", "64"],
        &[],
    );
    let big_table = wat::parse_str(
        r#"(module (memory (export "memory") 1) (table 5000 funcref)
             (func (export "ow_alloc") (param i32) (result i32) (i32.const 0))
             (func (export "main") (param i32 i32) (result i64) (i64.const 0)))"#,
    )
    .unwrap();
    let (status, body) = app.post("/t/init", &init_body(&big_table, "main", Value::Null));
    assert_eq!(status, 502, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("limit of 1000"),
        "{body}"
    );
    // An action may lower the table limit further, not raise it.
    let (status, body) = app.post(
        "/echo/init",
        &init_body(modules::ECHO, "main", json!({"OW_MAX_TABLE_ELEMENTS": "1"})),
    );
    assert_eq!(status, 502, "{body}");
    init_at(&app, "stack", modules::STACKBOMB);
    let (status, body) = run_at(&app, "stack", json!({}));
    assert_eq!(status, 502, "{body}");
    // Still serving.
    init_at(&app, "add", modules::ADD);
    assert_eq!(
        run_at(&app, "add", json!({"param1": 2, "param2": 3})),
        (200, json!({"result": 5}))
    );
}
