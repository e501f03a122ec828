//! Engine selection: `GET /engines` and the per-action `OW_ENGINE` init env key.
//! These tests are about the executor, not one engine: they run once.

use crate::helpers::*;
use ow_test_modules as modules;
use serde_json::json;

/// The engines this test binary expects the executor to have.
pub const ENGINES: &[&str] = &["wasmtime", "wasmer", "wamr"];

#[test]
fn engines_are_listed_with_versions() {
    let app = spawn_app(ENGINES[0]);
    let (status, body) = app.get("/engines");
    assert_eq!(status, 200);
    assert_eq!(body["default"], ENGINES[0]);
    let listed: Vec<&str> = body["engines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    assert_eq!(listed, ENGINES);
    for engine in body["engines"].as_array().unwrap() {
        assert!(
            engine["version"].as_str().is_some_and(|v| !v.is_empty()),
            "{engine}"
        );
    }
}

#[test]
fn each_action_can_pick_its_engine() {
    let app = spawn_app(ENGINES[0]);
    for (i, engine) in ENGINES.iter().enumerate() {
        let (status, body) = app.post(
            &format!("/c{i}/init"),
            &init_body(modules::ADD, "main", json!({"OW_ENGINE": engine})),
        );
        assert_eq!(status, 200, "{engine}: {body}");
        let (status, body) = app.post(
            &format!("/c{i}/run"),
            &json!({"value": {"param1": i, "param2": 1}}),
        );
        assert_eq!((status, body), (200, json!({"result": i + 1})), "{engine}");
    }
}

#[test]
fn an_unknown_engine_is_a_clear_400() {
    let app = spawn_app(ENGINES[0]);
    let (status, body) = app.init_with(modules::ADD, "main", json!({"OW_ENGINE": "v8"}));
    assert_eq!(status, 400, "{body}");
    let error = body["error"].as_str().unwrap();
    assert!(
        error.contains("v8") && error.contains(ENGINES[0]),
        "{error}"
    );
    // The container is still free.
    app.init_ok(modules::ADD);
}

#[test]
fn engines_trap_side_by_side_in_one_process() {
    // Each engine handles its own faults (signal handlers chain): an
    // out-of-bounds load on one engine must not confuse another.
    let oob = sdk_wat("", "(drop (i32.load (i32.const 0x7ffffff0))) (i64.const 0)");
    let app = spawn_app(ENGINES[0]);
    for (i, engine) in ENGINES.iter().enumerate() {
        let (status, body) = app.post(
            &format!("/t{i}/init"),
            &init_body(&oob, "main", json!({"OW_ENGINE": engine})),
        );
        assert_eq!(status, 200, "{engine}: {body}");
        let (status, body) = app.post(
            &format!("/a{i}/init"),
            &init_body(modules::ADD, "main", json!({"OW_ENGINE": engine})),
        );
        assert_eq!(status, 200, "{engine}: {body}");
    }
    for round in 0..2 {
        for (i, engine) in ENGINES.iter().enumerate() {
            let (status, body) = app.post(&format!("/t{i}/run"), &json!({"value": {}}));
            assert_eq!(status, 502, "{engine} round {round}: {body}");
            assert!(
                body["error"]
                    .as_str()
                    .unwrap()
                    .starts_with("The action failed"),
                "{engine}: {body}"
            );
            let (status, body) = app.post(
                &format!("/a{i}/run"),
                &json!({"value": {"param1": round, "param2": 1}}),
            );
            assert_eq!(
                (status, body),
                (200, json!({"result": round + 1})),
                "{engine}"
            );
        }
    }
}

#[test]
fn wasmer_can_compile_with_singlepass() {
    let app = spawn_app_with("wasmer", &["--wasmer-compiler", "singlepass"], &[]);
    app.init_ok(modules::HASH);
    let (status, body) = app.run(json!({"input": "abc", "iterations": 1}));
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["hash"],
        "6437b3ac38465133ffb63b75273a8db548c558465d79db03fd359c6cd5bd9d85"
    );
}
