//! Two executors on two hosts, Redis on a third: each "host" is a network
//! namespace of its own, so every call between them crosses a real (virtual)
//! network with addresses of its own, never loopback (docs/two-hosts.md).
//!
//! ```text
//!   root namespace: the test, bridge owbr-<pid> 10.231.x.254
//!        |                      |                       |
//!   owA-<pid> 10.231.x.1   owB-<pid> 10.231.x.2   owR-<pid> 10.231.x.3
//!   ow-executor :8080      ow-executor :8080      redis-server :6379
//!   --peer http://AUTH@10.231.x.2:8080
//! ```
//!
//! Needs root, `ip` (iproute2) and `redis-server`.

use crate::functions::AUTH;
use crate::helpers::{b64, pump};
use serde_json::{Value, json};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

const EXECUTOR_PORT: u16 = 8080;
const REDIS_PORT: u16 = 6379;

pub fn chain_state_and_a_dead_peer() {
    let mut lab = Lab::new();
    let (a_ip, b_ip, r_ip) = (lab.address(1), lab.address(2), lab.address(3));
    let redis_dir = lab.tempdir();
    lab.start(
        "redis",
        "R",
        Command::new("redis-server")
            .args(["--bind", &r_ip, "--port", &REDIS_PORT.to_string()])
            .args(["--save", "", "--appendonly", "no", "--protected-mode", "no"])
            .arg("--dir")
            .arg(&redis_dir),
        (&r_ip, REDIS_PORT),
    );
    let redis = format!("redis://{r_ip}:{REDIS_PORT}");
    let peer = format!("http://{AUTH}@{b_ip}:{EXECUTOR_PORT}");
    lab.start_executor("executor B", "B", &b_ip, &redis, &[]);
    lab.start_executor("executor A", "A", &a_ip, &redis, &["--peer", &peer]);
    let a = Host::new(&a_ip);
    let b = Host::new(&b_ip);

    b.deploy("square", ow_test_modules::SQUARE, None);
    b.deploy("sleep", ow_test_modules::SLEEP, None);
    b.deploy("state_ops", ow_test_modules::STATE_OPS, None);
    a.deploy("call_guard", ow_test_modules::CALL_GUARD, None);
    a.deploy("counter", ow_test_modules::COUNTER, None);

    // A chain from an action on A to an action on B, over the network.
    let (status, body) = a.invoke(
        "call_guard",
        &json!({"callee": "square", "params": {"value": 7}}),
    );
    assert_eq!(status, 200, "A call_guard -> B square: {body}");
    assert_eq!(body, json!({"ok": true, "result": {"value": 49}}));
    let networked = a.metric("ow_calls_total{path=\"networked\"}");
    assert!(
        networked >= Some(1.0),
        "A's ow_calls_total{{path=\"networked\"}} is {networked:?}"
    );

    // State written on A, read on B.
    let (status, body) = a.invoke("counter", &json!({"key": "two-hosts", "by": 5}));
    assert_eq!(status, 200, "A counter: {body}");
    assert_eq!(body["value"], 5, "A counter: {body}");
    let (status, body) = b.invoke(
        "state_ops",
        &json!({"ops": [{"op": "get", "key": "two-hosts"}]}),
    );
    assert_eq!(status, 200, "B state_ops: {body}");
    let got = &body["results"][0];
    assert_eq!(got["code"], 8, "B state_ops: {body}");
    assert_eq!(got["hex"], "0500000000000000", "B state_ops: {body}");

    // B dies under a call of A's: the call ends in error within the
    // caller's time limit, and A keeps serving.
    let limit = Duration::from_millis(3000);
    a.deploy(
        "guard_short",
        ow_test_modules::CALL_GUARD,
        Some(json!({"timeout": limit.as_millis() as u64})),
    );
    let started = Instant::now();
    let (tx, rx) = mpsc::channel();
    let caller = a.clone();
    std::thread::spawn(move || {
        let answer = caller.invoke(
            "guard_short",
            &json!({"callee": "sleep", "params": {"ms": 60000}}),
        );
        let _ = tx.send(answer);
    });
    let poll_until = Instant::now() + Duration::from_secs(20);
    while b.metric("ow_activations_in_flight") != Some(1.0) {
        if let Ok((status, body)) = rx.try_recv() {
            panic!("A guard_short answered {status} {body} before B ran the sleep");
        }
        assert!(
            Instant::now() < poll_until,
            "B never had the sleep in flight"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    lab.kill("executor B");
    let killed_after = started.elapsed();
    let answer_by = started + limit + Duration::from_secs(2);
    let (status, body) = rx
        .recv_timeout(answer_by.saturating_duration_since(Instant::now()))
        .unwrap_or_else(|_| {
            panic!("A guard_short did not answer within the time limit + 2 s of its start")
        });
    eprintln!(
        "two_hosts: B killed {killed_after:?} into the call; A answered {status} {body} after {:?}",
        started.elapsed()
    );
    // The caller handles it: an error naming the failed call, not "no such
    // action", and the call is not sent again elsewhere.
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["ok"], json!(false), "{body}");
    let error = body["callee_error"].as_str().unwrap_or_default();
    assert!(error.starts_with("the call of sleep failed"), "{body}");
    let (status, body) = a.invoke("counter", &json!({"key": "two-hosts", "by": 1}));
    assert_eq!(status, 200, "A counter after B died: {body}");
    assert_eq!(body["value"], 6, "A counter after B died: {body}");
}

/// The namespaces, the bridge and the processes of one test run, all
/// removed when it is dropped, panicking or not.
struct Lab {
    /// The third octet of every address: 10.231.`subnet`.0/24.
    subnet: u8,
    bridge: String,
    /// The namespaces created, by suffix (`A`, `B`, `R`).
    namespaces: Vec<(String, String)>,
    /// Links created in the root namespace.
    links: Vec<String>,
    processes: Vec<Process>,
    dirs: Vec<tempfile::TempDir>,
}

/// A process in a namespace, its output kept to print on failure.
struct Process {
    name: String,
    child: Child,
    output: Arc<Mutex<Vec<u8>>>,
    readers: Vec<JoinHandle<()>>,
}

impl Lab {
    /// A bridge in the root namespace and the namespaces `A`, `B`, `R` on
    /// it, at 10.231.x.1, .2 and .3; the bridge is .254.
    fn new() -> Self {
        let pid = std::process::id();
        let mut lab = Self {
            subnet: free_subnet(pid),
            bridge: format!("owbr-{pid}"),
            namespaces: Vec::new(),
            links: Vec::new(),
            processes: Vec::new(),
            dirs: Vec::new(),
        };
        // br_netfilter (when loaded) would hand bridged frames to the host's
        // iptables, whose FORWARD policy may drop them: not on this bridge.
        let bridge = lab.bridge.clone();
        ip(&[
            "link",
            "add",
            &bridge,
            "type",
            "bridge",
            "nf_call_iptables",
            "0",
            "nf_call_ip6tables",
            "0",
        ]);
        lab.links.push(bridge.clone());
        ip(&[
            "addr",
            "add",
            &format!("{}/24", lab.address(254)),
            "dev",
            &bridge,
        ]);
        ip(&["link", "set", &bridge, "up"]);
        for (host, suffix) in [(1, "A"), (2, "B"), (3, "R")] {
            let ns = format!("ow{suffix}-{pid}");
            ip(&["netns", "add", &ns]);
            lab.namespaces.push((suffix.to_owned(), ns.clone()));
            let veth = format!("owv{suffix}-{pid}");
            ip(&[
                "link", "add", &veth, "type", "veth", "peer", "name", "eth0", "netns", &ns,
            ]);
            lab.links.push(veth.clone());
            ip(&["link", "set", &veth, "master", &bridge, "up"]);
            let address = format!("{}/24", lab.address(host));
            ip(&["-n", &ns, "addr", "add", &address, "dev", "eth0"]);
            ip(&["-n", &ns, "link", "set", "eth0", "up"]);
            ip(&["-n", &ns, "link", "set", "lo", "up"]);
        }
        lab
    }

    fn address(&self, host: u8) -> String {
        format!("10.231.{}.{host}", self.subnet)
    }

    fn namespace(&self, suffix: &str) -> &str {
        let (_, ns) = self
            .namespaces
            .iter()
            .find(|(s, _)| s == suffix)
            .expect("a namespace of the lab");
        ns
    }

    /// A directory removed with the lab.
    fn tempdir(&mut self) -> std::path::PathBuf {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().to_owned();
        self.dirs.push(dir);
        path
    }

    /// Run `cmd` in namespace `suffix` as `name` and wait (at most 20 s)
    /// until it accepts connections on `listen`.
    fn start(&mut self, name: &str, suffix: &str, cmd: &Command, listen: (&str, u16)) {
        let mut wrapped = Command::new("ip");
        wrapped
            .args(["netns", "exec", self.namespace(suffix)])
            .arg(cmd.get_program())
            .args(cmd.get_args())
            .envs(
                cmd.get_envs()
                    .filter_map(|(k, v)| v.map(|v| (k.to_owned(), v.to_owned()))),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (key, value) in cmd.get_envs() {
            if value.is_none() {
                wrapped.env_remove(key);
            }
        }
        // `ip netns exec` execs the program: the child is the server itself.
        let mut child = wrapped
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        let output = Arc::new(Mutex::new(Vec::new()));
        let readers = vec![
            pump(child.stdout.take().unwrap(), Arc::clone(&output)),
            pump(child.stderr.take().unwrap(), Arc::clone(&output)),
        ];
        self.processes.push(Process {
            name: name.to_owned(),
            child,
            output,
            readers,
        });
        let process = self.processes.last_mut().expect("just pushed");
        let addr: SocketAddr = format!("{}:{}", listen.0, listen.1).parse().unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
            if let Some(status) = process.child.try_wait().unwrap() {
                panic!("{name} exited early with {status}");
            }
            assert!(Instant::now() < deadline, "{name} did not listen on {addr}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// An executor in namespace `suffix` on `address`:8080 serving the
    /// function APIs with `AUTH`, its state in `redis`.
    fn start_executor(
        &mut self,
        name: &str,
        suffix: &str,
        address: &str,
        redis: &str,
        extra: &[&str],
    ) {
        let store = self.tempdir();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_ow-executor"));
        cmd.args(["--host", address, "--port", &EXECUTOR_PORT.to_string()])
            .arg("--store-dir")
            .arg(&store)
            .args([
                "--auth",
                AUTH,
                "--state-redis",
                redis,
                "--engine",
                "wasmtime",
            ])
            .args(["--log-level", "info"])
            .args(extra);
        for var in [
            "RUST_LOG",
            "__OW_API_HOST",
            "OW_ENGINE",
            "OW_PEERS",
            "http_proxy",
            "HTTP_PROXY",
            "https_proxy",
            "HTTPS_PROXY",
            "all_proxy",
            "ALL_PROXY",
        ] {
            cmd.env_remove(var);
        }
        self.start(name, suffix, &cmd, (address, EXECUTOR_PORT));
    }

    /// SIGKILL process `name` and reap it (its output is kept).
    fn kill(&mut self, name: &str) {
        let process = self
            .processes
            .iter_mut()
            .find(|p| p.name == name)
            .expect("a process of the lab");
        process.child.kill().unwrap();
        process.child.wait().unwrap();
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for process in &mut self.processes {
            let _ = process.child.kill();
            let _ = process.child.wait();
            for reader in process.readers.drain(..) {
                let _ = reader.join();
            }
            if std::thread::panicking() {
                let output = process.output.lock().unwrap_or_else(|e| e.into_inner());
                eprintln!(
                    "----- {} (pid {}) wrote:\n{}",
                    process.name,
                    process.child.id(),
                    String::from_utf8_lossy(&output)
                );
            }
        }
        // Deleting a namespace deletes its end of the veth, and so the pair.
        for (_, ns) in self.namespaces.drain(..) {
            quiet_ip(&["netns", "del", &ns]);
        }
        for link in self.links.drain(..).rev() {
            quiet_ip(&["link", "del", &link]);
        }
    }
}

/// 10.231.x.0/24 with no address of the root namespace in it, from `pid`
/// on, so that parallel runs each get a subnet of their own.
fn free_subnet(pid: u32) -> u8 {
    (0..250)
        .map(|i| 1 + ((pid + i) % 250) as u8)
        .find(|x| {
            let out = Command::new("ip")
                .args([
                    "-4",
                    "-o",
                    "addr",
                    "show",
                    "to",
                    &format!("10.231.{x}.0/24"),
                ])
                .output()
                .expect("`ip` (iproute2) is needed");
            out.status.success() && out.stdout.is_empty()
        })
        .expect("a free subnet in 10.231.0.0/16")
}

fn ip(args: &[&str]) {
    let out = Command::new("ip")
        .args(args)
        .output()
        .expect("`ip` (iproute2) is needed");
    assert!(
        out.status.success(),
        "ip {}: {} (this test needs root)",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr).trim()
    );
}

fn quiet_ip(args: &[&str]) {
    let _ = Command::new("ip")
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// An executor's APIs, seen from the root namespace, with `AUTH`.
#[derive(Clone)]
struct Host {
    base: String,
    agent: ureq::Agent,
}

impl Host {
    fn new(address: &str) -> Self {
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(60)))
            .proxy(None)
            .build()
            .into();
        Self {
            base: format!("http://{address}:{EXECUTOR_PORT}"),
            agent,
        }
    }

    fn request(&self, method: &str, path: &str, body: Option<&Value>) -> (u16, String) {
        let request = ureq::http::Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base))
            .header("Authorization", format!("Basic {}", b64(AUTH.as_bytes())))
            .header("Content-Type", "application/json");
        let body = body.map(|b| b.to_string().into_bytes()).unwrap_or_default();
        let mut response = self
            .agent
            .run(request.body(body).unwrap())
            .unwrap_or_else(|e| panic!("{method} {}{path}: {e}", self.base));
        let status = response.status().as_u16();
        let text = response.body_mut().read_to_string().unwrap_or_default();
        (status, text)
    }

    /// `PUT` an OpenWhisk action of `wasm`, with `limits` if given; must
    /// answer 200.
    fn deploy(&self, name: &str, wasm: &[u8], limits: Option<Value>) {
        let mut body = json!({"exec": {"kind": "wasm:0.1", "code": b64(wasm)}});
        if let Some(limits) = limits {
            body["limits"] = limits;
        }
        let path = format!("/api/v1/namespaces/_/actions/{name}");
        let (status, text) = self.request("PUT", &path, Some(&body));
        assert_eq!(status, 200, "PUT {}{path}: {text}", self.base);
    }

    /// `POST /function/{name}` (faas-provider) with `params`.
    fn invoke(&self, name: &str, params: &Value) -> (u16, Value) {
        let (status, text) = self.request("POST", &format!("/function/{name}"), Some(params));
        let body = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("{name} on {}: {status} {text:?}: {e}", self.base));
        (status, body)
    }

    /// The value of the sample `key` (name and labels as written) in
    /// `GET /metrics`.
    fn metric(&self, key: &str) -> Option<f64> {
        let (status, text) = self.request("GET", "/metrics", None);
        assert_eq!(status, 200, "GET {}/metrics: {text}", self.base);
        text.lines().find_map(|line| {
            let (k, value) = line.rsplit_once(' ')?;
            (k == key).then(|| value.trim().parse().ok()).flatten()
        })
    }
}
