//! CWASI's workflows: a payload handed from action to action, sequential
//! (A -> B), fan-out (1 -> k) and fan-in (k -> 1), on each data path of
//! chained calls (`ow_host_v1.call`): embedded, local and networked; beside
//! what platforms do today (an HTTP call carrying a key, the payload
//! through Redis) and the same bytes over plain loopback HTTP, no wasm.
//!
//! Each figure is the client-side latency of one `/run` of the root action
//! (wasmtime). After each workflow the executor's `ow_calls_total{path}`
//! must have grown by exactly the calls made, on the intended path only:
//! a misrouted call fails the scenario.

use crate::state::Redis;
use crate::stats::{Summary, summarize};
use crate::{Server, agent, init_body_with, run_body};
use anyhow::{Context as _, bail};
use base64::Engine as _;
use serde::Serialize;
use serde_json::{Value, json};
use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Barrier, Mutex};
use std::time::{Duration, Instant};

const MIB: usize = 1024 * 1024;
/// Results of `payload_make` (2 MiB and its JSON) must fit, on the
/// callee's executor and, for a networked call, on the caller's.
const RESULT_BYTES: &str = "4194304";
/// The peer's /function body limit: 100 MiB of params must fit.
const RUN_BYTES: &str = "268435456";
/// A state value of 100 MiB must fit (HTTP + Redis).
const STATE_BYTES: &str = "134217728";
/// The callees' container ids (local) and function names (networked).
const EMBED: &str = "sink,make";
/// The `payload_via_state` function on the peer.
const VIA_STATE: &str = "state_peer";
/// `{"data":"` and `"}` around the x's of a payload.
const JSON_OVERHEAD: usize = 11;

/// CWASI's published figures, milliseconds: C. Marcelino and S. Nastic,
/// "CWASI: A WebAssembly Runtime Shim for Inter-function Communication in
/// the Serverless Edge-Cloud Continuum", IEEE/ACM SEC 2023 (WasmEdge on an
/// Intel i7, 2 MB and 100 MB payloads).
pub mod cwasi {
    pub const SEQUENTIAL_2MB: f64 = 5.1;
    pub const SEQUENTIAL_100MB: f64 = 145.0;
    /// Their fan-out figures range over these.
    pub const FAN_OUT_2MB: (f64, f64) = (4.6, 4.8);
    pub const FAN_IN_2MB: f64 = 2.9;
    /// The same workflows on OpenFaaS (HTTP between functions).
    pub const OPENFAAS_SEQUENTIAL_2MB: f64 = 23.8;
    pub const OPENFAAS_SEQUENTIAL_100MB: f64 = 367.0;
    pub const OPENFAAS_FAN_OUT_2MB: f64 = 16.9;
    pub const OPENFAAS_FAN_IN_2MB: f64 = 7.8;
    /// WasmEdge functions passing the payload through remote storage.
    pub const REMOTE_STORAGE_SEQUENTIAL_2MB: f64 = 35.7;
    pub const REMOTE_STORAGE_SEQUENTIAL_100MB: f64 = 4600.0;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Shape {
    Sequential,
    FanOut,
    FanIn,
}

impl Shape {
    fn name(self) -> &'static str {
        match self {
            Shape::Sequential => "sequential",
            Shape::FanOut => "fan-out",
            Shape::FanIn => "fan-in",
        }
    }
}

/// One workflow: its shape, payload size and degree (callees or producers).
#[derive(Debug, Clone, Copy)]
struct Case {
    shape: Shape,
    bytes: usize,
    degree: usize,
}

impl Case {
    fn size(&self) -> String {
        format!("{} MiB", self.bytes / MIB)
    }

    /// Its label within its shape: the size, or the degree.
    fn group(&self) -> String {
        match self.shape {
            Shape::Sequential => self.size(),
            Shape::FanOut => format!("1 -> {}", self.degree),
            Shape::FanIn => format!("{} -> 1", self.degree),
        }
    }

