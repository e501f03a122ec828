//! Precompiled zips (`ow-precompiler`) and the compile cache: the fast paths
//! load only what is signed, intact and made for this engine; everything
//! else falls back to compiling `action.wasm`, and says so.

use crate::helpers::*;
use ow_artifact::manifest::{self, MANIFEST_NAME};
use ow_artifact::{Manifest, SigningKey};
use ow_common::{Limits, WasmRuntime};
use ow_test_modules as modules;
use serde_json::{Value, json};
use std::io::{Cursor, Read, Write};
use std::sync::{Arc, OnceLock};

const KEY: &str = "test-artifact-key-0123456789abcdef";

fn key() -> SigningKey {
    SigningKey::new(KEY.as_bytes()).unwrap()
}

/// The engines with a precompiled form, configured as an executor with
/// default flags configures them.
fn precompilers() -> &'static [Box<dyn WasmRuntime>] {
    static ENGINES: OnceLock<Vec<Box<dyn WasmRuntime>>> = OnceLock::new();
    ENGINES.get_or_init(|| {
        vec![
            Box::new(ow_wasmtime::WasmtimeRuntime::new(Limits::default()).unwrap()),
            Box::new(ow_wasmer::WasmerRuntime::new(Limits::default()).unwrap()),
        ]
    })
}

fn package(wasm: &[u8], key: Option<&SigningKey>) -> Vec<u8> {
    let engines: Vec<&dyn WasmRuntime> = precompilers().iter().map(|e| e.as_ref()).collect();
    ow_precompiler::package(wasm, &engines, key).unwrap()
}

fn entries(zip: &[u8]) -> Vec<(String, Vec<u8>)> {
    let mut archive = zip::ZipArchive::new(Cursor::new(zip)).unwrap();
    (0..archive.len())
        .map(|i| {
            let mut entry = archive.by_index(i).unwrap();
            let mut bytes = Vec::new();
            entry.read_to_end(&mut bytes).unwrap();
            (entry.name().unwrap().into_owned(), bytes)
        })
        .collect()
}

fn rezip(entries: &[(String, Vec<u8>)]) -> Vec<u8> {
    let mut w = zip::ZipWriter::new(Cursor::new(Vec::new()));
    for (name, bytes) in entries {
        w.start_file(name.as_str(), zip::write::SimpleFileOptions::default())
            .unwrap();
        w.write_all(bytes).unwrap();
    }
    w.finish().unwrap().into_inner()
}

/// The zip's manifest, changed by `edit`, re-signed with `key`.
fn with_manifest(zip: &[u8], key: Option<&SigningKey>, edit: impl Fn(&mut Manifest)) -> Vec<u8> {
    let mut files = entries(zip);
    let (_, bytes) = files.iter_mut().find(|(n, _)| n == MANIFEST_NAME).unwrap();
    let open = ow_artifact::TrustPolicy {
        key: None,
        trust_unsigned: true,
    };
    let mut m = manifest::open(bytes, &open).unwrap();
    edit(&mut m);
    *bytes = manifest::encode(&m, key);
    rezip(&files)
}

/// /init `code` on `engine` in container `id`; the status, the load path
/// the executor took, the body.
fn init(app: &TestApp, id: &str, engine: &str, code: &[u8]) -> (u16, Option<String>, Value) {
    app.post_header(
        &format!("/{id}/init"),
        &init_body(code, "main", json!({"OW_ENGINE": engine})),
        "X-Ow-Init-Path",
    )
}

fn run(app: &TestApp, id: &str, params: Value) -> (u16, Value) {
    app.post(&format!("/{id}/run"), &json!({"value": params}))
}

fn fast_path(engine: &str) -> &'static str {
    match engine {
        "wamr" => "compiled",
        _ => "precompiled",
    }
}

const ENGINES: [&str; 3] = ["wasmtime", "wasmer", "wamr"];

#[test]
fn every_example_runs_the_same_from_a_signed_zip_on_every_engine() {
    let app = spawn_app_with("wasmtime", &["--artifact-key", KEY], &[]);
    let cases: [(&str, &[u8], Value); 9] = [
        ("echo", modules::ECHO, json!({"x": [1, "two"]})),
        ("unicode", modules::UNICODE, json!({"delimiter": "∮"})),
        ("env", modules::ENV, json!({})),
        ("context", modules::CONTEXT, json!({})),
        ("string_result", modules::STRING_RESULT, json!({})),
        ("app_error", modules::APP_ERROR, json!({})),
        ("add", modules::ADD, json!({"param1": 20, "param2": 22})),
        (
            "hash",
            modules::HASH,
            json!({"input": "abc", "iterations": 10}),
        ),
        ("cmd_echo", modules::CMD_ECHO, json!({"y": true})),
    ];
    for (name, wasm, params) in cases {
        let zip = package(wasm, Some(&key()));
        for engine in ENGINES {
            let raw_id = format!("{name}-{engine}-raw");
            let (status, path, body) = init(&app, &raw_id, engine, wasm);
            assert_eq!(
                (status, path.as_deref()),
                (200, Some("compiled")),
                "{name} {engine}: {body}"
            );
            let zip_id = format!("{name}-{engine}-zip");
            let (status, path, body) = init(&app, &zip_id, engine, &zip);
            assert_eq!(
                (status, path.as_deref()),
                (200, Some(fast_path(engine))),
                "{name} {engine}: {body}"
            );
            let expected = run(&app, &raw_id, params.clone());
            assert_eq!(
                run(&app, &zip_id, params.clone()),
                expected,
                "{name} {engine}"
            );
        }
    }
}

