//! ABI version 2 scenarios: the cost of a state call from a guest on each
//! tier (embedded, Redis, Redis with the local tier) beside the Redis round
//! trip `redis-benchmark` measures in the same run, and the cost of
//! starting every activation from a proto-function snapshot.

use crate::stats::{Summary, summarize};
use crate::{Server, agent, init_body, post, run_body, sequential};
use anyhow::{Context as _, bail};
use serde::Serialize;
use serde_json::json;
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

#[derive(Debug, Serialize)]
pub struct StateResults {
    /// Per state call from the guest, 1 KiB values.
    pub ops: Vec<OpRow>,
    /// `redis-benchmark -c 1 -d 1024`: mean round trip per command, us.
    /// `None` without redis-server.
    pub redis_get_us: Option<f64>,
    pub redis_set_us: Option<f64>,
    pub zygote: Vec<ZygoteRow>,
    /// Memory per concurrent activation, `sleep` beside `zygote_table`.
    pub zygote_rss: Vec<RssRow>,
}

#[derive(Debug, Serialize)]
pub struct RssRow {
    pub action: String,
    pub concurrent: usize,
    /// Executor RSS growth while they are all in flight, per activation.
    pub kb_per_activation: f64,
}

#[derive(Debug, Serialize)]
pub struct OpRow {
    pub tier: String,
    pub op: String,
    /// (median activation with `calls` calls - median with 1) / (calls - 1).
    pub per_call_us: f64,
    pub calls: usize,
}

#[derive(Debug, Serialize)]
pub struct ZygoteRow {
    pub engine: String,
    /// Warm /run of `add`.
    pub add: Summary,
    /// Warm /run of `zygote_table`, started from its snapshot (16 MiB table).
    pub snapshot: Summary,
    /// Its median minus add's.
    pub extra_us: f64,
}

/// A throwaway `redis-server` on loopback.
pub(crate) struct Redis {
    child: Child,
    pub(crate) port: u16,
    _dir: tempfile::TempDir,
}

