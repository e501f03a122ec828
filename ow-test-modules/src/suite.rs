//! Engine-level conformance tests, written once against the `WasmRuntime`
//! trait. Each engine crate runs all of them with
//! `ow_test_modules::engine_tests!(|limits| Box::new(MyRuntime::new(limits).unwrap()))`.

use crate::activate::Activate as _;
use ow_common::{ActionAbi, ActionSpec, ActivationContext, Error, Limits, WasmRuntime};
use serde_json::json;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Makes a runtime with the given limits.
pub type MakeRuntime<'a> = &'a dyn Fn(Limits) -> Box<dyn WasmRuntime>;

fn spec(entry: &str) -> ActionSpec {
    ActionSpec {
        entry: entry.to_owned(),
        ..ActionSpec::default()
    }
}

/// A module whose `main` runs `body` (leaving an i64), with a data segment at 16.
fn sdk_wat(data: &str, body: &str) -> Vec<u8> {
    wat::parse_str(format!(
        r#"(module (memory (export "memory") 1)
             (data (i32.const 16) "{data}")
             (func (export "ow_alloc") (param i32) (result i32) (i32.const 1024))
             (func (export "main") (param i32 i32) (result i64) {body}))"#
    ))
    .expect("valid WAT")
}

fn packed(ptr: u32, len: u32) -> String {
    format!(
        "(i64.const {})",
        ((u64::from(ptr) << 32) | u64::from(len)) as i64
    )
}

