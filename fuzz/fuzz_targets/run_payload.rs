//! /run bodies: JSON parsing and everything derived from it for an engine.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ow_common::payload::RunRequest;
use std::collections::BTreeMap;
use std::time::Duration;

fuzz_target!(|data: &[u8]| {
    let Ok(req) = serde_json::from_slice::<RunRequest>(data) else {
        return;
    };
    let ctx = req.into_context(Some("https://api".to_owned()));
    let init_env: BTreeMap<String, String> = [("K".to_owned(), "v".to_owned())].into();
    let env = ctx.environment(&init_env);
    assert!(env.iter().any(|(k, _)| k == "__OW_API_HOST"));
    assert!(ctx.time_limit(Duration::from_secs(60)) <= Duration::from_secs(60));
    // What goes into the module is JSON that a value parser reads, on one line.
    assert!(!ctx.params.contains(&b'\n'));
    assert!(serde_json::from_slice::<serde_json::Value>(&ctx.params).is_ok());
});
