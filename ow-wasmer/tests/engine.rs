//! The engine through the `WasmRuntime` trait alone: the shared suite.

use ow_wasmer::WasmerRuntime;

ow_test_modules::engine_tests!(|limits| Box::new(WasmerRuntime::new(limits).unwrap()));
