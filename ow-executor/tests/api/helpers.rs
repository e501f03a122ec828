//! `spawn_app()`: start the real executor on a free port and talk to it.
//!
//! With `OW_TEST_IMAGE=<image>` in the environment, the executor runs in
//! that container image under podman instead of as the binary cargo built
//! (`just test-image`): the same tests then check the image as OpenWhisk's
//! invoker starts it (host network, read-only root, user 10001, 256 MB).

use base64::Engine as _;
use serde_json::{Value, json};
use std::io::Read;
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

pub const SENTINEL: &str = "XXX_THE_END_OF_A_WHISK_ACTIVATION_XXX";

/// A running executor process.
pub struct TestApp {
    child: Child,
    /// The container's name when the executor runs in `OW_TEST_IMAGE`.
    container: Option<String>,
    pub base: String,
    agent: ureq::Agent,
    stdout: Arc<Mutex<Vec<u8>>>,
    stderr: Arc<Mutex<Vec<u8>>>,
    readers: Vec<JoinHandle<()>>,
}

/// What the process wrote, read after it stopped.
pub struct Streams {
    pub stdout: String,
    pub stderr: String,
}

impl Streams {
    pub fn sentinels(&self) -> (usize, usize) {
        (
            self.stdout.matches(SENTINEL).count(),
            self.stderr.matches(SENTINEL).count(),
        )
    }
}

/// Start the executor with `engine` as its default engine.
pub fn spawn_app(engine: &str) -> TestApp {
    spawn_app_with(engine, &[], &[])
}

