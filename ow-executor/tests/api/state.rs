//! ABI version 2: the `ow_host_v1` state functions on every engine and both
//! tiers (embedded, Redis), locks, the upload endpoint and proto-function
//! snapshots. The guest is `state_ops`, which calls the raw imports and
//! reports their exact return codes.

use crate::helpers::{TestApp, spawn_app_with};
use crate::redis::RedisServer;
use ow_test_modules as modules;
use serde_json::{Value, json};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Where the state lives for one test run.
enum Tier {
    Embedded,
    Redis(RedisServer),
}

impl Tier {
    fn both() -> [Tier; 2] {
        [Tier::Embedded, Tier::Redis(RedisServer::start())]
    }

    fn name(&self) -> &'static str {
        match self {
            Tier::Embedded => "embedded",
            Tier::Redis(_) => "redis",
        }
    }

    /// An executor on this tier, `extra` flags after the tier's.
    fn spawn(&self, engine: &str, extra: &[&str]) -> TestApp {
        let url;
        let mut args: Vec<&str> = Vec::new();
        if let Tier::Redis(redis) = self {
            url = redis.url();
            args.extend(["--state-redis", &url, "--state-op-timeout", "1s"]);
        }
        args.extend(extra);
        spawn_app_with(engine, &args, &[])
    }
}

