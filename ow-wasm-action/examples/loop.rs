//! `loop`: spins forever (hostile). Only the executor's time limit ends it.
use ow_wasm_action::Value;

fn spin(_params: Value) -> Result<Value, String> {
    let mut n: u64 = 0;
    loop {
        n = std::hint::black_box(n.wrapping_add(1));
    }
}

ow_wasm_action::export!(spin);
