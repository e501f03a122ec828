//! Command line; every flag is also an environment variable.

use clap::{Parser, ValueEnum};
use ow_common::Limits;
use ow_common::runtime::{DEFAULT_TABLE_ELEMENTS, MAX_STACK_BYTES};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

/// OpenWhisk action runtime for WebAssembly: answers /init and /run.
#[derive(Debug, Clone, Parser)]
#[command(version, about, long_about = None)]
pub struct Cli {
    /// Address to listen on.
    #[arg(long, env = "OW_HOST", default_value = "0.0.0.0")]
    pub host: String,

    /// Port to listen on (OpenWhisk's invoker expects 8080).
    #[arg(long, env = "PORT", default_value_t = 8080)]
    pub port: u16,

    /// WebAssembly engine that runs the actions.
    #[arg(long, env = "OW_ENGINE", value_enum, default_value_t = EngineKind::ALL[0])]
    pub engine: EngineKind,

    /// wasmer's compiler: `cranelift` (optimising) or `singlepass` (faster
    /// /init, slower activations).
    #[cfg(feature = "wasmer")]
    #[arg(long, env = "OW_WASMER_COMPILER", value_enum, default_value_t = WasmerCompiler::Cranelift)]
    pub wasmer_compiler: WasmerCompiler,

    /// Write the executor's own diagnostics to this file. Without it (and
    /// without --log-level / RUST_LOG) the executor prints nothing of its own:
    /// stdout and stderr carry only the actions' logs and the sentinels.
    #[arg(long, env = "OW_LOG_FILE")]
    pub log_file: Option<PathBuf>,

    /// Diagnostics level or filter (e.g. `info`, `ow_executor=debug`). With no
    /// --log-file they go to stderr. RUST_LOG is honoured too.
    #[arg(long, env = "OW_LOG_LEVEL")]
    pub log_level: Option<String>,

    /// Largest linear memory of one activation, in MiB.
    #[arg(long, env = "OW_MAX_MEMORY_MB", default_value_t = 256)]
    pub max_memory_mb: usize,

    /// Longest an activation may run, whatever its deadline (`300s`, `5m`,
    /// `1500ms`; a bare number is milliseconds).
    #[arg(long, env = "OW_MAX_DURATION", default_value = "300s", value_parser = parse_duration)]
    pub max_duration: Duration,

    /// Largest result of an activation, in bytes.
    #[arg(long, env = "OW_MAX_RESULT_BYTES", default_value_t = 1 << 20)]
    pub max_result_bytes: usize,

    /// Log bytes kept per stream and activation; the rest is cut with a notice.
    #[arg(long, env = "OW_MAX_LOG_BYTES", default_value_t = 10 << 20)]
    pub max_log_bytes: usize,

    /// Instances that may run at once (sizes the engine's instance pool).
    #[arg(long, env = "OW_MAX_INSTANCES", default_value_t = 1000)]
    pub max_instances: u32,