pub fn spawn_app_with(engine: &str, args: &[&str], env: &[(&str, &str)]) -> TestApp {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let executor_args = [
        "--host",
        "127.0.0.1",
        "--port",
        &port.to_string(),
        "--engine",
        engine,
    ];
    let (mut cmd, container) = match std::env::var("OW_TEST_IMAGE") {
        Ok(image) => {
            let name = format!("ow-test-{port}-{}", std::process::id());
            let mut cmd = Command::new("podman");
            // As DEVELOPERS.md found podman to work on these hosts.
            cmd.args(["--cgroup-manager", "cgroupfs", "--runtime", "runc", "run"])
                .args(["--rm", "--name", &name, "--network", "host", "--read-only"])
                .args(["--user", "10001", "--memory", "256m"])
                .args([
                    "--ulimit",
                    "nofile=1024:1024",
                    "--ulimit",
                    "nproc=1024:1024",
                ]);
            for (key, value) in env {
                cmd.arg("--env").arg(format!("{key}={value}"));
            }
            cmd.arg(image);
            (cmd, Some(name))
        }
        Err(_) => {
            let mut cmd = Command::new(env!("CARGO_BIN_EXE_ow-executor"));
            cmd.env_remove("RUST_LOG")
                .env_remove("__OW_API_HOST")
                .env_remove("OW_ENGINE")
                .envs(env.iter().copied());
            (cmd, None)
        }
    };
    cmd.args(executor_args)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("cannot start ow-executor");
    let stdout = Arc::new(Mutex::new(Vec::new()));
    let stderr = Arc::new(Mutex::new(Vec::new()));
    let readers = vec![
        pump(child.stdout.take().unwrap(), Arc::clone(&stdout)),
        pump(child.stderr.take().unwrap(), Arc::clone(&stderr)),
    ];
    let deadline = Instant::now() + Duration::from_secs(20);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        if let Some(status) = child.try_wait().unwrap() {
            panic!(
                "ow-executor exited early with {status}: {}",
                String::from_utf8_lossy(&stderr.lock().unwrap())
            );
        }
        assert!(
            Instant::now() < deadline,
            "ow-executor did not listen on port {port}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(60)))
        .build()
        .into();
    TestApp {
        child,
        container,
        base: format!("http://127.0.0.1:{port}"),
        agent,
        stdout,
        stderr,
        readers,
    }
}

/// Copy everything `from` yields into `to`, on a thread of its own.
pub fn pump(mut from: impl Read + Send + 'static, to: Arc<Mutex<Vec<u8>>>) -> JoinHandle<()> {
    std::thread::spawn(move || {
        let mut buf = [0u8; 8192];
        while let Ok(n) = from.read(&mut buf) {
            if n == 0 {
                break;
            }
            to.lock()
                .unwrap_or_else(|e| e.into_inner())
                .extend_from_slice(&buf[..n]);
        }
    })
}

pub fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// An /init body for `wasm` with entry point `main` and init `env`.
pub fn init_body(wasm: &[u8], main: &str, env: Value) -> Value {
    json!({"value": {"name": "test", "main": main, "binary": true, "code": b64(wasm), "env": env}})
}

impl TestApp {
    /// POST raw bytes; returns the status and the body parsed as JSON
    /// (panics if the body is not JSON: every answer must be).
    pub fn post_raw(&self, path: &str, body: &[u8]) -> (u16, Value) {
        let mut resp = self
            .agent
            .post(format!("{}{path}", self.base))
            .header("Content-Type", "application/json")
            .send(body)
            .unwrap_or_else(|e| panic!("POST {path} failed: {e}"));
        let status = resp.status().as_u16();
        assert!(
            resp.headers().get("content-length").is_some(),
            "POST {path}: the response has no Content-Length"
        );
        let text = resp
            .body_mut()
            .with_config()
            .limit(64 << 20)
            .read_to_string()
            .unwrap();
        let value = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("POST {path}: body {text:?} is not JSON: {e}"));
        (status, value)
    }

    /// POST JSON; returns the status, the value of response header
    /// `header`, and the body.
    pub fn post_header(
        &self,
        path: &str,
        body: &Value,
        header: &str,
    ) -> (u16, Option<String>, Value) {
        let mut resp = self
            .agent
            .post(format!("{}{path}", self.base))
            .header("Content-Type", "application/json")
            .send(&serde_json::to_vec(body).unwrap())
            .unwrap_or_else(|e| panic!("POST {path} failed: {e}"));
        let status = resp.status().as_u16();
        let value = resp
            .headers()
            .get(header)
            .map(|v| v.to_str().unwrap().to_owned());
        let text = resp.body_mut().read_to_string().unwrap();
        (status, value, serde_json::from_str(&text).unwrap())
    }

    pub fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        self.post_raw(path, &serde_json::to_vec(body).unwrap())
    }

    /// A bodiless request with any method.
    pub fn request(&self, method: &str, path: &str) -> (u16, Value) {
        let url = format!("{}{path}", self.base);
        let mut resp = match method {
            "GET" => self.agent.get(&url).call(),
            "DELETE" => self.agent.delete(&url).call(),
            "PUT" => self.agent.put(&url).send_empty(),
            other => panic!("unsupported method {other}"),
        }
        .unwrap();
        let status = resp.status().as_u16();
        let text = resp.body_mut().read_to_string().unwrap();
        (
            status,
            serde_json::from_str(&text)
                .unwrap_or_else(|e| panic!("{method} {path}: {text:?}: {e}")),
        )
    }

    /// GET a text resource (`/metrics`), insisting on 200.
    pub fn get_text(&self, path: &str) -> String {
        let mut resp = self
            .agent
            .get(format!("{}{path}", self.base))
            .call()
            .unwrap();
        assert_eq!(resp.status().as_u16(), 200, "GET {path}");
        resp.body_mut().read_to_string().unwrap()
    }

    pub fn get(&self, path: &str) -> (u16, Value) {
        let mut resp = self
            .agent
            .get(format!("{}{path}", self.base))
            .call()
            .unwrap();
        let status = resp.status().as_u16();
        let text = resp.body_mut().read_to_string().unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("GET {path}: {text:?}: {e}")),
        )
    }

    pub fn init(&self, wasm: &[u8]) -> (u16, Value) {
        self.init_with(wasm, "main", Value::Null)
    }

    pub fn init_with(&self, wasm: &[u8], main: &str, env: Value) -> (u16, Value) {
        self.post("/init", &init_body(wasm, main, env))
    }

    /// Initialise and insist on success.
    pub fn init_ok(&self, wasm: &[u8]) {
        let (status, body) = self.init(wasm);
        assert_eq!(status, 200, "init failed: {body}");
    }

    pub fn run(&self, value: Value) -> (u16, Value) {
        self.post("/run", &json!({ "value": value }))
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Wait (at most `timeout`) for the process to exit by itself; returns
    /// its exit code and everything it wrote.
    pub fn wait_exit(mut self, timeout: Duration) -> (Option<i32>, Streams) {
        let deadline = Instant::now() + timeout;
        let code = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status.code();
            }
            assert!(Instant::now() < deadline, "ow-executor did not exit");
            std::thread::sleep(Duration::from_millis(20));
        };
        (code, self.stop())
    }

    /// The container's name, when the executor runs in `OW_TEST_IMAGE`.
    pub fn container(&self) -> Option<&str> {
        self.container.as_deref()
    }

    /// Stop the process and return everything it wrote.
    pub fn stop(mut self) -> Streams {
        self.stop_container();
        let _ = self.child.kill();
        let _ = self.child.wait();
        for reader in self.readers.drain(..) {
            reader.join().unwrap();
        }
        let text = |b: &Arc<Mutex<Vec<u8>>>| String::from_utf8(b.lock().unwrap().clone()).unwrap();
        Streams {
            stdout: text(&self.stdout),
            stderr: text(&self.stderr),
        }
    }
}