    /// `sequential 2 MiB`, `fan-out 1 -> 10, 2 MiB`.
    fn title(&self) -> String {
        match self.shape {
            Shape::Sequential => format!("sequential {}", self.size()),
            shape => format!("{} {}, {}", shape.name(), self.group(), self.size()),
        }
    }

    /// CWASI's figure for it (low, high), ms.
    fn cwasi(&self) -> Option<(f64, f64)> {
        let one = |v| Some((v, v));
        match (self.shape, self.bytes / MIB) {
            (Shape::Sequential, 2) => one(cwasi::SEQUENTIAL_2MB),
            (Shape::Sequential, 100) => one(cwasi::SEQUENTIAL_100MB),
            (Shape::FanOut, 2) => Some(cwasi::FAN_OUT_2MB),
            (Shape::FanIn, 2) => one(cwasi::FAN_IN_2MB),
            _ => None,
        }
    }
}

/// How a payload travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Route {
    Embedded,
    Local,
    Networked,
    /// HTTP + Redis: `payload_via_state` on the networked path.
    ViaRedis,
    /// Plain HTTP on loopback, no wasm.
    Loopback,
    /// `payload_source` with no callee: the root /run and the payload build.
    BuildOnly,
}

impl Route {
    const ALL: [Route; 6] = [
        Route::Embedded,
        Route::Local,
        Route::Networked,
        Route::ViaRedis,
        Route::Loopback,
        Route::BuildOnly,
    ];

    fn name(self) -> &'static str {
        match self {
            Route::Embedded => "embedded",
            Route::Local => "local",
            Route::Networked => "networked",
            Route::ViaRedis => "HTTP + Redis",
            Route::Loopback => "loopback HTTP, no wasm",
            Route::BuildOnly => "payload build only, no call",
        }
    }

    /// The `path` label its calls are counted under, if it makes calls.
    fn metric(self) -> Option<&'static str> {
        match self {
            Route::Embedded => Some("embedded"),
            Route::Local => Some("local"),
            Route::Networked | Route::ViaRedis => Some("networked"),
            Route::Loopback | Route::BuildOnly => None,
        }
    }
}

#[derive(Debug, Serialize)]
pub struct Row {
    pub workflow: Shape,
    /// Payload bytes (the x's; the JSON around them adds 11).
    pub bytes: usize,
    /// Callees (sequential, fan-out) or producers (fan-in).
    pub degree: usize,
    pub path: String,
    /// Client-side latency of one /run of the root (loopback: of one round
    /// of `degree` concurrent transfers).
    pub latency: Summary,
    /// Calls per run, checked on the executor's `ow_calls_total{path}`.
    pub calls_per_run: usize,
    /// CWASI's figure for this workflow (low, high), ms.
    pub cwasi_ms: Option<(f64, f64)>,
}

#[derive(Debug, Serialize)]
pub struct TargetRow {
    pub what: String,
    pub target: String,
    pub measured: String,
    pub met: bool,
}

#[derive(Debug, Serialize)]
pub struct WorkflowResults {
    pub rows: Vec<Row>,
    pub targets: Vec<TargetRow>,
    /// What was left out, and why.
    pub skipped: Vec<String>,
}

/// `ow_calls_total{path=...}` per path label on `base`'s /metrics.
fn calls(base: &str) -> anyhow::Result<[f64; 3]> {
    let text = agent()
        .get(format!("{base}/metrics"))
        .call()?
        .body_mut()
        .read_to_string()?;
    Ok(["embedded", "local", "networked"].map(|path| {
        let prefix = format!("ow_calls_total{{path=\"{path}\"}} ");
        text.lines()
            .find_map(|l| l.strip_prefix(prefix.as_str()))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0.0)
    }))
}

/// POST `body`: the time to the whole answer, and the answer parsed.
fn timed_post(agent: &ureq::Agent, url: &str, body: &[u8]) -> anyhow::Result<(Duration, Value)> {
    let (elapsed, text, _) = crate::post_answer(agent, url, body)?;
    Ok((elapsed, serde_json::from_str(&text)?))
}

