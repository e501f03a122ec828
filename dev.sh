#!/usr/bin/env bash
# Entry point for a fresh machine: installs what is missing, then runs a
# `just` recipe (rustup target, just, nextest, apt packages). The two
# commands of the README:
#   ./dev.sh demo   build, start the executor, /init an example action, /run it
#   ./dev.sh test   the whole test suite (what CI runs)
set -euo pipefail
cd "$(dirname "$0")"
export PATH="$HOME/.cargo/bin:$PATH"

if ! rustup target list --installed 2>/dev/null | grep -qx wasm32-wasip1; then
    echo "dev.sh: installing the wasm32-wasip1 target" >&2
    rustup target add wasm32-wasip1
fi
if ! command -v just >/dev/null 2>&1; then
    echo "dev.sh: installing just (about 2 minutes)" >&2
    cargo install just --locked --version 1.59.0
fi
if [ "${1:-}" = test ] && ! cargo nextest --version >/dev/null 2>&1; then
    echo "dev.sh: installing cargo-nextest" >&2
    cargo install cargo-nextest --locked
fi
if [ "${1:-}" = test ] || [ "${1:-}" = fuzz ]; then
    if ! rustup toolchain list | grep -q '^nightly'; then
        echo "dev.sh: installing the nightly toolchain (for cargo-fuzz)" >&2
        rustup toolchain install nightly --profile minimal
    fi
    if ! cargo fuzz --version >/dev/null 2>&1; then
        echo "dev.sh: installing cargo-fuzz (about 2 minutes)" >&2
        cargo install cargo-fuzz --locked
    fi
fi
# curl for the demo; cmake and libclang-dev to build WAMR (ow-wamr).
missing=()
command -v curl >/dev/null 2>&1 || missing+=(curl)
command -v cmake >/dev/null 2>&1 || missing+=(cmake)
ls /usr/lib/llvm-*/lib/libclang*.so* >/dev/null 2>&1 || missing+=(libclang-dev)
if [ ${#missing[@]} -gt 0 ]; then
    echo "dev.sh: installing ${missing[*]}" >&2
    apt-get update && apt-get install -y "${missing[@]}"
fi
exec just "$@"