/// An executor with `state_ops` initialised.
fn ops_app(tier: &Tier, engine: &str, extra: &[&str]) -> TestApp {
    let app = tier.spawn(engine, extra);
    app.init_ok(modules::STATE_OPS);
    app
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// Run `ops` in namespace `ns`, optionally with a deadline `limit` from now.
fn run_ops(app: &TestApp, ns: &str, ops: Value, limit: Option<Duration>) -> (u16, Value) {
    let mut body = json!({"value": {"ops": ops}, "namespace": ns});
    if let Some(limit) = limit {
        body["deadline"] = json!(now_ms() + limit.as_millis() as u64);
    }
    app.post("/run", &body)
}

/// The codes of a successful run of `ops`.
fn codes(app: &TestApp, ns: &str, ops: Value) -> Vec<i64> {
    results(app, ns, ops)
        .iter()
        .map(|r| r["code"].as_i64().unwrap())
        .collect()
}

fn results(app: &TestApp, ns: &str, ops: Value) -> Vec<Value> {
    let (status, body) = run_ops(app, ns, ops, None);
    assert_eq!(status, 200, "{body}");
    body["results"].as_array().unwrap().clone()
}

pub fn every_function_on_both_tiers(engine: &str) {
    let redis = RedisServer::start();
    let url = redis.url();
    let cached = ["--state-redis", &url, "--state-local-cache", "100"];
    for (tier, local) in [
        (Tier::Embedded, false),
        (Tier::Redis(RedisServer::start()), false),
        (Tier::Embedded, true),
    ] {
        // The third run: Redis with the local tier in front of it.
        let mut flags = vec!["--state-max-value-bytes", "1024"];
        if local {
            flags.extend(cached);
        }
        let app = ops_app(&tier, engine, &flags);
        let r = results(
            &app,
            "alice",
            json!([
                {"op": "get", "key": "k"},
                {"op": "set", "key": "k", "value": "hello"},
                {"op": "get", "key": "k", "cap": 3},
                {"op": "append", "key": "k", "value": " world"},
                {"op": "get_range", "key": "k", "offset": 6, "len": 100},
                {"op": "get_range", "key": "k", "offset": 50, "len": 10},
                {"op": "set_range", "key": "k", "offset": 13, "value": "!!"},
                {"op": "get", "key": "k"},
                {"op": "add", "key": "c", "delta": 5},
                {"op": "add", "key": "c", "delta": -7},
                {"op": "get", "key": "c"},
                {"op": "delete", "key": "k"},
                {"op": "delete", "key": "k"},
                {"op": "get_range", "key": "k", "offset": 0, "len": 4},
                {"op": "append", "key": "fresh", "value": "abc"},
                {"op": "set", "key": "s", "value": "ab"},
                {"op": "add", "key": "s", "delta": 1},
                {"op": "get", "key": "s"},
                {"op": "set", "key": "empty", "value": ""},
                {"op": "get", "key": "empty"},
                {"op": "set_range", "key": "nothing", "offset": 100, "value": ""},
                {"op": "get", "key": "nothing"},
            ]),
        );
        let code = |i: usize| r[i]["code"].as_i64().unwrap();
        let hex = |i: usize| r[i]["hex"].as_str().unwrap().to_owned();
        let tier = tier.name();
        assert_eq!(code(0), -1, "{tier}: absent");
        assert_eq!(code(1), 0, "{tier}: set");
        assert_eq!((code(2), r[2]["data"].as_str()), (5, Some("hel")), "{tier}");
        assert_eq!(code(3), 11, "{tier}: append gives the new length");
        assert_eq!(
            (code(4), r[4]["data"].as_str()),
            (5, Some("world")),
            "{tier}"
        );
        assert_eq!(code(5), 0, "{tier}: past the end");
        assert_eq!(code(6), 0, "{tier}: set_range");
        assert_eq!(code(7), 15, "{tier}");
        assert_eq!(
            hex(7),
            "68656c6c6f20776f726c6400002121",
            "{tier}: gap zero-filled"
        );
        assert_eq!((code(8), code(9)), (5, -2), "{tier}: counter");
        assert_eq!(hex(10), "feffffffffffffff", "{tier}: 8 bytes little-endian");
        assert_eq!(
            (code(11), code(12), code(13)),
            (0, -1, -1),
            "{tier}: delete"
        );
        assert_eq!(code(14), 3, "{tier}: append to an absent key");
        // "ab" is the counter 0x6261, zero-extended; replaced by 8 bytes.
        assert_eq!(code(16), 0x6261 + 1, "{tier}");
        assert_eq!(code(17), 8, "{tier}");
        assert_eq!(code(19), 0, "{tier}: an empty value is not absent");
        assert_eq!(
            (code(20), code(21)),
            (0, -1),
            "{tier}: writing nothing creates nothing"
        );

        // The size limit: -2, and nothing written.
        let c = codes(
            &app,
            "alice",
            json!([
                {"op": "set", "key": "big", "value": "x", "value_repeat": 1025},
                {"op": "get", "key": "big"},
                {"op": "set", "key": "a", "value": "x", "value_repeat": 1000},
                {"op": "append", "key": "a", "value": "y", "value_repeat": 100},
                {"op": "set_range", "key": "a", "offset": 1020, "value": "abcde"},
                {"op": "set_range", "key": "a", "offset": 4_611_686_018_427_387_904i64, "value": "a"},
                {"op": "get", "key": "a", "cap": 0},
            ]),
        );
        assert_eq!(c, vec![-2, -1, 0, -2, -2, -2, 1000], "{tier}");

        // Locks: re-locking is 0, unlocking what is not held is -1.
        let c = codes(
            &app,
            "alice",
            json!([
                {"op": "lock", "key": "L"},
                {"op": "lock", "key": "L"},
                {"op": "unlock", "key": "L"},
                {"op": "unlock", "key": "L"},
                {"op": "unlock", "key": "never"},
            ]),
        );
        assert_eq!(c, vec![0, 0, 0, -1, -1], "{tier}");
        // Values persist across activations.
        let c = codes(&app, "alice", json!([{"op": "get", "key": "c"}]));
        assert_eq!(c, vec![8], "{tier}");
    }
}

pub fn namespaces_never_see_each_other(engine: &str) {
    for tier in Tier::both() {
        let app = ops_app(&tier, engine, &[]);
        let set = json!([{"op": "set", "key": "secret", "value": "alice's"}]);
        assert_eq!(codes(&app, "alice", set), vec![0]);
        let get = json!([{"op": "get", "key": "secret"}, {"op": "add", "key": "n"}]);
        assert_eq!(
            codes(&app, "bob", get.clone()),
            vec![-1, 1],
            "{}",
            tier.name()
        );
        // Keys that would collide if namespace and key were just joined.
        assert_eq!(
            codes(&app, "ali", json!([{"op": "get", "key": "cesecret"}])),
            vec![-1]
        );
        assert_eq!(codes(&app, "alice", get), vec![7, 1]);
    }
}

pub fn abi_violations_end_the_activation_with_502(engine: &str) {
    let app = ops_app(&Tier::Embedded, engine, &[]);
    for (op, what) in [
        (
            json!({"op": "get", "key_ptr": 0x7fff_fff0u32, "key_len": 16}),
            "key outside memory",
        ),
        (json!({"op": "get", "key_hex": "ff"}), "key not UTF-8"),
        (
            json!({"op": "delete", "key_ptr": 0, "key_len": 1_048_576}),
            "key of 1 MiB",
        ),
        (
            json!({"op": "get", "key": "k", "buf": 0x7fff_0000u32, "cap": 100}),
            "buffer outside",
        ),
        (
            json!({"op": "set", "key": "k", "val_ptr": 0, "val_len": 1_073_741_824u32}),
            "a 1 GiB value",
        ),
        (
            json!({"op": "set_range", "key": "k", "offset": -1, "value": "a"}),
            "negative offset",
        ),
    ] {
        let (status, body) = run_ops(&app, "alice", json!([op]), None);
        assert_eq!(status, 502, "{what}: {body}");
        let error = body["error"].as_str().unwrap();
        assert!(
            error.starts_with("The action broke the ABI"),
            "{what}: {error}"
        );
    }
    // Nothing was written, and the executor serves on.
    assert_eq!(
        codes(&app, "alice", json!([{"op": "get", "key": "k"}])),
        vec![-1]
    );
}

pub fn locks_are_released_when_the_holder_traps_or_times_out(engine: &str) {
    for tier in Tier::both() {
        let app = ops_app(&tier, engine, &[]);
        let tier = tier.name();
        let (status, _) = run_ops(
            &app,
            "a",
            json!([{"op": "lock", "key": "L"}, {"op": "trap"}]),
            None,
        );
        assert_eq!(status, 502);
        assert_taken_at_once(&app, tier);
        // Held past its deadline by a spinning guest.
        let (status, body) = run_ops(
            &app,
            "a",
            json!([{"op": "lock", "key": "L"}, {"op": "spin"}]),
            Some(Duration::from_millis(800)),
        );
        assert_eq!(status, 502, "{tier}: {body}");
        assert!(
            body["error"].as_str().unwrap().contains("time limit"),
            "{body}"
        );
        assert_taken_at_once(&app, tier);
        // 10,000 locks from one activation, all released at its end.
        let many = json!([{"op": "lock", "key": "many", "repeat": 10_000}]);
        assert_eq!(codes(&app, "a", many.clone()), vec![0], "{tier}");
        assert_eq!(codes(&app, "a", many), vec![0], "{tier}: released");
    }
}

/// Another activation takes lock `L` of namespace `a` at once (it would
/// wait up to its 5 s limit if the lock were still held).
fn assert_taken_at_once(app: &TestApp, tier: &str) {
    let started = Instant::now();
    let (status, body) = run_ops(
        app,
        "a",
        json!([{"op": "lock", "key": "L"}]),
        Some(Duration::from_secs(5)),
    );
    assert_eq!(
        (status, body["results"][0]["code"].as_i64()),
        (200, Some(0)),
        "{tier}: {body}"
    );
    assert!(started.elapsed() < Duration::from_secs(2), "{tier}");
}

/// Until another activation holds `key` in `ns`: probe with a short lock
/// wait until it gives `-4`.
fn await_held(app: &TestApp, ns: &str, key: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (status, body) = run_ops(
            app,
            ns,
            json!([{"op": "lock", "key": key}]),
            Some(Duration::from_millis(400)),
        );
        assert_eq!(status, 200, "{body}");
        if body["results"][0]["code"] == -4 {
            return;
        }
        assert!(Instant::now() < deadline, "the lock was never taken");
    }
}