impl Redis {
    pub(crate) fn start() -> anyhow::Result<Option<Self>> {
        if Command::new("redis-server")
            .arg("--version")
            .output()
            .is_err()
        {
            eprintln!("redis-server is not installed: the Redis rows are skipped");
            return Ok(None);
        }
        let port = crate::free_port()?;
        let dir = tempfile::tempdir()?;
        let child = Command::new("redis-server")
            .args([
                "--bind",
                "127.0.0.1",
                "--port",
                &port.to_string(),
                "--save",
                "",
            ])
            .arg("--dir")
            .arg(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("cannot start redis-server")?;
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if Instant::now() > deadline {
                bail!("redis-server did not listen");
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        Ok(Some(Self {
            child,
            port,
            _dir: dir,
        }))
    }

    /// Mean latency in us of GET and SET of 1 KiB, one client.
    fn benchmark(&self, n: usize) -> anyhow::Result<(f64, f64)> {
        let out = Command::new("redis-benchmark")
            .args(["-p", &self.port.to_string(), "-c", "1", "-d", "1024"])
            .args(["-n", &n.to_string(), "-t", "get,set", "--csv"])
            .output()
            .context("cannot run redis-benchmark")?;
        let text = String::from_utf8_lossy(&out.stdout);
        let mut lines = text.lines();
        let header: Vec<&str> = lines
            .next()
            .unwrap_or_default()
            .split(',')
            .map(|h| h.trim_matches('"'))
            .collect();
        let column = header
            .iter()
            .position(|h| *h == "avg_latency_ms")
            .context("redis-benchmark printed no avg_latency_ms")?;
        let mut get = f64::NAN;
        let mut set = f64::NAN;
        for line in lines {
            let fields: Vec<&str> = line.split(',').map(|f| f.trim_matches('"')).collect();
            let value = fields.get(column).and_then(|v| v.parse::<f64>().ok());
            match (fields.first(), value) {
                (Some(&"GET"), Some(v)) => get = v * 1e3,
                (Some(&"SET"), Some(v)) => set = v * 1e3,
                _ => {}
            }
        }
        Ok((get, set))
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Per-call cost on an executor with `state_bench` initialised: `field`
/// (`gets` or `sets`) calls per activation against one, the other none.
fn per_call(server: &Server, field: &str, calls: usize, reps: usize) -> anyhow::Result<f64> {
    let agent = agent();
    let url = format!("{}/bench/run", server.base);
    let body = |n: usize| {
        let mut value = json!({"key": "k", "size": 1024, "gets": 0, "sets": 0});
        value[field] = json!(n);
        serde_json::to_vec(&json!({"value": value, "namespace": "bench"})).expect("JSON")
    };
    let (one, many) = (body(1), body(calls));
    sequential(&agent, &url, &many, 3)?;
    let mut base = Vec::new();
    let mut with = Vec::new();
    for _ in 0..reps {
        base.extend(sequential(&agent, &url, &one, 1)?);
        with.extend(sequential(&agent, &url, &many, 1)?);
    }
    let (base, with) = (summarize(&base), summarize(&with));
    Ok((with.p50_us - base.p50_us) / (calls - 1) as f64)
}

/// `get_calls` and `set_calls` per activation: a cached read costs
/// microseconds, a Redis round trip a hundred times more.
fn ops_for(
    tier: &str,
    server: &Server,
    (get_calls, set_calls): (usize, usize),
    reps: usize,
) -> anyhow::Result<Vec<OpRow>> {
    post(
        &agent(),
        &format!("{}/bench/init", server.base),
        &init_body(ow_test_modules::STATE_BENCH, "wasmtime"),
    )?;
    let mut rows = Vec::new();
    for (name, field, calls) in [
        ("state_get 1 KiB", "gets", get_calls),
        ("state_set 1 KiB", "sets", set_calls),
    ] {
        let per_call_us = per_call(server, field, calls, reps)?;
        eprintln!("state {tier} {name}: {per_call_us:.2} us");
        rows.push(OpRow {
            tier: tier.into(),
            op: name.into(),
            per_call_us,
            calls,
        });
    }
    Ok(rows)
}

pub fn run(exe: &Path, quick: bool) -> anyhow::Result<StateResults> {
    let (reps, embedded_calls, redis_calls) = match quick {
        true => (5, 5_000, 500),
        false => (21, 50_000, 5_000),
    };
    let mut ops = Vec::new();
    let server = Server::start(exe, &[])?;
    ops.extend(ops_for(
        "embedded",
        &server,
        (embedded_calls, embedded_calls),
        reps,
    )?);
    drop(server);
    let (mut redis_get_us, mut redis_set_us) = (None, None);
    if let Some(redis) = Redis::start()? {
        let url = format!("redis://127.0.0.1:{}", redis.port);
        let server = Server::start(exe, &["--state-redis", &url])?;
        ops.extend(ops_for("redis", &server, (redis_calls, redis_calls), reps)?);
        drop(server);
        let server = Server::start(exe, &["--state-redis", &url, "--state-local-cache", "1000"])?;
        ops.extend(ops_for(
            "redis + local tier",
            &server,
            (embedded_calls, redis_calls),
            reps,
        )?);
        drop(server);
        let (get, set) = redis.benchmark(if quick { 5_000 } else { 50_000 })?;
        eprintln!("redis-benchmark: GET {get:.1} us, SET {set:.1} us");
        (redis_get_us, redis_set_us) = (Some(get), Some(set));
    }
    Ok(StateResults {
        ops,
        redis_get_us,
        redis_set_us,
        zygote: zygote(exe, quick)?,
        zygote_rss: zygote_rss(exe, if quick { 100 } else { 500 })?,
    })
}

/// Warm /run of a snapshot action beside `add`, same executor.
fn zygote(exe: &Path, quick: bool) -> anyhow::Result<Vec<ZygoteRow>> {
    let engines: &[&str] = match quick {
        true => &["wasmtime"],
        false => &crate::ENGINES,
    };
    let server = Server::start(exe, &[])?;
    let agent = agent();
    let mut rows = Vec::new();
    for engine in engines {
        let runs = match (*engine, quick) {
            ("wasmtime", false) => 5_000,
            ("wasmtime", true) => 1_000,
            (_, false) => 200,
            (_, true) => 50,
        };
        let targets = [
            (
                "add",
                ow_test_modules::ADD,
                json!({"param1": 1, "param2": 2}),
            ),
            ("zygote", ow_test_modules::ZYGOTE_TABLE, json!({"i": 12345})),
        ];
        let mut urls = Vec::new();
        for (name, wasm, params) in targets {
            let base = format!("{}/{name}-{engine}", server.base);
            post(&agent, &format!("{base}/init"), &init_body(wasm, engine))?;
            let body = run_body(params);
            sequential(&agent, &format!("{base}/run"), &body, runs / 10)?;
            urls.push((format!("{base}/run"), body));
        }
        // Interleaved, so that both see the same machine: this one drifts.
        let mut samples = [Vec::new(), Vec::new()];
        for _ in 0..runs {
            for (i, (url, body)) in urls.iter().enumerate() {
                samples[i].push(post(&agent, url, body)?.0);
            }
        }
        let summaries = [summarize(&samples[0]), summarize(&samples[1])];
        let row = ZygoteRow {
            engine: (*engine).into(),
            add: summaries[0],
            snapshot: summaries[1],
            extra_us: summaries[1].p50_us - summaries[0].p50_us,
        };
        eprintln!("zygote {engine}: +{:.1} us over add", row.extra_us);
        rows.push(row);
    }
    Ok(rows)
}

/// `n` activations in flight at once, asleep, of `sleep` and of
/// `zygote_table` (each reading one entry of its 16 MiB snapshot): the
/// executor's RSS growth per activation. The snapshot's pages are the
/// module's copy-on-write image: an activation pays for what it touches.
fn zygote_rss(exe: &Path, n: usize) -> anyhow::Result<Vec<RssRow>> {
    let server = Server::start(exe, &[])?;
    let agent = agent();
    let mut rows = Vec::new();
    for (name, wasm, params) in [
        ("sleep", ow_test_modules::SLEEP, json!({"ms": 3000})),
        (
            "zygote_table",
            ow_test_modules::ZYGOTE_TABLE,
            json!({"i": 12345, "sleep_ms": 3000}),
        ),
    ] {
        let base = format!("{}/{name}", server.base);
        post(
            &agent,
            &format!("{base}/init"),
            &init_body(wasm, "wasmtime"),
        )?;
        let mut warm = params.clone();
        warm[if name == "sleep" { "ms" } else { "sleep_ms" }] = json!(0);
        sequential(&agent, &format!("{base}/run"), &run_body(warm), 20)?;
        let before = server.rss_kb();
        let body = run_body(params);
        let peak = std::thread::scope(|s| {
            for _ in 0..n {
                let (url, body) = (format!("{base}/run"), body.clone());
                s.spawn(move || post(&crate::agent(), &url, &body).map(|_| ()));
            }
            // All in flight (the executor's gauge), then measure once.
            let deadline = Instant::now() + Duration::from_secs(20);
            loop {
                let in_flight =
                    crate::gauge(&server.base, "ow_activations_in_flight").unwrap_or(0.0);
                if in_flight as usize >= n || Instant::now() > deadline {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            server.rss_kb()
        });
        let kb = (peak.saturating_sub(before)) as f64 / n as f64;
        eprintln!("rss {name}: {kb:.0} KB per activation ({n} in flight)");
        rows.push(RssRow {
            action: name.into(),
            concurrent: n,
            kb_per_activation: kb,
        });
    }
    Ok(rows)
}

pub fn report(r: &StateResults) -> String {
    let mut md = String::from(
        "\n### State calls from a guest (`state_bench`, wasmtime): per call, 1 KiB values\n\n\
         | tier | call | us per call | calls per activation |\n|---|---|---|---|\n",
    );
    for o in &r.ops {
        md.push_str(&format!(
            "| {} | {} | {:.2} | {} |\n",
            o.tier, o.op, o.per_call_us, o.calls
        ));
    }
    match (r.redis_get_us, r.redis_set_us) {
        (Some(get), Some(set)) => {
            md.push_str(&format!(
                "\n`redis-benchmark -c 1 -d 1024` in the same run: GET {get:.1} us, SET {set:.1} us per round trip.\n"
            ));
            for o in r.ops.iter().filter(|o| o.tier == "redis") {
                let base = if o.op.starts_with("state_get") {
                    get
                } else {
                    set
                };
                md.push_str(&format!(
                    "- {} through Redis: {:.2}x the redis-benchmark round trip\n",
                    o.op,
                    o.per_call_us / base
                ));
            }
        }
        _ => md.push_str("\n(redis-server not installed: no Redis rows)\n"),
    }
    md.push_str(
        "\n### Proto-function snapshots: warm /run of `zygote_table` (16 MiB table built by its zygote) beside `add`\n\n\
         | engine | add p50 us | snapshot p50 us | snapshot p99 us | extra p50 us |\n|---|---|---|---|---|\n",
    );
    for z in &r.zygote {
        md.push_str(&format!(
            "| {} | {:.0} | {:.0} | {:.0} | {:.0} |\n",
            z.engine, z.add.p50_us, z.snapshot.p50_us, z.snapshot.p99_us, z.extra_us
        ));
    }
    md.push_str("\n| action (wasmtime), all in flight at once | activations | executor RSS growth per activation KB |\n|---|---|---|\n");
    for row in &r.zygote_rss {
        md.push_str(&format!(
            "| {} | {} | {:.0} |\n",
            row.action, row.concurrent, row.kb_per_activation
        ));
    }
    md
}
