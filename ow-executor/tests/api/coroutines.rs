//! The execution model: activations as futures on the HTTP workers. A
//! CPU-bound guest cannot starve the others, and thousands of sleeping
//! activations cost neither threads nor much memory.
//!
//! The bounds here tell the model working from the model broken (a starved
//! echo waits seconds for a loop's deadline; sleeps on threads take a
//! thread each), with room for a slower machine. The issue's targets are
//! measured by benchmarks, not tests: the figures are in BENCHMARKS.md.

use crate::helpers::*;
use ow_test_modules as modules;
use serde_json::json;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Two infinite loops keep both cores busy; 200 concurrent `echo`
/// activations still come back promptly, and the loops end at their
/// deadline. On wasmtime the loops yield their HTTP worker every epoch tick
/// (p99 20-52 ms here; the target is 50 ms). wasmer and WAMR block threads
/// of their pools, which the OS shares out: slower (see BENCHMARKS.md), but
/// no echo waits for a loop to end.
pub fn a_cpu_bound_guest_cannot_starve_the_others(engine: &str) {
    let app = Arc::new(spawn_app_with(engine, &["--memory-budget", "off"], &[]));
    let env = json!({ "OW_MAX_DURATION": "3s" });
    let (status, body) = app.post("/loop/init", &init_body(modules::LOOP, "main", env));
    assert_eq!(status, 200, "{body}");
    init_at(&app, "echo", modules::ECHO);
    let loops: Vec<_> = (0..2)
        .map(|_| {
            let app = Arc::clone(&app);
            std::thread::spawn(move || {
                let started = Instant::now();
                let answer = run_at(&app, "loop", json!({}));
                (answer, started.elapsed())
            })
        })
        .collect();
    await_in_flight(&app, 2);
    // From one client thread, so that the client takes little of the CPU
    // the loops leave: each echo on a connection of its own.
    const ECHOES: usize = 200;
    let addr = address(&app);
    let tokio = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let answers = tokio.block_on(async {
        let echoes: Vec<_> = (0..ECHOES)
            .map(|i| {
                tokio::spawn(async move {
                    let started = Instant::now();
                    let body = json!({ "value": { "i": i } }).to_string();
                    let answer = post(addr, "/echo/run", &body).await;
                    (answer, started.elapsed())
                })
            })
            .collect();
        let mut answers = Vec::with_capacity(ECHOES);
        for echo in echoes {
            answers.push(echo.await.unwrap());
        }
        answers
    });
    let mut latencies: Vec<Duration> = answers
        .into_iter()
        .enumerate()
        .map(|(i, ((status, body), took))| {
            assert_eq!((status, body), (200, json!({ "i": i }).to_string()));
            took
        })
        .collect();
    latencies.sort();
    eprintln!(
        "{engine}: echo p50 {:?}, p99 {:?} with both cores looping",
        latencies[ECHOES / 2],
        latencies[ECHOES * 99 / 100 - 1]
    );
    let p99 = latencies[ECHOES * 99 / 100 - 1];
    let bound = match engine {
        "wasmtime" => Duration::from_millis(100),
        _ => Duration::from_secs(1),
    };
    assert!(
        p99 < bound,
        "p99 {p99:?} with both cores looping (median {:?})",
        latencies[ECHOES / 2]
    );
    for handle in loops {
        let ((status, body), took) = handle.join().unwrap();
        assert_eq!(status, 502, "{body}");
        assert!(
            body["error"].as_str().unwrap().contains("time limit"),
            "{body}"
        );
        assert!(
            took >= Duration::from_secs(3) && took < Duration::from_secs(4),
            "{took:?}"
        );
    }
}

/// One `POST` on a connection of its own, without a thread of its own.
async fn post(addr: std::net::SocketAddr, path: &str, body: &str) -> (u16, String) {
    post_paced(addr, path, body, None).await
}

