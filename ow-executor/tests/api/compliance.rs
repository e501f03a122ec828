//! A port of OpenWhisk's BasicActionRunnerTests (docs/protocol.md)
//! and its common extras, against the real executor process.

use crate::helpers::*;
use ow_test_modules as modules;
use serde_json::{Value, json};
use std::sync::Arc;

pub fn init_with_empty_code_fails(engine: &str) {
    let app = spawn_app(engine);
    let (status, body) = app.post(
        "/init",
        &json!({"value": {"code": "", "main": "", "binary": false, "env": null}}),
    );
    assert_ne!(status, 200);
    assert!(body["error"].is_string(), "{body}");
    let streams = app.stop();
    assert_eq!(streams.sentinels(), (0, 0));
}

pub fn init_with_empty_object_fails_with_the_exact_message(engine: &str) {
    let app = spawn_app(engine);
    let (status, body) = app.post("/init", &json!({}));
    assert_ne!(status, 200);
    assert_eq!(body, json!({"error": "Missing main/no code to execute."}));
}

pub fn non_dictionary_result_is_an_error_with_one_sentinel_per_stream(engine: &str) {
    let app = spawn_app(engine);
    app.init_ok(modules::STRING_RESULT);
    let (status, body) = app.run(json!({}));
    assert_ne!(status, 200);
    let error = body["error"].as_str().unwrap();
    assert!(
        error == "The action did not return a dictionary or array."
            || error == "The action did not return a dictionary.",
        "{error}"
    );
    assert_eq!(app.stop().sentinels(), (1, 1));
}

pub fn second_init_is_refused_and_logged_without_sentinels(engine: &str) {
    let app = spawn_app(engine);
    app.init_ok(modules::ECHO);
    let (status, body) = app.init(modules::ECHO);
    assert_ne!(status, 200);
    assert_eq!(
        body,
        json!({"error": "Cannot initialize the action more than once."})
    );
    let streams = app.stop();
    let logs = format!("{}{}", streams.stdout, streams.stderr);
    assert!(
        logs.contains("Cannot initialize the action more than once."),
        "{logs:?}"
    );
    assert_eq!(streams.sentinels(), (0, 0));
}

pub fn entry_point_niam_is_honoured(engine: &str) {
    let app = spawn_app(engine);
    let (status, body) = app.init_with(modules::ECHO, "niam", Value::Null);
    assert_eq!(status, 200, "{body}");
    let (status, body) = app.run(json!({"string": "hello"}));
    assert_eq!((status, body), (200, json!({"string": "hello"})));
    assert_eq!(app.stop().sentinels(), (1, 1));
}

pub fn echo_four_times_with_logs_and_four_sentinels(engine: &str) {
    let app = spawn_app(engine);
    app.init_ok(modules::ECHO);
    let inputs = [
        json!({"string": "hello"}),
        json!({"string": "❄ ☃ ❄"}),
        json!({"numbers": [42, 1]}),
        json!({"object": {"a": "A"}}),
    ];
    for input in &inputs {
        let (status, body) = app.run(input.clone());
        assert_eq!(status, 200);
        assert_eq!(&body, input);
    }
    let streams = app.stop();
    assert_eq!(streams.sentinels(), (4, 4));
    assert_eq!(
        streams.stdout,
        format!("hello stdout\n{SENTINEL}\n").repeat(4)
    );
    assert_eq!(
        streams.stderr,
        format!("hello stderr\n{SENTINEL}\n").repeat(4)
    );
}

pub fn unicode_in_params_result_and_logs(engine: &str) {
    let app = spawn_app(engine);
    app.init_ok(modules::UNICODE);
    let (status, body) = app.run(json!({"delimiter": "❄"}));
    assert_eq!(status, 200);
    assert_eq!(body["winter"], "❄ ☃ ❄");
    let streams = app.stop();
    assert!(streams.stdout.contains("❄ ☃ ❄"), "{:?}", streams.stdout);
    assert_eq!(streams.sentinels(), (1, 1));
}

pub fn init_env_is_visible_to_the_action(engine: &str) {
    let app = spawn_app(engine);
    let (status, _) = app.init_with(
        modules::ENV,
        "main",
        json!({"SOME_VAR": "xyz", "ANOTHER_VAR": ""}),
    );
    assert_eq!(status, 200);
    let (status, body) = app.run(json!({}));
    assert_eq!(
        (status, body),
        (200, json!({"SOME_VAR": "xyz", "ANOTHER_VAR": ""}))
    );
}

