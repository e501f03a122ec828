//! Build the `ow-wasm-action` examples for wasm32-wasip1 and expose them as
//! byte constants, so tests never hard-code paths under target/.
//!
//! A nested cargo with its own target directory (inside OUT_DIR) avoids
//! waiting on the lock of the outer build's target directory.

use std::env;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

const EXAMPLES: &[&str] = &[
    "echo",
    "unicode",
    "env",
    "context",
    "string_result",
    "app_error",
    "add",
    "hash",
    "cmd_echo",
    // WasmEngine's benchmark functions.
    "gcd",
    "echo_string",
    "authentication",
    // Hostile actions.
    "loop",
    "membomb",
    "stackbomb",
    "trap",
    "bigresult",
    "logflood",
    "exit_code",
    "sleep",
    "fsprobe",
    // Uses its scratch directory, tries to leave it.
    "scratch",
    // ABI version 2: state and proto-function snapshots.
    "counter",
    "locked_update",
    "big_array",
    "state_ops",
    "state_bench",
    "zygote_table",
    "zygote_trap",
    // ABI version 2: chaining.
    "pipeline",
    "map_reduce",
    "square",
    "call_guard",
    "chain_ops",
    "payload_source",
    "payload_sink",
    "payload_fan_in",
    "payload_make",
    "payload_via_state",
];

fn main() {
    let manifest_dir = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let root = manifest_dir
        .parent()
        .expect("ow-test-modules lives in the workspace root");
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").expect("set by cargo"));
    let sdk = root.join("ow-wasm-action");
    for path in [
        sdk.join("src"),
        sdk.join("examples"),
        sdk.join("Cargo.toml"),
        root.join("Cargo.lock"),
        // Workspace dependency features reach the examples too.
        root.join("Cargo.toml"),
    ] {
        println!("cargo:rerun-if-changed={}", path.display());
    }

    let target_dir = out_dir.join("wasm-target");
    let cargo = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(root)
        .args([
            "build",
            "--release",
            "--target",
            "wasm32-wasip1",
            "-p",
            "ow-wasm-action",
            "--examples",
        ])
        .arg("--target-dir")
        .arg(&target_dir);
    // Flags meant for the outer (host) build must not reach the wasm build.
    for var in [
        "CARGO_ENCODED_RUSTFLAGS",
        "RUSTFLAGS",
        "CARGO_BUILD_RUSTFLAGS",
        "CARGO_TARGET_DIR",
        "CARGO_BUILD_TARGET",
        "RUSTC_WORKSPACE_WRAPPER",
    ] {
        cmd.env_remove(var);
    }
    let status = cmd
        .status()
        .expect("cannot run cargo for the wasm examples");
    assert!(
        status.success(),
        "building the wasm examples failed; is the target installed? `rustup target add wasm32-wasip1`"
    );

    let wasm_dir = target_dir.join("wasm32-wasip1/release/examples");
    let mut code = String::new();
    for name in EXAMPLES {
        let path = wasm_dir.join(format!("{name}.wasm"));
        assert!(path.exists(), "{} was not built", path.display());
        writeln!(
            code,
            "/// The `{name}` example action.\npub const {}: &[u8] = include_bytes!({:?});",
            name.to_uppercase(),
            path_str(&path)
        )
        .unwrap();
    }
    writeln!(
        code,
        "/// Every example, by name.\npub const ALL: &[(&str, &[u8])] = &["
    )
    .unwrap();
    for name in EXAMPLES {
        writeln!(code, "    ({name:?}, {}),", name.to_uppercase()).unwrap();
    }
    writeln!(code, "];").unwrap();
    std::fs::write(out_dir.join("modules.rs"), code).expect("cannot write modules.rs");
}

fn path_str(path: &Path) -> &str {
    path.to_str().expect("OUT_DIR is UTF-8")
}
