//! `ow-bench`: starts the executor (and the baselines), runs every scenario,
//! and writes `results.json`, `results.md` and SVG plots.
//!
//! Every figure is measured in the same run on the same machine, so the
//! ratios against the baselines mean something even on a noisy machine.

mod functions;
mod plots;
mod state;
mod stats;
mod workflows;

use anyhow::{Context as _, bail};
use base64::Engine as _;
use clap::Parser;
use ow_common::{Limits, WasmRuntime};
use serde::Serialize;
use serde_json::{Value, json};
use stats::{Summary, summarize};
use std::io::{BufRead as _, BufReader};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

const KEY: &str = "ow-bench-artifact-key-0123456789abcdef";
const ENGINES: [&str; 3] = ["wasmtime", "wasmer", "wamr"];

/// Benchmarks of the OpenWhisk wasm executor.
#[derive(Debug, Parser)]
struct Cli {
    /// A one-minute smoke run (fewer repetitions, fewer scenarios' steps).
    #[arg(long)]
    quick: bool,
    /// Output directory (default: bench-results/<date>[-quick]).
    #[arg(long)]
    out: Option<PathBuf>,
    /// The executor binary.
    #[arg(long, default_value = "target/release/ow-executor")]
    executor: PathBuf,
    /// The native `add` binary (the process-per-activation baseline).
    #[arg(long, default_value = "target/release/native-add")]
    native_add: PathBuf,
    /// The native `add` HTTP server on the executor's HTTP stack (the ceiling).
    #[arg(long, default_value = "target/release/native-server")]
    native_server: PathBuf,
    /// Only the state and snapshot scenarios (ABI version 2), printed.
    #[arg(long)]
    only_state: bool,
    /// Only the function store scenarios (`--store-dir`), printed.
    #[arg(long)]
    only_functions: bool,
    /// Only CWASI's workflows (chained calls with payloads), printed and
    /// written to the output directory.
    #[arg(long)]
    only_workflows: bool,
}

/// How much of everything to do.
struct Plan {
    cold_reps: usize,
    /// Fresh executor processes per engine for the first-/init figures.
    fresh_reps: usize,
    /// Rounds of `wrk` over every target, and seconds per run.
    wrk_rounds: usize,
    wrk_secs: u64,
    warm_runs: usize,
    concurrency: Vec<usize>,
    step: Duration,
    throughput_engines: Vec<&'static str>,
    density: usize,
    blocking: usize,
    hash_iterations: u64,
    hash_reps: usize,
    process_reps: usize,
}

impl Plan {
    fn new(quick: bool) -> Self {
        if quick {
            Self {
                cold_reps: 20,
                fresh_reps: 5,
                wrk_rounds: 1,
                wrk_secs: 2,
                warm_runs: 2000,
                concurrency: vec![1, 4, 16],
                step: Duration::from_secs(2),
                throughput_engines: vec!["wasmtime"],
                density: 200,
                blocking: 200,
                hash_iterations: 20_000,
                hash_reps: 3,
                process_reps: 10,
            }
        } else {
            Self {
                cold_reps: 100,
                fresh_reps: 30,
                wrk_rounds: 5,
                wrk_secs: 5,
                warm_runs: 20_000,
                concurrency: vec![1, 2, 4, 8, 16, 32],
                step: Duration::from_secs(5),
                throughput_engines: ENGINES.to_vec(),
                density: 2000,
                blocking: 1000,
                hash_iterations: 100_000,
                hash_reps: 5,
                process_reps: 30,
            }
        }
    }
}

#[derive(Debug, Serialize)]
struct Results {
    date: String,
    quick: bool,
    machine: String,
    cold_start: Vec<ColdRow>,
    fresh: Vec<FreshRow>,
    /// `None` when wrk is not installed.
    wrk: Option<Vec<WrkRow>>,
    warm: Vec<WarmRow>,
    throughput: Vec<ThroughputRow>,
    baselines: Baselines,
    density: Vec<DensityRow>,
    blocking: BlockingRow,
    cpu: Vec<CpuRow>,
    state: state::StateResults,
    functions: functions::FunctionResults,
    workflows: workflows::WorkflowResults,
}

#[derive(Debug, Serialize)]
struct ColdRow {
    engine: String,
    artifact: String,
    path: String,
    init: Summary,
    /// Mean /init time inside the executor (its /metrics), microseconds.
    server_init_mean_us: f64,
    first_run: Summary,
    cold_start: Summary,
}

/// The first /init (+ first /run) of a freshly started executor process.
#[derive(Debug, Serialize)]
struct FreshRow {
    engine: String,
    /// Client-side, by curl (time_total): the first /init, the first /run, both.
    curl_init: Summary,
    curl_run: Summary,
    curl_cold_start: Summary,
    /// Server-side (the executor's /init and /run histograms): first /init + first /run.
    server_cold_start: Summary,
    /// Server-side /init of a second, distinct action in the same process.
    server_second_init: Summary,
    server_first_init: Summary,
}

/// One target under `wrk -t2 -c16`, median of the rounds.
#[derive(Debug, Serialize)]
struct WrkRow {
    target: String,
    requests_per_s: f64,
    rounds: Vec<f64>,
    p50_us: f64,
    p99_us: f64,
}

#[derive(Debug, Serialize)]
struct WarmRow {
    engine: String,
    run: Summary,
    /// Mean /run time inside the executor (its /metrics), microseconds.
    server_mean_us: f64,
    #[serde(skip)]
    cdf: Vec<(f64, f64)>,
}

#[derive(Debug, Serialize)]
struct ThroughputRow {
    target: String,
    clients: usize,
    requests_per_s: f64,
    latency: Summary,
}

