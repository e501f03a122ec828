//! The engine through the `WasmRuntime` trait alone, without HTTP.

use ow_common::{ActionAbi, ActionSpec, ActivationContext, Error, Limits, WasmRuntime};
use ow_wasmtime::WasmtimeRuntime;
use serde_json::json;
use std::time::Duration;

fn spec(entry: &str) -> ActionSpec {
    ActionSpec {
        entry: entry.to_owned(),
        ..ActionSpec::default()
    }
}

#[test]
fn every_example_prepares_with_the_right_abi() {
    let rt = WasmtimeRuntime::new(Limits::default()).unwrap();
    for (name, wasm) in ow_test_modules::ALL {
        let action = rt
            .prepare(wasm, spec("main"))
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let expected = if *name == "cmd_echo" {
            ActionAbi::Command
        } else {
            ActionAbi::Sdk
        };
        assert_eq!(action.abi(), expected, "{name}");
    }
}

#[test]
fn pooling_allocator_is_used_here() {
    // This machine (64-bit Linux, no address-space ulimit) allows the pool.
    let rt = WasmtimeRuntime::new(Limits::default()).unwrap();
    assert!(rt.is_pooling());
}

#[test]
fn echo_captures_its_streams_per_activation() {
    let rt = WasmtimeRuntime::new(Limits::default()).unwrap();
    let action = rt.prepare(ow_test_modules::ECHO, spec("niam")).unwrap();
    let out = action.run(&ActivationContext::with_params(json!({"a": [1, 2]})));
    assert_eq!(out.result.unwrap(), json!({"a": [1, 2]}));
    assert_eq!(out.stdout, b"hello stdout\n");
    assert_eq!(out.stderr, b"hello stderr\n");
    assert!(!out.logs_truncated);
}

#[test]
fn logs_beyond_the_limit_are_cut_and_the_action_still_succeeds() {
    let limits = Limits {
        max_log_bytes: 5,
        ..Limits::default()
    };
    let rt = WasmtimeRuntime::new(limits).unwrap();
    let action = rt.prepare(ow_test_modules::ECHO, spec("main")).unwrap();
    let out = action.run(&ActivationContext::with_params(json!({})));
    assert_eq!(out.result.unwrap(), json!({}));
    assert_eq!(out.stdout, b"hello");
    assert!(out.logs_truncated);
}

#[test]
fn concurrent_activations_of_one_action_do_not_mix() {
    let rt = WasmtimeRuntime::new(Limits::default()).unwrap();
    let action = rt.prepare(ow_test_modules::ADD, spec("main")).unwrap();
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..16)
            .map(|i| {
                let action = &action;
                s.spawn(move || {
                    for j in 0..50 {
                        let out = action.run(&ActivationContext::with_params(
                            json!({"param1": i, "param2": j}),
                        ));
                        assert_eq!(out.result.unwrap(), json!({"result": i + j}));
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
    });
}

#[test]
fn memory_cap_makes_grow_fail_instead_of_succeeding() {
    // Tries to grow by 64 MiB and reports whether memory.grow succeeded.
    let wasm = wat::parse_str(
        r#"(module (memory (export "memory") 1)
             (data (i32.const 16) "{\"grew\":0}")
             (func (export "ow_alloc") (param i32) (result i32) (i32.const 1024))
             (func (export "main") (param i32 i32) (result i64)
               (if (i32.ne (memory.grow (i32.const 1024)) (i32.const -1))
                 (then (i32.store8 (i32.const 24) (i32.const 49))))
               (i64.or (i64.shl (i64.const 16) (i64.const 32)) (i64.const 10))))"#,
    )
    .unwrap();
    let small = WasmtimeRuntime::new(Limits {
        max_memory_bytes: 16 << 20,
        ..Limits::default()
    })
    .unwrap();
    let out = small
        .prepare(&wasm, spec("main"))
        .unwrap()
        .run(&ActivationContext::default());
    assert_eq!(out.result.unwrap(), json!({"grew": 0}));
    let big = WasmtimeRuntime::new(Limits::default()).unwrap();
    let out = big
        .prepare(&wasm, spec("main"))
        .unwrap()
        .run(&ActivationContext::default());
    assert_eq!(out.result.unwrap(), json!({"grew": 1}));
}

#[test]
fn deadline_in_the_context_bounds_the_run() {
    let rt = WasmtimeRuntime::new(Limits::default()).unwrap();
    let wasm = wat::parse_str(
        r#"(module (memory (export "memory") 1)
             (func (export "ow_alloc") (param i32) (result i32) (i32.const 1024))
             (func (export "main") (param i32 i32) (result i64) (loop $l (br $l)) (i64.const 0)))"#,
    )
    .unwrap();
    let action = rt.prepare(&wasm, spec("main")).unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    let ctx = ActivationContext {
        deadline_ms: Some((now + Duration::from_millis(200)).as_millis() as u64),
        ..ActivationContext::default()
    };
    let started = std::time::Instant::now();
    let out = action.run(&ctx);
    assert!(
        matches!(out.result, Err(Error::Timeout(ms)) if ms <= 200),
        "{:?}",
        out.result
    );
    assert!(started.elapsed() < Duration::from_secs(3));
}
