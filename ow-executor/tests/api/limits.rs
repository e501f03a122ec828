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