impl TestApp {
    /// `podman stop` the container, if any (SIGTERM: it exits 0 and
    /// `podman run` with it); killing `podman run` alone would leave it.
    fn stop_container(&mut self) {
        if let Some(name) = self.container.take() {
            let _ = Command::new("podman")
                .args(["stop", "--time", "10", &name])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.stop_container();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An SDK module in the text format whose entry point `main` runs `body`
/// (which must leave an i64 on the stack). `ow_alloc` is a bump allocator
/// from 4096; data at 16.. may be set with `data`.
pub fn sdk_wat(data: &str, body: &str) -> Vec<u8> {
    wat::parse_str(format!(
        r#"(module
          (memory (export "memory") 1)
          (global $bump (mut i32) (i32.const 4096))
          (func (export "ow_alloc") (param $n i32) (result i32)
            (local $p i32)
            (local.set $p (global.get $bump))
            (global.set $bump (i32.add (global.get $bump) (local.get $n)))
            (local.get $p))
          (data (i32.const 16) "{data}")
          (func (export "main") (param $ptr i32) (param $len i32) (result i64) {body}))"#
    ))
    .unwrap()
}

/// `(ptr << 32) | len` as the WAT constant an SDK entry returns.
pub fn packed(ptr: u32, len: u32) -> String {
    format!(
        "(i64.const {})",
        ((u64::from(ptr) << 32) | u64::from(len)) as i64
    )
}

/// /init `wasm` (entry `main`, no env) as container `container`; must succeed.
pub fn init_at(app: &TestApp, container: &str, wasm: &[u8]) {
    let (status, body) = app.post(
        &format!("/{container}/init"),
        &init_body(wasm, "main", Value::Null),
    );
    assert_eq!(status, 200, "{container}: {body}");
}

/// /run container `container` with `params`.
pub fn run_at(app: &TestApp, container: &str, params: Value) -> (u16, Value) {
    app.post(&format!("/{container}/run"), &json!({ "value": params }))
}

/// The value of the metric `name` (no labels) from `GET /metrics`.
pub fn metric(app: &TestApp, name: &str) -> Option<f64> {
    app.get_text("/metrics").lines().find_map(|line| {
        let (key, value) = line.split_once(' ')?;
        (key == name).then(|| value.trim().parse().ok()).flatten()
    })
}

/// Wait (polling /metrics, at most 20 s) until `n` activations are in flight.
pub fn await_in_flight(app: &TestApp, n: u64) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while metric(app, "ow_activations_in_flight") != Some(n as f64) {
        assert!(Instant::now() < deadline, "never {n} activations in flight");
        std::thread::sleep(Duration::from_millis(10));
    }
}
