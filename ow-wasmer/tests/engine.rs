//! The engine through the `WasmRuntime` trait alone: the shared suite, once
//! per compiler.

mod cranelift {
    use ow_wasmer::WasmerRuntime;

    ow_test_modules::engine_tests!(|limits| Box::new(WasmerRuntime::new(limits).unwrap()));
}

#[cfg(feature = "singlepass")]
mod singlepass {
    use ow_wasmer::{Compiler, WasmerRuntime};

    ow_test_modules::engine_tests!(|limits| Box::new(
        WasmerRuntime::with_compiler(limits, Compiler::Singlepass).unwrap()
    ));
}
