#!/usr/bin/env bash
# Entry point for a fresh machine: installs what is missing, then runs a
# `just` recipe (apt packages, rustup target, just, nextest, cargo-fuzz). The
# two commands of the README:
#   ./dev.sh demo   build, start the executor, /init an example action, /run it
#   ./dev.sh test   the whole test suite (what CI runs)
# A prerequisite that is missing and cannot be installed stops it at once,
# before any build, with a message that names it.
set -euo pipefail
cd "$(dirname "$0")"
export PATH="$HOME/.cargo/bin:$PATH"
# shellcheck source=scripts/prereqs.sh
. scripts/prereqs.sh

die() {
    echo "dev.sh: $*" >&2
    exit 1
}

command -v cargo >/dev/null 2>&1 && command -v rustup >/dev/null 2>&1 ||
    die "a Rust toolchain installed with rustup is needed (cargo and rustup on PATH)"

# System packages first: they are what a fresh machine lacks most often, and a
# failure here costs seconds, not a 15-minute build.
read -r -a missing <<<"$(missing_packages "${1:-}")"
if [ ${#missing[@]} -gt 0 ]; then
    echo "dev.sh: installing ${missing[*]} (apt)" >&2
    # DEV_SH_APT_GET replaces apt-get, for tests.
    apt_get=${DEV_SH_APT_GET:-apt-get}
    if [ "$(id -u)" -eq 0 ]; then
        apt=("$apt_get")
    elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
        apt=(sudo "$apt_get")
    else
        die "missing ${missing[*]}; install them as root: apt-get install -y ${missing[*]}"
    fi
    command -v "$apt_get" >/dev/null 2>&1 ||
        die "missing ${missing[*]} and there is no apt-get to install them with"
    "${apt[@]}" update -qq || die "apt-get update failed; cannot install ${missing[*]}"
    DEBIAN_FRONTEND=noninteractive "${apt[@]}" install -y -qq "${missing[@]}" ||
        die "apt-get install ${missing[*]} failed"
    read -r -a still <<<"$(missing_packages "${1:-}")"
    [ ${#still[@]} -eq 0 ] ||
        die "still missing after apt-get install: ${still[*]} (bindgen needs libclang.so and clang's stddef.h; set LIBCLANG_PATH to a directory holding libclang.so if it lives elsewhere)"
fi
echo "dev.sh: libclang for bindgen: $(find_libclang)" >&2
read -r -a optional <<<"$(missing_optional_packages "${1:-}")"
if [ ${#optional[@]} -gt 0 ]; then
    echo "dev.sh: installing ${optional[*]} (apt, for the container image tests)" >&2
    apt_get=${DEV_SH_APT_GET:-apt-get}
    sudo=()
    [ "$(id -u)" -eq 0 ] || sudo=(sudo -n)
    if ! { "${sudo[@]}" "$apt_get" update -qq &&
        DEBIAN_FRONTEND=noninteractive "${sudo[@]}" "$apt_get" install -y -qq "${optional[@]}"; }; then
        echo "dev.sh: could not install ${optional[*]}: the image tests will be skipped" >&2
    fi
fi

if ! rustup target list --installed 2>/dev/null | grep -qx wasm32-wasip1; then
    echo "dev.sh: installing the wasm32-wasip1 target" >&2
    rustup target add wasm32-wasip1 || die "rustup target add wasm32-wasip1 failed"
fi
if ! command -v just >/dev/null 2>&1; then
    echo "dev.sh: installing just (about 2 minutes)" >&2
    cargo install just --locked --version 1.59.0 || die "cargo install just failed"
fi
if [ "${1:-}" = test ] && ! cargo nextest --version >/dev/null 2>&1; then
    echo "dev.sh: installing cargo-nextest" >&2
    cargo install cargo-nextest --locked || die "cargo install cargo-nextest failed"
fi
if [ "${1:-}" = test ] || [ "${1:-}" = fuzz ]; then
    if ! rustup toolchain list | grep -q '^nightly'; then
        echo "dev.sh: installing the nightly toolchain (for cargo-fuzz)" >&2
        rustup toolchain install nightly --profile minimal || die "rustup toolchain install nightly failed"
    fi
    if ! cargo fuzz --version >/dev/null 2>&1; then
        echo "dev.sh: installing cargo-fuzz (about 2 minutes)" >&2
        cargo install cargo-fuzz --locked || die "cargo install cargo-fuzz failed"
    fi
fi
exec just "$@"