pub fn a_lock_wait_ends_with_minus_4_before_the_deadline(engine: &str) {
    for tier in Tier::both() {
        let app = ops_app(&tier, engine, &[]);
        std::thread::scope(|s| {
            let holder = s.spawn(|| {
                run_ops(
                    &app,
                    "a",
                    json!([{"op": "lock", "key": "L"}, {"op": "sleep", "ms": 3000}]),
                    None,
                )
            });
            await_held(&app, "a", "L");
            let started = Instant::now();
            let (status, body) = run_ops(
                &app,
                "a",
                json!([{"op": "lock", "key": "L"}]),
                Some(Duration::from_millis(1000)),
            );
            let waited = started.elapsed();
            assert_eq!(
                (status, body["results"][0]["code"].as_i64()),
                (200, Some(-4)),
                "{body}"
            );
            assert!(
                waited >= Duration::from_millis(700) && waited < Duration::from_millis(1500),
                "{waited:?}"
            );
            assert_eq!(holder.join().unwrap().0, 200);
        });
    }
}

pub fn snapshots_give_the_same_results_as_without(engine: &str) {
    let app = spawn_app_with(engine, &[], &[]);
    let snapshot = crate::helpers::init_body(modules::ZYGOTE_TABLE, "main", json!({}));
    let (status, body) = app.post("/snap/init", &snapshot);
    assert_eq!(status, 200, "{body}");
    // The same module, its `ow_zygote` export renamed: no snapshot.
    let plain = rename_export(modules::ZYGOTE_TABLE, b"ow_zygote", b"ow_zygotX");
    let (status, body) = app.post(
        "/plain/init",
        &crate::helpers::init_body(&plain, "main", json!({})),
    );
    assert_eq!(status, 200, "{body}");
    for i in [0, 1, 4_000_000, 4 * 1024 * 1024 - 1] {
        let run = |c: &str| {
            let (status, body) = app.post(&format!("/{c}/run"), &json!({"value": {"i": i}}));
            assert_eq!(status, 200, "{body}");
            body
        };
        let (snap, plain) = (run("snap"), run("plain"));
        assert_eq!(snap["zygote"], true, "{snap}");
        assert_eq!(plain["zygote"], false, "{plain}");
        assert_eq!(
            snap["seed"], 42,
            "the zygote's memory writes are in the snapshot"
        );
        assert_eq!(snap["value"], plain["value"], "entry {i}");
    }
    let (status, body) = app.post(
        "/trap/init",
        &crate::helpers::init_body(modules::ZYGOTE_TRAP, "main", json!({})),
    );
    assert_eq!(status, 502, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("ow_zygote"),
        "{body}"
    );
}