    /// Wasm call stack of an activation, in KiB; deeper recursion traps with
    /// a stack overflow (operator-wide: wasmtime sets it per engine).
    #[arg(long, env = "OW_MAX_STACK_KB", default_value_t = 512,
          value_parser = clap::value_parser!(u32).range(64..=(MAX_STACK_BYTES >> 10) as i64))]
    pub max_stack_kb: u32,

    /// Elements any one wasm table may hold (larger tables fail /init,
    /// `table.grow` past it returns -1).
    #[arg(long, env = "OW_MAX_TABLE_ELEMENTS", default_value_t = DEFAULT_TABLE_ELEMENTS)]
    pub max_table_elements: u32,

    /// Where per-activation scratch directories are created for actions
    /// that ask for one (/init env `OW_SCRATCH=1`); each is removed when its
    /// activation ends. Put it on a size-limited tmpfs: wasmtime and WAMR
    /// write there without a quota (wasmer keeps scratch files in memory, up
    /// to the memory cap in bytes, on top of linear memory). Default: the
    /// system's temporary directory. Checked at start-up.
    #[arg(long, env = "OW_SCRATCH_DIR")]
    pub scratch_dir: Option<PathBuf>,

    /// Activations that may run at once; more wait up to --max-queue-wait
    /// for a slot, then get 429 (never 503, which the invoker reads as
    /// "container shutting down"). 0: as many as --max-instances.
    #[arg(long, env = "OW_MAX_CONCURRENCY", default_value_t = 0)]
    pub max_concurrency: usize,

    /// How long a /run may wait for a free activation slot.
    #[arg(long, env = "OW_MAX_QUEUE_WAIT", default_value = "2s", value_parser = parse_duration)]
    pub max_queue_wait: Duration,

    /// Largest /init body, in bytes (base64 code of up to 48 MB).
    #[arg(long, env = "OW_MAX_INIT_BYTES", default_value_t = 64 << 20)]
    pub max_init_bytes: usize,

    /// Largest /run body, in bytes (OpenWhisk's parameters are at most 1 MiB;
    /// JSON escaping can grow them).
    #[arg(long, env = "OW_MAX_RUN_BYTES", default_value_t = 8 << 20)]
    pub max_run_bytes: usize,

    /// Key for precompiled artifacts: a zip's native code is loaded only if
    /// its manifest is signed (HMAC-SHA256) with this key; otherwise its
    /// action.wasm is compiled. Prefer --artifact-key-file.
    #[arg(long, env = "OW_ARTIFACT_KEY", hide_env_values = true)]
    pub artifact_key: Option<String>,

    /// File holding the artifact key (see --artifact-key).
    #[arg(long, env = "OW_ARTIFACT_KEY_FILE", conflicts_with = "artifact_key")]
    pub artifact_key_file: Option<PathBuf>,

    /// DANGER, closed deployments only: load native code from zips whose
    /// manifest is not signed. Anyone who can upload an action can then run
    /// arbitrary machine code in this process, outside the wasm sandbox.
    /// With an artifact key too, a signature that does not verify is still
    /// refused. Shown in `GET /engines` and `/metrics`.
    #[arg(long, env = "OW_TRUST_UNSIGNED_ARTIFACTS")]
    pub trust_unsigned_artifacts: bool,

    /// Compile cache directory: compiled actions are kept there, keyed by
    /// the module's digest and the engine's version and settings, so a cold
    /// start of a known action skips compilation. Keep it private to the
    /// executor (it holds native code the executor loads). Off by default.
    #[arg(long, env = "OW_CACHE_DIR")]
    pub cache_dir: Option<PathBuf>,

    /// Largest size of the compile cache, in MiB (least recently used
    /// entries are evicted).
    #[arg(long, env = "OW_CACHE_MAX_MB", default_value_t = 1024)]
    pub cache_max_mb: u64,

    /// Memory all running activations and /inits may reserve together:
    /// each activation reserves its memory cap plus its two log buffers,
    /// each /init 8 times its body, before it starts; what does not fit
    /// waits up to --max-queue-wait, then gets 429. `auto` (the default):
    /// the cgroup's memory limit less 64 MiB for the executor, or no budget
    /// when there is no limit; `off`: no budget; else a size (`512` is MiB,
    /// or `512M`, `2G`).
    #[arg(long, env = "OW_MEMORY_BUDGET", default_value = "auto", value_parser = parse_budget)]
    pub memory_budget: MemoryBudgetArg,

    /// /init requests that may read and compile code at once; more wait up
    /// to --max-queue-wait, then get 429.
    #[arg(long, env = "OW_MAX_CONCURRENT_INITS", default_value_t = 4,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub max_concurrent_inits: u32,

    /// The most a graceful shutdown (SIGTERM, SIGINT) waits for in-flight
    /// requests before closing them. Default: the longest an activation may
    /// run (--max-duration) plus the deadline guard's grace and a second,
    /// so that every activation admitted before the signal is answered and
    /// its logs and sentinels are written.
    #[arg(long, env = "OW_SHUTDOWN_TIMEOUT", value_parser = parse_duration)]
    pub shutdown_timeout: Option<Duration>,

    /// HTTP worker threads (0: one per core). Wasm runs on a separate pool.
    #[arg(long, env = "OW_HTTP_WORKERS", default_value_t = 0)]
    pub http_workers: usize,

    /// The actions' state (ABI version 2) in Redis, shared by every
    /// executor using the same server (`redis://host:port/db`). Default:
    /// the embedded tier, in this process only.
    #[arg(long, env = "OW_STATE_REDIS")]
    pub state_redis: Option<String>,

    /// The largest value a state key may hold, in bytes.
    #[arg(long, env = "OW_STATE_MAX_VALUE_BYTES", default_value_t = ow_common::state::DEFAULT_MAX_VALUE_BYTES)]
    pub state_max_value_bytes: usize,

    /// The longest one Redis state operation may take before the guest
    /// gets `-3` (unavailable).
    #[arg(long, env = "OW_STATE_OP_TIMEOUT", default_value = "2s", value_parser = parse_duration)]
    pub state_op_timeout: Duration,

    /// How long a Redis state lock outlives an executor that died holding
    /// it (renewed every third of it while held).
    #[arg(long, env = "OW_STATE_LOCK_LEASE", default_value = "10s", value_parser = parse_duration)]
    pub state_lock_lease: Duration,

    /// With --state-redis: keep up to this many values this executor read in
    /// its memory, invalidated by Redis (client-side caching on one shared
    /// connection), so reads of unchanged keys make no round trip. It may
    /// hold this many times --state-max-value-bytes. 0: every read goes to
    /// Redis (on a connection per calling runtime).
    #[arg(long, env = "OW_STATE_LOCAL_CACHE", default_value_t = 0)]
    pub state_local_cache: usize,

    /// The operator's bearer token for the state upload endpoint
    /// (`PUT/GET/DELETE /state/{namespace}/{key}`); closed without one.
    #[arg(long, env = "OW_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,

    /// Another executor whose function API (`POST /function/{name}`) serves
    /// calls of actions found neither here nor through the OpenWhisk API
    /// (`__OW_API_HOST`); tried in the order given. Repeatable, or
    /// comma-separated in the variable. Credentials may be in the URL
    /// (`http://uuid:key@host:port`); else the caller's API key is sent.
    #[arg(long = "peer", env = "OW_PEERS", value_delimiter = ',')]
    pub peers: Vec<String>,

    /// Activations a chain of calls may have, the root included; a call
    /// that would go deeper gets an error result.
    #[arg(long, env = "OW_MAX_CALL_DEPTH", default_value_t = 16,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub max_call_depth: u32,

    /// Calls one activation may have started and not yet awaited; `call`
    /// returns -5 beyond.
    #[arg(long, env = "OW_MAX_CALLS_IN_FLIGHT", default_value_t = 1000,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub max_calls_in_flight: u32,

    /// Keep functions in this directory (created if missing) and serve the
    /// function APIs on this port: OpenFaaS's faas-provider
    /// (`/system/...`, `/function/{name}`), WasmEngine's (`/function/deploy`,
    /// ...) and OpenWhisk's (`/api/v1/namespaces/...`).
    #[arg(long, env = "OW_STORE_DIR")]
    pub store_dir: Option<PathBuf>,

    /// The credentials of the function APIs, OpenWhisk's `uuid:key` form,
    /// checked as HTTP basic auth (user uuid, password key).
    #[arg(long, env = "OW_AUTH", hide_env_values = true)]
    pub auth: Option<String>,

    /// The namespace of --auth's key: where its functions live.
    #[arg(long, env = "OW_NAMESPACE", default_value = "guest")]
    pub namespace: String,

    /// Serve the function APIs without credentials: only on a loopback
    /// --host.
    #[arg(long)]
    pub no_auth: bool,

    /// A registry (`host[:port]`) to pull function images from over plain
    /// HTTP; loopback registries always are. Repeatable.
    #[arg(
        long = "insecure-registry",
        env = "OW_INSECURE_REGISTRIES",
        value_delimiter = ','
    )]
    pub insecure_registries: Vec<String>,

    /// The longest pull of a function image.
    #[arg(long, env = "OW_REGISTRY_TIMEOUT", default_value = "30s", value_parser = parse_duration)]
    pub registry_timeout: Duration,
}

