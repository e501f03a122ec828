//! The engine through the `WasmRuntime` trait alone: the shared suite.

use ow_wamr::WamrRuntime;

ow_test_modules::engine_tests!(|limits| Box::new(WamrRuntime::new(limits).unwrap()));