#[derive(Debug, Serialize)]
struct Baselines {
    native_process_per_activation: Summary,
    /// `None` when Node.js is not installed.
    node_cold_start: Option<Summary>,
    /// `None` when Node.js is not installed.
    node_warm_run: Option<Summary>,
}

#[derive(Debug, Serialize)]
struct DensityRow {
    engine: String,
    containers: usize,
    rss_before_kb: u64,
    rss_after_kb: u64,
    kb_per_container: f64,
}

#[derive(Debug, Serialize)]
struct BlockingRow {
    engine: String,
    activations: usize,
    sleep_ms: u64,
    wall_ms: f64,
    max_threads: u64,
    succeeded: usize,
}

#[derive(Debug, Serialize)]
struct CpuRow {
    engine: String,
    iterations: u64,
    wasm_ms: f64,
    native_ms: f64,
    native_over_wasm: f64,
}

/// An executor (or any server) process, killed on drop.
struct Server {
    child: Child,
    base: String,
}

impl Server {
    fn start(program: &Path, args: &[&str]) -> anyhow::Result<Self> {
        let port = free_port()?;
        let mut cmd = Command::new(program);
        cmd.args(args)
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        Self::spawn(cmd, port)
    }

    fn spawn(mut cmd: Command, port: u16) -> anyhow::Result<Self> {
        let child = cmd
            .spawn()
            .with_context(|| format!("cannot start {cmd:?}"))?;
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if Instant::now() > deadline {
                bail!("{cmd:?} did not listen on {port}");
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        Ok(Self {
            child,
            base: format!("http://127.0.0.1:{port}"),
        })
    }

    fn status(&self, field: &str) -> u64 {
        std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap_or_default()
            .lines()
            .find_map(|l| l.strip_prefix(field))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or(0)
    }

    fn rss_kb(&self) -> u64 {
        self.status("VmRSS:")
    }

    fn threads(&self) -> u64 {
        self.status("Threads:")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(120)))
        .build()
        .into()
}

/// POST `body`; the time it took, the status, the X-Ow-Init-Path header.
fn post(agent: &ureq::Agent, url: &str, body: &[u8]) -> anyhow::Result<(Duration, u16, String)> {
    let (elapsed, _, path) = post_answer(agent, url, body)?;
    Ok((elapsed, 200, path))
}

/// POST `body`, which must be answered 200: the time to the whole answer,
/// the answer, the X-Ow-Init-Path header.
fn post_answer(
    agent: &ureq::Agent,
    url: &str,
    body: &[u8],
) -> anyhow::Result<(Duration, String, String)> {
    let started = Instant::now();
    let mut resp = agent
        .post(url)
        .header("Content-Type", "application/json")
        .send(body)?;
    let text = resp.body_mut().read_to_string()?;
    let elapsed = started.elapsed();
    let status = resp.status().as_u16();
    let path = resp
        .headers()
        .get("X-Ow-Init-Path")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    if status != 200 {
        bail!("POST {url}: {status} {text}");
    }
    Ok((elapsed, text, path))
}

