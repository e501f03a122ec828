//! Actions that call actions (`ow_host_v1.call` / `await_call`): the three
//! data paths, the limits, failing callees and namespaces.

use crate::functions::{AUTH, call, put_action, store_app};
use crate::helpers::*;
use ow_test_modules as modules;
use serde_json::{Value, json};
use std::time::{Duration, Instant};

/// `/run` of `container` in namespace `guest` as action `/guest/<container>`
/// (the invoker's metadata: what lineages are made of).
fn run_as(app: &TestApp, container: &str, params: Value) -> (u16, Value) {
    app.post(
        &format!("/{container}/run"),
        &json!({
            "value": params,
            "namespace": "guest",
            "action_name": format!("/guest/{container}"),
        }),
    )
}

/// /init `wasm` as `container` with `env`; must succeed.
fn init_env(app: &TestApp, container: &str, wasm: &[u8], env: Value) {
    let (status, body) = app.post(&format!("/{container}/init"), &init_body(wasm, "main", env));
    assert_eq!(status, 200, "{container}: {body}");
}

/// `ow_calls_total{path="<path>"}`, 0 when never counted.
fn calls(app: &TestApp, path: &str) -> f64 {
    metric(app, &format!("ow_calls_total{{path=\"{path}\"}}")).unwrap_or(0.0)
}

/// The pipeline, map-reduce and failing-callee examples, on `caller`'s
/// executor, with `square` where the test put it.
fn workflows(app: &TestApp, caller: &str) -> Vec<Value> {
    let mut answers = Vec::new();
    let pipeline = json!({
        "steps": ["square", "square", "square"], "value": 2
    });
    let (status, body) = run_as(app, &format!("{caller}-pipeline"), pipeline);
    assert_eq!(status, 200, "{body}");
    answers.push(body);
    let items: Vec<i64> = (1..=10).collect();
    let (status, body) = run_as(
        app,
        &format!("{caller}-mr"),
        json!({ "mapper": "square", "items": items }),
    );
    assert_eq!(status, 200, "{body}");
    answers.push(body);
    let (status, body) = run_as(
        app,
        &format!("{caller}-guard"),
        json!({ "callee": "square", "params": { "value": "seven" } }),
    );
    assert_eq!(status, 200, "{body}");
    answers.push(body);
    answers
}

/// The callers of [`workflows`] as containers `<prefix>-pipeline`,
/// `-mr`, `-guard`, with `env`.
fn init_callers(app: &TestApp, prefix: &str, env: Value) {
    init_env(
        app,
        &format!("{prefix}-pipeline"),
        modules::PIPELINE,
        env.clone(),
    );
    init_env(
        app,
        &format!("{prefix}-mr"),
        modules::MAP_REDUCE,
        env.clone(),
    );
    init_env(app, &format!("{prefix}-guard"), modules::CALL_GUARD, env);
}

/// Each data path is taken when it should be and gives the same results:
/// embedded (`OW_EMBED` names the callee), local (a container here, or a
/// function of the store) and networked (a peer executor's function API).
pub fn every_path_gives_the_same_results(engine: &str) {
    let dir = tempfile::tempdir().unwrap();
    let peer = store_app(engine, dir.path(), &[]);
    let (status, body) = put_action(&peer, "square", modules::SQUARE, json!([]), false);
    assert_eq!(status, 200, "{body}");
    let peer_url = peer.base.replacen("http://", &format!("http://{AUTH}@"), 1);
    let app = spawn_app_with(engine, &["--peer", &peer_url, "--log-level", "info"], &[]);
    // Networked first: no `square` here yet.
    init_callers(&app, "net", Value::Null);
    let networked = workflows(&app, "net");
    assert_eq!(calls(&app, "networked"), 14.0);
    assert_eq!(calls(&app, "local"), 0.0);
    // Then `square` here: local, and embedded for the callers that say so.
    init_at(&app, "square", modules::SQUARE);
    init_callers(&app, "local", Value::Null);
    let local = workflows(&app, "local");
    assert_eq!(calls(&app, "local"), 14.0);
    init_callers(&app, "emb", json!({ "OW_EMBED": "other, square" }));
    let embedded = workflows(&app, "emb");
    assert_eq!(calls(&app, "embedded"), 14.0);
    assert_eq!(calls(&app, "networked"), 14.0, "no call left this executor");
    assert_eq!(networked, local);
    assert_eq!(embedded, local);
    assert_eq!(local[0], json!({ "value": 256, "steps": 3 }));
    assert_eq!(local[1]["sum"], json!(385));
    assert_eq!(local[2]["ok"], json!(false), "{}", local[2]);
    // The path is in the log line of each callee.
    let streams = app.stop();
    for path in ["embedded", "local", "networked"] {
        assert!(
            streams
                .stderr
                .lines()
                .any(|l| l.contains("chained call") && l.contains(&format!("path=\"{path}\""))),
            "no {path} call logged: {}",
            streams.stderr
        );
    }
    drop(peer);
}