fn rename_export(wasm: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
    assert_eq!(from.len(), to.len());
    let mut out = wasm.to_vec();
    let mut i = 0;
    let mut renamed = 0;
    while i + from.len() <= out.len() {
        if &out[i..i + from.len()] == from {
            out[i..i + from.len()].copy_from_slice(to);
            renamed += 1;
        }
        i += 1;
    }
    assert!(renamed > 0);
    out
}

/// Executor-level: one engine is enough.
pub fn the_upload_endpoint_needs_the_operator_token() {
    let closed = spawn_app_with("wasmtime", &[], &[]);
    let (status, body) = put(&closed, "/state/alice/data", None, b"x");
    assert_eq!(status, 403, "{body}");
    // An empty token would match a request without one: still closed.
    let empty = spawn_app_with("wasmtime", &["--admin-token", ""], &[]);
    assert_eq!(put(&empty, "/state/alice/data", None, b"x").0, 403);
    assert_eq!(put(&empty, "/state/alice/data", Some(""), b"x").0, 403);

    let app = spawn_app_with("wasmtime", &["--admin-token", "s3cret"], &[]);
    app.init_ok(modules::STATE_OPS);
    assert_eq!(put(&app, "/state/alice/data/set.bin", None, b"x").0, 401);
    assert_eq!(
        put(&app, "/state/alice/data/set.bin", Some("wrong"), b"x").0,
        401
    );
    let data: Vec<u8> = (0..=255u8).cycle().take(100_000).collect();
    assert_eq!(
        put(&app, "/state/alice/data/set.bin", Some("s3cret"), &data).0,
        204
    );
    // The action of that namespace reads it.
    let r = results(
        &app,
        "alice",
        json!([{"op": "get_range", "key": "data/set.bin", "offset": 99_998, "len": 10}]),
    );
    assert_eq!(
        (r[0]["code"].as_i64(), r[0]["hex"].as_str()),
        (Some(2), Some("9e9f"))
    );
    // And the operator reads it back, then removes it.
    let (status, bytes) = request(
        &app,
        "GET",
        "/state/alice/data/set.bin",
        Some("s3cret"),
        b"",
    );
    assert_eq!((status, bytes == data), (200, true));
    assert_eq!(
        request(&app, "GET", "/state/alice/data/set.bin", None, b"").0,
        401
    );
    assert_eq!(
        request(
            &app,
            "DELETE",
            "/state/alice/data/set.bin",
            Some("s3cret"),
            b""
        )
        .0,
        204
    );
    assert_eq!(
        request(
            &app,
            "DELETE",
            "/state/alice/data/set.bin",
            Some("s3cret"),
            b""
        )
        .0,
        404
    );
    assert_eq!(
        request(
            &app,
            "GET",
            "/state/alice/data/set.bin",
            Some("s3cret"),
            b""
        )
        .0,
        404
    );
}

