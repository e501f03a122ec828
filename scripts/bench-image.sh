#!/usr/bin/env bash
# Container cold start, as an invoker sees it: from `podman run` to the first
# successful /init + /run of `add`, for the executor's image
# (localhost/ow-executor:dev, `just image`), with `add` as raw wasm (compiled
# at /init) and as a signed precompiled zip (ow-precompiler, wasmtime), and,
# beside them, a Node.js image
# built the same way (FROM scratch: the node binary, its libraries and a
# minimal runtime, scripts/bench-image/server.js; no node: image can be
# pulled here). Both run as OpenWhisk runs actions here: host network,
# read-only root, user 10001, 256 MB. Prints sizes and per-run times, then
# the medians. Usage: scripts/bench-image.sh [RUNS]   (default 15)
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-15}
port=${PORT:-18089}
podman=(podman --cgroup-manager cgroupfs --runtime runc)
add_wasm=target/wasm32-wasip1/release/examples/add.wasm
[ -f "$add_wasm" ] || { echo "build the examples first: just build-wasm-examples" >&2; exit 1; }

# The Node.js image.
node_bin=$(readlink -f "$(command -v node)")
rm -rf target/image-node && mkdir -p target/image-node
scripts/image-rootfs.sh "$node_bin" target/image-node/rootfs node
mkdir -p target/image-node/rootfs/action
cp scripts/bench-image/server.js target/image-node/rootfs/action/
cat >target/image-node/Containerfile <<'CF'
FROM scratch
COPY rootfs/ /
USER 10001:10001
ENV OW_HOST=0.0.0.0 PORT=8080
ENTRYPOINT ["/usr/local/bin/node", "/action/server.js"]
CF
buildah bud --isolation chroot --quiet -t localhost/ow-node-bench:dev -f target/image-node/Containerfile target/image-node >/dev/null

work=$(mktemp -d)
trap 'rm -rf "$work"; "${podman[@]}" rm -f owbench >/dev/null 2>&1 || true' EXIT
printf '{"value": {"name": "add", "main": "main", "binary": true, "code": "%s"}}' "$(base64 -w0 "$add_wasm")" >"$work/wasm-init.json"
key=bench-image-signing-key-0123456789
target/release/ow-precompiler --engine wasmtime --sign-key "$key" --out "$work" "$add_wasm" >/dev/null
printf '{"value": {"name": "add", "main": "main", "binary": true, "code": "%s"}}' "$(base64 -w0 "$work/add.zip")" >"$work/zip-init.json"
cat >"$work/node-init.json" <<'JSON'
{"value": {"name": "add", "main": "main", "code": "function main(p) { return {result: p.param1 + p.param2}; }"}}
JSON
echo '{"value": {"param1": 20, "param2": 22}}' >"$work/run.json"

now_ms() { echo $(($(date +%s%N) / 1000000)); }

# One cold start of IMAGE with INIT_BODY: ms from `podman run` to /run's answer.
cold_start() {
    local image=$1 init=$2 t0 code
    t0=$(date +%s%N)
    "${podman[@]}" run -d --rm --name owbench --network host --read-only --user 10001 \
        --memory 256m --ulimit nofile=1024:1024 --ulimit nproc=1024:1024 \
        -e OW_HOST=127.0.0.1 -e PORT="$port" -e OW_ARTIFACT_KEY="$key" "$image" >/dev/null
    # Connection refused until it listens: retry at once, as an invoker does.
    until code=$(curl -s -o /dev/null -w '%{http_code}' -H 'Content-Type: application/json' \
        --data-binary @"$init" "http://127.0.0.1:$port/init") && [ "$code" = 200 ]; do
        [ "$code" = 000 ] || [ -z "$code" ] || { echo "init answered $code" >&2; return 1; }
    done
    code=$(curl -s -o "$work/out" -w '%{http_code}' -H 'Content-Type: application/json' \
        --data-binary @"$work/run.json" "http://127.0.0.1:$port/run")
    [ "$code" = 200 ] && grep -q '"result":42' "$work/out" || { echo "run answered $code" >&2; return 1; }
    echo $((($(date +%s%N) - t0) / 1000000))
    "${podman[@]}" stop -t 5 owbench >/dev/null
}

median() { sort -n | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

for image in localhost/ow-executor:dev localhost/ow-node-bench:dev; do
    size=$("${podman[@]}" image inspect --format '{{.Size}}' "$image")
    echo "$image: $((size / 1000000)) MB"
done
: >"$work/wasm" && : >"$work/zip" && : >"$work/node"
for i in $(seq "$runs"); do
    # Interleaved, so that all see the same machine noise.
    cold_start localhost/ow-executor:dev "$work/wasm-init.json" >>"$work/wasm"
    cold_start localhost/ow-executor:dev "$work/zip-init.json" >>"$work/zip"
    cold_start localhost/ow-node-bench:dev "$work/node-init.json" >>"$work/node"
done
echo "ow-executor, raw wasm (ms):          $(tr '\n' ' ' <"$work/wasm")"
echo "ow-executor, precompiled zip (ms):   $(tr '\n' ' ' <"$work/zip")"
echo "node (ms):                           $(tr '\n' ' ' <"$work/node")"
echo "median cold start, podman run -> /init + /run of add: ow-executor raw wasm $(median <"$work/wasm") ms, precompiled zip $(median <"$work/zip") ms, node $(median <"$work/node") ms"
