//! Multi-action mode: `/{container_id}/init|run|destroy` in one process.

use crate::helpers::*;
use ow_test_modules as modules;
use serde_json::{Value, json};

pub fn two_actions_side_by_side_then_destroy(engine: &str) {
    let app = spawn_app(engine);
    assert_eq!(
        app.post("/a/init", &init_body(modules::ECHO, "main", Value::Null))
            .0,
        200
    );
    assert_eq!(
        app.post(
            "/b/init",
            &init_body(modules::ENV, "main", json!({"SOME_VAR": "only b"}))
        )
        .0,
        200
    );
    assert_eq!(
        app.post("/a/run", &json!({"value": {"x": 1}})),
        (200, json!({"x": 1}))
    );
    assert_eq!(
        app.post("/b/run", &json!({"value": {}})),
        (200, json!({"SOME_VAR": "only b", "ANOTHER_VAR": ""}))
    );
    // Standard mode is a container of its own.
    assert_eq!(app.run(json!({})).0, 403);

    assert_eq!(
        app.post("/a/destroy", &json!({})),
        (200, json!({"ok": true}))
    );
    let (status, body) = app.post("/a/run", &json!({"value": {}}));
    assert_eq!(
        (status, body),
        (403, json!({"error": "System not initialized."}))
    );
    assert_eq!(app.post("/a/destroy", &json!({})).0, 404);
    // b is untouched; a can be initialised again, with another action.
    assert_eq!(app.post("/b/run", &json!({"value": {}})).0, 200);
    assert_eq!(
        app.post("/a/init", &init_body(modules::ADD, "main", Value::Null))
            .0,
        200
    );
    assert_eq!(
        app.post("/a/run", &json!({"value": {"param1": 1, "param2": 2}})),
        (200, json!({"result": 3}))
    );
    assert_eq!(app.stop().sentinels(), (4, 4));
}

pub fn second_init_of_a_container_is_refused(engine: &str) {
    let app = spawn_app(engine);
    assert_eq!(
        app.post("/a/init", &init_body(modules::ECHO, "main", Value::Null))
            .0,
        200
    );
    let (status, body) = app.post("/a/init", &init_body(modules::ADD, "main", Value::Null));
    assert_eq!(
        (status, body),
        (
            403,
            json!({"error": "Cannot initialize the action more than once."})
        )
    );
    // The first action stays in place.
    assert_eq!(
        app.post("/a/run", &json!({"value": {"k": "v"}})),
        (200, json!({"k": "v"}))
    );
}