fn put(app: &TestApp, path: &str, token: Option<&str>, body: &[u8]) -> (u16, String) {
    let (status, bytes) = request(app, "PUT", path, token, body);
    (status, String::from_utf8_lossy(&bytes).into_owned())
}

fn request(
    app: &TestApp,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: &[u8],
) -> (u16, Vec<u8>) {
    let url = format!("{}{path}", app.base);
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let auth = token.map(|t| format!("Bearer {t}"));
    let response = match method {
        "PUT" => {
            let mut req = agent.put(&url);
            if let Some(auth) = &auth {
                req = req.header("Authorization", auth);
            }
            req.send(body)
        }
        "GET" | "DELETE" => {
            let mut req = match method {
                "GET" => agent.get(&url),
                _ => agent.delete(&url),
            };
            if let Some(auth) = &auth {
                req = req.header("Authorization", auth);
            }
            req.call()
        }
        other => panic!("{other}"),
    };
    let mut response = response.unwrap();
    let status = response.status().as_u16();
    let bytes = response.body_mut().read_to_vec().unwrap();
    (status, bytes)
}

/// Executor-level: a lock held by an executor killed with SIGKILL expires
/// with its lease, and another executor proceeds.
pub fn a_lock_of_a_killed_executor_expires_with_its_lease() {
    let redis = Tier::Redis(RedisServer::start());
    let a = ops_app(&redis, "wasmtime", &["--state-lock-lease", "1s"]);
    let b = ops_app(&redis, "wasmtime", &["--state-lock-lease", "1s"]);
    std::thread::scope(|s| {
        let base = a.base.clone();
        let holder = s.spawn(move || {
            let agent: ureq::Agent = ureq::Agent::config_builder().http_status_as_error(false).build().into();
            let body = json!({"value": {"ops": [{"op": "lock", "key": "L"}, {"op": "sleep", "ms": 60_000}]}, "namespace": "a"});
            // Fails when the executor dies under it.
            agent.post(&format!("{base}/run")).send_json(&body).is_err()
        });
        await_held(&b, "a", "L");
        let pid = a.pid();
        // SAFETY (of the test): our own child process.
        assert_eq!(unsafe { libc::kill(pid as i32, libc::SIGKILL) }, 0);
        let started = Instant::now();
        let (status, body) = run_ops(
            &b,
            "a",
            json!([{"op": "lock", "key": "L"}]),
            Some(Duration::from_secs(15)),
        );
        assert_eq!(
            (status, body["results"][0]["code"].as_i64()),
            (200, Some(0)),
            "{body}"
        );
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{:?}",
            started.elapsed()
        );
        assert!(
            holder.join().unwrap(),
            "the holder's request ended with its executor"
        );
    });
}