/// /init `wasm` as container `id` on wasmtime, embedding the callees or not.
fn init(server: &Server, id: &str, wasm: &[u8], embed: bool) -> anyhow::Result<()> {
    let mut env = json!({ "OW_ENGINE": "wasmtime" });
    if embed {
        env["OW_EMBED"] = json!(EMBED);
    }
    crate::post(
        &agent(),
        &format!("{}/{id}/init", server.base),
        &init_body_with(wasm, env),
    )?;
    Ok(())
}

/// Deploy `wasm` as function `name` of namespace `guest` on the peer.
fn deploy(peer: &Server, name: &str, wasm: &[u8]) -> anyhow::Result<()> {
    let code = base64::engine::general_purpose::STANDARD.encode(wasm);
    let action = json!({ "exec": { "kind": "wasm:0.1", "code": code } }).to_string();
    let url = format!("{}/api/v1/namespaces/guest/actions/{name}", peer.base);
    let mut resp = agent()
        .put(&url)
        .header("Content-Type", "application/json")
        .send(action.as_bytes())?;
    if resp.status() != 200 {
        bail!(
            "PUT {url}: {} {}",
            resp.status(),
            resp.body_mut().read_to_string()?
        );
    }
    Ok(())
}

/// `{"data":"xx..x"}` with `n` x's.
fn payload(n: usize) -> Vec<u8> {
    let mut buf = Vec::with_capacity(n + JSON_OVERHEAD);
    buf.extend_from_slice(br#"{"data":""#);
    buf.resize(9 + n, b'x');
    buf.extend_from_slice(br#""}"#);
    buf
}

/// A plain HTTP/1.1 server on loopback, no wasm, a thread per connection:
/// `POST /sink` reads the body and answers `{"bytes": len}`, `POST
/// /make/{n}` answers `{"data":"xx..x"}` with `n` x's. Each connection
/// reuses its buffers: what is timed is the transfer, not page faults on
/// fresh memory (which cost this VM about 1 ms per 2 MiB).
struct Loopback {
    base: String,
    port: u16,
    stop: Arc<AtomicBool>,
}

impl Loopback {
    fn start() -> anyhow::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let port = listener.local_addr()?.port();
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = Arc::clone(&stop);
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                if stopped.load(Ordering::Relaxed) {
                    break;
                }
                if let Ok(stream) = stream {
                    std::thread::spawn(move || Self::serve(stream));
                }
            }
        });
        Ok(Self {
            base: format!("http://127.0.0.1:{port}"),
            port,
            stop,
        })
    }

    /// Requests of one keep-alive connection, until the client closes it.
    fn serve(stream: TcpStream) -> std::io::Result<()> {
        stream.set_nodelay(true)?;
        let mut writer = stream.try_clone()?;
        let mut reader = BufReader::with_capacity(256 * 1024, stream);
        let (mut line, mut body, mut made) = (String::new(), Vec::new(), Vec::new());
        loop {
            line.clear();
            if reader.read_line(&mut line)? == 0 {
                return Ok(());
            }
            let target = line.split_whitespace().nth(1).unwrap_or("").to_owned();
            let mut len = 0;
            loop {
                line.clear();
                if reader.read_line(&mut line)? == 0 {
                    return Ok(());
                }
                let header = line.trim_end();
                if header.is_empty() {
                    break;
                }
                if let Some((name, value)) = header.split_once(':')
                    && name.eq_ignore_ascii_case("content-length")
                {
                    len = value.trim().parse().unwrap_or(0);
                }
            }
            body.resize(len, 0);
            reader.read_exact(&mut body)?;
            let small;
            let answer = match target.strip_prefix("/make/") {
                Some(n) => {
                    let n = n.parse().unwrap_or(0);
                    if made.len() != n + JSON_OVERHEAD {
                        made = payload(n);
                    }
                    &made
                }
                None => {
                    small = format!(r#"{{"bytes":{len}}}"#).into_bytes();
                    &small
                }
            };
            write!(
                writer,
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
                answer.len()
            )?;
            writer.write_all(answer)?;
        }
    }
}

