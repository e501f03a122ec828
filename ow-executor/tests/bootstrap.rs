//! `dev.sh`'s prerequisite checks (`scripts/prereqs.sh`): they must look for
//! exactly what the build loads. A fresh Debian image ships
//! `libclang-cpp.so.14`, which bindgen never loads; an earlier check took it
//! for libclang and the WAMR build failed 18 minutes later.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_owned()
}

/// Run `script` in bash with `scripts/prereqs.sh` sourced.
fn with_prereqs(script: &str, env: &[(&str, &str)]) -> Output {
    Command::new("bash")
        .arg("-c")
        .arg(format!(". scripts/prereqs.sh; {script}"))
        .current_dir(repo())
        .envs(env.iter().copied())
        .env_remove("LIBCLANG_PATH")
        .output()
        .unwrap()
}

fn touch(path: &Path) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, b"").unwrap();
}

#[test]
fn libclang_cpp_is_not_libclang() {
    let dir = tempfile::tempdir().unwrap();
    let lib = dir.path().join("llvm-14/lib");
    touch(&lib.join("libclang-cpp.so.14"));
    let dirs = lib.to_str().unwrap();
    let out = with_prereqs("find_libclang", &[("DEV_SH_LIBCLANG_DIRS", dirs)]);
    assert!(!out.status.success(), "{out:?}");
    let out = with_prereqs("missing_packages demo", &[("DEV_SH_LIBCLANG_DIRS", dirs)]);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("libclang-dev"),
        "{out:?}"
    );
    // What clang-sys does load, in each of its spellings.
    for name in [
        "libclang.so",
        "libclang.so.1",
        "libclang-14.so",
        "libclang-14.so.1",
    ] {
        let other = tempfile::tempdir().unwrap();
        touch(&other.path().join(name));
        let out = with_prereqs(
            "find_libclang",
            &[("DEV_SH_LIBCLANG_DIRS", other.path().to_str().unwrap())],
        );
        assert!(out.status.success(), "{name}: {out:?}");
        assert!(String::from_utf8_lossy(&out.stdout).trim().ends_with(name));
    }
}

#[test]
fn libclang_without_clang_headers_is_still_missing() {
    let dir = tempfile::tempdir().unwrap();
    touch(&dir.path().join("libclang.so.1"));
    let dirs = dir.path().to_str().unwrap().to_owned();
    let env = [("DEV_SH_LIBCLANG_DIRS", dirs.as_str())];
    assert!(!with_prereqs("find_clang_headers", &env).status.success());
    let out = with_prereqs("missing_packages demo", &env);
    assert!(String::from_utf8_lossy(&out.stdout).contains("libclang-dev"));
    touch(&dir.path().join("clang/14/include/stddef.h"));
    assert!(with_prereqs("find_clang_headers", &env).status.success());
    let out = with_prereqs("missing_packages demo", &env);
    assert!(
        !String::from_utf8_lossy(&out.stdout).contains("libclang-dev"),
        "{out:?}"
    );
}

#[test]
fn a_prerequisite_that_cannot_be_installed_stops_dev_sh_at_once_naming_it() {
    let empty = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let out = Command::new("bash")
        .arg(repo().join("dev.sh"))
        .arg("build")
        .env("DEV_SH_LIBCLANG_DIRS", empty.path())
        // An apt-get that cannot install anything.
        .env("DEV_SH_APT_GET", "false")
        .env_remove("LIBCLANG_PATH")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("libclang-dev"), "{stderr}");
    assert!(
        !stderr.contains("Compiling"),
        "it must stop before building: {stderr}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "{:?}",
        started.elapsed()
    );
}