pub fn every_example_prepares_with_the_right_abi(make: MakeRuntime) {
    let rt = make(Limits::default());
    for (name, wasm) in crate::ALL {
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

pub fn echo_captures_its_streams_per_activation(make: MakeRuntime) {
    let rt = make(Limits::default());
    let action = rt.prepare(crate::ECHO, spec("niam")).unwrap();
    let out = action.activate(&ActivationContext::with_params(json!({"a": [1, 2]})));
    assert_eq!(out.result.unwrap(), json!({"a": [1, 2]}));
    assert_eq!(out.stdout, b"hello stdout\n");
    assert_eq!(out.stderr, b"hello stderr\n");
    assert!(!out.logs_truncated);
}

pub fn command_module_gets_params_on_stdin(make: MakeRuntime) {
    let rt = make(Limits::default());
    let action = rt.prepare(crate::CMD_ECHO, spec("main")).unwrap();
    let params = json!({"k": "v", "n": [1, 2, 3]});
    let out = action.activate(&ActivationContext::with_params(params.clone()));
    assert_eq!(out.result.unwrap(), params);
    let expected_log = format!(
        "cmd_echo: read {} bytes from stdin\n",
        params.to_string().len()
    );
    assert_eq!(String::from_utf8(out.stdout).unwrap(), expected_log);
}

pub fn environment_is_the_init_env_then_the_activation(make: MakeRuntime) {
    let rt = make(Limits::default());
    let mut s = spec("main");
    s.env.insert("SOME_VAR".into(), "from init".into());
    let action = rt.prepare(crate::CONTEXT, s).unwrap();
    let ctx = ActivationContext {
        ow_env: [("__OW_ACTIVATION_ID".to_owned(), "abc".to_owned())].into(),
        api_host: Some("https://host".into()),
        ..ActivationContext::default()
    };
    let out = action.activate(&ctx);
    let result = out.result.unwrap();
    assert_eq!(result["activation_id"], "abc");
    assert_eq!(result["api_host"], "https://host");
    let env_action = rt.prepare(crate::ENV, {
        let mut s = spec("main");
        s.env.insert("SOME_VAR".into(), "from init".into());
        s
    });
    let out = env_action.unwrap().activate(&ActivationContext::default());
    assert_eq!(
        out.result.unwrap(),
        json!({"SOME_VAR": "from init", "ANOTHER_VAR": ""})
    );
}

pub fn actions_sharing_code_keep_their_own_settings(make: MakeRuntime) {
    // Engines share the compiled module of identical code between actions:
    // what differs (env, entry, limits) must stay each action's own.
    let rt = make(Limits::default());
    let with = |value: &str| {
        let mut s = spec("main");
        s.env.insert("SOME_VAR".into(), value.into());
        rt.prepare(crate::ENV, s).unwrap()
    };
    let (a, b) = (with("a"), with("b"));
    let get = |action: &std::sync::Arc<dyn ow_common::PreparedAction>| {
        action
            .activate(&ActivationContext::default())
            .result
            .unwrap()["SOME_VAR"]
            .clone()
    };
    assert_eq!((get(&a), get(&b)), (json!("a"), json!("b")));
    drop(a);
    assert_eq!(get(&b), json!("b"));
    let bomb = |max_memory_bytes: usize| {
        let mut s = spec("main");
        s.limits.max_memory_bytes = max_memory_bytes;
        rt.prepare(crate::MEMBOMB, s)
            .unwrap()
            .activate(&ActivationContext::default())
            .result
            .unwrap()["bytes"]
            .as_u64()
            .unwrap()
    };
    let small = bomb(16 << 20);
    let large = bomb(64 << 20);
    assert!(
        small <= 16 << 20 && large > 16 << 20 && large <= 64 << 20,
        "{small} {large}"
    );
}

pub fn logs_beyond_the_limit_are_cut_and_the_action_still_succeeds(make: MakeRuntime) {
    let rt = make(Limits {
        max_log_bytes: 5,
        ..Limits::default()
    });
    let action = rt.prepare(crate::ECHO, spec("main")).unwrap();
    let out = action.activate(&ActivationContext::with_params(json!({})));
    assert_eq!(out.result.unwrap(), json!({}));
    assert_eq!(out.stdout, b"hello");
    assert!(out.logs_truncated);
}

pub fn concurrent_activations_of_one_action_do_not_mix(make: MakeRuntime) {
    let rt = make(Limits::default());
    let action = rt.prepare(crate::ADD, spec("main")).unwrap();
    std::thread::scope(|s| {
        for i in 0..16 {
            let action = &action;
            s.spawn(move || {
                for j in 0..50 {
                    let out = action.activate(&ActivationContext::with_params(
                        json!({"param1": i, "param2": j}),
                    ));
                    assert_eq!(out.result.unwrap(), json!({"result": i + j}));
                }
            });
        }
    });
}

pub fn memory_cap_makes_grow_fail(make: MakeRuntime) {
    // Grows by 64 MiB and answers {"grew":1} if memory.grow succeeded.
    let wasm = sdk_wat(
        r#"{\"grew\":0}"#,
        &format!(
            "(if (i32.ne (memory.grow (i32.const 1024)) (i32.const -1)) \
               (then (i32.store8 (i32.const 24) (i32.const 49)))) {}",
            packed(16, 10)
        ),
    );
    let small = make(Limits {
        max_memory_bytes: 16 << 20,
        ..Limits::default()
    });
    let out = small
        .prepare(&wasm, spec("main"))
        .unwrap()
        .activate(&ActivationContext::default());
    assert_eq!(out.result.unwrap(), json!({"grew": 0}));
    let big = make(Limits::default());
    let out = big
        .prepare(&wasm, spec("main"))
        .unwrap()
        .activate(&ActivationContext::default());
    assert_eq!(out.result.unwrap(), json!({"grew": 1}));
}

pub fn deadline_in_the_context_bounds_the_run(make: MakeRuntime) {
    let rt = make(Limits::default());
    let action = rt
        .prepare(
            &sdk_wat("", "(loop $l (br $l)) (i64.const 0)"),
            spec("main"),
        )
        .unwrap();
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    let ctx = ActivationContext {
        deadline_ms: Some((now + Duration::from_millis(200)).as_millis() as u64),
        ..ActivationContext::default()
    };
    let started = Instant::now();
    let out = action.activate(&ctx);
    assert!(
        matches!(out.result, Err(Error::Timeout(ms)) if ms <= 200),
        "{:?}",
        out.result
    );
    assert!(started.elapsed() < Duration::from_secs(3));
    // The engine is fine afterwards.
    let add = rt.prepare(crate::ADD, spec("main")).unwrap();
    let out = add.activate(&ActivationContext::with_params(
        json!({"param1": 1, "param2": 2}),
    ));
    assert_eq!(out.result.unwrap(), json!({"result": 3}));
}

pub fn out_of_bounds_result_is_an_abi_error(make: MakeRuntime) {
    let rt = make(Limits::default());
    let action = rt
        .prepare(&sdk_wat("", &packed(0xffff_0000, 16)), spec("main"))
        .unwrap();
    let out = action.activate(&ActivationContext::default());
    assert!(
        matches!(&out.result, Err(Error::Abi(m)) if m.contains("outside")),
        "{:?}",
        out.result
    );
}

pub fn trap_and_exit_codes_are_reported(make: MakeRuntime) {
    let rt = make(Limits::default());
    let trap = rt
        .prepare(&sdk_wat("", "unreachable"), spec("main"))
        .unwrap();
    let out = trap.activate(&ActivationContext::default());
    assert!(
        matches!(&out.result, Err(Error::Trap(m)) if m.contains("unreachable")),
        "{:?}",
        out.result
    );
    let exit = wat::parse_str(
        r#"(module (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
             (memory (export "memory") 1)
             (func (export "_start") (call $exit (i32.const 3))))"#,
    )
    .unwrap();
    let out = rt
        .prepare(&exit, spec("main"))
        .unwrap()
        .activate(&ActivationContext::default());
    assert_eq!(out.result, Err(Error::Exit(3)));
}

pub fn scratch_directory_is_fresh_private_and_closed(make: MakeRuntime) {
    let rt = make(Limits::default());
    let parent = tempfile::tempdir().unwrap();
    let with = rt
        .prepare(
            crate::SCRATCH,
            ActionSpec {
                scratch: Some(parent.path().to_owned()),
                ..spec("main")
            },
        )
        .unwrap();
    for i in 0..3 {
        let out = with.activate(&ActivationContext::with_params(
            json!({"name": format!("f{i}"), "data": format!("data {i}")}),
        ));
        let result = out.result.unwrap();
        // Empty at every activation: nothing survives from the previous one.
        assert_eq!(result["before"], json!([]), "{result}");
        assert_eq!(result["read"], json!(format!("data {i}")));
        assert_eq!(result["escaped_reads"], json!([]), "{result}");
        assert_eq!(result["escaped_writes"], json!([]), "{result}");
        // `..` is refused (wasmtime, WAMR), or leads to wasmer's virtual
        // root, which holds the mount point and nothing else.
        let parent = &result["parent"];
        assert!(parent.is_null() || parent == &json!(["/tmp"]), "{result}");
    }
    let left: Vec<_> = std::fs::read_dir(parent.path()).unwrap().collect();
    assert!(left.is_empty(), "scratch left behind: {left:?}");
    // Without asking for one, there is no directory at all.
    let without = rt.prepare(crate::SCRATCH, spec("main")).unwrap();
    let out = without.activate(&ActivationContext::default());
    let text = format!("{:?}", out.result);
    assert!(text.contains("no scratch directory"), "{text}");
}

/// A module with a table of `initial` elements whose `main` grows it by
/// `grow` and answers `{"grew":1}` if that worked.
fn table_wat(initial: u32, grow: u32) -> Vec<u8> {
    wat::parse_str(format!(
        r#"(module (memory (export "memory") 1) (table {initial} funcref)
             (data (i32.const 16) "{{\"grew\":0}}")
             (func (export "ow_alloc") (param i32) (result i32) (i32.const 1024))
             (func (export "main") (param i32 i32) (result i64)
               (if (i32.ne (table.grow (ref.null func) (i32.const {grow})) (i32.const -1))
                 (then (i32.store8 (i32.const 24) (i32.const 49))))
               {}))"#,
        packed(16, 10)
    ))
    .expect("valid WAT")
}

