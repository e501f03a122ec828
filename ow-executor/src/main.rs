//! `ow-executor`: an OpenWhisk action runtime that runs WebAssembly actions.
//!
//! See the crate README for the endpoints and flags, `docs/abi.md` for the
//! action ABI.

mod auth;
mod budget;
mod chain;
mod cli;
mod engines;
mod error;
mod faas_api;
mod functions;
mod host;
mod load;
mod logs;
mod metrics;
mod openwhisk_api;
mod registry;
mod server;
mod state_api;

use anyhow::Context as _;
use clap::Parser;
use cli::Cli;
use std::sync::Arc;
use tracing_subscriber::EnvFilter;

fn main() -> anyhow::Result<()> {
    keep_freed_memory();
    let cli = Cli::parse();
    init_tracing(&cli)?;
    let options = engines::EngineOptions {
        #[cfg(feature = "wasmer")]
        wasmer_compiler: Some(cli.wasmer_compiler),
    };
    let engines = engines::Engines::new(cli.engine, cli.limits(), options)?;
    tracing::info!(engine = cli.engine.name(), "default engine ready");

    let settings = server::ServerSettings {
        max_init_bytes: cli.max_init_bytes,
        max_run_bytes: cli.max_run_bytes,
        http_workers: cli.http_workers,
        max_concurrency: match cli.max_concurrency {
            0 => cli.max_instances as usize,
            n => n,
        },
        max_queue_wait: cli.max_queue_wait,
        max_log_bytes: cli.max_log_bytes,
        init_thread_stack_bytes: ow_common::blocking::thread_stack_bytes(&cli.limits()),
        scratch_dir: cli.scratch_dir(),
        shutdown_timeout: cli.shutdown_timeout.unwrap_or_else(|| {
            cli.max_duration
                .saturating_add(server::DEADLINE_GRACE)
                .saturating_add(std::time::Duration::from_secs(1))
        }),
        memory_budget: cli.memory_budget.bytes(),
        max_concurrent_inits: cli.max_concurrent_inits as usize,
        // An empty token would match a request without one: closed.
        admin_token: cli.admin_token.clone().filter(|t| !t.is_empty()),
    };
    if let Some(bytes) = settings.memory_budget {
        tracing::info!(mib = bytes >> 20, "memory budget");
    }
    let trust = cli.trust_policy().map_err(anyhow::Error::msg)?;
    if trust.trust_unsigned {
        tracing::warn!(
            "--trust-unsigned-artifacts: native code in unsigned uploads is loaded; \
             every uploader can run arbitrary code in this process"
        );
    }
    let cache = match &cli.cache_dir {
        Some(dir) => Some(
            load::CompileCache::open(dir, cli.cache_max_mb.saturating_mul(1 << 20))
                .with_context(|| format!("cannot open the compile cache {}", dir.display()))?,
        ),
        None => None,
    };
    let loader = load::Loader::new(trust, cache);
    // A scratch parent that cannot be used fails now, not at some /run.
    drop(ow_common::scratch::create(&cli.scratch_dir()).map_err(|e| anyhow::anyhow!("{e}"))?);
    actix_web::rt::System::new().block_on(async move {
        let store = match &cli.state_redis {
            None => ow_state::State::embedded(cli.state_max_value_bytes),
            Some(url) => {
                if cli.state_lock_lease < std::time::Duration::from_millis(100) {
                    anyhow::bail!(
                        "--state-lock-lease must be at least 100ms (it is renewed every third of it)"
                    );
                }
                let mut options = ow_state::RedisOptions::new(url.as_str());
                options.op_timeout = cli.state_op_timeout;
                options.lock_lease = cli.state_lock_lease;
                options.local_cache_entries = cli.state_local_cache;
                ow_state::State::redis(options, cli.state_max_value_bytes)
                    .await
                    .map_err(anyhow::Error::msg)?
            }
        };
        tracing::info!(tier = store.tier_name(), "action state ready");
        let mut state = server::AppState::new(engines, loader, settings, store)
            .context("cannot start the /init thread pool")?
            .with_chaining(chain::ChainSettings {
                max_depth: cli.max_call_depth as usize,
                max_in_flight: cli.max_calls_in_flight as usize,
                peers: cli.peers.clone(),
            });
        if let Some(functions) = function_store(&cli)? {
            state = state.with_functions(functions);
        }
        let state = actix_web::web::Data::new(state);
        let started = std::time::Instant::now();
        server::warm_up(&state)
            .await
            .map_err(|e| anyhow::anyhow!("an engine failed its warm-up: {e}"))?;
        tracing::info!(elapsed = ?started.elapsed(), "engines warmed up");
        // Bind only once /init can be served: the invoker retries refused
        // connections.
        let listener = listen(&cli.host, cli.port)
            .with_context(|| format!("cannot listen on {}:{}", cli.host, cli.port))?;
        tracing::info!(addr = %listener.local_addr()?, "listening");
        // actix stops gracefully on SIGTERM/SIGINT: in-flight requests finish.
        server::serve(state, listener)?.await?;
        anyhow::Ok(())
    })?;
    tracing::info!("stopped");
    Ok(())
}