/// wasmer's compilers.
#[cfg(feature = "wasmer")]
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum WasmerCompiler {
    /// Cranelift.
    Cranelift,
    /// Single pass.
    Singlepass,
}

/// The engines this binary can run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum EngineKind {
    /// wasmtime (Cranelift), pooling allocator.
    #[cfg(feature = "wasmtime")]
    Wasmtime,
    /// wasmer (Cranelift) with wasmer-wasix.
    #[cfg(feature = "wasmer")]
    Wasmer,
    /// WAMR, fast interpreter.
    #[cfg(feature = "wamr")]
    Wamr,
}

impl EngineKind {
    /// Every engine compiled into this binary.
    pub const ALL: &[EngineKind] = &[
        #[cfg(feature = "wasmtime")]
        EngineKind::Wasmtime,
        #[cfg(feature = "wasmer")]
        EngineKind::Wasmer,
        #[cfg(feature = "wamr")]
        EngineKind::Wamr,
    ];

    /// The name used on the command line and in `OW_ENGINE`.
    pub fn name(self) -> &'static str {
        match self {
            #[cfg(feature = "wasmtime")]
            EngineKind::Wasmtime => "wasmtime",
            #[cfg(feature = "wasmer")]
            EngineKind::Wasmer => "wasmer",
            #[cfg(feature = "wamr")]
            EngineKind::Wamr => "wamr",
        }
    }

    /// The engine with this name (case-insensitive).
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL
            .iter()
            .copied()
            .find(|k| k.name().eq_ignore_ascii_case(name.trim()))
    }

    /// The names of all engines, for messages.
    pub fn names() -> String {
        Self::ALL
            .iter()
            .map(|k| k.name())
            .collect::<Vec<_>>()
            .join(", ")
    }
}