/// A function of the store calls another function of its namespace on the
/// local path, and cannot reach another namespace's.
pub fn functions_call_functions_of_their_namespace_only(engine: &str) {
    let dir = tempfile::tempdir().unwrap();
    let app = store_app(engine, dir.path(), &[]);
    for (name, wasm) in [("square", modules::SQUARE), ("guard", modules::CALL_GUARD)] {
        let (status, body) = put_action(&app, name, wasm, json!([]), false);
        assert_eq!(status, 200, "{body}");
    }
    let params = json!({ "callee": "square", "params": { "value": 12 } }).to_string();
    let (status, body) = call(&app, "POST", "/function/guard", Some(params.as_bytes()));
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap(),
        json!({ "ok": true, "result": { "value": 144 } })
    );
    assert_eq!(calls(&app, "local"), 1.0);
    // The callee's log says how it was called.
    let (status, logs) = call(&app, "GET", "/system/logs?name=square", None);
    assert_eq!(status, 200, "{logs}");
    assert!(
        logs.contains("chained call: path=local caller=guest/guard"),
        "{logs}"
    );
    // Containers are their first activation's namespace's.
    init_at(&app, "other", modules::SQUARE);
    let (status, _) = app.post(
        "/other/run",
        &json!({ "value": { "value": 1 }, "namespace": "elsewhere" }),
    );
    assert_eq!(status, 200);
    let params = json!({ "callee": "other", "params": {} }).to_string();
    let (status, body) = call(&app, "POST", "/function/guard", Some(params.as_bytes()));
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap(),
        json!({ "ok": false, "unknown": true })
    );
}

/// `chain_ops` ops, nested: a call of `name` whose callee runs `ops`.
fn call_op(name: &str, ops: Value) -> Value {
    json!({ "op": "call", "name": name, "params": { "ops": ops } })
}

/// The `data` of the `i`-th result, parsed.
fn data(body: &Value, i: usize) -> Value {
    let text = body["results"][i]["data"]
        .as_str()
        .unwrap_or_else(|| panic!("no data in result {i}: {body}"));
    serde_json::from_str(text).unwrap_or_else(|e| panic!("{e}: {text}"))
}

