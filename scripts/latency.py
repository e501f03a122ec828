#!/usr/bin/env python3
"""Informal /init and /run latency per engine, until ow-evaluation (issue 5) exists.

Starts target/release/ow-executor on a free loopback port, and for each
engine and action (`add`, `hash` with 1,000 iterations) sends one /init and
N sequential /run over one keep-alive connection (Python's http.client, so
client overhead is included). Prints a Markdown table of medians and p99.

Usage: scripts/latency.py [RUNS]   (after `just build build-wasm-examples`)
"""
import base64
import http.client
import json
import os
import socket
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXE = os.path.join(ROOT, "target/release/ow-executor")
EXAMPLES = os.path.join(ROOT, "target/wasm32-wasip1/release/examples")
RUNS = int(sys.argv[1]) if len(sys.argv) > 1 else 500
CASES = [("add", {"param1": 1, "param2": 2}), ("hash", {"input": "abc", "iterations": 1000})]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def post(conn, path, body):
    data = json.dumps(body).encode()
    started = time.perf_counter()
    conn.request("POST", path, data, {"Content-Type": "application/json"})
    resp = conn.getresponse()
    out = resp.read()
    elapsed = time.perf_counter() - started
    if resp.status != 200:
        raise SystemExit(f"POST {path}: {resp.status} {out!r}")
    return elapsed


def main():
    port = free_port()
    proc = subprocess.Popen([EXE, "--host", "127.0.0.1", "--port", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port)).close()
                break
            except OSError:
                time.sleep(0.05)
        conn = http.client.HTTPConnection("127.0.0.1", port)
        print("| engine | action | /init | /run p50 | /run p99 |")
        print("|---|---|---|---|---|")
        for engine in ["wasmtime", "wasmer", "wamr"]:
            for action, params in CASES:
                with open(os.path.join(EXAMPLES, f"{action}.wasm"), "rb") as f:
                    code = base64.b64encode(f.read()).decode()
                cid = f"{engine}-{action}"
                init = post(conn, f"/{cid}/init", {"value": {
                    "code": code, "binary": True, "main": "main", "env": {"OW_ENGINE": engine}}})
                runs = sorted(post(conn, f"/{cid}/run", {"value": params}) for _ in range(RUNS))
                p99 = runs[min(len(runs) - 1, int(len(runs) * 0.99))]
                print(f"| {engine} | {action} | {init * 1e3:.1f} ms | {statistics.median(runs) * 1e6:.0f} us "
                      f"| {p99 * 1e6:.0f} us |")
    finally:
        proc.terminate()
        proc.wait()


if __name__ == "__main__":
    main()