#[test]
fn untrusted_or_mismatched_artifacts_are_never_loaded() {
    let signed = package(modules::ADD, Some(&key()));
    let unsigned = package(modules::ADD, None);
    let other_key = SigningKey::new(b"another-key-0123456789abcdef").unwrap();
    let flip_artifacts = || {
        let mut files = entries(&signed);
        for (_, bytes) in files
            .iter_mut()
            .filter(|(n, _)| n != "action.wasm" && n != MANIFEST_NAME)
        {
            let mid = bytes.len() / 2;
            bytes[mid] ^= 0x55;
        }
        rezip(&files)
    };
    // A signed manifest that names each engine's artifact as the other's:
    // digests match, so only the engines' own checks can refuse them.
    let swapped = {
        let mut files = entries(&signed);
        let get = |files: &[(String, Vec<u8>)], name: &str| {
            files.iter().find(|(n, _)| n == name).unwrap().1.clone()
        };
        let (wasmtime, wasmer) = (get(&files, "wasmtime.cwasm"), get(&files, "wasmer.wasmu"));
        for (name, bytes) in &mut files {
            match name.as_str() {
                "wasmtime.cwasm" => *bytes = wasmer.clone(),
                "wasmer.wasmu" => *bytes = wasmtime.clone(),
                _ => {}
            }
        }
        with_manifest(&rezip(&files), Some(&key()), |m| {
            m.artifacts[0].file = ow_artifact::FileRef::of("wasmtime.cwasm", &wasmer);
            m.artifacts[1].file = ow_artifact::FileRef::of("wasmer.wasmu", &wasmtime);
        })
    };
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("unsigned", unsigned.clone()),
        (
            "signed with another key",
            package(modules::ADD, Some(&other_key)),
        ),
        ("artifact bytes tampered", flip_artifacts()),
        ("action.wasm tampered", {
            // Still a valid module (a custom section's byte), but not the one signed.
            let mut files = entries(&signed);
            let wasm = &mut files
                .iter_mut()
                .find(|(n, _)| n == "action.wasm")
                .unwrap()
                .1;
            wasm.extend_from_slice(&[0, 4, 1, b'x', 1, 2]);
            rezip(&files)
        }),
        ("manifest edited after signing", {
            let text = String::from_utf8(
                entries(&signed)
                    .into_iter()
                    .find(|(n, _)| n == MANIFEST_NAME)
                    .unwrap()
                    .1,
            )
            .unwrap();
            let mut files = entries(&signed);
            files
                .iter_mut()
                .find(|(n, _)| n == MANIFEST_NAME)
                .unwrap()
                .1 = text.replace("\"sdk\"", "\"command\"").into_bytes();
            rezip(&files)
        }),
        (
            "another engine version",
            with_manifest(&signed, Some(&key()), |m| {
                for a in &mut m.artifacts {
                    a.engine_version = "1.0.0".into();
                }
            }),
        ),
        (
            "another compatibility hash",
            with_manifest(&signed, Some(&key()), |m| {
                for a in &mut m.artifacts {
                    a.compatibility_hash = "0".repeat(64);
                }
            }),
        ),
        ("another engine's artifact", swapped),
        ("manifest not JSON", {
            let mut files = entries(&signed);
            files
                .iter_mut()
                .find(|(n, _)| n == MANIFEST_NAME)
                .unwrap()
                .1 = b"{oops".to_vec();
            rezip(&files)
        }),
    ];
    let app = spawn_app_with(
        "wasmtime",
        &["--artifact-key", KEY, "--log-level", "info"],
        &[],
    );
    for (i, (case, zip)) in cases.iter().enumerate() {
        for engine in ["wasmtime", "wasmer"] {
            let id = format!("c{i}-{engine}");
            let (status, path, body) = init(&app, &id, engine, zip);
            // The upload's own module is compiled and works.
            assert_eq!(
                (status, path.as_deref()),
                (200, Some("compiled")),
                "{case} {engine}: {body}"
            );
            assert_eq!(
                run(&app, &id, json!({"param1": 1, "param2": 2})),
                (200, json!({"result": 3})),
                "{case} {engine}"
            );
        }
    }
    let logs = app.stop().stderr;
    assert!(logs.contains("not signed"), "{logs}");
    assert!(logs.contains("does not verify"), "{logs}");
    assert!(
        logs.contains("does not match the manifest's digest"),
        "{logs}"
    );
    assert!(logs.contains("this executor runs"), "{logs}");
    // Unsigned artifacts load only when the operator says so.
    let open = spawn_app_with("wasmtime", &["--trust-unsigned-artifacts"], &[]);
    let (status, path, _) = init(&open, "u", "wasmtime", &unsigned);
    assert_eq!((status, path.as_deref()), (200, Some("precompiled")));
    // ... but never with a signature that does not verify.
    let keyed = spawn_app_with(
        "wasmtime",
        &["--trust-unsigned-artifacts", "--artifact-key", KEY],
        &[],
    );
    let (status, path, _) = init(
        &keyed,
        "o",
        "wasmtime",
        &package(modules::ADD, Some(&other_key)),
    );
    assert_eq!((status, path.as_deref()), (200, Some("compiled")));
}

