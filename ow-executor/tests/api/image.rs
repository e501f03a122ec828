//! The action image (`just image`), run as OpenWhisk's invoker would: only
//! by `just test-image`, which sets `OW_TEST_IMAGE` (the main test run
//! leaves these out). The compliance suite runs against the image in the
//! same recipe.

use crate::helpers::*;
use ow_test_modules as modules;
use serde_json::json;
use std::process::Command;
use std::time::Duration;

fn inspect(container: &str, format: &str) -> String {
    let out = Command::new("podman")
        .args(["inspect", "--format", format, container])
        .output()
        .expect("podman runs");
    assert!(out.status.success(), "{out:?}");
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

#[test]
fn the_image_runs_unprivileged_read_only_and_stops_gracefully_on_podman_stop() {
    assert!(
        std::env::var("OW_TEST_IMAGE").is_ok(),
        "run by `just test-image`, which sets OW_TEST_IMAGE"
    );
    let app = spawn_app("wasmtime");
    let container = app.container().expect("in a container").to_owned();
    assert_eq!(inspect(&container, "{{.Config.User}}"), "10001");
    assert_eq!(
        inspect(&container, "{{.HostConfig.ReadonlyRootfs}}"),
        "true"
    );
    // The executor's own process (seen from the host: the image has no
    // `ps` for `podman top`) runs as user 10001.
    let pid = inspect(&container, "{{.State.Pid}}");
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    assert!(
        status.contains("\nName:\tow-executor\n") || status.starts_with("Name:\tow-executor\n"),
        "{status}"
    );
    let uids = status.lines().find(|l| l.starts_with("Uid:")).unwrap();
    assert_eq!(
        uids.split_whitespace().collect::<Vec<_>>(),
        ["Uid:", "10001", "10001", "10001", "10001"]
    );
    app.init_ok(modules::ADD);
    assert_eq!(
        app.run(json!({"param1": 20, "param2": 22})),
        (200, json!({"result": 42}))
    );
    // SIGTERM through podman: the executor exits 0, the container with it.
    let stopped = Command::new("podman")
        .args(["stop", "--time", "10", &container])
        .status()
        .unwrap();
    assert!(stopped.success());
    let (code, streams) = app.wait_exit(Duration::from_secs(15));
    assert_eq!(code, Some(0));
    assert_eq!(streams.sentinels(), (1, 1));
}
