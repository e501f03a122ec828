//! The function store (`--store-dir`) and its APIs: faas-provider,
//! WasmEngine's routes and OpenWhisk's, with images from a real registry
//! and from image layouts; durability across `kill -9`; hostile input.

use crate::helpers::{TestApp, b64, spawn_app_with};
use crate::oci::{self, Registry};
use ow_test_modules as modules;
use serde_json::{Value, json};
use std::path::Path;
use std::time::Duration;

pub const AUTH: &str = "23bc46b1-71f6-4ed5-8c54-816aa4f8c502:123zO3xZCLrMN6v2BKK1dXYFpXlPkccOFqm12CdAsMgRU4VrNZ9lyGVCGuMDGIwP";

/// An executor serving the function APIs from `store` with `AUTH`.
pub fn store_app(engine: &str, store: &Path, extra: &[&str]) -> TestApp {
    let mut args = vec!["--store-dir", store.to_str().unwrap(), "--auth", AUTH];
    args.extend_from_slice(extra);
    spawn_app_with(engine, &args, &[])
}

/// A request with `AUTH` (or `auth`); the status and the body as text.
pub fn call(app: &TestApp, method: &str, path: &str, body: Option<&[u8]>) -> (u16, String) {
    call_as(app, Some(AUTH), method, path, body)
}

pub fn call_as(
    app: &TestApp,
    auth: Option<&str>,
    method: &str,
    path: &str,
    body: Option<&[u8]>,
) -> (u16, String) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(60)))
        .allow_non_standard_methods(true)
        .build()
        .into();
    let url = format!("{}{path}", app.base);
    let request = ureq::http::Request::builder().method(method).uri(&url);
    let request = match auth {
        Some(auth) => request.header("Authorization", format!("Basic {}", b64(auth.as_bytes()))),
        None => request,
    };
    let mut response = match body {
        Some(body) => agent.run(request.body(body.to_vec()).unwrap()),
        None => agent.run(request.body(()).unwrap()),
    }
    .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
    let status = response.status().as_u16();
    let text = response
        .body_mut()
        .with_config()
        .limit(64 << 20)
        .read_to_string()
        .unwrap_or_default();
    (status, text)
}

pub fn json_of(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON: {text:?}: {e}"))
}

/// `PUT` an OpenWhisk action of `wasm` with default `parameters`.
pub fn put_action(
    app: &TestApp,
    name: &str,
    wasm: &[u8],
    parameters: Value,
    overwrite: bool,
) -> (u16, String) {
    let body = json!({
        "exec": { "kind": "wasm:0.1", "code": b64(wasm) },
        "parameters": parameters,
    });
    let query = if overwrite { "?overwrite=true" } else { "" };
    call(
        app,
        "PUT",
        &format!("/api/v1/namespaces/_/actions/{name}{query}"),
        Some(body.to_string().as_bytes()),
    )
}

fn deployment(service: &str, image: &str) -> Vec<u8> {
    json!({ "service": service, "image": image })
        .to_string()
        .into_bytes()
}

fn invoke(app: &TestApp, name: &str, params: Value) -> (u16, Value) {
    let (status, text) = call(
        app,
        "POST",
        &format!("/function/{name}"),
        Some(params.to_string().as_bytes()),
    );
    (status, json_of(&text))
}