#[test]
fn broken_and_hostile_zips_are_clear_errors() {
    let app = spawn_app_with("wasmtime", &["--artifact-key", KEY], &[]);
    let signed = package(modules::ADD, Some(&key()));
    let mut truncated = signed.clone();
    truncated.truncate(signed.len() / 2);
    let mut traversal = entries(&signed);
    traversal.push(("../../etc/cron.d/x".into(), b"boom".to_vec()));
    let traversal = rezip(&traversal);
    // A manifest entry that inflates to far more than any manifest may be.
    let bomb = {
        let mut files = entries(&signed);
        files.retain(|(n, _)| n != MANIFEST_NAME);
        let mut w = zip::ZipWriter::new(Cursor::new(Vec::new()));
        for (name, bytes) in &files {
            w.start_file(name.as_str(), zip::write::SimpleFileOptions::default())
                .unwrap();
            w.write_all(bytes).unwrap();
        }
        w.start_file(
            MANIFEST_NAME,
            zip::write::SimpleFileOptions::default()
                .compression_method(zip::CompressionMethod::Deflated),
        )
        .unwrap();
        let zeros = vec![b' '; 1 << 20];
        for _ in 0..64 {
            w.write_all(&zeros).unwrap();
        }
        w.finish().unwrap().into_inner()
    };
    for (case, zip, expected) in [
        ("truncated", truncated, 502),
        ("path traversal", traversal, 502),
    ] {
        let (status, _, body) = init(&app, case.split(' ').next().unwrap(), "wasmtime", &zip);
        assert_eq!(status, expected, "{case}: {body}");
        assert!(
            body["error"].as_str().is_some_and(|e| !e.is_empty()),
            "{case}: {body}"
        );
    }
    // An oversized manifest is ignored like any untrusted one: compile.
    let (status, path, body) = init(&app, "bomb", "wasmtime", &bomb);
    assert_eq!((status, path.as_deref()), (200, Some("compiled")), "{body}");
    assert_eq!(
        run(&app, "bomb", json!({"param1": 1, "param2": 1})),
        (200, json!({"result": 2}))
    );
}