/// Depth, cycles, calls in flight, unknown actions and ids, results that do
/// not fit, and a call that breaks the ABI.
pub fn limits_cycles_and_codes(engine: &str) {
    let app = spawn_app_with(
        engine,
        &["--max-call-depth", "3", "--max-calls-in-flight", "5"],
        &[],
    );
    for name in ["a", "b", "c", "d"] {
        init_at(&app, name, modules::CHAIN_OPS);
    }
    init_at(&app, "square", modules::SQUARE);
    // A cycle: a -> b -> a ends with an error answer in b.
    let ops =
        json!([call_op("b", json!([call_op("a", json!([])), {"op": "await"}])), {"op": "await"}]);
    let (status, body) = run_as(&app, "a", json!({ "ops": ops }));
    assert_eq!(status, 200, "{body}");
    let inner = data(&body, 1);
    let error = data(&inner, 1)["error"].as_str().unwrap().to_owned();
    assert_eq!(error, "call cycle: guest/a -> guest/b -> guest/a");
    // Depth: a -> b -> c is 3 activations; c's call of d would be the 4th.
    let ops = json!([
        call_op("b", json!([
            call_op("c", json!([call_op("d", json!([])), {"op": "await"}])),
            {"op": "await"}
        ])),
        {"op": "await"}
    ]);
    let (status, body) = run_as(&app, "a", json!({ "ops": ops }));
    assert_eq!(status, 200, "{body}");
    let c = data(&data(&body, 1), 1);
    let error = data(&c, 1)["error"].as_str().unwrap().to_owned();
    assert!(
        error.starts_with(
            "the call chain is deeper than 3 activations: guest/a -> guest/b -> guest/c -> guest/d"
        ),
        "{error}"
    );
    // Five calls in flight at most; awaiting one makes room.
    let sq = json!({ "op": "call", "name": "square", "params": { "value": 3 } });
    let mut six = sq.clone();
    six["repeat"] = json!(5);
    let ops = json!([six, sq, {"op": "await", "index": 0}, sq]);
    let (status, body) = run_as(&app, "a", json!({ "ops": ops }));
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["results"][0]["code"], json!(5));
    assert_eq!(body["results"][1]["code"], json!(-5));
    assert_eq!(data(&body, 2), json!({ "value": 9 }));
    assert_eq!(body["results"][3]["code"], json!(6));
    // Unknown action and ids; a result that does not fit stays readable.
    let ops = json!([
        {"op": "call", "name": "nowhere"},
        {"op": "await", "id": 42},
        sq,
        {"op": "await", "cap": 4},
        {"op": "await", "cap": 4},
        {"op": "await"},
        {"op": "await"}
    ]);
    let (status, body) = run_as(&app, "a", json!({ "ops": ops }));
    assert_eq!(status, 200, "{body}");
    let codes: Vec<&Value> = (0..7).map(|i| &body["results"][i]["code"]).collect();
    assert_eq!(
        codes,
        [
            &json!(-1),
            &json!(-1),
            &json!(1),
            &json!(11),
            &json!(11),
            &json!(11),
            &json!(-1)
        ]
    );
    assert_eq!(body["results"][3]["data"], json!("{\"va"));
    assert_eq!(data(&body, 5), json!({ "value": 9 }));
    // The params its calls hold at once are bounded by the caller's own
    // memory (8 MiB here, no log buffers): two calls with the same 3 MB
    // params fit, a third does not.
    init_at(&app, "sink", modules::PAYLOAD_SINK);
    let env = json!({ "OW_MAX_MEMORY_MB": "8", "OW_MAX_LOG_BYTES": "0" });
    init_env(&app, "small", modules::PAYLOAD_SOURCE, env);
    let source = |fan_out: u32| {
        let params = json!({ "bytes": 3_000_000, "callee": "sink", "fan_out": fan_out });
        run_as(&app, "small", params)
    };
    let (status, body) = source(2);
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["calls"], json!(2), "{body}");
    let (_, body) = source(3);
    assert_eq!(
        body["error"],
        json!("calling sink: too many calls in flight"),
        "{body}"
    );
    // Params that are not an object break the ABI.
    let ops = json!([{"op": "call", "name": "square", "params_raw": "[1]"}]);
    let (status, body) = run_as(&app, "a", json!({ "ops": ops }));
    assert_eq!(status, 502, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("not a JSON object"),
        "{body}"
    );
    // The executor still serves.
    assert_eq!(run_as(&app, "square", json!({ "value": 4 })).1["value"], 16);
}