/// Deploy, invoke, update, scale and delete through faas-provider, on `engine`.
pub fn faas_lifecycle_on_every_engine(engine: &str) {
    let dir = tempfile::tempdir().unwrap();
    let layout = dir.path().join("layout");
    oci::add_image(&layout, "v1", oci::WASM_LAYER, modules::ADD).unwrap();
    oci::add_image(&layout, "v2", oci::WASM_LAYER, modules::ECHO).unwrap();
    let app = store_app(engine, &dir.path().join("store"), &[]);
    let v1 = format!("oci:{}:v1", layout.display());
    let (status, text) = call(
        &app,
        "POST",
        "/system/functions",
        Some(&deployment("calc", &v1)),
    );
    assert_eq!(status, 202, "{text}");
    assert_eq!(
        invoke(&app, "calc", json!({"param1": 40, "param2": 2})),
        (200, json!({"result": 42}))
    );
    // name.namespace, as OpenFaaS addresses functions too.
    assert_eq!(
        invoke(&app, "calc.guest", json!({"param1": 1, "param2": 2})).1,
        json!({"result": 3})
    );
    let (status, text) = call(&app, "GET", "/system/function/calc", None);
    assert_eq!(status, 200);
    let fstatus = json_of(&text);
    assert_eq!(fstatus["name"], "calc");
    assert_eq!(fstatus["image"], v1.as_str());
    assert_eq!(fstatus["invocationCount"], 2);
    assert_eq!(
        (
            fstatus["replicas"].as_u64(),
            fstatus["availableReplicas"].as_u64()
        ),
        (Some(1), Some(1))
    );
    assert!(fstatus["createdAt"].as_str().unwrap().starts_with("20"));

    // Update to another image: the new module answers.
    let v2 = format!("oci:{}:v2", layout.display());
    let (status, text) = call(
        &app,
        "PUT",
        "/system/functions",
        Some(&deployment("calc", &v2)),
    );
    assert_eq!(status, 200, "{text}");
    assert_eq!(
        invoke(&app, "calc", json!({"echoed": true})).1,
        json!({"echoed": true})
    );

    // Scale to zero lets the prepared action go; an invocation brings it back.
    let scale = json!({"serviceName": "calc", "replicas": 0}).to_string();
    assert_eq!(
        call(
            &app,
            "POST",
            "/system/scale-function/calc",
            Some(scale.as_bytes())
        )
        .0,
        202
    );
    let fstatus = json_of(&call(&app, "GET", "/system/function/calc", None).1);
    assert_eq!(fstatus["availableReplicas"], 0);
    assert_eq!(invoke(&app, "calc", json!({"a": 1})).1, json!({"a": 1}));

    let delete = json!({"functionName": "calc"}).to_string();
    assert_eq!(
        call(&app, "DELETE", "/system/functions", Some(delete.as_bytes())).0,
        200
    );
    assert_eq!(invoke(&app, "calc", json!({})).0, 404);
    assert_eq!(
        call(&app, "DELETE", "/system/functions", Some(delete.as_bytes())).0,
        404
    );
}