/// Sum and count of histogram `name` with exactly these labels, from the
/// executor's /metrics.
fn histogram(base: &str, name: &str, labels: &str) -> anyhow::Result<(f64, f64)> {
    let text = agent()
        .get(format!("{base}/metrics"))
        .call()?
        .body_mut()
        .read_to_string()?;
    let value = |suffix: &str| {
        let prefix = format!("{name}_{suffix}{{{labels}}} ");
        text.lines()
            .find_map(|l| l.strip_prefix(prefix.as_str()))
            .and_then(|v| v.trim().parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    Ok((value("sum"), value("count")))
}

/// The value of the unlabelled gauge `name` on the executor's /metrics.
fn gauge(base: &str, name: &str) -> anyhow::Result<f64> {
    let text = agent()
        .get(format!("{base}/metrics"))
        .call()?
        .body_mut()
        .read_to_string()?;
    let prefix = format!("{name} ");
    text.lines()
        .find_map(|l| l.strip_prefix(prefix.as_str()))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .with_context(|| format!("no gauge {name}"))
}

/// Mean of a histogram over an interval, from its sums and counts at both ends.
fn mean_us(before: (f64, f64), after: (f64, f64)) -> f64 {
    let count = after.1 - before.1;
    if count <= 0.0 {
        return f64::NAN;
    }
    (after.0 - before.0) / count * 1e6
}

/// `n` sequential POSTs of `body`: their latencies.
fn sequential(
    agent: &ureq::Agent,
    url: &str,
    body: &[u8],
    n: usize,
) -> anyhow::Result<Vec<Duration>> {
    (0..n)
        .map(|_| post(agent, url, body).map(|r| r.0))
        .collect()
}

fn init_body(code: &[u8], engine: &str) -> Vec<u8> {
    init_body_with(code, json!({ "OW_ENGINE": engine }))
}

fn init_body_with(code: &[u8], env: Value) -> Vec<u8> {
    let code = base64::engine::general_purpose::STANDARD.encode(code);
    serde_json::to_vec(&json!({"value": {
        "name": "bench", "main": "main", "binary": true, "code": code, "env": env
    }}))
    .expect("JSON")
}

fn run_body(params: Value) -> Vec<u8> {
    serde_json::to_vec(&json!({ "value": params })).expect("JSON")
}

/// A signed precompiler zip of `wasm` for the engines that have a precompiled form.
fn signed_zip(wasm: &[u8], only: Option<&str>) -> anyhow::Result<Vec<u8>> {
    let engines: Vec<Box<dyn WasmRuntime>> = vec![
        Box::new(ow_wasmtime::WasmtimeRuntime::new(Limits::default())?),
        Box::new(ow_wasmer::WasmerRuntime::new(Limits::default())?),
    ];
    let refs: Vec<&dyn WasmRuntime> = engines
        .iter()
        .map(|e| e.as_ref())
        .filter(|e| only.is_none_or(|name| e.name() == name))
        .collect();
    let key = ow_artifact::SigningKey::new(KEY.as_bytes()).map_err(anyhow::Error::msg)?;
    Ok(ow_precompiler::package(wasm, &refs, Some(&key))?)
}

/// Cold start = /init of a fresh container + its first /run (`hash`, 1 iteration).
fn cold_start(exe: &Path, plan: &Plan) -> anyhow::Result<Vec<ColdRow>> {
    let zip = signed_zip(ow_test_modules::HASH, None)?;
    // A zip made for one engine (WAMR's holds action.wasm and the manifest).
    let own_zip = |engine: &str| signed_zip(ow_test_modules::HASH, Some(engine));
    let own_zips = [own_zip("wasmtime")?, own_zip("wasmer")?, own_zip("wamr")?];
    let cache = tempfile::tempdir()?;
    let cache_dir = cache.path().to_str().context("cache path")?.to_owned();
    let first = run_body(json!({"input": "abc", "iterations": 1}));
    let mut rows = Vec::new();
    for (artifact, args, code) in [
        ("raw wasm", vec![], ow_test_modules::HASH.to_vec()),
        ("precompiled zip", vec!["--artifact-key", KEY], zip.clone()),
        (
            "precompiled zip, this engine only",
            vec!["--artifact-key", KEY],
            Vec::new(),
        ),
        (
            "raw wasm, warm cache",
            vec!["--cache-dir", cache_dir.as_str()],
            ow_test_modules::HASH.to_vec(),
        ),
        (
            "raw wasm, live twin",
            vec![],
            ow_test_modules::HASH.to_vec(),
        ),
    ] {
        let server = Server::start(exe, &args)?;
        let agent = agent();
        for (e, engine) in ENGINES.into_iter().enumerate() {
            let code = match code.is_empty() {
                true => &own_zips[e],
                false => &code,
            };
            let body = init_body(code, engine);
            // One unmeasured round: fills the cache, warms the engine.
            post(
                &agent,
                &format!("{}/warm-{engine}/init", server.base),
                &body,
            )?;
            // A live container of the same action makes every /init share
            // its prepared action; only the "live twin" rows keep one.
            if artifact != "raw wasm, live twin" {
                post(
                    &agent,
                    &format!("{}/warm-{engine}/destroy", server.base),
                    b"{}",
                )?;
            }
            let (mut inits, mut runs, mut totals, mut path) =
                (vec![], vec![], vec![], String::new());
            let labels = |path: &str| format!("engine=\"{engine}\",path=\"{path}\"");
            let expected = match (engine, artifact) {
                (_, "raw wasm, live twin") => "shared",
                ("wamr", _) | (_, "raw wasm") => "compiled",
                (_, "precompiled zip" | "precompiled zip, this engine only") => "precompiled",
                _ => "cached",
            };
            let before = histogram(&server.base, "ow_init_duration_seconds", &labels(expected))?;
            for i in 0..plan.cold_reps {
                let id = format!("{engine}-{i}");
                let (init, _, p) = post(&agent, &format!("{}/{id}/init", server.base), &body)?;
                let (run, _, _) = post(&agent, &format!("{}/{id}/run", server.base), &first)?;
                post(&agent, &format!("{}/{id}/destroy", server.base), b"{}")?;
                inits.push(init);
                runs.push(run);
                totals.push(init + run);
                path = p;
            }
            let after = histogram(&server.base, "ow_init_duration_seconds", &labels(expected))?;
            if path != expected {
                bail!(
                    "{engine} {artifact}: expected the {expected} path, the executor took {path}"
                );
            }
            rows.push(ColdRow {
                engine: engine.into(),
                artifact: artifact.into(),
                path,
                init: summarize(&inits),
                server_init_mean_us: mean_us(before, after),
                first_run: summarize(&runs),
                cold_start: summarize(&totals),
            });
            eprintln!(
                "cold start {engine} {artifact}: {:?}",
                rows.last().map(|r| r.cold_start.p50_us)
            );
        }
    }
    Ok(rows)
}

/// One POST by curl: its `time_total`, in microseconds.
fn curl_post(url: &str, body_file: &Path) -> anyhow::Result<f64> {
    let out = Command::new("curl")
        .args(["-s", "-o", "/dev/null", "-w", "%{http_code} %{time_total}"])
        .args(["-H", "Content-Type: application/json", "--data-binary"])
        .arg(format!("@{}", body_file.display()))
        .arg(url)
        .output()
        .context("cannot run curl")?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    match text.split_once(' ') {
        Some(("200", secs)) => Ok(secs.trim().parse::<f64>()? * 1e6),
        _ => bail!("curl {url}: {text}"),
    }
}

/// The first /init (a precompiled `hash` zip for the engine) and first /run
/// of freshly started executors, by curl, as an invoker's first request to
/// a new container; then a second /init of a distinct action in the same
/// process, to compare the first with a later one.
fn fresh_cold_start(exe: &Path, plan: &Plan) -> anyhow::Result<Vec<FreshRow>> {
    let dir = tempfile::tempdir()?;
    let run_file = dir.path().join("run.json");
    std::fs::write(
        &run_file,
        run_body(json!({"input": "abc", "iterations": 1})),
    )?;
    let mut rows = Vec::new();
    for engine in ENGINES {
        let init_file = dir.path().join(format!("init-{engine}.json"));
        std::fs::write(
            &init_file,
            init_body(&signed_zip(ow_test_modules::HASH, Some(engine))?, engine),
        )?;
        // A distinct action (other code) for the second /init.
        let other_file = dir.path().join(format!("other-{engine}.json"));
        std::fs::write(
            &other_file,
            init_body(&signed_zip(ow_test_modules::ECHO, Some(engine))?, engine),
        )?;
        let (mut inits, mut runs, mut totals) = (vec![], vec![], vec![]);
        let (mut server_totals, mut firsts, mut seconds) = (vec![], vec![], vec![]);
        for _ in 0..plan.fresh_reps {
            let server = Server::start(exe, &["--artifact-key", KEY, "--engine", engine])?;
            let init = curl_post(&format!("{}/a/init", server.base), &init_file)?;
            let run = curl_post(&format!("{}/a/run", server.base), &run_file)?;
            // WAMR has no precompiled form: its zip's action.wasm is compiled.
            let path = if engine == "wamr" {
                "compiled"
            } else {
                "precompiled"
            };
            let labels = format!("engine=\"{engine}\",path=\"{path}\"");
            let first = histogram(&server.base, "ow_init_duration_seconds", &labels)?;
            let run_hist = histogram(
                &server.base,
                "ow_run_duration_seconds",
                &format!("engine=\"{engine}\",outcome=\"success\""),
            )?;
            curl_post(&format!("{}/b/init", server.base), &other_file)?;
            let both = histogram(&server.base, "ow_init_duration_seconds", &labels)?;
            let us = |secs: f64| Duration::from_secs_f64(secs);
            inits.push(Duration::from_secs_f64(init / 1e6));
            runs.push(Duration::from_secs_f64(run / 1e6));
            totals.push(Duration::from_secs_f64((init + run) / 1e6));
            server_totals.push(us(first.0 + run_hist.0));
            firsts.push(us(first.0));
            seconds.push(us(both.0 - first.0));
        }
        let row = FreshRow {
            engine: engine.into(),
            curl_init: summarize(&inits),
            curl_run: summarize(&runs),
            curl_cold_start: summarize(&totals),
            server_cold_start: summarize(&server_totals),
            server_first_init: summarize(&firsts),
            server_second_init: summarize(&seconds),
        };
        eprintln!(
            "fresh process {engine}: curl {:.0} us, server {:.0} us",
            row.curl_cold_start.p50_us, row.server_cold_start.p50_us
        );
        rows.push(row);
    }
    Ok(rows)
}

fn has_wrk() -> bool {
    Command::new("wrk")
        .arg("--version")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("wrk"))
}

/// `wrk -t2 -c16` for `secs` against `url` with a POST of the `add` body:
/// (requests/s, p50 us, p99 us).
fn wrk(url: &str, script: &Path, secs: u64) -> anyhow::Result<(f64, f64, f64)> {
    let out = Command::new("wrk")
        .args(["-t2", "-c16", &format!("-d{secs}s"), "--latency", "-s"])
        .arg(script)
        .arg(url)
        .output()
        .context("cannot run wrk")?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    if text.contains("Non-2xx") || text.contains("Socket errors") {
        bail!("wrk {url}: errors\n{text}");
    }
    let field = |prefix: &str| {
        text.lines()
            .find_map(|l| l.trim().strip_prefix(prefix))
            .map(|v| v.trim().to_owned())
            .with_context(|| format!("wrk printed no {prefix:?}:\n{text}"))
    };
    let micros = |v: String| -> anyhow::Result<f64> {
        let (n, unit) = v.split_at(v.find(|c: char| c.is_alphabetic()).unwrap_or(v.len()));
        let n: f64 = n.parse()?;
        Ok(match unit {
            "us" => n,
            "ms" => n * 1e3,
            "s" => n * 1e6,
            _ => bail!("unknown unit in {v:?}"),
        })
    };
    let rps: f64 = field("Requests/sec:")?.parse()?;
    Ok((rps, micros(field("50%")?)?, micros(field("99%")?)?))
}

/// Throughput of `add` under `wrk -t2 -c16`, every target in each round
/// (so that the machine's drift hits all alike): the executor on each
/// engine, the bare native server on the same HTTP stack, and Node.js.
fn wrk_side_by_side(exe: &Path, native: &Path, plan: &Plan) -> anyhow::Result<Option<Vec<WrkRow>>> {
    if !has_wrk() {
        eprintln!("wrk is not installed: no wrk figures");
        return Ok(None);
    }
    let dir = tempfile::tempdir()?;
    let script = dir.path().join("post.lua");
    std::fs::write(
        &script,
        "wrk.method = \"POST\"\nwrk.body = '{\"value\":{\"param1\":1,\"param2\":2}}'\n\
         wrk.headers[\"Content-Type\"] = \"application/json\"\n",
    )?;
    let mut targets: Vec<(String, Server)> = Vec::new();
    for engine in ENGINES {
        targets.push((
            format!("executor, {engine}"),
            executor_with_add(exe, engine)?,
        ));
    }
    let port = free_port()?;
    let mut cmd = Command::new(native);
    cmd.arg(port.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    targets.push((
        "native server, same HTTP stack (ceiling)".into(),
        Server::spawn(cmd, port)?,
    ));
    if has_node() {
        targets.push(("node (no isolation)".into(), node_server()?));
    }
    let mut samples: Vec<Vec<(f64, f64, f64)>> = vec![Vec::new(); targets.len()];
    for round in 0..plan.wrk_rounds {
        for (i, (name, server)) in targets.iter().enumerate() {
            let url = format!("{}/run", server.base);
            let sample = wrk(&url, &script, plan.wrk_secs)?;
            eprintln!("wrk round {round} {name}: {:.0}/s", sample.0);
            samples[i].push(sample);
        }
    }
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    Ok(Some(
        targets
            .iter()
            .zip(samples)
            .map(|((name, _), s)| WrkRow {
                target: name.clone(),
                rounds: s.iter().map(|x| x.0).collect(),
                requests_per_s: median(s.iter().map(|x| x.0).collect()),
                p50_us: median(s.iter().map(|x| x.1).collect()),
                p99_us: median(s.iter().map(|x| x.2).collect()),
            })
            .collect(),
    ))
}

/// Sequential warm /run of `add` over one keep-alive connection.
fn warm(exe: &Path, plan: &Plan) -> anyhow::Result<Vec<WarmRow>> {
    let server = Server::start(exe, &[])?;
    let agent = agent();
    let body = run_body(json!({"param1": 1, "param2": 2}));
    let mut rows = Vec::new();
    for engine in ENGINES {
        post(
            &agent,
            &format!("{}/{engine}/init", server.base),
            &init_body(ow_test_modules::ADD, engine),
        )?;
        let url = format!("{}/{engine}/run", server.base);
        sequential(&agent, &url, &body, 200)?;
        let labels = format!("engine=\"{engine}\",outcome=\"success\"");
        let before = histogram(&server.base, "ow_run_duration_seconds", &labels)?;
        let samples = sequential(&agent, &url, &body, plan.warm_runs)?;
        let after = histogram(&server.base, "ow_run_duration_seconds", &labels)?;
        rows.push(WarmRow {
            engine: engine.into(),
            run: summarize(&samples),
            server_mean_us: mean_us(before, after),
            cdf: stats::cdf(&samples, 200),
        });
        eprintln!("warm {engine}: {:?}", rows.last().map(|r| r.run));
    }
    Ok(rows)
}

/// A closed loop of `clients` threads posting `body` to `url` for `step`.
fn closed_loop(url: &str, body: &[u8], clients: usize, step: Duration) -> (f64, Summary) {
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let threads: Vec<_> = (0..clients)
        .map(|_| {
            let (url, body, stop) = (url.to_owned(), body.to_vec(), Arc::clone(&stop));
            std::thread::spawn(move || {
                let agent = agent();
                let mut samples = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    match post(&agent, &url, &body) {
                        Ok((d, _, _)) => samples.push(d),
                        Err(e) => {
                            eprintln!("request failed: {e}");
                            break;
                        }
                    }
                }
                samples
            })
        })
        .collect();
    std::thread::sleep(step);
    stop.store(true, Ordering::Relaxed);
    let samples: Vec<Duration> = threads
        .into_iter()
        .flat_map(|t| t.join().unwrap_or_default())
        .collect();
    let elapsed = started.elapsed().as_secs_f64();
    (samples.len() as f64 / elapsed, summarize(&samples))
}

/// A warm Node.js HTTP server doing `add`, no isolation at all.
fn node_server() -> anyhow::Result<Server> {
    let port = free_port()?;
    let script = format!(
        r#"require("http").createServer((q, r) => {{ let b = ""; q.on("data", c => b += c);
          q.on("end", () => {{ const v = JSON.parse(b).value || {{}};
            const out = JSON.stringify({{ result: v.param1 + v.param2 }});
            r.writeHead(200, {{ "Content-Type": "application/json", "Content-Length": Buffer.byteLength(out) }});
            r.end(out); }}); }}).listen({port}, "127.0.0.1");"#
    );
    let mut cmd = Command::new("node");
    cmd.args(["-e", &script])
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    Server::spawn(cmd, port)
}

