//! Our wasmtime configuration, each knob explained.

use ow_common::{Error, Limits, Result};
use wasmtime::{Config, Enabled, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

/// Dirty bytes of a freed memory slot restored in place rather than
/// unmapped (see [`WasmtimeConfig`]'s pooled configuration): a Rust action's
/// shadow stack (1 MiB) and first heap pages fit, and so do payloads of a
/// few MiB passed between chained actions, which would otherwise fault in
/// afresh in every activation.
const LINEAR_MEMORY_KEEP_RESIDENT: usize = 8 << 20;

/// How the wasmtime engine is set up.
///
/// Defaults, and why:
/// - **Pooling allocator** (`pooling = true`): instance slots, memories and
///   tables are reserved once at start-up and reused, so instantiating an
///   action costs microseconds instead of an `mmap`/`munmap` pair per
///   activation. It reserves `max_instances` x (memory reservation + guard)
///   of virtual address space, which a 64-bit Linux host allows; where it does
///   not (a `ulimit -v`, a 32-bit host), [`WasmtimeConfig::build_engine`] falls
///   back to on-demand allocation.
/// - **Copy-on-write memory images** (wasmtime's default, kept on): a
///   module's data segments are mapped, not copied, into each fresh instance.
/// - **Async execution, one deadline**: guest code runs on a fiber
///   (`call_async`); a ticker thread advances the epoch every few
///   milliseconds and a running guest yields at each tick (a load and
///   compare at loop headers, far less than fuel metering). The activation's
///   time limit is one tokio timeout around the call: it stops a guest that
///   computes (at its next yield) and one blocked in a WASI sleep (a timer,
///   not a blocked thread) alike, by dropping the call.
/// - **Memory cap**: the pool's memory slots and each store's limiter stop
///   linear memory at `limits.max_memory_bytes` (`memory.grow` returns -1).
/// - **Stack and tables**: `max_wasm_stack` is `limits.max_stack_bytes`
///   (engine-wide); each table is capped at `limits.max_table_elements`.
/// - **Cranelift, speed-optimised, parallel compilation**: /init compiles
///   once, activations only instantiate.
#[derive(Debug, Clone)]
pub struct WasmtimeConfig {
    /// Limits applied to every activation.
    pub limits: Limits,
    /// Use the pooling allocator when possible.
    pub pooling: bool,
}

impl WasmtimeConfig {
    /// The defaults above, with these limits.
    pub fn new(limits: Limits) -> Self {
        Self {
            limits,
            pooling: true,
        }
    }

    fn base(&self) -> Config {
        let mut config = Config::new();
        config
            .epoch_interruption(true)
            .cranelift_opt_level(wasmtime::OptLevel::Speed)
            .parallel_compilation(true)
            .memory_init_cow(true)
            .max_wasm_stack(self.limits.max_stack_bytes)
            // The fiber stack holds the wasm stack plus the host functions
            // (WASI) called from it: 1 MiB above the wasm limit.
            .async_stack_size(self.limits.max_stack_bytes + (1 << 20));
        config
    }

    fn pooled(&self) -> Config {
        let mut pool = PoolingAllocationConfig::default();
        let n = self.limits.max_instances.max(1);
        pool.total_core_instances(n)
            .total_memories(n)
            .total_tables(n)
            // One fiber stack per running activation, reused like the rest.
            .total_stacks(n)
            .max_memory_size(self.limits.max_memory_bytes)
            .table_elements(self.limits.max_table_elements as usize)
            // A freed slot's memory is reset in place, not unmapped: with
            // Linux's PAGEMAP_SCAN (6.7+) wasmtime finds the pages the guest
            // dirtied anywhere in the slot and restores just those, up to
            // this many bytes, with no `madvise` (whose TLB shootdown
            // interrupts every core running the executor's threads) and no
            // page fault when the slot is used again. Without PAGEMAP_SCAN
            // the lowest bytes are memset and the rest madvised.
            .pagemap_scan(Enabled::Auto)
            .linear_memory_keep_resident(LINEAR_MEMORY_KEEP_RESIDENT)
            .table_keep_resident(64 * 1024);
        let mut config = self.base();
        config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        config
    }

    /// Build the engine; returns it and whether it pools.
    ///
    /// # Errors
    /// [`Error::Resources`] when neither configuration is accepted.
    pub fn build_engine(&self) -> Result<(Engine, bool)> {
        if self.pooling {
            match Engine::new(&self.pooled()) {
                Ok(engine) => return Ok((engine, true)),
                Err(e) => {
                    tracing::warn!("pooling allocator unavailable, allocating on demand: {e:#}")
                }
            }
        }
        Engine::new(&self.base())
            .map(|engine| (engine, false))
            .map_err(|e| Error::Resources(format!("cannot create the wasmtime engine: {e:#}")))
    }
}