/// [`post`], connecting only with a permit of `pace`, if given: a client
/// opening thousands of connections keeps a few hundred handshakes in
/// progress at most, as a load generator does, so that none waits for a
/// SYN retransmission (1 s) behind a full accept queue.
async fn post_paced(
    addr: std::net::SocketAddr,
    path: &str,
    body: &str,
    pace: Option<&tokio::sync::Semaphore>,
) -> (u16, String) {
    let permit = match pace {
        Some(pace) => Some(pace.acquire().await.expect("open")),
        None => None,
    };
    let mut stream = tokio::net::TcpStream::connect(addr)
        .await
        .expect("connects");
    drop(permit);
    let request = format!(
        "POST {path} HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.expect("writes");
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).await.expect("reads");
    let answer = String::from_utf8(answer).expect("UTF-8");
    let status = answer
        .get(9..12)
        .and_then(|s| s.parse().ok())
        .unwrap_or_default();
    let body = answer
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

/// Where the executor listens.
fn address(app: &TestApp) -> std::net::SocketAddr {
    app.base.trim_start_matches("http://").parse().unwrap()
}

/// The executor's resident memory, in KiB.
fn rss_kib(app: &TestApp) -> u64 {
    proc_status(app, "VmRSS")
}

/// A field of the executor's /proc status (the number before any unit).
fn proc_status(app: &TestApp, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{}/status", app.pid())).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("no {field} in /proc status"))
}

/// Raise this process's open-file limit to its hard limit (the executor it
/// starts inherits it): each activation in flight holds a connection.
fn raise_fd_limit(needed: u64) {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit with a valid pointer to an rlimit.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit), 0);
        limit.rlim_cur = limit.rlim_max;
        assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &limit), 0);
    }
    assert!(
        limit.rlim_cur >= needed,
        "the open-file limit ({}) is below the {needed} this test needs",
        limit.rlim_cur
    );
}

/// What the executor held while activations slept.
#[derive(Debug)]
struct Sleepers {
    /// From the first request sent to the last answer read.
    wall: Duration,
    /// The most activations in flight at once.
    in_flight: u64,
    /// The most OS threads of the executor.
    threads: u64,
    /// Bytes of resident memory per activation in flight, at most.
    bytes_each: u64,
}

impl Sleepers {
    /// They all slept at once, within `wall`, on a few threads.
    fn assert_within(&self, wall: Duration) {
        assert!(self.wall < wall, "{:?}", self.wall);
        assert!(self.threads <= 16, "{} threads", self.threads);
    }
}

