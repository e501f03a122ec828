//! `ow-precompiler`: turn `.wasm` actions into zips with native code for
//! each engine, ready for `wsk action create NAME FILE.zip --kind wasm:0.1`.

use anyhow::{Context as _, bail};
use clap::{Parser, ValueEnum};
use ow_artifact::SigningKey;
use ow_common::{Limits, WasmRuntime};
use std::path::PathBuf;

/// Precompile WebAssembly actions into zips for the OpenWhisk wasm executor.
#[derive(Debug, Parser)]
#[command(version, about, long_about = None)]
struct Cli {
    /// Engines to precompile for (repeat or comma-separate). WAMR has no
    /// precompiled form: its executors load the zip's action.wasm.
    #[arg(long, value_enum, value_delimiter = ',', default_value = "all")]
    engine: Vec<EngineChoice>,

    /// Directory for the zips (created if missing).
    #[arg(long, default_value = ".")]
    out: PathBuf,

    /// Signing key (HMAC-SHA256; at least 16 bytes), the same as the
    /// executors' --artifact-key. Prefer --sign-key-file.
    #[arg(long, env = "OW_SIGN_KEY", hide_env_values = true)]
    sign_key: Option<String>,

    /// File holding the signing key.
    #[arg(long, env = "OW_SIGN_KEY_FILE", conflicts_with = "sign_key")]
    sign_key_file: Option<PathBuf>,

    /// Proto-functions (modules exporting `ow_zygote`): run `_initialize`
    /// and `ow_zygote` here and package the snapshot (docs/abi.md), so that
    /// executors skip it at /init and load its native code. Other modules
    /// are packaged as they are.
    #[arg(long)]
    snapshot: bool,

    /// With --snapshot: the environment the zygote sees (`KEY=VALUE`,
    /// repeatable), as the action's /init env would be.
    #[arg(long = "env", value_parser = parse_env, requires = "snapshot")]
    env: Vec<(String, String)>,

    /// With --snapshot: the longest a zygote may run.
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration, requires = "snapshot")]
    snapshot_time_limit: std::time::Duration,

    /// The modules; each `NAME.wasm` becomes `OUT/NAME.zip`.
    #[arg(required = true)]
    files: Vec<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum EngineChoice {
    /// Every engine with a precompiled form built in.
    All,
    /// wasmtime (Cranelift).
    #[cfg(feature = "wasmtime")]
    Wasmtime,
    /// wasmer (Cranelift).
    #[cfg(feature = "wasmer")]
    Wasmer,
}

fn parse_env(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .ok_or_else(|| format!("`{s}` is not KEY=VALUE"))
}

/// The snapshot of `wasm` when it is a proto-function, else `wasm`.
#[cfg(feature = "wasmtime")]
fn snapshot(wasm: Vec<u8>, cli: &Cli) -> anyhow::Result<Vec<u8>> {
    if !cli.snapshot || !ow_common::abi::exports_function(&wasm, ow_common::abi::EXPORT_ZYGOTE) {
        return Ok(wasm);
    }
    let maker = ow_wasmtime::WasmtimeRuntime::new(Limits::default())?;
    Ok(maker.snapshot(&wasm, &cli.env, cli.snapshot_time_limit)?)
}

#[cfg(not(feature = "wasmtime"))]
fn snapshot(wasm: Vec<u8>, cli: &Cli) -> anyhow::Result<Vec<u8>> {
    if cli.snapshot && ow_common::abi::exports_function(&wasm, ow_common::abi::EXPORT_ZYGOTE) {
        bail!("--snapshot needs the wasmtime feature");
    }
    Ok(wasm)
}

fn engines(choices: &[EngineChoice]) -> anyhow::Result<Vec<Box<dyn WasmRuntime>>> {
    // The executor's default limits: its engines are configured alike, so
    // the compatibility hashes match.
    let limits = Limits::default();
    let all = choices.contains(&EngineChoice::All);
    let mut engines: Vec<Box<dyn WasmRuntime>> = Vec::new();
    #[cfg(feature = "wasmtime")]
    if all || choices.contains(&EngineChoice::Wasmtime) {
        engines.push(Box::new(ow_wasmtime::WasmtimeRuntime::new(limits.clone())?));
    }
    #[cfg(feature = "wasmer")]
    if all || choices.contains(&EngineChoice::Wasmer) {
        engines.push(Box::new(ow_wasmer::WasmerRuntime::new(limits.clone())?));
    }
    let _ = (all, limits);
    if engines.is_empty() {
        bail!("no engine with a precompiled form is built into this precompiler");
    }
    Ok(engines)
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let key = match (&cli.sign_key, &cli.sign_key_file) {
        (Some(key), _) => Some(key.as_bytes().to_vec()),
        (None, Some(path)) => {
            Some(std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?)
        }
        (None, None) => None,
    }
    .map(|bytes| SigningKey::new(&bytes))
    .transpose()
    .map_err(anyhow::Error::msg)?;
    let engines = engines(&cli.engine)?;
    let refs: Vec<&dyn WasmRuntime> = engines.iter().map(|e| e.as_ref()).collect();
    std::fs::create_dir_all(&cli.out)
        .with_context(|| format!("cannot create {}", cli.out.display()))?;
    for file in &cli.files {
        let wasm =
            std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?;
        let wasm =
            snapshot(wasm, &cli).with_context(|| format!("cannot snapshot {}", file.display()))?;
        let zip = ow_precompiler::package(&wasm, &refs, key.as_ref())
            .with_context(|| format!("cannot precompile {}", file.display()))?;
        let stem = file
            .file_stem()
            .with_context(|| format!("{} has no file name", file.display()))?;
        let out = cli.out.join(stem).with_extension("zip");
        std::fs::write(&out, &zip).with_context(|| format!("cannot write {}", out.display()))?;
        let names: Vec<String> = refs
            .iter()
            .map(|e| format!("{} {}", e.name(), e.version()))
            .collect();
        let signed = match &key {
            Some(key) => format!("signed with key {}", key.key_id()),
            None => "UNSIGNED: executors use its native code only with \
                     --trust-unsigned-artifacts, else they compile action.wasm"
                .to_owned(),
        };
        println!(
            "{} ({} bytes): {}; {signed}",
            out.display(),
            zip.len(),
            names.join(", ")
        );
    }
    Ok(())
}