fn has_node() -> bool {
    Command::new("node")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// A fresh executor whose standard-mode action is `add` on `engine`.
fn executor_with_add(exe: &Path, engine: &str) -> anyhow::Result<Server> {
    let server = Server::start(exe, &[])?;
    post(
        &agent(),
        &format!("{}/init", server.base),
        &init_body(ow_test_modules::ADD, engine),
    )?;
    Ok(server)
}

fn throughput(exe: &Path, plan: &Plan) -> anyhow::Result<(Vec<ThroughputRow>, Option<Summary>)> {
    let body = run_body(json!({"param1": 1, "param2": 2}));
    let mut rows = Vec::new();
    for engine in &plan.throughput_engines {
        let server = executor_with_add(exe, engine)?;
        for &clients in &plan.concurrency {
            let (rps, latency) =
                closed_loop(&format!("{}/run", server.base), &body, clients, plan.step);
            eprintln!("throughput {engine} c={clients}: {rps:.0}/s");
            rows.push(ThroughputRow {
                target: engine.to_string(),
                clients,
                requests_per_s: rps,
                latency,
            });
        }
    }
    if !has_node() {
        eprintln!("node is not installed: no Node.js baseline");
        return Ok((rows, None));
    }
    let node = node_server()?;
    let url = format!("{}/run", node.base);
    let agent = agent();
    sequential(&agent, &url, &body, 200)?;
    let node_warm = summarize(&sequential(&agent, &url, &body, plan.warm_runs.min(5000))?);
    for &clients in &plan.concurrency {
        let (rps, latency) = closed_loop(&url, &body, clients, plan.step);
        eprintln!("throughput node c={clients}: {rps:.0}/s");
        rows.push(ThroughputRow {
            target: "node (no isolation)".into(),
            clients,
            requests_per_s: rps,
            latency,
        });
    }
    Ok((rows, Some(node_warm)))
}

fn time_process(mut cmd: Command) -> anyhow::Result<Duration> {
    let started = Instant::now();
    let out = cmd.stderr(Stdio::null()).output()?;
    let elapsed = started.elapsed();
    if !out.status.success() || !String::from_utf8_lossy(&out.stdout).contains("result") {
        bail!("{cmd:?} failed: {out:?}");
    }
    Ok(elapsed)
}

fn processes(native_add: &Path, plan: &Plan) -> anyhow::Result<(Summary, Option<Summary>)> {
    let params = r#"{"param1": 1, "param2": 2}"#;
    let native = (0..plan.process_reps * 5)
        .map(|_| {
            let mut cmd = Command::new(native_add);
            cmd.arg(params);
            time_process(cmd)
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    if !has_node() {
        return Ok((summarize(&native), None));
    }
    let node = (0..plan.process_reps)
        .map(|_| {
            let mut cmd = Command::new("node");
            cmd.args(["-e", "const v = {param1: 1, param2: 2}; console.log(JSON.stringify({result: v.param1 + v.param2}))"]);
            time_process(cmd)
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    Ok((summarize(&native), Some(summarize(&node))))
}

/// RSS per container of one action initialised many times (multi-action mode).
fn density(exe: &Path, plan: &Plan) -> anyhow::Result<Vec<DensityRow>> {
    let mut rows = Vec::new();
    for engine in ENGINES {
        let server = Server::start(exe, &[])?;
        let agent = agent();
        let body = init_body(ow_test_modules::ADD, engine);
        let run = run_body(json!({"param1": 1, "param2": 2}));
        // The engine and the first action exist before the baseline.
        post(&agent, &format!("{}/first/init", server.base), &body)?;
        post(&agent, &format!("{}/first/run", server.base), &run)?;
        let before = server.rss_kb();
        for i in 0..plan.density {
            // As from an invoker: each cold start carries its own __OW_*
            // variables, so no two /inits are identical; only the compiled
            // module can be shared.
            let body = init_body_with(
                ow_test_modules::ADD,
                json!({"OW_ENGINE": engine, "__OW_ACTIVATION_ID": format!("activation-{i}")}),
            );
            post(&agent, &format!("{}/c{i}/init", server.base), &body)?;
        }
        post(&agent, &format!("{}/c0/run", server.base), &run)?;
        let after = server.rss_kb();
        rows.push(DensityRow {
            engine: engine.into(),
            containers: plan.density,
            rss_before_kb: before,
            rss_after_kb: after,
            kb_per_container: after.saturating_sub(before) as f64 / plan.density as f64,
        });
        eprintln!(
            "density {engine}: {:?}",
            rows.last().map(|r| r.kb_per_container)
        );
    }
    Ok(rows)
}

/// Many concurrent activations that each sleep 1 s (WASI clock), wasmtime.
fn blocking(exe: &Path, plan: &Plan) -> anyhow::Result<BlockingRow> {
    let n = plan.blocking.to_string();
    let server = Server::start(exe, &["--max-instances", &n, "--max-concurrency", &n])?;
    post(
        &agent(),
        &format!("{}/init", server.base),
        &init_body(ow_test_modules::SLEEP, "wasmtime"),
    )?;
    let body = run_body(json!({"ms": 1000}));
    let ok = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let clients: Vec<_> = (0..plan.blocking)
        .map(|_| {
            let (url, body, ok) = (
                format!("{}/run", server.base),
                body.clone(),
                Arc::clone(&ok),
            );
            std::thread::spawn(move || {
                if post(&agent(), &url, &body).is_ok() {
                    ok.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    let mut max_threads = 0;
    while clients.iter().any(|c| !c.is_finished()) {
        max_threads = max_threads.max(server.threads());
        std::thread::sleep(Duration::from_millis(20));
    }
    for c in clients {
        let _ = c.join();
    }
    let row = BlockingRow {
        engine: "wasmtime".into(),
        activations: plan.blocking,
        sleep_ms: 1000,
        wall_ms: started.elapsed().as_secs_f64() * 1e3,
        max_threads,
        succeeded: ok.load(Ordering::Relaxed),
    };
    eprintln!("blocking: {row:?}");
    Ok(row)
}

/// `hash` in wasm (one /run, minus an empty /run's cost) against the same
/// code compiled natively, in this process.
fn cpu(exe: &Path, plan: &Plan) -> anyhow::Result<Vec<CpuRow>> {
    let n = plan.hash_iterations;
    let native = (0..plan.hash_reps)
        .map(|_| {
            let started = Instant::now();
            let mut digest = blake3::hash(b"abc");
            for _ in 1..n {
                digest = blake3::hash(digest.as_bytes());
            }
            std::hint::black_box(digest);
            started.elapsed()
        })
        .collect::<Vec<_>>();
    let native_ms = summarize(&native).p50_us / 1e3;
    let server = Server::start(exe, &[])?;
    let agent = agent();
    let mut rows = Vec::new();
    for engine in ENGINES {
        post(
            &agent,
            &format!("{}/{engine}/init", server.base),
            &init_body(ow_test_modules::HASH, engine),
        )?;
        let url = format!("{}/{engine}/run", server.base);
        let time = |iterations: u64| -> anyhow::Result<f64> {
            let body = run_body(json!({"input": "abc", "iterations": iterations}));
            let samples = sequential(&agent, &url, &body, plan.hash_reps)?;
            Ok(summarize(&samples).p50_us / 1e3)
        };
        let wasm_ms = time(n)? - time(1)?;
        rows.push(CpuRow {
            engine: engine.into(),
            iterations: n,
            wasm_ms,
            native_ms,
            native_over_wasm: native_ms / wasm_ms,
        });
        eprintln!("cpu {engine}: {:?}", rows.last());
    }
    Ok(rows)
}

fn machine() -> String {
    let cpu = std::fs::File::open("/proc/cpuinfo")
        .ok()
        .and_then(|f| {
            BufReader::new(f)
                .lines()
                .map_while(Result::ok)
                .find_map(|l| {
                    l.strip_prefix("model name")
                        .map(|m| m.trim_start_matches([' ', '\t', ':']).to_owned())
                })
        })
        .unwrap_or_default();
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    format!("{cpu}, {cores} cores")
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    if cli.only_functions {
        let results = functions::run(&cli.executor, cli.quick)?;
        println!("{}", functions::report(&results));
        return Ok(());
    }
    if cli.only_workflows {
        let results = workflows::run(&cli.executor, cli.quick)?;
        let out = cli
            .out
            .clone()
            .unwrap_or_else(|| default_out(&now(), cli.quick, "-workflows"));
        std::fs::create_dir_all(&out)?;
        let markdown = workflows::report(&results);
        std::fs::write(
            out.join("results.json"),
            serde_json::to_vec_pretty(&json!({
                "date": now(),
                "quick": cli.quick,
                "machine": machine(),
                "workflows": results,
            }))?,
        )?;
        std::fs::write(out.join("results.md"), &markdown)?;
        workflows::plot(&out, &results)?;
        println!("{markdown}");
        println!("results in {}", out.display());
        return Ok(());
    }
    if cli.only_state {
        let results = state::run(&cli.executor, cli.quick)?;
        println!("{}", state::report(&results));
        return Ok(());
    }
    let plan = Plan::new(cli.quick);
    for path in [&cli.executor, &cli.native_add, &cli.native_server] {
        if !path.exists() {
            bail!(
                "{} is missing: run `just bench` (it builds it)",
                path.display()
            );
        }
    }
    let date = now();
    let out = cli
        .out
        .clone()
        .unwrap_or_else(|| default_out(&date, cli.quick, ""));
    std::fs::create_dir_all(&out)?;
    let cold_start = cold_start(&cli.executor, &plan)?;
    let fresh = fresh_cold_start(&cli.executor, &plan)?;
    let wrk = wrk_side_by_side(&cli.executor, &cli.native_server, &plan)?;
    let warm = warm(&cli.executor, &plan)?;
    let (throughput, node_warm_run) = throughput(&cli.executor, &plan)?;
    let (native, node_cold) = processes(&cli.native_add, &plan)?;
    let density = density(&cli.executor, &plan)?;
    let blocking = blocking(&cli.executor, &plan)?;
    let cpu = cpu(&cli.executor, &plan)?;
    let state = state::run(&cli.executor, cli.quick)?;
    let functions = functions::run(&cli.executor, cli.quick)?;
    let workflows = workflows::run(&cli.executor, cli.quick)?;
    let results = Results {
        date,
        quick: cli.quick,
        machine: machine(),
        cold_start,
        fresh,
        wrk,
        warm,
        throughput,
        baselines: Baselines {
            native_process_per_activation: native,
            node_cold_start: node_cold,
            node_warm_run,
        },
        density,
        blocking,
        cpu,
        state,
        functions,
        workflows,
    };
    std::fs::write(
        out.join("results.json"),
        serde_json::to_vec_pretty(&results)?,
    )?;
    let markdown = report(&results);
    std::fs::write(out.join("results.md"), &markdown)?;
    plots::warm_cdf(&out.join("warm-latency-cdf.svg"), &results.warm)?;
    plots::throughput(&out.join("throughput.svg"), &results.throughput)?;
    plots::cold_start(&out.join("cold-start.svg"), &results.cold_start)?;
    workflows::plot(&out, &results.workflows)?;
    println!("{markdown}");
    println!("results in {}", out.display());
    Ok(())
}

/// Now, RFC 3339, to the second.
fn now() -> String {
    humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string()
}

/// `bench-results/<day><suffix>[-quick]`.
fn default_out(date: &str, quick: bool, suffix: &str) -> PathBuf {
    let day = &date[..10];
    PathBuf::from(format!(
        "bench-results/{day}{suffix}{}",
        if quick { "-quick" } else { "" }
    ))
}

fn ms(us: f64) -> String {
    format!("{:.2}", us / 1e3)
}

fn report(r: &Results) -> String {
    let mut md = format!(
        "Run {} on {}{}. Client-side latencies (Rust client, keep-alive, loopback; \
         client and server share the cores), medians unless stated.\n\n",
        r.date,
        r.machine,
        if r.quick { " (quick)" } else { "" }
    );
    md.push_str("### Cold start: /init of a fresh container + its first /run (`hash`)\n\n");
    md.push_str("| engine | artifact | path taken | /init p50 ms | /init p99 ms | /init server mean ms | first /run p50 ms | cold start p50 ms |\n|---|---|---|---|---|---|---|---|\n");
    for c in &r.cold_start {
        md.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {} | {} |\n",
            c.engine,
            c.artifact,
            c.path,
            ms(c.init.p50_us),
            ms(c.init.p99_us),
            ms(c.server_init_mean_us),
            ms(c.first_run.p50_us),
            ms(c.cold_start.p50_us)
        ));
    }
    md.push_str("\nRatios per engine (raw compile / precompiled / warm cache, /init p50):\n\n");
    for engine in ENGINES {
        let find = |a: &str| {
            r.cold_start
                .iter()
                .find(|c| c.engine == engine && c.artifact == a)
                .map(|c| c.init.p50_us)
        };
        if let (Some(raw), Some(pre), Some(cached)) = (
            find("raw wasm"),
            find("precompiled zip"),
            find("raw wasm, warm cache"),
        ) {
            md.push_str(&format!(
                "- {engine}: raw {} ms, precompiled {} ms ({:.1}x faster), cached {} ms ({:.1}x faster; {:.2}x the precompiled time)\n",
                ms(raw),
                ms(pre),
                raw / pre,
                ms(cached),
                raw / cached,
                cached / pre
            ));
        }
    }
    md.push_str("\n### Cold start in a fresh process: its first /init (precompiled `hash` zip) + first /run\n\n| engine | curl /init p50 ms | curl first /run p50 ms | curl both p50 ms | curl both p99 ms | server both p50 ms | server first /init p50 ms | server second /init p50 ms |\n|---|---|---|---|---|---|---|---|\n");
    for f in &r.fresh {
        md.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {} | {} |\n",
            f.engine,
            ms(f.curl_init.p50_us),
            ms(f.curl_run.p50_us),
            ms(f.curl_cold_start.p50_us),
            ms(f.curl_cold_start.p99_us),
            ms(f.server_cold_start.p50_us),
            ms(f.server_first_init.p50_us),
            ms(f.server_second_init.p50_us)
        ));
    }
    if let Some(rows) = &r.wrk {
        let rps = |prefix: &str| {
            rows.iter()
                .find(|w| w.target.starts_with(prefix))
                .map(|w| w.requests_per_s)
        };
        md.push_str("\n### Throughput of `add` under `wrk -t2 -c16` (fresh instance per activation; median of rounds, all targets in each round)\n\n| target | requests/s | vs Node.js | vs native server | p50 us | p99 us | rounds |\n|---|---|---|---|---|---|---|\n");
        for w in rows {
            let ratio = |base: Option<f64>| {
                base.map_or("-".to_owned(), |b| format!("{:.2}x", w.requests_per_s / b))
            };
            md.push_str(&format!(
                "| {} | {:.0} | {} | {} | {:.0} | {:.0} | {} |\n",
                w.target,
                w.requests_per_s,
                ratio(rps("node")),
                ratio(rps("native")),
                w.p50_us,
                w.p99_us,
                w.rounds
                    .iter()
                    .map(|r| format!("{r:.0}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
    }
    md.push_str("\n### Warm /run of `add`, sequential\n\n| engine | p50 us | p90 us | p99 us | server mean us | n |\n|---|---|---|---|---|---|\n");
    for w in &r.warm {
        md.push_str(&format!(
            "| {} | {:.0} | {:.0} | {:.0} | {:.0} | {} |\n",
            w.engine, w.run.p50_us, w.run.p90_us, w.run.p99_us, w.server_mean_us, w.run.n
        ));
    }
    if let Some(node) = &r.baselines.node_warm_run {
        md.push_str(&format!(
            "| node, warm HTTP server, no isolation | {:.0} | {:.0} | {:.0} | - | {} |\n",
            node.p50_us, node.p90_us, node.p99_us, node.n
        ));
    }
    md.push_str("\n### Throughput of `add` (closed loop, fresh instance per activation)\n\n| target | clients | activations/s | p50 us | p99 us |\n|---|---|---|---|---|\n");
    for t in &r.throughput {
        md.push_str(&format!(
            "| {} | {} | {:.0} | {:.0} | {:.0} |\n",
            t.target, t.clients, t.requests_per_s, t.latency.p50_us, t.latency.p99_us
        ));
    }
    md.push_str(&format!(
        "\n### Baselines (processes)\n\n| baseline | p50 ms | p99 ms |\n|---|---|---|\n| native process per activation (`native-add`) | {} | {} |\n",
        ms(r.baselines.native_process_per_activation.p50_us),
        ms(r.baselines.native_process_per_activation.p99_us),
    ));
    match &r.baselines.node_cold_start {
        Some(node) => md.push_str(&format!(
            "| `node -e` cold start | {} | {} |\n",
            ms(node.p50_us),
            ms(node.p99_us)
        )),
        None => md.push_str("| `node -e` cold start | (Node.js not installed) | |\n"),
    }
    md.push_str("\n### Density: containers of `add` in one executor (multi-action mode, each /init with its own `__OW_ACTIVATION_ID`)\n\n| engine | containers | RSS before MB | RSS after MB | KB per container |\n|---|---|---|---|---|\n");
    for d in &r.density {
        md.push_str(&format!(
            "| {} | {} | {:.1} | {:.1} | {:.0} |\n",
            d.engine,
            d.containers,
            d.rss_before_kb as f64 / 1024.0,
            d.rss_after_kb as f64 / 1024.0,
            d.kb_per_container
        ));
    }
    let b = &r.blocking;
    md.push_str(&format!(
        "\n### Blocking work\n\n{} concurrent activations sleeping {} ms each on {}: {:.0} ms wall, {} succeeded, at most {} executor threads.\n",
        b.activations, b.sleep_ms, b.engine, b.wall_ms, b.succeeded, b.max_threads
    ));
    md.push_str("\n### CPU-bound: `hash` (blake3 chain) in wasm vs the same code native\n\n| engine | iterations | wasm ms | native ms | native/wasm |\n|---|---|---|---|---|\n");
    for c in &r.cpu {
        md.push_str(&format!(
            "| {} | {} | {:.1} | {:.1} | {:.0}% |\n",
            c.engine,
            c.iterations,
            c.wasm_ms,
            c.native_ms,
            c.native_over_wasm * 100.0
        ));
    }
    md.push_str(&state::report(&r.state));
    md.push('\n');
    md.push_str(&functions::report(&r.functions));
    md.push_str(&workflows::report(&r.workflows));
    md
}
