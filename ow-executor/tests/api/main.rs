//! Integration tests: the real `ow-executor` binary over HTTP, with its
//! stdout and stderr captured.

mod abi;
mod compliance;
mod helpers;
mod http;
mod multi_action;