/// Every status code of the faas-provider routes.
pub fn faas_status_codes() {
    let dir = tempfile::tempdir().unwrap();
    let layout = dir.path().join("layout");
    oci::add_image(&layout, "v1", oci::WASM_LAYER, modules::ECHO).unwrap();
    let app = store_app("wasmtime", &dir.path().join("store"), &[]);
    let image = format!("oci:{}:v1", layout.display());
    let cases: Vec<(&str, &str, Vec<u8>, u16)> = vec![
        ("POST", "/system/functions", deployment("f", &image), 202),
        // A duplicate deploy: 400, as faasd answers.
        ("POST", "/system/functions", deployment("f", &image), 400),
        ("POST", "/system/functions", b"{not json".to_vec(), 400),
        (
            "POST",
            "/system/functions",
            br#"{"service": "g"}"#.to_vec(),
            400,
        ),
        (
            "POST",
            "/system/functions",
            deployment("../etc", &image),
            400,
        ),
        ("POST", "/system/functions", deployment("init", &image), 400),
        (
            "POST",
            "/system/functions",
            deployment("g", "oci:/nonexistent:v1"),
            400,
        ),
        (
            "PUT",
            "/system/functions",
            deployment("missing", &image),
            404,
        ),
        ("PUT", "/system/functions", deployment("f", &image), 200),
        ("GET", "/system/function/missing", vec![], 404),
        (
            "POST",
            "/system/scale-function/missing",
            br#"{"serviceName":"missing","replicas":1}"#.to_vec(),
            404,
        ),
        ("POST", "/function/missing", b"{}".to_vec(), 404),
        (
            "DELETE",
            "/system/functions",
            br#"{"functionName":"missing"}"#.to_vec(),
            404,
        ),
        ("GET", "/system/functions?namespace=other", vec![], 403),
        ("GET", "/system/info", vec![], 200),
        ("GET", "/healthz", vec![], 200),
    ];
    for (method, path, body, expected) in cases {
        let (status, text) = call(
            &app,
            method,
            path,
            (!body.is_empty()).then_some(body.as_slice()),
        );
        assert_eq!(status, expected, "{method} {path}: {text}");
        if status >= 400 {
            assert!(
                json_of(&text)["error"].is_string(),
                "{method} {path}: {text}"
            );
        }
    }
    let (_, info) = call(&app, "GET", "/system/info", None);
    let info = json_of(&info);
    assert_eq!(info["provider"], "ow-executor");
    assert!(info["version"]["release"].is_string());
    assert_eq!(
        json_of(&call(&app, "GET", "/system/namespaces", None).1),
        json!(["guest"])
    );
    let list = json_of(&call(&app, "GET", "/system/functions", None).1);
    assert_eq!(list.as_array().unwrap().len(), 1);

    // Unauthenticated or wrongly authenticated: 401 on management and invocation.
    for (method, path) in [
        ("GET", "/system/functions"),
        ("POST", "/function/f"),
        ("GET", "/function/list"),
    ] {
        for auth in [None, Some("23bc46b1-71f6-4ed5-8c54-816aa4f8c502:wrong")] {
            let (status, _) = call_as(&app, auth, method, path, Some(b"{}"));
            assert_eq!(status, 401, "{method} {path} with {auth:?}");
        }
    }

    // Logs of the invocations, as ndjson.
    let text = b"not json, a raw body";
    let (status, answer) = call(&app, "POST", "/function/f/sub/path?q=1", Some(text));
    assert_eq!(status, 200);
    let answer = json_of(&answer);
    assert_eq!(answer["__ow_body"], "not json, a raw body");
    assert_eq!(answer["__ow_path"], "/sub/path");
    let (status, logs) = call(&app, "GET", "/system/logs?name=f&tail=5", None);
    assert_eq!(status, 200);
    for line in logs.lines() {
        let message = json_of(line);
        assert_eq!(message["name"], "f");
        assert!(message["timestamp"].is_string() && message["text"].is_string());
    }

    // Async: 202 with a call id at once.
    let (status, _) = call(&app, "POST", "/async-function/f", Some(b"{}"));
    assert_eq!(status, 202);
}

