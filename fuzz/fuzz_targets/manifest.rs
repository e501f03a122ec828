//! `manifest.json` bytes from an upload: never a panic, and nothing unsigned
//! or wrongly signed is believed unless the policy says so.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ow_artifact::manifest::{self, TrustError};
use ow_artifact::{SigningKey, TrustPolicy};

fuzz_target!(|data: &[u8]| {
    let key = SigningKey::new(b"fuzzing-key-0123456789abcdef").unwrap();
    let strict = TrustPolicy {
        key: Some(key.clone()),
        trust_unsigned: false,
    };
    if let Ok(m) = manifest::open(data, &strict) {
        // Believed under the strict policy: it must carry our signature, so
        // re-encoding the manifest with the key must verify as well.
        assert_eq!(
            manifest::open(&manifest::encode(&m, Some(&key)), &strict).unwrap(),
            m
        );
    }
    let open = TrustPolicy {
        key: None,
        trust_unsigned: true,
    };
    match manifest::open(data, &open) {
        Ok(m) => {
            let _ = m.artifact_for("wasmtime", "48.0.0", "x");
        }
        Err(TrustError::Unsigned | TrustError::NoKey(_)) => panic!("trusted policy refused"),
        Err(_) => {}
    }
});