impl Cli {
    /// The activation limits the flags describe.
    pub fn limits(&self) -> Limits {
        Limits {
            max_memory_bytes: self.max_memory_mb.saturating_mul(1 << 20),
            max_duration: self.max_duration,
            max_result_bytes: self.max_result_bytes,
            max_log_bytes: self.max_log_bytes,
            max_instances: self.max_instances,
            max_table_elements: self.max_table_elements,
            max_stack_bytes: (self.max_stack_kb as usize) << 10,
        }
    }

    /// The trust policy for precompiled artifacts.
    ///
    /// # Errors
    /// An unreadable key file or a key that is too short.
    pub fn trust_policy(&self) -> Result<ow_artifact::TrustPolicy, String> {
        let bytes = match (&self.artifact_key, &self.artifact_key_file) {
            (Some(key), _) => Some(key.as_bytes().to_vec()),
            (None, Some(path)) => Some(
                std::fs::read(path)
                    .map_err(|e| format!("cannot read the artifact key {}: {e}", path.display()))?,
            ),
            (None, None) => None,
        };
        let key = bytes
            .map(|b| ow_artifact::SigningKey::new(&b))
            .transpose()
            .map_err(|e| format!("artifact key: {e}"))?;
        Ok(ow_artifact::TrustPolicy {
            key,
            trust_unsigned: self.trust_unsigned_artifacts,
        })
    }

    /// The parent of scratch directories.
    pub fn scratch_dir(&self) -> PathBuf {
        self.scratch_dir.clone().unwrap_or_else(std::env::temp_dir)
    }
}

/// The /init `env` key by which an action asks for a scratch directory.
pub const SCRATCH_ENV_KEY: &str = "OW_SCRATCH";

