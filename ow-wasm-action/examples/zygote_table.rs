//! `zygote_table`: a proto-function snapshot with a 16 MiB lookup table.
//!
//! The zygote spends about 50 ms (natively) building `TABLE`, 4 Mi `u32`
//! entries of one xorshift64 sequence (entry `i` is the high half of the
//! state after `4 * (i + 1)` steps from a fixed seed, so no compiler can fold
//! it), and sets `SEED` to 42. `{"i": i}` ->
//! `{"i": i, "value": TABLE[i], "zygote": z, "seed": s}`: started from the
//! snapshot, `z` is `true` and `s` 42; run without it (an engine or tool that
//! never calls `ow_zygote`) the handler builds the table itself and answers
//! the same `value` with `z` `false` and `s` 0.
use ow_wasm_action::{Value, json};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};

/// Entries in the table: 16 MiB of `u32`.
const ENTRIES: usize = 4 << 20;
/// xorshift steps per entry.
const ROUNDS: u32 = 4;

static TABLE: OnceLock<Box<[u32]>> = OnceLock::new();
/// Whether `ow_zygote` ran (in the snapshot this activation started from).
static ZYGOTE: AtomicBool = AtomicBool::new(false);
/// Memory state the snapshot carries besides the table.
static SEED: AtomicU32 = AtomicU32::new(0);

fn build() -> Box<[u32]> {
    let mut x = std::hint::black_box(0x2545_f491_4f6c_dd1d_u64);
    (0..ENTRIES)
        .map(|_| {
            for _ in 0..ROUNDS {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
            }
            (x >> 32) as u32
        })
        .collect()
}

fn warm() {
    TABLE.get_or_init(build);
    SEED.store(42, Ordering::Relaxed);
    ZYGOTE.store(true, Ordering::Relaxed);
}

fn lookup(params: Value) -> Result<Value, String> {
    let i = params["i"]
        .as_u64()
        .ok_or("missing non-negative integer parameter `i`")?;
    let zygote = ZYGOTE.load(Ordering::Relaxed);
    let table = TABLE.get_or_init(build);
    let value = usize::try_from(i)
        .ok()
        .and_then(|i| table.get(i))
        .ok_or_else(|| format!("`i` must be below {ENTRIES}"))?;
    // `sleep_ms` keeps the activation in flight (to count its memory).
    if let Some(ms) = params["sleep_ms"].as_u64() {
        std::thread::sleep(std::time::Duration::from_millis(ms));
    }
    Ok(json!({
        "i": i,
        "value": value,
        "zygote": zygote,
        "seed": SEED.load(Ordering::Relaxed),
    }))
}

ow_wasm_action::export!(lookup);
ow_wasm_action::zygote!(warm);