/// The function store and its APIs, with `--store-dir`.
fn function_store(cli: &Cli) -> anyhow::Result<Option<functions::Functions>> {
    let Some(dir) = &cli.store_dir else {
        return Ok(None);
    };
    ow_store::check_name("namespace", &cli.namespace).map_err(anyhow::Error::msg)?;
    let auth = match (&cli.auth, cli.no_auth) {
        (Some(auth), _) => {
            if !auth
                .split_once(':')
                .is_some_and(|(uuid, key)| !uuid.is_empty() && !key.is_empty())
            {
                anyhow::bail!("--auth must be uuid:key");
            }
            Some(auth.clone())
        }
        (None, true) => {
            let loopback = matches!(cli.host.as_str(), "localhost")
                || cli
                    .host
                    .parse::<std::net::IpAddr>()
                    .is_ok_and(|ip| ip.is_loopback());
            if !loopback {
                anyhow::bail!(
                    "--no-auth is only allowed with a loopback --host (127.0.0.1, ::1, localhost)"
                );
            }
            None
        }
        (None, false) => anyhow::bail!(
            "--store-dir serves the function APIs: give --auth uuid:key (or --no-auth with a loopback --host)"
        ),
    };
    let started = std::time::Instant::now();
    let store = ow_store::Store::open(dir)
        .with_context(|| format!("cannot open the function store {}", dir.display()))?;
    tracing::info!(functions = store.len(), elapsed = ?started.elapsed(), "function store open");
    let images = ow_oci::Puller::new(ow_oci::PullOptions {
        insecure: cli.insecure_registries.clone(),
        timeout: cli.registry_timeout,
        max_module_bytes: cli.max_init_bytes as u64,
        cache_dir: Some(dir.join("oci-cache")),
        ..ow_oci::PullOptions::default()
    });
    let credentials = functions::Credentials {
        auth,
        namespace: cli.namespace.clone(),
    };
    Ok(Some(functions::Functions::new(store, credentials, images)))
}

/// Connections the kernel queues for accepting: a burst of thousands of
/// activations is queued, not dropped (std's listeners queue 128; the
/// kernel caps this at `net.core.somaxconn`).
const LISTEN_BACKLOG: i32 = 4096;

fn listen(host: &str, port: u16) -> anyhow::Result<std::net::TcpListener> {
    use std::net::ToSocketAddrs as _;
    let addr = (host, port)
        .to_socket_addrs()?
        .next()
        .ok_or_else(|| anyhow::anyhow!("{host} resolves to no address"))?;
    let socket = socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::STREAM,
        Some(socket2::Protocol::TCP),
    )?;
    socket.set_reuse_address(true)?;
    socket.bind(&addr.into())?;
    socket.listen(LISTEN_BACKLOG)?;
    Ok(socket.into())
}

/// Let glibc's allocator keep and reuse freed memory of the size of
/// payloads (a call's params, results, /run bodies of megabytes) instead of
/// returning it to the kernel after each, which made every activation
/// fault its buffers in afresh: blocks up to 32 MiB (glibc's largest
/// threshold) come from the heap, and up to 128 MiB of free heap top is
/// kept. `GLIBC_TUNABLES` cannot override these; other C libraries are left
/// alone.
fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets two parameters of glibc's allocator; it is
    // called before any other thread exists, and both values are in the
    // ranges glibc documents (mallopt(3)); a refused value is ignored.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 128 << 20);
    }
}

/// Diagnostics go to `--log-file` if given, else to stderr only when a level
/// was asked for; by default the executor prints nothing of its own.
fn init_tracing(cli: &Cli) -> anyhow::Result<()> {
    let filter = cli
        .log_level
        .clone()
        .or_else(|| std::env::var("RUST_LOG").ok())
        .filter(|s| !s.trim().is_empty());
    let builder = tracing_subscriber::fmt().with_ansi(false);
    match (&cli.log_file, filter) {
        (Some(path), filter) => {
            let file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .with_context(|| format!("cannot open the log file {}", path.display()))?;
            builder
                .with_env_filter(EnvFilter::try_new(filter.as_deref().unwrap_or("info"))?)
                .with_writer(Arc::new(file))
                .init();
        }
        (None, Some(filter)) => builder
            .with_env_filter(EnvFilter::try_new(filter)?)
            .with_writer(std::io::stderr)
            .init(),
        (None, None) => {}
    }
    Ok(())
}