/// A callee that traps, runs past its limit or returns 5 MiB; a caller
/// whose own deadline passes while it awaits.
pub fn failing_callees_and_a_caller_out_of_time(engine: &str) {
    let app = spawn_app_with(engine, &["--max-result-bytes", &(6 << 20).to_string()], &[]);
    init_at(&app, "guard", modules::CALL_GUARD);
    init_at(&app, "trap", modules::TRAP);
    init_env(
        &app,
        "loop",
        modules::LOOP,
        json!({ "OW_MAX_DURATION": "1s" }),
    );
    init_at(&app, "big", modules::BIGRESULT);
    init_at(&app, "sleep", modules::SLEEP);
    let guard = |callee: &str, params: Value| {
        let (status, body) = run_as(&app, "guard", json!({ "callee": callee, "params": params }));
        assert_eq!(status, 200, "{body}");
        body
    };
    let trapped = guard("trap", json!({}));
    assert_eq!(trapped["ok"], json!(false), "{trapped}");
    assert!(
        trapped["callee_error"]
            .as_str()
            .unwrap()
            .contains("unreachable"),
        "{trapped}"
    );
    let started = Instant::now();
    let looped = guard("loop", json!({}));
    assert!(
        looped["callee_error"]
            .as_str()
            .unwrap()
            .contains("time limit"),
        "{looped}"
    );
    assert!(started.elapsed() < Duration::from_secs(3));
    let big = guard("big", json!({ "bytes": 5 << 20 }));
    assert_eq!(big["ok"], json!(true), "{}", &big.to_string()[..200]);
    let size = big["result"].to_string().len();
    assert!(size >= 5 << 20, "{size} bytes");
    // The caller's limit (1 s) passes while it awaits a 10 s sleep. The
    // callee has the caller's deadline: whichever of the two is stopped
    // first, the caller answers with the time limit at its deadline.
    init_env(
        &app,
        "impatient",
        modules::CHAIN_OPS,
        json!({ "OW_MAX_DURATION": "1s" }),
    );
    let ops = json!([{"op": "call", "name": "sleep", "params": {"ms": 10000}}, {"op": "await"}]);
    let started = Instant::now();
    let (status, body) = run_as(&app, "impatient", json!({ "ops": ops }));
    let error = match status {
        502 => body["error"].as_str().unwrap().to_owned(),
        _ => data(&body, 1)["error"].as_str().unwrap().to_owned(),
    };
    assert!(error.contains("time limit"), "{body}");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    // The callee got the caller's deadline: it ended too, and the slot is back.
    await_in_flight(&app, 0);
    assert_eq!(guard("trap", json!({}))["ok"], json!(false));
    // 1,000 calls in flight by default; the 1,001st is refused.
    init_at(&app, "many", modules::CHAIN_OPS);
    let sq = json!({ "op": "call", "name": "guard", "params": { "callee": "nowhere" } });
    let mut thousand = sq.clone();
    thousand["repeat"] = json!(1000);
    let ops = json!([thousand, sq, {"op": "await_all"}]);
    let (status, body) = run_as(&app, "many", json!({ "ops": ops }));
    assert_eq!(
        status,
        200,
        "{}",
        &body.to_string()[..300.min(body.to_string().len())]
    );
    assert_eq!(body["results"][0]["code"], json!(1000));
    assert_eq!(body["results"][1]["code"], json!(-5));
    let answers = body["results"][2]["data"].as_array().unwrap();
    assert_eq!(answers.len(), 1000);
    assert!(
        answers
            .iter()
            .all(|a| a == r#"{"ok":false,"unknown":true}"#)
    );
}

/// The OpenWhisk API path: a callee found through `__OW_API_HOST` with the
/// activation's API key (here another executor's OpenWhisk API), refused
/// with another key: no call crosses namespaces unless the API authorises it.
pub fn calls_through_the_openwhisk_api_need_the_activation_s_key() {
    let dir = tempfile::tempdir().unwrap();
    let api = store_app("wasmtime", dir.path(), &[]);
    let (status, body) = put_action(&api, "square", modules::SQUARE, json!([]), false);
    assert_eq!(status, 200, "{body}");
    let app = spawn_app_with("wasmtime", &[], &[("__OW_API_HOST", api.base.as_str())]);
    init_at(&app, "guard", modules::CALL_GUARD);
    let run = |key: &str| {
        let (status, body) = app.post(
            "/guard/run",
            &json!({
                "value": { "callee": "square", "params": { "value": 5 } },
                "namespace": "guest",
                "action_name": "/guest/guard",
                "api_key": key,
            }),
        );
        assert_eq!(status, 200, "{body}");
        body
    };
    assert_eq!(run(AUTH), json!({ "ok": true, "result": { "value": 25 } }));
    assert_eq!(calls(&app, "networked"), 1.0);
    let refused = run("23bc46b1-71f6-4ed5-8c54-816aa4f8c502:wrong");
    assert_eq!(refused["ok"], json!(false), "{refused}");
    assert!(refused["callee_error"].is_string(), "{refused}");
}
