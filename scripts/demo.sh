#!/usr/bin/env bash
# Start ow-executor, initialize one action, run it once, print the result, stop.
# Usage: scripts/demo.sh ACTION.wasm PARAMS_JSON [PORT]
set -euo pipefail

wasm=$1
params=$2
port=${3:-8080}
root=$(cd "$(dirname "$0")/.." && pwd)
exe="$root/target/release/ow-executor"
work=$(mktemp -d)
trap 'kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; rm -rf "$work"' EXIT

"$exe" --host 127.0.0.1 --port "$port" >"$work/stdout" 2>"$work/stderr" &
pid=$!
for _ in $(seq 100); do
    curl -s -o /dev/null "http://127.0.0.1:$port/" && break
    kill -0 "$pid" 2>/dev/null || { cat "$work/stderr"; echo "ow-executor did not start" >&2; exit 1; }
    sleep 0.1
done

name=$(basename "$wasm" .wasm)
printf '{"value": {"name": "%s", "main": "main", "binary": true, "code": "' "$name" >"$work/init.json"
base64 -w0 "$wasm" >>"$work/init.json"
printf '"}}' >>"$work/init.json"

echo "ow-executor listening on 127.0.0.1:$port"
echo "POST /init  ($name, $(stat -c %s "$wasm") bytes of wasm)"
curl -sS -w '  -> HTTP %{http_code} in %{time_total}s\n' -H 'Content-Type: application/json' \
    --data-binary @"$work/init.json" "http://127.0.0.1:$port/init"
echo "POST /run   {\"value\": $params}"
curl -sS -w '  -> HTTP %{http_code} in %{time_total}s\n' -H 'Content-Type: application/json' \
    --data-binary "{\"value\": $params, \"activation_id\": \"0123456789abcdef0123456789abcdef\"}" \
    "http://127.0.0.1:$port/run"
echo "action stdout:"; sed 's/^/  | /' "$work/stdout"
echo "action stderr:"; sed 's/^/  | /' "$work/stderr"