pub fn activation_context_reaches_the_environment(engine: &str) {
    let app = spawn_app_with(engine, &[], &[("__OW_API_HOST", "xyz")]);
    app.init_ok(modules::CONTEXT);
    let (status, body) = app.post(
        "/run",
        &json!({
            "value": {},
            "api_key": "abc",
            "namespace": "zzz",
            "action_name": "xxx",
            "action_version": "0.0.1",
            "activation_id": "iii",
            "deadline": "123",
        }),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body,
        json!({
            "api_host": "xyz",
            "api_key": "abc",
            "namespace": "zzz",
            "action_name": "xxx",
            "action_version": "0.0.1",
            "activation_id": "iii",
            "deadline": "123",
        })
    );
}

pub fn large_input_is_echoed_exactly(engine: &str) {
    let app = spawn_app(engine);
    app.init_ok(modules::ECHO);
    let arg = "a".repeat(1_048_561);
    let (status, body) = app.run(json!({"arg": arg}));
    assert_eq!(status, 200);
    assert_eq!(body["arg"].as_str().map(str::len), Some(1_048_561));
    assert_eq!(body, json!({"arg": arg}));
}

pub fn application_error_is_passed_through(engine: &str) {
    let app = spawn_app(engine);
    app.init_ok(modules::APP_ERROR);
    let (status, body) = app.run(json!({}));
    // We answer an application error like actionloop: 200, the invoker reads `error`.
    assert_eq!((status, body), (200, json!({"error": "sorry"})));
    assert_eq!(app.stop().sentinels(), (1, 1));
}

pub fn arrays_in_and_out(engine: &str) {
    let app = spawn_app(engine);
    app.init_ok(modules::ECHO);
    let (status, body) = app.run(json!([1, "two", {"three": 3}]));
    assert_eq!((status, body), (200, json!([1, "two", {"three": 3}])));
}

pub fn invalid_zip_fails_init_cleanly_and_a_valid_action_can_follow(engine: &str) {
    let app = spawn_app(engine);
    let mut zip = b"PK\x03\x04".to_vec();
    zip.extend_from_slice(&[0u8; 64]);
    let (status, body) = app.post(
        "/init",
        &json!({"value": {"main": "main", "binary": true, "code": b64(&zip)}}),
    );
    assert_eq!(status, 502, "{body}");
    assert!(body["error"].as_str().unwrap().contains("zip"), "{body}");
    app.init_ok(modules::ADD);
    let (status, body) = app.run(json!({"param1": 1, "param2": 2}));
    assert_eq!((status, body), (200, json!({"result": 3})));
}

pub fn run_before_init_is_refused(engine: &str) {
    let app = spawn_app(engine);
    let (status, body) = app.run(json!({}));
    assert_eq!(
        (status, body),
        (403, json!({"error": "System not initialized."}))
    );
}

pub fn concurrent_runs_succeed_with_contiguous_sentinels(engine: &str) {
    const N: usize = 128;
    let app = Arc::new(spawn_app(engine));
    app.init_ok(modules::ECHO);
    let threads: Vec<_> = (0..N)
        .map(|i| {
            let app = Arc::clone(&app);
            std::thread::spawn(move || app.run(json!({"i": i, "pad": "x".repeat(i * 97)})))
        })
        .collect();
    for (i, t) in threads.into_iter().enumerate() {
        let (status, body) = t.join().unwrap();
        assert_eq!(status, 200);
        assert_eq!(body, json!({"i": i, "pad": "x".repeat(i * 97)}));
    }
    let streams = Arc::into_inner(app).expect("all clients are done").stop();
    // Every activation's block is its log line then its sentinel, never interleaved.
    assert_eq!(
        streams.stdout,
        format!("hello stdout\n{SENTINEL}\n").repeat(N)
    );
    assert_eq!(
        streams.stderr,
        format!("hello stderr\n{SENTINEL}\n").repeat(N)
    );
}

pub fn the_executor_prints_nothing_of_its_own(engine: &str) {
    let app = spawn_app(engine);
    app.init_ok(modules::ADD);
    let (status, _) = app.run(json!({"param1": 1, "param2": 2}));
    assert_eq!(status, 200);
    let (status, _) = app.run(json!({"param1": 1}));
    assert_eq!(status, 200);
    let streams = app.stop();
    assert_eq!(streams.stdout, format!("{SENTINEL}\n{SENTINEL}\n"));
    assert_eq!(streams.stderr, format!("{SENTINEL}\n{SENTINEL}\n"));
}