pub fn table_limit_applies_at_prepare_and_to_growth(make: MakeRuntime) {
    let small = make(Limits {
        max_table_elements: 100,
        ..Limits::default()
    });
    let err = small
        .prepare(&table_wat(1000, 0), spec("main"))
        .err()
        .expect("a table above the limit fails /init");
    assert!(
        matches!(&err, Error::InvalidModule(m) if m.contains("limit of 100")),
        "{err}"
    );
    let grow = table_wat(10, 500);
    let out = small
        .prepare(&grow, spec("main"))
        .unwrap()
        .activate(&ActivationContext::default());
    assert_eq!(out.result.unwrap(), json!({"grew": 0}));
    let out = make(Limits::default())
        .prepare(&grow, spec("main"))
        .unwrap()
        .activate(&ActivationContext::default());
    assert_eq!(out.result.unwrap(), json!({"grew": 1}));
}

pub fn stack_limit_bounds_recursion(make: MakeRuntime) {
    // Recurses 100,000 calls deep, then answers {}.
    let wasm = wat::parse_str(format!(
        r#"(module (memory (export "memory") 1)
             (data (i32.const 16) "{{}}")
             (func $down (param i32) (result i32)
               (if (result i32) (i32.eqz (local.get 0))
                 (then (i32.const 0))
                 (else (i32.add (i32.const 1) (call $down (i32.sub (local.get 0) (i32.const 1)))))))
             (func (export "ow_alloc") (param i32) (result i32) (i32.const 1024))
             (func (export "main") (param i32 i32) (result i64)
               (drop (call $down (i32.const 100000))) {}))"#,
        packed(16, 2)
    ))
    .unwrap();
    let run = |stack: usize| {
        let rt = make(Limits {
            max_stack_bytes: stack,
            ..Limits::default()
        });
        let action = rt.prepare(&wasm, spec("main")).unwrap();
        // Run from a thread with a small stack: each engine brings the
        // stack its guest needs (wasmtime's fibers, the others' threads).
        std::thread::scope(|s| {
            std::thread::Builder::new()
                .stack_size(256 << 10)
                .spawn_scoped(s, || action.activate(&ActivationContext::default()))
                .unwrap()
                .join()
                .unwrap()
        })
    };
    // Shallow first: wasmer reuses pooled stacks of at least the size asked
    // for, so after a deep run a shallow one could get a big stack.
    let out = run(64 << 10);
    assert!(
        matches!(&out.result, Err(Error::Trap(_))),
        "{:?}",
        out.result
    );
    assert_eq!(run(32 << 20).result.unwrap(), json!({}));
}

