//! Function store scenarios (`--store-dir`): deploy-to-first-result of a
//! precompiled function from a local registry, invocation through
//! `/function/{name}` beside `/run` under wrk, memory per deployed
//! function, and a restart with every function serving again.

use crate::stats::{Summary, summarize};
use crate::{KEY, Server, agent, has_wrk, signed_zip, wrk};
use anyhow::{Context as _, bail};
use base64::Engine as _;
use ow_test_modules::oci::{self, Registry};
use serde::Serialize;
use serde_json::json;
use std::path::Path;
use std::time::Instant;

const AUTH: &str = "ow-bench-uuid:ow-bench-key";

#[derive(Debug, Serialize)]
pub struct FunctionResults {
    /// `POST /system/functions` (image from the local registry) and the
    /// first `POST /function/{name}` answer, precompiled `add` zip.
    pub deploy_first: Option<f64>,
    pub deploy: Option<Summary>,
    /// wrk -t2 -c16 on the same executor and action: `/run` and `/function/add`.
    pub run_rps: Option<f64>,
    pub function_rps: Option<f64>,
    pub run_p50_us: Option<f64>,
    pub function_p50_us: Option<f64>,
    pub density: DensityRow,
    pub restart: RestartRow,
}

#[derive(Debug, Serialize)]
pub struct DensityRow {
    pub functions: usize,
    pub code_bytes: usize,
    pub deploy_s: f64,
    pub rss_before_kb: u64,
    pub rss_after_kb: u64,
    pub kb_per_function: f64,
}

#[derive(Debug, Serialize)]
pub struct RestartRow {
    pub functions: usize,
    /// Process start to the port being bound (store opened, engines warmed up).
    pub listen_ms: f64,
    /// Process start to the first function's result.
    pub first_result_ms: f64,
    /// Process start until every function answered once (sequentially).
    pub all_served_ms: f64,
}

fn auth_header() -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(AUTH)
    )
}

fn call(
    agent: &ureq::Agent,
    method: &str,
    url: &str,
    body: &[u8],
) -> anyhow::Result<(u16, String)> {
    let request = ureq::http::Request::builder()
        .method(method)
        .uri(url)
        .header("Authorization", auth_header())
        .header("Content-Type", "application/json")
        .body(body.to_vec())?;
    let mut response = agent.run(request)?;
    let status = response.status().as_u16();
    Ok((status, response.body_mut().read_to_string()?))
}

fn ok(
    agent: &ureq::Agent,
    method: &str,
    url: &str,
    body: &[u8],
    expected: u16,
) -> anyhow::Result<String> {
    let (status, text) = call(agent, method, url, body)?;
    if status != expected {
        bail!("{method} {url}: {status} {text}");
    }
    Ok(text)
}

fn store_server(exe: &Path, store: &Path) -> anyhow::Result<Server> {
    Server::start(
        exe,
        &[
            "--store-dir",
            store.to_str().context("store path")?,
            "--auth",
            AUTH,
            "--artifact-key",
            KEY,
        ],
    )
}

/// Deploy-to-first-result: each round deploys a new function of the same
/// precompiled image (its env differs, so the action is really loaded from
/// the zip's native code; the layer comes from the digest cache after the
/// first round, which downloads it).
fn deploy(exe: &Path, rounds: usize) -> anyhow::Result<(f64, Summary)> {
    let registry = Registry::start()?;
    let layouts = tempfile::tempdir()?;
    let layout = layouts.path().join("add-precompiled");
    oci::add_image(
        &layout,
        "v1",
        oci::ZIP_LAYER,
        &signed_zip(ow_test_modules::ADD, None)?,
    )?;
    let image = registry
        .push(&layout, "v1", "add-precompiled")
        .map_err(anyhow::Error::msg)?;

    let store = tempfile::tempdir()?;
    let server = store_server(exe, &store.path().join("store"))?;
    let agent = agent();
    let mut samples = Vec::new();
    for round in 0..=rounds {
        let name = format!("d{round}");
        let deployment =
            json!({"service": name, "image": image, "envVars": {"ROUND": round.to_string()}});
        let started = Instant::now();
        ok(
            &agent,
            "POST",
            &format!("{}/system/functions", server.base),
            deployment.to_string().as_bytes(),
            202,
        )?;
        let deployed = started.elapsed();
        let text = ok(
            &agent,
            "POST",
            &format!("{}/function/{name}", server.base),
            br#"{"param1":1,"param2":2}"#,
            200,
        )?;
        samples.push(started.elapsed());
        eprintln!(
            "deploy round {round}: deployed in {deployed:?}, first result at {:?}",
            started.elapsed()
        );
        if !text.contains("\"result\":3") {
            bail!("deploy round {round}: {text}");
        }
    }
    let first = samples.remove(0).as_secs_f64() * 1e3;
    Ok((first, summarize(&samples)))
}