/// Whether the action's init env asks for a scratch directory
/// (`OW_SCRATCH` = `1`, `true` or `yes`).
///
/// # Errors
/// Any other non-empty value, so that a typo does not go unnoticed.
pub fn wants_scratch(env: &BTreeMap<String, String>) -> Result<bool, String> {
    let Some(value) = env
        .get(SCRATCH_ENV_KEY)
        .map(|v| v.trim().to_ascii_lowercase())
    else {
        return Ok(false);
    };
    match value.as_str() {
        "1" | "true" | "yes" => Ok(true),
        "" | "0" | "false" | "no" => Ok(false),
        _ => Err(format!(
            "invalid {SCRATCH_ENV_KEY} {value:?}: expected 1/true/yes or 0/false/no"
        )),
    }
}

/// The limits of one action: the operator's, lowered by the /init `env` keys
/// `OW_MAX_MEMORY_MB`, `OW_MAX_DURATION`, `OW_MAX_RESULT_BYTES`,
/// `OW_MAX_LOG_BYTES` and `OW_MAX_TABLE_ELEMENTS` (the executor's own
/// variable names). An action can
/// only lower a limit; asking for more gets the operator's value.
///
/// # Errors
/// A value that does not parse, naming the key.
pub fn action_limits(operator: &Limits, env: &BTreeMap<String, String>) -> Result<Limits, String> {
    fn get<T>(
        env: &BTreeMap<String, String>,
        key: &str,
        parse: impl Fn(&str) -> Result<T, String>,
    ) -> Result<Option<T>, String> {
        env.get(key)
            .filter(|v| !v.trim().is_empty())
            .map(|v| parse(v.trim()).map_err(|e| format!("invalid {key} {v:?}: {e}")))
            .transpose()
    }
    let number = |v: &str| v.parse::<usize>().map_err(|e| e.to_string());
    let asked = Limits {
        max_memory_bytes: get(env, "OW_MAX_MEMORY_MB", number)?
            .map_or(operator.max_memory_bytes, |mb| mb.saturating_mul(1 << 20)),
        max_duration: get(env, "OW_MAX_DURATION", parse_duration)?.unwrap_or(operator.max_duration),
        max_result_bytes: get(env, "OW_MAX_RESULT_BYTES", number)?
            .unwrap_or(operator.max_result_bytes),
        max_log_bytes: get(env, "OW_MAX_LOG_BYTES", number)?.unwrap_or(operator.max_log_bytes),
        max_instances: operator.max_instances,
        max_table_elements: get(env, "OW_MAX_TABLE_ELEMENTS", |v| {
            v.parse::<u32>().map_err(|e| e.to_string())
        })?
        .unwrap_or(operator.max_table_elements),
        max_stack_bytes: operator.max_stack_bytes,
    };
    Ok(asked.within(operator))
}

/// `--memory-budget`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemoryBudgetArg {
    /// From the cgroup's memory limit, if any.
    Auto,
    /// No budget.
    Off,
    /// This many bytes.
    Bytes(u64),
}

impl MemoryBudgetArg {
    /// The budget in bytes, if there is one.
    pub fn bytes(self) -> Option<u64> {
        match self {
            MemoryBudgetArg::Auto => crate::budget::default_budget_bytes(),
            MemoryBudgetArg::Off => None,
            MemoryBudgetArg::Bytes(n) => Some(n),
        }
    }
}