/// WasmEngine's routes, as its users call them.
pub fn wasmengine_routes() {
    let dir = tempfile::tempdir().unwrap();
    let layout = dir.path().join("layout");
    oci::add_image(&layout, "v1", oci::WASM_LAYER, modules::ADD).unwrap();
    let app = store_app("wasmtime", &dir.path().join("store"), &[]);
    let image = format!("oci:{}:v1", layout.display());
    let deploy =
        json!({"function_name": "adder", "function_image": image, "wasi_cap": true}).to_string();
    let (status, text) = call(&app, "POST", "/function/deploy", Some(deploy.as_bytes()));
    assert_eq!(
        (status, text.as_str()),
        (
            200,
            "status code: 200, message: deploy function adder successfully!\n"
        )
    );
    assert_eq!(
        call(&app, "POST", "/function/deploy", Some(deploy.as_bytes())).0,
        409
    );
    let (_, list) = call(&app, "GET", "/function/list", None);
    assert!(list.contains("func_name: adder"), "{list}");
    let (_, query) = call(
        &app,
        "POST",
        "/function/query",
        Some(br#"{"function_name":"adder"}"#),
    );
    assert!(query.contains("wasi_cap: true"), "{query}");
    let invoke =
        json!({"function_name": "adder", "args": {"param1": 20, "param2": 22}}).to_string();
    let (status, text) = call(&app, "POST", "/function/invoke", Some(invoke.as_bytes()));
    assert_eq!(
        (status, text.as_str()),
        (200, r#"status code: 200, message: {"result":42}"#)
    );
    let (status, text) = call(
        &app,
        "POST",
        "/function/delete",
        Some(br#"{"function_name":"adder"}"#),
    );
    assert_eq!(
        (status, text.as_str()),
        (
            200,
            "status code: 200, message: delete function adder successfully!\n"
        )
    );
    assert_eq!(
        call(&app, "POST", "/function/invoke", Some(invoke.as_bytes())).0,
        404
    );
}

/// Deploy by image from a real registry (wasm artifact and tar image),
/// invoke, update to a new tag, delete.
pub fn images_from_a_real_registry() {
    let registry = Registry::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let layout = dir.path().join("layout");
    oci::add_image(&layout, "v1", oci::WASM_LAYER, modules::ADD).unwrap();
    oci::add_image(
        &layout,
        "v2",
        oci::TAR_GZIP_LAYER,
        &oci::tar_gz(&[("README", b"hi"), ("echo.wasm", modules::ECHO)]),
    )
    .unwrap();
    let v1 = registry.push(&layout, "v1", "fn/calc").unwrap();
    let v2 = registry.push(&layout, "v2", "fn/calc").unwrap();
    let app = store_app("wasmtime", &dir.path().join("store"), &[]);
    assert_eq!(
        call(
            &app,
            "POST",
            "/system/functions",
            Some(&deployment("calc", &v1))
        )
        .0,
        202
    );
    assert_eq!(
        invoke(&app, "calc", json!({"param1": 2, "param2": 3})).1,
        json!({"result": 5})
    );
    let (status, text) = call(
        &app,
        "PUT",
        "/system/functions",
        Some(&deployment("calc", &v2)),
    );
    assert_eq!(status, 200, "{text}");
    assert_eq!(
        invoke(&app, "calc", json!({"from": "v2"})).1,
        json!({"from": "v2"})
    );
    // An OpenWhisk action whose code is an image reference.
    let body = json!({"exec": {"kind": "wasm:0.1", "code": v1}}).to_string();
    let (status, text) = call(
        &app,
        "PUT",
        "/api/v1/namespaces/_/actions/ow-calc",
        Some(body.as_bytes()),
    );
    assert_eq!(status, 200, "{text}");
    let (status, text) = call(
        &app,
        "POST",
        "/api/v1/namespaces/_/actions/ow-calc?blocking=true&result=true",
        Some(br#"{"param1":1,"param2":1}"#),
    );
    assert_eq!((status, json_of(&text)), (200, json!({"result": 2})));
    // A tag that is not there.
    let (status, text) = call(
        &app,
        "POST",
        "/system/functions",
        Some(&deployment("x", &format!("{}/fn/calc:v9", registry.host))),
    );
    assert_eq!(status, 400, "{text}");
    assert!(text.contains("manifest unknown"), "{text}");
    let delete = json!({"functionName": "calc"}).to_string();
    assert_eq!(
        call(&app, "DELETE", "/system/functions", Some(delete.as_bytes())).0,
        200
    );
    assert_eq!(invoke(&app, "calc", json!({})).0, 404);
}

/// Registries and layouts that lie, bloat or stall are refused with a
/// reason, and the executor keeps serving.
pub fn hostile_images_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let app = store_app(
        "wasmtime",
        &dir.path().join("store"),
        &["--registry-timeout", "2s"],
    );
    let refused = |image: String, why: &str| {
        let (status, text) = call(
            &app,
            "POST",
            "/system/functions",
            Some(&deployment("h", &image)),
        );
        assert_eq!(status, 400, "{image}: {text}");
        assert!(text.contains(why), "{image}: {text:?} does not say {why:?}");
    };
    // A layer whose bytes are not the digest the manifest names.
    let layer_digest = oci::digest(modules::ADD);
    let manifest = json!({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.wasm.config.v0+json", "digest": oci::digest(b"{}"), "size": 2},
        "layers": [{"mediaType": "application/wasm", "digest": layer_digest, "size": modules::ADD.len()}],
    })
    .to_string();
    let liar = oci::fake_registry(move |path| {
        let oci_manifest = "application/vnd.oci.image.manifest.v1+json".to_owned();
        Some(match path {
            "/v2/" => (200, "application/json".into(), b"{}".to_vec()),
            p if p.contains("/manifests/") => (200, oci_manifest, manifest.clone().into_bytes()),
            // Same length, other bytes.
            _ => (
                200,
                "application/octet-stream".into(),
                vec![b'x'; modules::ADD.len()],
            ),
        })
    });
    refused(format!("{liar}/liar:v1"), "digest");
    // A manifest of 100 MB.
    let bloated = oci::fake_registry(|path| {
        Some(match path {
            "/v2/" => (200, "application/json".into(), b"{}".to_vec()),
            _ => (
                200,
                "application/vnd.oci.image.manifest.v1+json".into(),
                vec![b' '; 100 << 20],
            ),
        })
    });
    refused(format!("{bloated}/big:v1"), "larger than the limit");
    // A registry that accepts connections and never answers.
    let silent = oci::fake_registry(|_| None);
    refused(format!("{silent}/silent:v1"), "not fetched within");
    // Layouts: a tar bomb, a component, two modules, a path that escapes.
    let layout = dir.path().join("layout");
    let zeros = vec![0u8; 300 << 20];
    oci::add_image(
        &layout,
        "bomb",
        oci::TAR_GZIP_LAYER,
        &oci::tar_gz(&[("zeros", &zeros), ("x.wasm", modules::ADD)]),
    )
    .unwrap();
    drop(zeros);
    oci::add_image(&layout, "component", oci::COMPONENT_LAYER, modules::ADD).unwrap();
    oci::add_image(
        &layout,
        "two",
        oci::TAR_GZIP_LAYER,
        &oci::tar_gz(&[("a.wasm", modules::ADD), ("b.wasm", modules::ADD)]),
    )
    .unwrap();
    let at = |tag: &str| format!("oci:{}:{tag}", layout.display());
    refused(at("bomb"), "larger than the limit");
    refused(at("component"), "component");
    refused(at("two"), "more than one module");
    refused(at("missing"), "no image missing");
    refused(
        format!("oci:{}/../nowhere:v1", dir.path().display()),
        "not an OCI image layout",
    );
    // Still serving.
    oci::add_image(&layout, "ok", oci::WASM_LAYER, modules::ECHO).unwrap();
    assert_eq!(
        call(
            &app,
            "POST",
            "/system/functions",
            Some(&deployment("ok", &at("ok")))
        )
        .0,
        202
    );
    assert_eq!(
        invoke(&app, "ok", json!({"still": "serving"})).1,
        json!({"still": "serving"})
    );
}

/// OpenWhisk's namespaces: `_` and the key's own are one; another is 403.
pub fn other_namespaces_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let app = store_app("wasmtime", &dir.path().join("store"), &[]);
    assert_eq!(
        put_action(&app, "e", modules::ECHO, json!([]), false).0,
        200
    );
    assert_eq!(
        call(&app, "GET", "/api/v1/namespaces/guest/actions/e", None).0,
        200
    );
    for path in [
        "/api/v1/namespaces/other/actions/e",
        "/api/v1/namespaces/other/actions",
    ] {
        let (status, text) = call(&app, "GET", path, None);
        assert_eq!(status, 403, "{path}: {text}");
    }
    let (status, _) = call(
        &app,
        "POST",
        "/api/v1/namespaces/other/actions/e?blocking=true",
        Some(b"{}"),
    );
    assert_eq!(status, 403);
    // Text code is not an action this executor can run.
    let body = json!({"exec": {"kind": "wasm:0.1", "code": "function main() {}"}}).to_string();
    assert_eq!(
        call(
            &app,
            "PUT",
            "/api/v1/namespaces/_/actions/js",
            Some(body.as_bytes())
        )
        .0,
        400
    );
    let body = json!({"exec": {"kind": "nodejs:20", "code": b64(modules::ECHO)}}).to_string();
    assert_eq!(
        call(
            &app,
            "PUT",
            "/api/v1/namespaces/_/actions/js",
            Some(body.as_bytes())
        )
        .0,
        400
    );
    // A failing action: 502 with the record, status "action developer error".
    assert_eq!(
        put_action(&app, "t", modules::TRAP, json!([]), false).0,
        200
    );
    let (status, text) = call(
        &app,
        "POST",
        "/api/v1/namespaces/_/actions/t?blocking=true",
        Some(b"{}"),
    );
    assert_eq!(status, 502, "{text}");
    assert_eq!(
        json_of(&text)["response"]["status"],
        "action developer error"
    );
}

/// The store refuses to start its APIs without credentials, unless told
/// to on loopback.
pub fn no_auth_only_on_loopback() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_ow-executor"))
        .args(["--port", "0", "--store-dir", store.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--auth"));
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_ow-executor"))
        .args([
            "--host",
            "0.0.0.0",
            "--port",
            "0",
            "--no-auth",
            "--store-dir",
            store.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("loopback"));
    let app = spawn_app_with(
        "wasmtime",
        &["--no-auth", "--store-dir", store.to_str().unwrap()],
        &[],
    );
    assert_eq!(call_as(&app, None, "GET", "/system/functions", None).0, 200);
}

/// 1,000 functions deployed, each invokable, before and after a restart.
pub fn a_thousand_functions_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let app = store_app("wasmtime", &store, &[]);
    for i in 0..1000 {
        let (status, text) = put_action(
            &app,
            &format!("f{i}"),
            modules::ECHO,
            json!([{"key": "i", "value": i}]),
            false,
        );
        assert_eq!(status, 200, "f{i}: {text}");
    }
    let check = |app: &TestApp| {
        for i in 0..1000 {
            let (status, value) = invoke(app, &format!("f{i}"), json!({}));
            assert_eq!((status, value), (200, json!({"i": i})), "f{i}");
        }
    };
    check(&app);
    drop(app.stop());
    let app = store_app("wasmtime", &store, &[]);
    assert_eq!(
        json_of(&call(&app, "GET", "/api/v1/namespaces/_/actions?count=true", None).1)["actions"],
        1000
    );
    check(&app);
}

/// Per function: the last acknowledged write's value, the last attempted.
type Writes = (Option<u64>, u64);

/// `kill -9` during a burst of 200 deploys and updates: after a restart
/// every acknowledged write is there, whole, and nothing torn is served.
pub fn kill_9_during_a_burst_of_deploys_loses_no_acknowledged_write() {
    use std::sync::{Arc, Mutex};
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let app = Arc::new(store_app("wasmtime", &store, &[]));
    // Per function: the last acknowledged value and the last one attempted.
    let acked: Arc<Mutex<Vec<Writes>>> = Arc::new(Mutex::new(vec![(None, 0); 8]));
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    let writers: Vec<_> = (0..4)
        .map(|w| {
            let (app, acked, tx) = (Arc::clone(&app), Arc::clone(&acked), tx.clone());
            std::thread::spawn(move || {
                for n in 0..50u64 {
                    let f = w * 2 + (n % 2) as usize;
                    let value = n + 1;
                    acked.lock().unwrap()[f].1 = value;
                    // Alternate the code too: blobs come and go.
                    let wasm = if n % 4 < 2 {
                        modules::ECHO
                    } else {
                        modules::CMD_ECHO
                    };
                    let body = json!({
                        "exec": {"kind": "wasm:0.1", "code": b64(wasm)},
                        "parameters": [{"key": "v", "value": value}],
                    });
                    let agent: ureq::Agent = ureq::Agent::config_builder()
                        .http_status_as_error(false)
                        .timeout_global(Some(Duration::from_secs(30)))
                        .build()
                        .into();
                    let answer = agent
                        .put(format!(
                            "{}/api/v1/namespaces/_/actions/b{f}?overwrite=true",
                            app.base
                        ))
                        .header("Authorization", format!("Basic {}", b64(AUTH.as_bytes())))
                        .send(body.to_string().as_bytes());
                    match answer {
                        Ok(r) if r.status().as_u16() == 200 => {
                            acked.lock().unwrap()[f].0 = Some(value);
                            let _ = tx.send(());
                        }
                        _ => return,
                    }
                }
            })
        })
        .collect();
    // Kill once 80 writes were acknowledged, in the middle of the others.
    for _ in 0..80 {
        rx.recv_timeout(Duration::from_secs(60))
            .expect("writes stalled");
    }
    // SAFETY: kill(2) on our own child's pid.
    assert_eq!(unsafe { libc::kill(app.pid() as i32, libc::SIGKILL) }, 0);
    for writer in writers {
        writer.join().unwrap();
    }
    let acked = acked.lock().unwrap().clone();
    let app = store_app("wasmtime", &store, &[]);
    for (f, (last_acked, last_tried)) in acked.iter().enumerate() {
        let Some(last_acked) = last_acked else {
            continue;
        };
        let (status, text) = call(
            &app,
            "POST",
            &format!("/api/v1/namespaces/_/actions/b{f}?blocking=true&result=true"),
            Some(b"{}"),
        );
        assert_eq!(status, 200, "b{f}: {text}");
        let result = json_of(&text);
        // Both modules answer their params.
        let v = result["v"]
            .as_u64()
            .unwrap_or_else(|| panic!("b{f}: {result}"));
        assert!(
            (*last_acked..=*last_tried).contains(&v),
            "b{f}: {v} is not between the last acknowledged write {last_acked} and the last attempted {last_tried}"
        );
    }
}

/// WasmEngine's three benchmark functions answer as its users expect, on
/// `engine`.
pub fn wasmengine_benchmark_functions_answer(engine: &str) {
    let dir = tempfile::tempdir().unwrap();
    let app = store_app(engine, &dir.path().join("store"), &[]);
    for (name, wasm) in [
        ("gcd", modules::GCD),
        ("echo_string", modules::ECHO_STRING),
        ("authentication", modules::AUTHENTICATION),
    ] {
        assert_eq!(
            put_action(&app, name, wasm, json!([]), false).0,
            200,
            "{name}"
        );
    }
    let we = |name: &str, args: Value| {
        let body = json!({"function_name": name, "args": args}).to_string();
        let (status, text) = call(&app, "POST", "/function/invoke", Some(body.as_bytes()));
        assert_eq!(status, 200, "{name}: {text}");
        json_of(text.strip_prefix("status code: 200, message: ").unwrap())
    };
    assert_eq!(we("gcd", json!({"a": "48", "b": "18"})), json!({"gcd": 6}));
    assert_eq!(
        invoke(&app, "gcd", json!({"a": 1071, "b": 462})).1,
        json!({"gcd": 21})
    );
    assert_eq!(
        we("echo_string", json!({"input": "héllo"})),
        json!({"output": "héllo"})
    );
    let valid = ow_test_modules::bench::auth_params();
    assert_eq!(we("authentication", valid.clone())["status"], "200");
    let mut forged = valid;
    forged["header"] = json!("Bearer user=mallory;expires=2099-01-01");
    assert_eq!(we("authentication", forged)["status"], "403");
}