#[test]
fn the_compile_cache_serves_a_fresh_process_and_survives_concurrent_inits() {
    let cache = tempfile::tempdir().unwrap();
    let dir = cache.path().to_str().unwrap().to_owned();
    for engine in ["wasmtime", "wasmer"] {
        let app = Arc::new(spawn_app_with(engine, &["--cache-dir", &dir], &[]));
        // Eight containers of one action at once, on an empty cache.
        let inits: Vec<_> = (0..8)
            .map(|i| {
                let app = Arc::clone(&app);
                std::thread::spawn(move || init(&app, &format!("h{i}"), engine, modules::HASH))
            })
            .collect();
        for handle in inits {
            let (status, path, body) = handle.join().unwrap();
            assert_eq!(status, 200, "{body}");
            assert!(
                matches!(path.as_deref(), Some("compiled" | "cached" | "shared")),
                "{path:?}"
            );
        }
        let expected = run(&app, "h0", json!({"input": "abc", "iterations": 5}));
        assert_eq!(expected.0, 200);
        drop(app);
        // A fresh process finds it.
        let app = spawn_app_with(engine, &["--cache-dir", &dir], &[]);
        let (status, path, _) = init(&app, "again", engine, modules::HASH);
        assert_eq!((status, path.as_deref()), (200, Some("cached")), "{engine}");
        assert_eq!(
            run(&app, "again", json!({"input": "abc", "iterations": 5})),
            expected
        );
        // A corrupt entry is a miss, recompiled and rewritten.
        for entry in std::fs::read_dir(cache.path().join(engine)).unwrap() {
            let path = entry.unwrap().path();
            let mut bytes = std::fs::read(&path).unwrap();
            let last = bytes.len() - 1;
            bytes[last] ^= 1;
            std::fs::write(&path, bytes).unwrap();
        }
        let app = spawn_app_with(engine, &["--cache-dir", &dir], &[]);
        let (status, path, _) = init(&app, "x", engine, modules::HASH);
        assert_eq!((status, path.as_deref()), (200, Some("compiled")));
        assert_eq!(
            run(&app, "x", json!({"input": "abc", "iterations": 5})),
            expected
        );
        // The same process shares the prepared action; a fresh one finds the
        // rewritten entry.
        let (_, path, _) = init(&app, "y", engine, modules::HASH);
        assert_eq!(path.as_deref(), Some("shared"));
        drop(app);
        let app = spawn_app_with(engine, &["--cache-dir", &dir], &[]);
        let (_, path, _) = init(&app, "z", engine, modules::HASH);
        assert_eq!(path.as_deref(), Some("cached"));
        let files = std::fs::read_dir(cache.path().join(engine))
            .unwrap()
            .count();
        assert_eq!(files, 1, "one entry, no temporary files left");
    }
}

#[test]
fn identical_containers_share_one_prepared_action_until_the_last_is_destroyed() {
    let app = spawn_app("wasmtime");
    let add = json!({"param1": 2, "param2": 3});
    let (_, first, _) = init(&app, "a", "wasmtime", modules::ADD);
    assert_eq!(first.as_deref(), Some("compiled"));
    let (_, second, _) = init(&app, "b", "wasmtime", modules::ADD);
    assert_eq!(second.as_deref(), Some("shared"));
    // Anything else that differs is another action.
    let (_, other_engine, _) = init(&app, "c", "wamr", modules::ADD);
    assert_eq!(other_engine.as_deref(), Some("compiled"));
    let (status, other_env, body) = app.post_header(
        "/d/init",
        &init_body(
            modules::ADD,
            "main",
            json!({"OW_ENGINE": "wasmtime", "X": "1"}),
        ),
        "X-Ow-Init-Path",
    );
    assert_eq!(
        (status, other_env.as_deref()),
        (200, Some("compiled")),
        "{body}"
    );
    // Destroying one container leaves the other running.
    assert_eq!(app.post("/a/destroy", &json!({})).0, 200);
    assert_eq!(run(&app, "b", add.clone()), (200, json!({"result": 5})));
    assert_eq!(app.post("/b/destroy", &json!({})).0, 200);
    // With no container left, the action is gone: the next /init compiles.
    let (_, again, _) = init(&app, "e", "wasmtime", modules::ADD);
    assert_eq!(again.as_deref(), Some("compiled"));
    assert_eq!(run(&app, "e", add), (200, json!({"result": 5})));
}

/// `ow-precompiler --snapshot`'s zips: the snapshot's native code loads on
/// every engine with a precompiled form, and answers as the module
/// snapshotted at /init does.
#[test]
fn a_snapshot_zip_loads_precompiled_and_answers_as_a_snapshot_made_at_init() {
    // The 16 MiB table is in the module and in each engine's artifact.
    let app = spawn_app_with(
        "wasmtime",
        &["--artifact-key", KEY, "--max-init-bytes", "150000000"],
        &[],
    );
    let snapshot = precompilers()[0]
        .snapshot(
            modules::ZYGOTE_TABLE,
            &[],
            std::time::Duration::from_secs(60),
        )
        .unwrap();
    let zip = package(&snapshot, Some(&key()));
    for engine in ENGINES {
        let (status, path, body) = init(&app, &format!("zip-{engine}"), engine, &zip);
        assert_eq!(
            (status, path.as_deref()),
            (200, Some(fast_path(engine))),
            "{engine}: {body}"
        );
        let (status, path, body) = init(
            &app,
            &format!("raw-{engine}"),
            engine,
            modules::ZYGOTE_TABLE,
        );
        assert_eq!((status, path.as_deref()), (200, Some("compiled")), "{body}");
        let params = json!({"i": 777_777});
        let (status, from_zip) = run(&app, &format!("zip-{engine}"), params.clone());
        assert_eq!(status, 200, "{from_zip}");
        assert_eq!(from_zip["zygote"], true, "{from_zip}");
        assert_eq!(from_zip["seed"], 42, "{from_zip}");
        assert_eq!(run(&app, &format!("raw-{engine}"), params), (200, from_zip));
    }
}
