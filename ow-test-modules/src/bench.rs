//! criterion micro-benchmarks, written once against the `WasmRuntime`
//! trait; each engine crate runs them from `benches/engine.rs` with
//! `ow_test_modules::bench::engine(c, "wasmtime", &make)`.
//!
//! What is measured, per engine:
//! - `prepare/<action>`: /init's work on raw wasm (compile, link, check);
//! - `prepare_precompiled/<action>`: the same from a precompiled artifact
//!   (engines that have one);
//! - `run/add`: one activation (fresh instance, JSON in and out);
//! - `run/echo/<size>`: one activation with a 1 KB, 100 KB and 1 MB payload;
//! - `run/hash_1000`: CPU-bound work, 1,000 chained blake3 rounds;
//! - `run/wasmengine_{gcd,echo_string,authentication}`: openEuler
//!   WasmEngine's three benchmark functions, a fresh instance per call
//!   (instantiation included), to set beside its published figures.

use crate::activate::Activate as _;
use criterion::{BenchmarkId, Criterion, Throughput};
use ow_common::{ActionSpec, ActivationContext, Limits, WasmRuntime};
use serde_json::json;
use std::hint::black_box;

fn spec() -> ActionSpec {
    ActionSpec {
        entry: "main".to_owned(),
        ..ActionSpec::default()
    }
}

/// Every micro-benchmark of one engine.
pub fn engine(c: &mut Criterion, name: &str, make: &dyn Fn(Limits) -> Box<dyn WasmRuntime>) {
    let rt = make(Limits::default());
    let mut group = c.benchmark_group(format!("{name}/prepare"));
    group.sample_size(10);
    for (action, wasm) in [("add", crate::ADD), ("hash", crate::HASH)] {
        group.bench_function(action, |b| {
            b.iter(|| rt.prepare(black_box(wasm), spec()).expect("prepares"))
        });
    }
    group.finish();
    if let Ok(artifact) = rt.precompile(crate::HASH) {
        let mut group = c.benchmark_group(format!("{name}/prepare_precompiled"));
        group.bench_function("hash", |b| {
            b.iter(|| {
                // SAFETY: made just above by this very engine.
                unsafe { rt.prepare_precompiled(crate::HASH, black_box(&artifact), spec()) }
                    .expect("loads")
            })
        });
        group.finish();
    }
    let mut group = c.benchmark_group(format!("{name}/run"));
    let add = rt.prepare(crate::ADD, spec()).expect("prepares");
    let params = ActivationContext::with_params(json!({"param1": 1, "param2": 2}));
    group.bench_function("add", |b| b.iter(|| add.activate(black_box(&params))));
    let echo = rt.prepare(crate::ECHO, spec()).expect("prepares");
    for size in [1_000usize, 100_000, 1_000_000] {
        let ctx = ActivationContext::with_params(json!({ "data": "x".repeat(size) }));
        group.throughput(Throughput::Bytes(size as u64));
        group.bench_with_input(BenchmarkId::new("echo", size), &ctx, |b, ctx| {
            b.iter(|| {
                let out = echo.activate(ctx);
                assert!(out.result.is_ok());
                out
            })
        });
    }
    group.throughput(Throughput::Elements(1));
    wasmengine(&mut group, &*rt);
    let hash = rt.prepare(crate::HASH, spec()).expect("prepares");
    let ctx = ActivationContext::with_params(json!({"input": "abc", "iterations": 1000}));
    group.bench_function("hash_1000", |b| b.iter(|| hash.activate(black_box(&ctx))));
    group.finish();
}

/// The secret the `authentication` example uses when its env has none.
pub const AUTH_DEMO_SECRET: &str = "ow-wasm-demo-secret";

/// A header and its valid token for the `authentication` example.
pub fn auth_params() -> serde_json::Value {
    use hmac::Mac as _;
    let header = "Bearer user=alice;expires=2099-01-01";
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(AUTH_DEMO_SECRET.as_bytes())
        .expect("any key length");
    mac.update(header.as_bytes());
    json!({ "header": header, "token": hex::encode(mac.finalize().into_bytes()) })
}

/// WasmEngine's benchmark functions: one activation each, fresh instance.
fn wasmengine(
    group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    rt: &dyn WasmRuntime,
) {
    let cases = [
        (
            "wasmengine_gcd",
            crate::GCD,
            json!({"a": 1_071_u64 * 9_973, "b": 462_u64 * 9_973}),
        ),
        (
            "wasmengine_echo_string",
            crate::ECHO_STRING,
            json!({"input": "hello from openEuler WasmEngine's benchmark"}),
        ),
        (
            "wasmengine_authentication",
            crate::AUTHENTICATION,
            auth_params(),
        ),
    ];
    for (name, wasm, params) in cases {
        let action = rt.prepare(wasm, spec()).expect("prepares");
        let ctx = ActivationContext::with_params(params);
        group.bench_function(name, |b| {
            b.iter(|| {
                let out = action.activate(black_box(&ctx));
                assert!(out.result.is_ok());
                out
            })
        });
    }
}
