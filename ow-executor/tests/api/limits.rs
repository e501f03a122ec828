//! Executor-wide limits and lifecycle, independent of the engine: they run
//! once, on the default engine.

use crate::helpers::*;
use ow_test_modules as modules;
use serde_json::json;
use std::sync::Arc;
use std::time::{Duration, Instant};

#[test]
fn activations_beyond_the_concurrency_limit_get_429_after_the_queue_wait() {
    let app = Arc::new(spawn_app_with(
        "wasmtime",
        &["--max-concurrency", "2", "--max-queue-wait", "200ms"],
        &[],
    ));
    app.init_ok(modules::SLEEP);
    let sleepers: Vec<_> = (0..2)
        .map(|_| {
            let app = Arc::clone(&app);
            std::thread::spawn(move || app.run(json!({"ms": 1500})))
        })
        .collect();
    std::thread::sleep(Duration::from_millis(400));
    let started = Instant::now();
    let (status, body) = app.run(json!({"ms": 1}));
    assert_eq!(status, 429, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .starts_with("Too many concurrent activations"),
        "{body}"
    );
    assert!(started.elapsed() >= Duration::from_millis(200));
    for sleeper in sleepers {
        assert_eq!(sleeper.join().unwrap(), (200, json!({"slept_ms": 1500})));
    }
    // Slots are given back.
    assert_eq!(app.run(json!({"ms": 1})), (200, json!({"slept_ms": 1})));
}

#[test]
fn a_queued_activation_runs_once_a_slot_frees_up() {
    let app = Arc::new(spawn_app_with(
        "wasmtime",
        &["--max-concurrency", "1", "--max-queue-wait", "5s"],
        &[],
    ));
    app.init_ok(modules::SLEEP);
    let runs: Vec<_> = (0..3)
        .map(|_| {
            let app = Arc::clone(&app);
            std::thread::spawn(move || app.run(json!({"ms": 300})))
        })
        .collect();
    for run in runs {
        assert_eq!(run.join().unwrap(), (200, json!({"slept_ms": 300})));
    }
}

#[test]
fn metrics_count_inits_by_path_and_activations_by_outcome() {
    let cache = tempfile::tempdir().unwrap();
    let dir = cache.path().to_str().unwrap();
    spawn_app_with("wasmtime", &["--cache-dir", dir], &[]).init_ok(modules::ADD);
    let app = spawn_app_with(
        "wasmtime",
        &["--cache-dir", dir, "--max-duration", "200ms"],
        &[],
    );
    app.init_ok(modules::ADD);
    for _ in 0..3 {
        assert_eq!(app.run(json!({"param1": 1, "param2": 1})).0, 200);
    }
    let (status, body) = app.post(
        "/err/init",
        &init_body(modules::APP_ERROR, "main", serde_json::Value::Null),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(app.post("/err/run", &json!({"value": {}})).0, 200);
    let (status, body) = app.post(
        "/loop/init",
        &init_body(modules::LOOP, "main", serde_json::Value::Null),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(app.post("/loop/run", &json!({"value": {}})).0, 502);
    // Text code: refused (502), counted as a failed /init.
    assert_eq!(
        app.post("/bad/init", &json!({"value": {"code": "!!"}})).0,
        502
    );
    let text = app.get_text("/metrics");
    for line in [
        r#"ow_inits_total{engine="wasmtime",path="cached"} 1"#,
        r#"ow_inits_total{engine="wasmtime",path="compiled"} 2"#,
        r#"ow_inits_total{engine="unknown",path="failed"} 1"#,
        r#"ow_activations_total{engine="wasmtime",outcome="success"} 3"#,
        r#"ow_activations_total{engine="wasmtime",outcome="application_error"} 1"#,
        r#"ow_activations_total{engine="wasmtime",outcome="timeout"} 1"#,
        "ow_activations_in_flight 0",
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "{line} missing in:\n{text}"
        );
    }
    assert!(
        text.contains("ow_run_duration_seconds_bucket{le="),
        "{text}"
    );
}
