//! The `ow-precompiler` binary, as a user runs it.

use std::path::Path;
use std::process::Command;

fn precompiler() -> Command {
    Command::new(env!("CARGO_BIN_EXE_ow-precompiler"))
}

fn zip_names(path: &Path) -> Vec<String> {
    let mut archive = zip::ZipArchive::new(std::fs::File::open(path).unwrap()).unwrap();
    (0..archive.len())
        .map(|i| archive.by_index(i).unwrap().name().unwrap().into_owned())
        .collect()
}

#[test]
fn signed_zips_are_written_deterministically_for_the_engines_asked() {
    let dir = tempfile::tempdir().unwrap();
    let wasm = dir.path().join("add.wasm");
    std::fs::write(&wasm, ow_test_modules::ADD).unwrap();
    let key = dir.path().join("key");
    std::fs::write(&key, "0123456789abcdef0123456789abcdef\n").unwrap();
    let run = |out: &str, engines: &str| {
        let output = precompiler()
            .args(["--engine", engines, "--sign-key-file"])
            .arg(&key)
            .arg("--out")
            .arg(dir.path().join(out))
            .arg(&wasm)
            .output()
            .unwrap();
        assert!(output.status.success(), "{output:?}");
        let stdout = String::from_utf8(output.stdout).unwrap();
        assert!(stdout.contains("signed with key"), "{stdout}");
        std::fs::read(dir.path().join(out).join("add.zip")).unwrap()
    };
    let first = run("a", "all");
    let second = run("b", "all");
    assert_eq!(first, second, "same input, same bytes");
    assert_eq!(
        zip_names(&dir.path().join("a/add.zip")),
        [
            "action.wasm",
            "wasmtime.cwasm",
            "wasmer.wasmu",
            "manifest.json"
        ]
    );
    run("c", "wasmtime");
    assert_eq!(
        zip_names(&dir.path().join("c/add.zip")),
        ["action.wasm", "wasmtime.cwasm", "manifest.json"]
    );
}

#[test]
fn bad_inputs_fail_with_a_message() {
    let dir = tempfile::tempdir().unwrap();
    let not_wasm = dir.path().join("x.wasm");
    std::fs::write(&not_wasm, b"hello").unwrap();
    let short_key = dir.path().join("key");
    std::fs::write(&short_key, b"short").unwrap();
    let wasm = dir.path().join("add.wasm");
    std::fs::write(&wasm, ow_test_modules::ADD).unwrap();
    let cases: [(&[&str], &Path, &str); 4] = [
        (&[], &not_wasm, "cannot precompile"),
        (&[], &dir.path().join("missing.wasm"), "cannot read"),
        (
            &["--sign-key-file", short_key.to_str().unwrap()],
            &wasm,
            "at least 16 bytes",
        ),
        (&["--engine", "wamr"], &wasm, "invalid value"),
    ];
    for (args, file, message) in cases {
        let output = precompiler()
            .args(args)
            .arg("--out")
            .arg(dir.path())
            .arg(file)
            .output()
            .unwrap();
        assert!(!output.status.success(), "{args:?}");
        let stderr = String::from_utf8(output.stderr).unwrap();
        assert!(stderr.contains(message), "{args:?}: {stderr}");
    }
}

#[test]
fn snapshot_packages_the_proto_function_after_its_zygote() {
    let dir = tempfile::tempdir().unwrap();
    let wasm = dir.path().join("zygote_table.wasm");
    std::fs::write(&wasm, ow_test_modules::ZYGOTE_TABLE).unwrap();
    let output = precompiler()
        .args(["--engine", "wasmtime", "--snapshot", "--env", "GREETING=hi"])
        .arg("--out")
        .arg(dir.path())
        .arg(&wasm)
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let mut archive =
        zip::ZipArchive::new(std::fs::File::open(dir.path().join("zygote_table.zip")).unwrap())
            .unwrap();
    let mut snapshot = Vec::new();
    std::io::Read::read_to_end(&mut archive.by_name("action.wasm").unwrap(), &mut snapshot)
        .unwrap();
    // The zygote ran: its 16 MiB table is in the module's data, and the
    // module no longer asks for a snapshot.
    assert!(snapshot.len() > 16 << 20, "{}", snapshot.len());
    assert!(!ow_common::abi::exports_function(&snapshot, "ow_zygote"));
    assert!(ow_common::abi::exports_function(
        ow_test_modules::ZYGOTE_TABLE,
        "ow_zygote"
    ));
    // A zygote that traps fails the precompiler with a message.
    std::fs::write(&wasm, ow_test_modules::ZYGOTE_TRAP).unwrap();
    let output = precompiler()
        .args(["--engine", "wasmtime", "--snapshot", "--out"])
        .arg(dir.path())
        .arg(&wasm)
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("ow_zygote"), "{stderr}");
}
