//! The engine through the `WasmRuntime` trait alone: the shared suite, plus
//! what is specific to wasmtime.

use ow_common::Limits;
use ow_wasmtime::WasmtimeRuntime;

ow_test_modules::engine_tests!(|limits| Box::new(WasmtimeRuntime::new(limits).unwrap()));

#[test]
fn pooling_allocator_is_used_here() {
    // This machine (64-bit Linux, no address-space ulimit) allows the pool.
    let rt = WasmtimeRuntime::new(Limits::default()).unwrap();
    assert!(rt.is_pooling());
}
