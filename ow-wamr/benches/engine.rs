//! criterion micro-benchmarks of wamr through the `WasmRuntime` trait
//! (see `ow_test_modules::bench`): `cargo bench -p ow-wamr`.

use criterion::{Criterion, criterion_group, criterion_main};
use ow_common::{Limits, WasmRuntime};

fn benches(c: &mut Criterion) {
    let make = |limits: Limits| -> Box<dyn WasmRuntime> {
        Box::new(ow_wamr::WamrRuntime::new(limits).expect("starts"))
    };
    ow_test_modules::bench::engine(c, "wamr", &make);
}

criterion_group!(engine, benches);
criterion_main!(engine);