/// Executor-level: Redis killed mid-run gives -3 promptly, the executor
/// keeps serving, and after a restart every acknowledged write is there.
pub fn redis_down_gives_minus_3_promptly_and_loses_no_acknowledged_write() {
    let mut redis = RedisServer::start();
    let url = redis.url();
    let app = spawn_app_with(
        "wasmtime",
        &["--state-redis", &url, "--state-op-timeout", "1s"],
        &[],
    );
    app.init_ok(modules::STATE_OPS);
    assert_eq!(
        codes(
            &app,
            "a",
            json!([{"op": "set", "key": "k", "value": "kept"}])
        ),
        vec![0]
    );
    redis.kill();
    let started = Instant::now();
    let c = codes(
        &app,
        "a",
        json!([{"op": "get", "key": "k"}, {"op": "set", "key": "k2", "value": "v"}, {"op": "add", "key": "n"}]),
    );
    assert_eq!(c, vec![-3, -3, -3]);
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
    // Activations that do not use state are not held up.
    assert_eq!(codes(&app, "a", json!([])), Vec::<i64>::new());
    redis.restart();
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let r = results(&app, "a", json!([{"op": "get", "key": "k"}]));
        if r[0]["code"] == 4 {
            assert_eq!(r[0]["data"], "kept");
            break;
        }
        assert_eq!(r[0]["code"], -3, "{r:?}");
        assert!(Instant::now() < deadline, "Redis never came back");
    }
}

/// Executor-level: 1,000 activations, 100 at a time, across two executors
/// sharing Redis: the counter ends at exactly 1,000, and so does a list
/// grown by lock + get + set + unlock.
pub fn two_executors_sharing_redis_lose_no_update() {
    let redis = Tier::Redis(RedisServer::start());
    // Reads through the local tier: a lock-protected read must still see
    // the other executor's last write.
    let local = ["--state-local-cache", "1000"];
    let apps = [
        redis.spawn("wasmtime", &local),
        redis.spawn("wasmtime", &local),
    ];
    for app in &apps {
        let (status, body) = app.post(
            "/counter/init",
            &crate::helpers::init_body(modules::COUNTER, "main", json!({})),
        );
        assert_eq!(status, 200, "{body}");
        let (status, body) = app.post(
            "/locked/init",
            &crate::helpers::init_body(modules::LOCKED_UPDATE, "main", json!({})),
        );
        assert_eq!(status, 200, "{body}");
    }
    std::thread::scope(|s| {
        for t in 0..100 {
            let app = &apps[t % 2];
            s.spawn(move || {
                for i in 0..10 {
                    let (status, body) = app.post(
                        "/counter/run",
                        &json!({"value": {"key": "hits"}, "namespace": "n"}),
                    );
                    assert_eq!(status, 200, "{body}");
                    let item = t * 10 + i;
                    let (status, body) = app.post(
                        "/locked/run",
                        &json!({"value": {"key": "list", "item": item}, "namespace": "n"}),
                    );
                    assert_eq!(status, 200, "{body}");
                }
            });
        }
    });
    let (_, body) = apps[0].post(
        "/counter/run",
        &json!({"value": {"key": "hits", "by": 0}, "namespace": "n"}),
    );
    assert_eq!(body["value"], 1000, "{body}");
    let (_, body) = apps[1].post(
        "/locked/run",
        &json!({"value": {"key": "list", "item": -1}, "namespace": "n"}),
    );
    assert_eq!(body["length"], 1001, "{body}");
}