fn parse_budget(s: &str) -> Result<MemoryBudgetArg, String> {
    let s = s.trim();
    match s.to_ascii_lowercase().as_str() {
        "auto" => return Ok(MemoryBudgetArg::Auto),
        "off" | "none" | "0" => return Ok(MemoryBudgetArg::Off),
        _ => {}
    }
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (digits, unit) = s.split_at(split);
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("`{s}` is not a size (e.g. 512, 512M, 2G, auto, off)"))?;
    let shift = match unit.trim().to_ascii_uppercase().as_str() {
        "" | "M" | "MB" | "MIB" => 20,
        "K" | "KB" | "KIB" => 10,
        "G" | "GB" | "GIB" => 30,
        other => return Err(format!("unknown size unit `{other}` (use K, M or G)")),
    };
    n.checked_mul(1 << shift)
        .filter(|&bytes| bytes >= 1 << 20)
        .map(MemoryBudgetArg::Bytes)
        .ok_or_else(|| format!("`{s}` is out of range (at least 1 MiB)"))
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    if let Ok(ms) = s.parse::<u64>() {
        return Ok(Duration::from_millis(ms));
    }
    humantime::parse_duration(s).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budgets_accept_sizes_auto_and_off() {
        assert_eq!(
            parse_budget("512").unwrap(),
            MemoryBudgetArg::Bytes(512 << 20)
        );
        assert_eq!(parse_budget("2G").unwrap(), MemoryBudgetArg::Bytes(2 << 30));
        assert_eq!(
            parse_budget("64mib").unwrap(),
            MemoryBudgetArg::Bytes(64 << 20)
        );
        assert_eq!(parse_budget("auto").unwrap(), MemoryBudgetArg::Auto);
        assert_eq!(parse_budget("off").unwrap(), MemoryBudgetArg::Off);
        assert!(parse_budget("12X").is_err());
        assert!(parse_budget("1K").is_err());
        assert!(parse_budget("99999999999999999G").is_err());
    }

    #[test]
    fn durations_accept_units_and_bare_milliseconds() {
        assert_eq!(parse_duration("1500").unwrap(), Duration::from_millis(1500));
        assert_eq!(parse_duration("5m").unwrap(), Duration::from_secs(300));
        assert!(parse_duration("soon").is_err());
    }

    #[test]
    fn actions_may_lower_limits_but_not_raise_them() {
        let operator = Limits::default();
        let env: BTreeMap<String, String> = [
            ("OW_MAX_MEMORY_MB".to_owned(), "64".to_owned()),
            ("OW_MAX_DURATION".to_owned(), "10m".to_owned()),
            ("OW_MAX_LOG_BYTES".to_owned(), "1000".to_owned()),
            ("OW_MAX_TABLE_ELEMENTS".to_owned(), "99999999".to_owned()),
        ]
        .into();
        let limits = action_limits(&operator, &env).unwrap();
        assert_eq!(limits.max_memory_bytes, 64 << 20);
        assert_eq!(limits.max_duration, operator.max_duration);
        assert_eq!(limits.max_log_bytes, 1000);
        assert_eq!(limits.max_result_bytes, operator.max_result_bytes);
        assert_eq!(limits.max_table_elements, operator.max_table_elements);
        let bad: BTreeMap<String, String> =
            [("OW_MAX_MEMORY_MB".to_owned(), "lots".to_owned())].into();
        assert!(
            action_limits(&operator, &bad)
                .unwrap_err()
                .contains("OW_MAX_MEMORY_MB")
        );
    }

    #[test]
    fn defaults_are_openwhisk_compatible() {
        let cli = Cli::try_parse_from(["ow-executor"]).unwrap();
        if std::env::var_os("PORT").is_none() {
            assert_eq!(cli.port, 8080);
        }
        if std::env::var_os("OW_ENGINE").is_none() {
            assert_eq!(cli.engine, EngineKind::ALL[0]);
        }
        assert_eq!(cli.limits().max_memory_bytes, 256 << 20);
        assert_eq!(cli.limits().max_result_bytes, 1 << 20);
        assert_eq!(cli.limits().max_stack_bytes, 512 << 10);
        assert!(Cli::try_parse_from(["ow-executor", "--max-stack-kb", "1"]).is_err());
    }

    #[test]
    fn scratch_is_asked_for_explicitly_and_typos_are_errors() {
        let env = |v: &str| BTreeMap::from([(SCRATCH_ENV_KEY.to_owned(), v.to_owned())]);
        assert!(!wants_scratch(&BTreeMap::new()).unwrap());
        assert!(wants_scratch(&env("1")).unwrap());
        assert!(wants_scratch(&env(" TRUE ")).unwrap());
        assert!(!wants_scratch(&env("0")).unwrap());
        assert!(
            wants_scratch(&env("please"))
                .unwrap_err()
                .contains(SCRATCH_ENV_KEY)
        );
    }
}