impl Drop for Loopback {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // Wakes the accepting thread, which then sees the flag.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

/// A transfer on a client's connection, with its reused answer buffer.
type Transfer<'a> = dyn Fn(&ureq::Agent, &mut Vec<u8>) -> anyhow::Result<()> + Sync + 'a;

/// `warmups + reps` rounds of `k` concurrent `transfer`s, each thread on
/// its own keep-alive connection: the wall time of each measured round.
fn rounds(
    k: usize,
    (warmups, reps): (usize, usize),
    transfer: &Transfer<'_>,
) -> anyhow::Result<Vec<Duration>> {
    if k == 1 {
        let (agent, mut buf) = (agent(), Vec::new());
        let mut samples = Vec::new();
        for i in 0..warmups + reps {
            let started = Instant::now();
            transfer(&agent, &mut buf)?;
            if i >= warmups {
                samples.push(started.elapsed());
            }
        }
        return Ok(samples);
    }
    let (start, done) = (Barrier::new(k + 1), Barrier::new(k + 1));
    let failure: Mutex<Option<anyhow::Error>> = Mutex::new(None);
    let mut samples = Vec::new();
    std::thread::scope(|s| {
        for _ in 0..k {
            s.spawn(|| {
                let (agent, mut buf) = (agent(), Vec::new());
                for _ in 0..warmups + reps {
                    start.wait();
                    if let Err(e) = transfer(&agent, &mut buf) {
                        *failure.lock().unwrap_or_else(|e| e.into_inner()) = Some(e);
                    }
                    done.wait();
                }
            });
        }
        for i in 0..warmups + reps {
            start.wait();
            let started = Instant::now();
            done.wait();
            if i >= warmups {
                samples.push(started.elapsed());
            }
        }
    });
    match failure.into_inner().unwrap_or_else(|e| e.into_inner()) {
        Some(e) => Err(e),
        None => Ok(samples),
    }
}

/// The same bytes over plain HTTP: `k` concurrent POSTs of the payload to
/// the sink (sequential, fan-out), or `k` concurrent answers of it (fan-in).
fn loopback(sink: &Loopback, case: Case, runs: (usize, usize)) -> anyhow::Result<Vec<Duration>> {
    let n = case.bytes;
    let (url, body) = match case.shape {
        Shape::FanIn => (format!("{}/make/{n}", sink.base), b"{}".to_vec()),
        _ => (format!("{}/sink", sink.base), payload(n)),
    };
    let expected = match case.shape {
        Shape::FanIn => n + JSON_OVERHEAD,
        _ => format!(r#"{{"bytes":{}}}"#, n + JSON_OVERHEAD).len(),
    };
    rounds(case.degree, runs, &|agent, buf| {
        let mut resp = agent
            .post(&url)
            .header("Content-Type", "application/json")
            .send(&body[..])?;
        buf.clear();
        let len = resp
            .body_mut()
            .with_config()
            .limit(u64::MAX)
            .reader()
            .read_to_end(buf)?;
        if resp.status() != 200 || len != expected {
            bail!("POST {url}: {} with {len} bytes", resp.status());
        }
        Ok(())
    })
}

/// The executors of the scenario.
struct Setup {
    /// Callers and callees as containers: embedded and local paths.
    local: Server,
    /// Callers only, `--peer` the function store: networked path.
    caller: Server,
    /// `sink`, `make` and the state peer as functions.
    _peer: Server,
    _store: tempfile::TempDir,
    /// Both caller and peer use it (`None` without redis-server).
    redis: Option<Redis>,
    sink: Loopback,
}

impl Setup {
    fn start(exe: &Path) -> anyhow::Result<Self> {
        let redis = Redis::start()?;
        let redis_url = redis
            .as_ref()
            .map(|r| format!("redis://127.0.0.1:{}", r.port));
        let mut state_flags = Vec::new();
        if let Some(url) = &redis_url {
            state_flags = vec![
                "--state-redis",
                url.as_str(),
                "--state-max-value-bytes",
                STATE_BYTES,
                "--state-op-timeout",
                "30s",
            ];
        }
        let local = Server::start(exe, &["--max-result-bytes", RESULT_BYTES])?;
        for (id, wasm, embed) in [
            ("source-embed", ow_test_modules::PAYLOAD_SOURCE, true),
            ("source", ow_test_modules::PAYLOAD_SOURCE, false),
            ("fan-in-embed", ow_test_modules::PAYLOAD_FAN_IN, true),
            ("fan-in", ow_test_modules::PAYLOAD_FAN_IN, false),
            ("sink", ow_test_modules::PAYLOAD_SINK, false),
            ("make", ow_test_modules::PAYLOAD_MAKE, false),
        ] {
            init(&local, id, wasm, embed)?;
        }
        let store = tempfile::tempdir()?;
        let store_dir = store.path().join("store");
        let mut peer_flags = vec![
            "--store-dir",
            store_dir.to_str().context("store path")?,
            "--no-auth",
            "--max-run-bytes",
            RUN_BYTES,
            "--max-result-bytes",
            RESULT_BYTES,
        ];
        peer_flags.extend(&state_flags);
        let peer = Server::start(exe, &peer_flags)?;
        for (name, wasm) in [
            ("sink", ow_test_modules::PAYLOAD_SINK),
            ("make", ow_test_modules::PAYLOAD_MAKE),
            (VIA_STATE, ow_test_modules::PAYLOAD_VIA_STATE),
        ] {
            deploy(&peer, name, wasm)?;
        }
        let mut caller_flags = vec![
            "--peer",
            peer.base.as_str(),
            "--max-result-bytes",
            RESULT_BYTES,
        ];
        caller_flags.extend(&state_flags);
        let caller = Server::start(exe, &caller_flags)?;
        for (id, wasm) in [
            ("source", ow_test_modules::PAYLOAD_SOURCE),
            ("fan-in", ow_test_modules::PAYLOAD_FAN_IN),
            ("via-state", ow_test_modules::PAYLOAD_VIA_STATE),
        ] {
            init(&caller, id, wasm, false)?;
        }
        Ok(Self {
            local,
            caller,
            _peer: peer,
            _store: store,
            redis,
            sink: Loopback::start()?,
        })
    }

    /// The executor, root container and params of `case` on `route`, and
    /// the root's expected answer.
    fn root(&self, case: Case, route: Route) -> (&Server, &'static str, Value, Value) {
        let (n, k) = (case.bytes, case.degree);
        let sink_answer = format!(r#"{{"bytes":{}}}"#, n + JSON_OVERHEAD).len();
        let server = match route {
            Route::Networked | Route::ViaRedis => &self.caller,
            _ => &self.local,
        };
        let embed = route == Route::Embedded;
        match (case.shape, route) {
            (Shape::FanIn, Route::ViaRedis) => (
                server,
                "via-state",
                json!({"role": "gather", "bytes": n, "sources": k, "producer": VIA_STATE}),
                json!({ "received": k * n }),
            ),
            (_, Route::ViaRedis) => (
                server,
                "via-state",
                json!({"role": "put", "bytes": n, "callee": VIA_STATE, "fan_out": k}),
                json!({ "bytes": n, "calls": k }),
            ),
            (Shape::FanIn, _) => (
                server,
                if embed { "fan-in-embed" } else { "fan-in" },
                json!({"bytes": n, "sources": k, "producer": "make"}),
                json!({ "received": k * (n + JSON_OVERHEAD) }),
            ),
            (_, Route::BuildOnly) => (
                server,
                "source",
                json!({"bytes": n, "callee": "sink", "fan_out": 0}),
                json!({ "bytes": n, "calls": 0, "results_bytes": 0 }),
            ),
            _ => (
                server,
                if embed { "source-embed" } else { "source" },
                json!({"bytes": n, "callee": "sink", "fan_out": k}),
                json!({ "bytes": n, "calls": k, "results_bytes": k * sink_answer }),
            ),
        }
    }

    /// Sequential /runs of the root of `case` on `route`: their latencies,
    /// each answer checked, and the calls counted on the intended path.
    fn chain(
        &self,
        case: Case,
        route: Route,
        (warmups, reps): (usize, usize),
    ) -> anyhow::Result<Vec<Duration>> {
        static ACTIVATION: AtomicU64 = AtomicU64::new(1);
        let (server, root, params, expected) = self.root(case, route);
        let url = format!("{}/{root}/run", server.base);
        let agent = agent();
        let before = calls(&server.base)?;
        let mut samples = Vec::new();
        for i in 0..warmups + reps {
            let body = match route {
                // The state is the namespace's: the peer's functions are
                // `guest`'s. A unique activation id keys the payload.
                Route::ViaRedis => serde_json::to_vec(&json!({
                    "value": params,
                    "namespace": "guest",
                    "activation_id": format!("{:032x}", ACTIVATION.fetch_add(1, Ordering::Relaxed)),
                }))?,
                _ => run_body(params.clone()),
            };
            let (elapsed, answer) = timed_post(&agent, &url, &body)?;
            if answer != expected {
                bail!(
                    "{root} on the {} path: {answer}, expected {expected}",
                    route.name()
                );
            }
            if i >= warmups {
                samples.push(elapsed);
            }
        }
        let after = calls(&server.base)?;
        let calls_per_run = if route == Route::BuildOnly {
            0
        } else {
            case.degree
        };
        for (i, path) in ["embedded", "local", "networked"].into_iter().enumerate() {
            let want = match route.metric() == Some(path) {
                true => (calls_per_run * (warmups + reps)) as f64,
                false => 0.0,
            };
            let counted = after[i] - before[i];
            if counted != want {
                bail!(
                    "{} {} on the {} path: {counted} {path} calls counted, expected {want}",
                    case.shape.name(),
                    case.group(),
                    route.name()
                );
            }
        }
        Ok(samples)
    }
}

/// Every workflow on every route; `quick`: 3 repetitions, no 100 MiB and
/// no 100-way workflow.
pub fn run(exe: &Path, quick: bool) -> anyhow::Result<WorkflowResults> {
    let warmups = 3;
    let mut cases = vec![
        Case {
            shape: Shape::Sequential,
            bytes: 2 * MIB,
            degree: 1,
        },
        Case {
            shape: Shape::Sequential,
            bytes: 100 * MIB,
            degree: 1,
        },
        Case {
            shape: Shape::FanOut,
            bytes: 2 * MIB,
            degree: 10,
        },
        Case {
            shape: Shape::FanOut,
            bytes: 2 * MIB,
            degree: 100,
        },
        Case {
            shape: Shape::FanIn,
            bytes: 2 * MIB,
            degree: 10,
        },
        Case {
            shape: Shape::FanIn,
            bytes: 2 * MIB,
            degree: 100,
        },
    ];
    let mut skipped = Vec::new();
    if quick {
        cases.retain(|c| c.bytes < 100 * MIB && c.degree < 100);
        skipped.push("quick run: no 100 MiB and no 100-way workflow, 3 repetitions".to_owned());
    }
    let setup = Setup::start(exe)?;
    if setup.redis.is_none() {
        skipped.push("redis-server is not installed: no HTTP + Redis rows".to_owned());
    }
    let mut rows = Vec::new();
    for case in cases {
        let reps = match (quick, case.bytes >= 100 * MIB) {
            (true, _) => 3,
            (false, true) => 8,
            (false, false) => 30,
        };
        for route in Route::ALL {
            let samples = match route {
                Route::ViaRedis if setup.redis.is_none() => continue,
                Route::BuildOnly if case.shape != Shape::Sequential => continue,
                Route::Loopback => loopback(&setup.sink, case, (warmups, reps))?,
                _ => setup.chain(case, route, (warmups, reps))?,
            };
            let row = Row {
                workflow: case.shape,
                bytes: case.bytes,
                degree: case.degree,
                path: route.name().to_owned(),
                latency: summarize(&samples),
                calls_per_run: if route == Route::BuildOnly {
                    0
                } else {
                    case.degree
                },
                cwasi_ms: case.cwasi(),
            };
            eprintln!(
                "workflow {} {} {}: p50 {:.3} ms, p90 {:.3} ms",
                case.shape.name(),
                case.group(),
                row.path,
                row.latency.p50_us / 1e3,
                row.latency.p90_us / 1e3
            );
            rows.push(row);
        }
    }
    let targets = targets(&rows);
    Ok(WorkflowResults {
        rows,
        targets,
        skipped,
    })
}

fn p50_ms(rows: &[Row], shape: Shape, bytes: usize, degree: usize, path: Route) -> Option<f64> {
    rows.iter()
        .find(|r| {
            r.workflow == shape && r.bytes == bytes && r.degree == degree && r.path == path.name()
        })
        .map(|r| r.latency.p50_us / 1e3)
}

/// The targets, each met or not, for the workflows that were run.
fn targets(rows: &[Row]) -> Vec<TargetRow> {
    let mut out = Vec::new();
    for (shape, bytes, degree, limit) in [
        (Shape::Sequential, 2 * MIB, 1, 0.5),
        (Shape::Sequential, 100 * MIB, 1, 15.0),
        (Shape::FanOut, 2 * MIB, 10, 0.45),
    ] {
        let best = [Route::Embedded, Route::Local]
            .into_iter()
            .filter_map(|r| Some((p50_ms(rows, shape, bytes, degree, r)?, r)))
            .min_by(|a, b| a.0.total_cmp(&b.0));
        if let Some((ms, route)) = best {
            let case = Case {
                shape,
                bytes,
                degree,
            };
            out.push(TargetRow {
                what: format!("{}, embedded or local, p50", case.title()),
                target: format!("<= {limit} ms"),
                measured: format!("{ms:.3} ms ({})", route.name()),
                met: ms <= limit,
            });
        }
    }
    let mut seen = Vec::new();
    for r in rows {
        let key = (r.workflow, r.bytes, r.degree);
        if seen.contains(&key) {
            continue;
        }
        seen.push(key);
        let (Some(net), Some(http)) = (
            p50_ms(rows, r.workflow, r.bytes, r.degree, Route::Networked),
            p50_ms(rows, r.workflow, r.bytes, r.degree, Route::Loopback),
        ) else {
            continue;
        };
        let case = Case {
            shape: r.workflow,
            bytes: r.bytes,
            degree: r.degree,
        };
        out.push(TargetRow {
            what: format!("{}: networked vs loopback HTTP, p50", case.title()),
            target: "<= 1.5x".into(),
            measured: format!("{:.2}x ({net:.3} vs {http:.3} ms)", net / http),
            met: net <= 1.5 * http,
        });
    }
    out
}

/// `4.6` or `4.6-4.8`, each with `digits` decimals.
fn range((low, high): (f64, f64), digits: usize) -> String {
    let (low, high) = (format!("{low:.digits$}"), format!("{high:.digits$}"));
    match low == high {
        true => low,
        false => format!("{low}-{high}"),
    }
}

pub fn report(r: &WorkflowResults) -> String {
    let mut md = String::from(
        "\n### CWASI's workflows: one /run of the root action (wasmtime), client-side\n\n\
         | workflow | size | path | p50 ms | p90 ms | req/s (1000/p50) | CWASI ms | CWASI/ours |\n\
         |---|---|---|---|---|---|---|---|\n",
    );
    for row in &r.rows {
        let case = Case {
            shape: row.workflow,
            bytes: row.bytes,
            degree: row.degree,
        };
        let workflow = match row.workflow {
            Shape::Sequential => "sequential".to_owned(),
            _ => format!("{} {}", row.workflow.name(), case.group()),
        };
        let p50 = row.latency.p50_us / 1e3;
        let (cwasi, ratio) = match row.cwasi_ms {
            Some(c) => {
                let digits = if c.0 / p50 < 1.0 { 2 } else { 1 };
                (range(c, 1), range((c.0 / p50, c.1 / p50), digits) + "x")
            }
            None => ("-".into(), "-".into()),
        };
        md.push_str(&format!(
            "| {workflow} | {} | {} | {p50:.3} | {:.3} | {:.0} | {cwasi} | {ratio} |\n",
            case.size(),
            row.path,
            row.latency.p90_us / 1e3,
            1000.0 / p50,
        ));
    }
    md.push_str(&format!(
        "\nCWASI's paper, same workflows: OpenFaaS {} / {} ms sequential 2 / 100 MB, {} ms fan-out, {} ms fan-in; \
         WasmEdge through remote storage {} ms / {} s sequential. \
         Loopback HTTP: one round of `degree` concurrent transfers, nothing else.\n",
        cwasi::OPENFAAS_SEQUENTIAL_2MB,
        cwasi::OPENFAAS_SEQUENTIAL_100MB,
        cwasi::OPENFAAS_FAN_OUT_2MB,
        cwasi::OPENFAAS_FAN_IN_2MB,
        cwasi::REMOTE_STORAGE_SEQUENTIAL_2MB,
        cwasi::REMOTE_STORAGE_SEQUENTIAL_100MB / 1e3,
    ));
    md.push_str("\n| target | limit | measured | met |\n|---|---|---|---|\n");
    for t in &r.targets {
        md.push_str(&format!(
            "| {} | {} | {} | {} |\n",
            t.what,
            t.target,
            t.measured,
            if t.met { "yes" } else { "**no**" }
        ));
    }
    for s in &r.skipped {
        md.push_str(&format!("\n({s})\n"));
    }
    md
}

/// One bar chart per workflow shape: `workflow-<shape>.svg` in `out`.
pub fn plot(out: &Path, r: &WorkflowResults) -> anyhow::Result<()> {
    for shape in [Shape::Sequential, Shape::FanOut, Shape::FanIn] {
        let rows: Vec<&Row> = r.rows.iter().filter(|row| row.workflow == shape).collect();
        if rows.is_empty() {
            continue;
        }
        let mut groups: Vec<(usize, usize)> =
            rows.iter().map(|row| (row.bytes, row.degree)).collect();
        groups.dedup();
        let labels: Vec<String> = groups
            .iter()
            .map(|&(bytes, degree)| {
                Case {
                    shape,
                    bytes,
                    degree,
                }
                .group()
            })
            .collect();
        let mut series: Vec<(String, Vec<Option<f64>>)> = Route::ALL
            .iter()
            .map(|route| {
                let values = groups
                    .iter()
                    .map(|&(bytes, degree)| p50_ms(&r.rows, shape, bytes, degree, *route))
                    .collect();
                (route.name().to_owned(), values)
            })
            .filter(|(_, values): &(String, Vec<Option<f64>>)| values.iter().any(Option::is_some))
            .collect();
        series.push((
            "CWASI (paper, WasmEdge, i7)".to_owned(),
            groups
                .iter()
                .map(|&(bytes, degree)| {
                    Case {
                        shape,
                        bytes,
                        degree,
                    }
                    .cwasi()
                    .map(|c| (c.0 + c.1) / 2.0)
                })
                .collect(),
        ));
        crate::plots::bars(
            &out.join(format!("workflow-{}.svg", shape.name())),
            &format!("{} workflow: one /run of the root, p50", shape.name()),
            "ms (log scale)",
            &labels,
            &series,
        )?;
    }
    Ok(())
}
