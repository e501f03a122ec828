# Recipes for building, trying and testing the OpenWhisk wasm executor.
# `./dev.sh <recipe>` installs what a fresh machine lacks, then runs it here.

set shell := ["bash", "-euo", "pipefail", "-c"]

wasm_target := "wasm32-wasip1"
examples_dir := "target/" + wasm_target + "/release/examples"
port := env_var_or_default("PORT", "8080")

# List the recipes.
default:
    @just --list

# Build the executor (release).
build:
    cargo build --release -p ow-executor

# Build every example action to target/wasm32-wasip1/release/examples/<name>.wasm.
build-wasm-examples:
    cargo build --release --target {{wasm_target}} -p ow-wasm-action --examples

# Start the executor, /init an example action, show a real /run, stop.
demo action="add" params='{"param1": 20, "param2": 22}': build build-wasm-examples
    scripts/demo.sh "{{examples_dir}}/{{action}}.wasm" '{{params}}' "{{port}}"

# Run the executor on PORT (default 8080) in the foreground.
run *args: build
    target/release/ow-executor --port {{port}} {{args}}

# The whole test suite: formatting, lints, unit, integration and doc tests.
test:
    cargo fmt --all -- --check
    cargo clippy --release --workspace --all-targets -j2 -- -D warnings
    cargo nextest run --release --workspace -j2 --no-fail-fast
    cargo test --release --workspace --doc -j2
