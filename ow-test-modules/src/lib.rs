//! The example actions of `ow-wasm-action`, built for wasm32-wasip1 by this
//! crate's build script, as byte constants for tests and benchmarks.

include!(concat!(env!("OUT_DIR"), "/modules.rs"));

pub mod activate;
pub mod bench;
pub mod oci;
pub mod suite;