/// `ow_host_v1` functions of the wrong type, and names it does not define,
/// fail at prepare (/init), never at run time.
pub fn reserved_host_imports_fail_at_prepare(make: MakeRuntime) {
    let rt = make(Limits::default());
    for import in [
        r#"(import "ow_host_v1" "state_get" (func))"#,
        r#"(import "ow_host_v1" "state_teleport" (func (param i32 i32) (result i32)))"#,
    ] {
        let wasm = wat::parse_str(format!(
            r#"(module {import} (memory (export "memory") 1) (func (export "_start")))"#
        ))
        .unwrap();
        let err = rt
            .prepare(&wasm, spec("main"))
            .err()
            .expect("must fail at prepare");
        let name = if import.contains("state_get") {
            "state_get"
        } else {
            "state_teleport"
        };
        assert!(
            matches!(&err, Error::InvalidModule(m) if m.contains(name)),
            "{err:?}"
        );
    }
}

/// Run every test of this suite on one engine.
#[macro_export]
macro_rules! engine_tests {
    ($make:expr) => {
        $crate::engine_tests!(@each $make;
            every_example_prepares_with_the_right_abi,
            echo_captures_its_streams_per_activation,
            command_module_gets_params_on_stdin,
            environment_is_the_init_env_then_the_activation,
            actions_sharing_code_keep_their_own_settings,
            logs_beyond_the_limit_are_cut_and_the_action_still_succeeds,
            concurrent_activations_of_one_action_do_not_mix,
            memory_cap_makes_grow_fail,
            deadline_in_the_context_bounds_the_run,
            out_of_bounds_result_is_an_abi_error,
            trap_and_exit_codes_are_reported,
            reserved_host_imports_fail_at_prepare,
            scratch_directory_is_fresh_private_and_closed,
            table_limit_applies_at_prepare_and_to_growth,
            stack_limit_bounds_recursion,
        );
    };
    (@each $make:expr; $($name:ident),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                $crate::suite::$name(&$make);
            }
        )*
    };
}