/// `/run` and `/function/add` of one executor under wrk, rounds alternating.
fn via_function(
    exe: &Path,
    rounds: usize,
    secs: u64,
) -> anyhow::Result<Option<(f64, f64, f64, f64)>> {
    if !has_wrk() {
        eprintln!("wrk is not installed: no /function figures");
        return Ok(None);
    }
    let store = tempfile::tempdir()?;
    let server = store_server(exe, &store.path().join("store"))?;
    let agent = agent();
    let init = crate::init_body(ow_test_modules::ADD, "wasmtime");
    ok(&agent, "POST", &format!("{}/init", server.base), &init, 200)?;
    let code = base64::engine::general_purpose::STANDARD.encode(ow_test_modules::ADD);
    let action = json!({"exec": {"kind": "wasm:0.1", "code": code}}).to_string();
    ok(
        &agent,
        "PUT",
        &format!("{}/api/v1/namespaces/_/actions/add", server.base),
        action.as_bytes(),
        200,
    )?;
    let dir = tempfile::tempdir()?;
    // /run as the invoker sends it: the activation's metadata beside the
    // params (the function path makes the same for its activations).
    let run_script = dir.path().join("run.lua");
    std::fs::write(
        &run_script,
        "wrk.method = \"POST\"\nwrk.body = '{\"value\":{\"param1\":1,\"param2\":2},\
         \"namespace\":\"guest\",\"action_name\":\"/guest/add\",\"action_version\":\"0.0.1\",\
         \"activation_id\":\"9f2c1e7d5b3a4c6e8f0a1b2c3d4e5f60\",\"deadline\":\"4102444800000\"}'\n\
         wrk.headers[\"Content-Type\"] = \"application/json\"\n",
    )?;
    let function_script = dir.path().join("function.lua");
    std::fs::write(
        &function_script,
        format!(
            "wrk.method = \"POST\"\nwrk.body = '{{\"param1\":1,\"param2\":2}}'\n\
             wrk.headers[\"Content-Type\"] = \"application/json\"\nwrk.headers[\"Authorization\"] = \"{}\"\n",
            auth_header()
        ),
    )?;
    let (mut run, mut function) = (Vec::new(), Vec::new());
    for round in 0..rounds {
        run.push(wrk(&format!("{}/run", server.base), &run_script, secs)?);
        function.push(wrk(
            &format!("{}/function/add", server.base),
            &function_script,
            secs,
        )?);
        eprintln!(
            "wrk round {round}: /run {:.0}/s, /function/add {:.0}/s",
            run[round].0, function[round].0
        );
    }
    let median = |v: &[(f64, f64, f64)], f: fn(&(f64, f64, f64)) -> f64| {
        let mut x: Vec<f64> = v.iter().map(f).collect();
        x.sort_by(f64::total_cmp);
        x[x.len() / 2]
    };
    Ok(Some((
        median(&run, |s| s.0),
        median(&function, |s| s.0),
        median(&run, |s| s.1),
        median(&function, |s| s.1),
    )))
}