/// `n` activations of `sleep` (1 s each) at once, from one client thread.
fn sleep_concurrently(n: usize) -> Sleepers {
    raise_fd_limit(n as u64 + 1024);
    let instances = n.to_string();
    let app = spawn_app_with(
        "wasmtime",
        &["--max-instances", &instances, "--memory-budget", "off"],
        &[],
    );
    init_at(&app, "sleep", modules::SLEEP);
    // One activation first: what every activation shares is in place.
    assert_eq!(run_at(&app, "sleep", json!({"ms": 1})).0, 200);
    let addr = address(&app);
    let (answers, sleepers) = watched(&app, || {
        let tokio = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let body = r#"{"value":{"ms":1000}}"#;
        let pace = Arc::new(tokio::sync::Semaphore::new(256));
        tokio.block_on(async {
            let sleepers: Vec<_> = (0..n)
                .map(|_| {
                    let pace = Arc::clone(&pace);
                    tokio::spawn(
                        async move { post_paced(addr, "/sleep/run", body, Some(&pace)).await },
                    )
                })
                .collect();
            let mut answers = Vec::with_capacity(n);
            for sleeper in sleepers {
                answers.push(sleeper.await.unwrap());
            }
            answers
        })
    });
    for (status, body) in answers {
        assert_eq!((status, body.as_str()), (200, r#"{"slept_ms":1000}"#));
    }
    eprintln!("{n} sleeps: {sleepers:?}");
    sleepers
}

/// Run `load` while watching the executor: its threads, and its memory per
/// activation where most were in flight at once.
fn watched<T>(app: &TestApp, load: impl FnOnce() -> T) -> (T, Sleepers) {
    let rss_before = rss_kib(app);
    let done = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|s| {
        let watch = s.spawn(|| {
            let (mut in_flight, mut threads, mut bytes_each) = (0u64, 0, 0);
            while !done.load(std::sync::atomic::Ordering::SeqCst) {
                let now = metric(app, "ow_activations_in_flight").unwrap_or(0.0) as u64;
                threads = threads.max(proc_status(app, "Threads"));
                if now > in_flight {
                    let grown = rss_kib(app).saturating_sub(rss_before) * 1024;
                    bytes_each = grown / now;
                    in_flight = now;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            (in_flight, threads, bytes_each)
        });
        let started = Instant::now();
        let answers = load();
        let wall = started.elapsed();
        done.store(true, std::sync::atomic::Ordering::SeqCst);
        let (in_flight, threads, bytes_each) = watch.join().unwrap();
        let sleepers = Sleepers {
            wall,
            in_flight,
            threads,
            bytes_each,
        };
        (answers, sleepers)
    })
}

/// 1,000 sleeping activations take about a second (1.17-1.19 s here; the
/// target, a benchmark figure, is 1.3 s) and a few threads.
pub fn a_thousand_sleeping_activations_hold_no_thread_each() {
    sleep_concurrently(1000).assert_within(Duration::from_secs(2));
}

/// 10,000 sleeping activations at once, in one process, on a coroutine
/// each. The issue's targets are 2.5 s and 64 KiB each; a fresh process
/// measures about 2.7-3.2 s and 95-120 KiB here, the cost of first use of
/// 10,000 distinct pool slots and fiber stacks (page faults; see
/// BENCHMARKS.md). The bounds below are what must never regress.
pub fn ten_thousand_sleeping_activations_fit_in_little_memory() {
    let sleepers = sleep_concurrently(10_000);
    sleepers.assert_within(Duration::from_secs(5));
    // Most of them sleep at once (one second each).
    assert!(
        sleepers.in_flight >= 5000,
        "{} in flight",
        sleepers.in_flight
    );
    assert!(
        sleepers.bytes_each <= 160 << 10,
        "{} bytes per sleeping activation",
        sleepers.bytes_each
    );
}

/// 10,000 activations each awaiting a call of an action on a peer, which
/// answers none of them before all 10,000 are waiting (a barrier): an
/// awaiting caller holds no thread. One root activation starts them (so
/// that the executor's 10,000 connections to the peer and the peer's
/// 10,000 fit this machine's open-file limit of 20,000 per process).
pub fn ten_thousand_awaiting_callers_hold_no_thread_each() {
    const N: usize = 10_000;
    raise_fd_limit(N as u64 + 1024);
    let peer = BarrierPeer::start(N);
    let url = format!("http://{}", peer.addr);
    let instances = (N + 1).to_string();
    let app = spawn_app_with(
        "wasmtime",
        &[
            "--max-instances",
            &instances,
            "--memory-budget",
            "off",
            "--max-calls-in-flight",
            &N.to_string(),
            "--peer",
            &url,
        ],
        &[],
    );
    init_at(&app, "root", modules::CHAIN_OPS);
    init_at(&app, "waiter", modules::CHAIN_OPS);
    let waiter = json!({ "ops": [{ "op": "call", "name": "remote" }, { "op": "await" }] });
    let root = json!({ "ops": [
        { "op": "call", "name": "waiter", "params": waiter, "repeat": N },
        { "op": "await_all" }
    ] });
    let ((status, body), callers) = watched(&app, || run_at(&app, "root", root));
    assert_eq!(status, 200, "{body}");
    let data = body["results"][1]["data"].as_array().unwrap();
    assert_eq!(data.len(), N);
    let expected =
        json!({ "results": [{ "code": 1 }, { "code": 15, "data": r#"{"waited":true}"# }] });
    for answer in data {
        let answer: serde_json::Value = serde_json::from_str(answer.as_str().unwrap()).unwrap();
        assert_eq!(answer, expected);
    }
    eprintln!("{N} awaiting callers: {callers:?}");
    callers.assert_within(Duration::from_secs(20));
    assert!(callers.in_flight > N as u64, "{callers:?}");
}

/// A peer executor's function API that holds every call until `n` have
/// arrived, then answers them all `{"waited":true}`.
struct BarrierPeer {
    addr: std::net::SocketAddr,
}

impl BarrierPeer {
    fn start(n: usize) -> Self {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        // Ends with the test's process.
        std::thread::spawn(move || {
            let tokio = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            tokio.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                let barrier = Arc::new(tokio::sync::Barrier::new(n));
                while let Ok((mut stream, _)) = listener.accept().await {
                    let barrier = Arc::clone(&barrier);
                    tokio::spawn(async move {
                        // Read one whole request, then wait for the others.
                        let mut request = Vec::new();
                        let mut buf = [0u8; 4096];
                        while !complete(&request) {
                            match stream.read(&mut buf).await {
                                Ok(0) | Err(_) => return,
                                Ok(k) => request.extend_from_slice(&buf[..k]),
                            }
                        }
                        barrier.wait().await;
                        let body = r#"{"waited":true}"#;
                        let answer = format!(
                            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\
                             Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
                            body.len()
                        );
                        let _ = stream.write_all(answer.as_bytes()).await;
                    });
                }
            });
        });
        Self { addr }
    }
}

/// Whether `request` holds a whole HTTP request (headers and the body its
/// `Content-Length` announces).
fn complete(request: &[u8]) -> bool {
    let Some(end) = request.windows(4).position(|w| w == b"\r\n\r\n") else {
        return false;
    };
    let headers = String::from_utf8_lossy(&request[..end]).to_ascii_lowercase();
    let length: usize = headers
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    request.len() >= end + 4 + length
}
