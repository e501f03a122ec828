//! Apache's `openwhisk` npm client (installed here from the lock file in
//! ow-executor/tests/node with `npm ci`) against the OpenWhisk-compatible
//! API: create, list, get, invoke blocking and not, activations, update,
//! delete, wrong credentials (see tests/node/client.js).

use crate::functions::{AUTH, store_app};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The client's directory with its node_modules, installed once per target dir.
fn client_dir() -> PathBuf {
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/node");
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("openwhisk-client");
    std::fs::create_dir_all(&dir).unwrap();
    for file in ["package.json", "package-lock.json", "client.js"] {
        std::fs::copy(source.join(file), dir.join(file)).unwrap();
    }
    if !dir.join("node_modules/openwhisk/package.json").exists() {
        let out = Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund", "--loglevel=error"])
            .current_dir(&dir)
            .output()
            .expect("npm is needed (`./dev.sh test` installs nodejs and npm)");
        assert!(
            out.status.success(),
            "npm ci failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    dir
}

#[test]
fn the_openwhisk_npm_client_manages_and_invokes_actions() {
    let client = client_dir();
    let dir = tempfile::tempdir().unwrap();
    let echo = dir.path().join("echo.wasm");
    std::fs::write(&echo, ow_test_modules::ECHO).unwrap();
    let app = store_app("wasmtime", &dir.path().join("store"), &[]);
    let out = Command::new("node")
        .arg("client.js")
        .current_dir(&client)
        .env("OW_APIHOST", &app.base)
        .env("OW_AUTH", AUTH)
        .env("ECHO_WASM", &echo)
        .output()
        .expect("node is needed (`./dev.sh test` installs nodejs)");
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(
        out.status.success(),
        "client.js failed:\n{stdout}\n{stderr}"
    );
    assert!(stdout.contains("all checks passed"), "{stdout}");
}