/// Deploy `n` functions (the same `echo` code, each with its own default
/// parameter) with 4 clients, invoke each once; the executor's RSS growth
/// per function. Then `kill -9`, restart on the same store, and time until
/// the functions serve again.
fn density_and_restart(exe: &Path, n: usize) -> anyhow::Result<(DensityRow, RestartRow)> {
    let store_dir = tempfile::tempdir()?;
    let store = store_dir.path().join("store");
    let server = store_server(exe, &store)?;
    let code = base64::engine::general_purpose::STANDARD.encode(ow_test_modules::ECHO);
    let put = |agent: &ureq::Agent, base: &str, i: usize| -> anyhow::Result<()> {
        let action = json!({"exec": {"kind": "wasm:0.1", "code": code}, "parameters": [{"key": "i", "value": i}]});
        ok(
            agent,
            "PUT",
            &format!("{base}/api/v1/namespaces/_/actions/f{i}"),
            action.to_string().as_bytes(),
            200,
        )?;
        ok(agent, "POST", &format!("{base}/function/f{i}"), b"{}", 200)?;
        Ok(())
    };
    // The code and the first function's run-time pieces are loaded before
    // the baseline: what is measured is per function.
    put(&agent(), &server.base, 0)?;
    let before = server.rss_kb();
    let started = Instant::now();
    std::thread::scope(|scope| -> anyhow::Result<()> {
        let workers: Vec<_> = (0..4)
            .map(|w| {
                let (base, put) = (&server.base, &put);
                scope.spawn(move || -> anyhow::Result<()> {
                    let agent = agent();
                    for i in (1..n).filter(|i| i % 4 == w) {
                        put(&agent, base, i)?;
                    }
                    Ok(())
                })
            })
            .collect();
        for worker in workers {
            worker
                .join()
                .map_err(|_| anyhow::anyhow!("a deploy worker panicked"))??;
        }
        Ok(())
    })?;
    let deploy_s = started.elapsed().as_secs_f64();
    let after = server.rss_kb();
    drop(server);
    let density = DensityRow {
        functions: n,
        code_bytes: ow_test_modules::ECHO.len(),
        deploy_s,
        rss_before_kb: before,
        rss_after_kb: after,
        kb_per_function: after.saturating_sub(before) as f64 / (n - 1) as f64,
    };
    let started = Instant::now();
    let server = store_server(exe, &store)?;
    let listen_ms = started.elapsed().as_secs_f64() * 1e3;
    let agent = agent();
    let text = ok(
        &agent,
        "POST",
        &format!("{}/function/f{}", server.base, n / 2),
        b"{}",
        200,
    )?;
    let first_result_ms = started.elapsed().as_secs_f64() * 1e3;
    if !text.contains(&format!("\"i\":{}", n / 2)) {
        bail!("after the restart f{}: {text}", n / 2);
    }
    for i in 0..n {
        ok(
            &agent,
            "POST",
            &format!("{}/function/f{i}", server.base),
            b"{}",
            200,
        )?;
    }
    let all_served_ms = started.elapsed().as_secs_f64() * 1e3;
    Ok((
        density,
        RestartRow {
            functions: n,
            listen_ms,
            first_result_ms,
            all_served_ms,
        },
    ))
}

pub fn run(exe: &Path, quick: bool) -> anyhow::Result<FunctionResults> {
    let (rounds, wrk_rounds, wrk_secs, n) = match quick {
        true => (5, 1, 1, 300),
        false => (50, 3, 5, 10_000),
    };
    let (deploy_first, deploy) = match deploy(exe, rounds) {
        Ok((first, summary)) => (Some(first), Some(summary)),
        Err(e) => {
            eprintln!("no deploy figures: {e:#}");
            (None, None)
        }
    };
    let via = via_function(exe, wrk_rounds, wrk_secs)?;
    let (density, restart) = density_and_restart(exe, n)?;
    Ok(FunctionResults {
        deploy_first,
        deploy,
        run_rps: via.map(|v| v.0),
        function_rps: via.map(|v| v.1),
        run_p50_us: via.map(|v| v.2),
        function_p50_us: via.map(|v| v.3),
        density,
        restart,
    })
}

pub fn report(r: &FunctionResults) -> String {
    let mut md = String::from(
        "### Function store (`--store-dir`)\n\n| measure | value | target |\n|---|---|---|\n",
    );
    if let (Some(first), Some(deploy)) = (r.deploy_first, &r.deploy) {
        md.push_str(&format!(
            "| deploy-to-first-result, precompiled `add` from a local registry, p50 (first, layer downloaded) | {:.2} ms ({first:.2} ms) | <= 10 ms |\n",
            deploy.p50_us / 1e3
        ));
    }
    if let (Some(run), Some(function), Some(rp50), Some(fp50)) =
        (r.run_rps, r.function_rps, r.run_p50_us, r.function_p50_us)
    {
        md.push_str(&format!(
            "| wrk -t2 -c16 `add`: `/function/add` vs `/run` | {function:.0} vs {run:.0} req/s ({:.2}x); p50 {fp50:.0} vs {rp50:.0} us | within 10% |\n",
            function / run
        ));
    }
    let d = &r.density;
    md.push_str(&format!(
        "| RSS per deployed (and invoked) function, {} functions of {} KB code | {:.1} KB ({} -> {} KB; deployed in {:.1} s) | <= 100 KB |\n",
        d.functions,
        d.code_bytes / 1024,
        d.kb_per_function,
        d.rss_before_kb,
        d.rss_after_kb,
        d.deploy_s
    ));
    let s = &r.restart;
    md.push_str(&format!(
        "| restart (kill -9) with {} functions: listening / first result / all served once | {:.0} / {:.0} / {:.0} ms | serving in <= 1 s |\n",
        s.functions, s.listen_ms, s.first_result_ms, s.all_served_ms
    ));
    md
}
