# Prerequisite checks for dev.sh, sourced. Each check looks for exactly what
# the build loads, not for something with a similar name.
#
# bindgen (through clang-sys, used by wamrx-sys to build WAMR's bindings)
# dlopens libclang: a file named `libclang.so`, `libclang.so.N`,
# `libclang-N.so` or `libclang-N.so.M`, found through LIBCLANG_PATH,
# `llvm-config --libdir` or the usual library directories. `libclang-cpp.so.N`
# (package libclang-cpp14, which Debian images ship with llvm-14) is a
# different library that clang-sys never loads. libclang also needs clang's
# builtin headers (`stddef.h`, package libclang-common-N-dev) beside it, or
# bindgen fails on WAMR's headers. Debian's libclang-dev brings both.

# The directories clang-sys searches, in its order (roughly), one per line.
# DEV_SH_LIBCLANG_DIRS (colon-separated) replaces them, for tests.
libclang_dirs() {
    if [ -n "${DEV_SH_LIBCLANG_DIRS:-}" ]; then
        tr ':' '\n' <<<"$DEV_SH_LIBCLANG_DIRS"
        return
    fi
    if [ -n "${LIBCLANG_PATH:-}" ]; then
        echo "$LIBCLANG_PATH"
    fi
    if command -v llvm-config >/dev/null 2>&1; then
        llvm-config --libdir 2>/dev/null || true
    fi
    local d
    for d in /usr/lib/llvm-*/lib /usr/local/llvm*/lib /usr/lib/"$(gcc -print-multiarch 2>/dev/null || echo x86_64-linux-gnu)" /usr/lib64 /usr/lib /usr/local/lib; do
        [ -d "$d" ] && echo "$d"
    done
}

# Prints the first libclang that clang-sys would load from the directories
# given (or from libclang_dirs), and fails when there is none.
find_libclang() {
    local dirs=("$@") d f name
    if [ ${#dirs[@]} -eq 0 ]; then
        mapfile -t dirs < <(libclang_dirs)
    fi
    for d in "${dirs[@]}"; do
        for f in "$d"/libclang.so "$d"/libclang.so.* "$d"/libclang-[0-9]*.so "$d"/libclang-[0-9]*.so.*; do
            [ -e "$f" ] || continue
            name=$(basename "$f")
            case "$name" in libclang-cpp*) continue ;; esac
            echo "$f"
            return 0
        done
    done
    return 1
}

# Succeeds when clang's builtin headers sit beside a libclang (a clang
# resource directory `<libdir>/clang/<version>/include` with stddef.h).
find_clang_headers() {
    local dirs=("$@") d h
    if [ ${#dirs[@]} -eq 0 ]; then
        mapfile -t dirs < <(libclang_dirs)
    fi
    for d in "${dirs[@]}"; do
        for h in "$d"/clang/*/include/stddef.h; do
            [ -e "$h" ] && { echo "$h"; return 0; }
        done
    done
    return 1
}

# The Debian packages missing for `dev.sh RECIPE`, space separated.
missing_packages() {
    local recipe=${1:-} missing=()
    # The demo and the tests talk HTTP with curl.
    command -v curl >/dev/null 2>&1 || missing+=(curl)
    # WAMR is built by the cmake crate: the cmake program, make and a C compiler.
    command -v cmake >/dev/null 2>&1 || missing+=(cmake)
    command -v make >/dev/null 2>&1 || missing+=(make)
    command -v cc >/dev/null 2>&1 || missing+=(gcc)
    # bindgen: libclang and clang's builtin headers.
    if ! find_libclang >/dev/null || ! find_clang_headers >/dev/null; then
        missing+=(libclang-dev)
    fi
    # The fuzz recipe writes its seed zip with python3.
    if [ "$recipe" = test ] || [ "$recipe" = fuzz ]; then
        command -v python3 >/dev/null 2>&1 || missing+=(python3)
    fi
    # The state tests and benchmarks start a real Redis on loopback, and
    # measure its round trip with redis-benchmark (package redis-tools, a
    # dependency of redis-server).
    if [ "$recipe" = test ] || [ "$recipe" = bench ] || [ "$recipe" = bench-quick ] ||
        [ "$recipe" = two-hosts ]; then
        command -v redis-server >/dev/null 2>&1 && command -v redis-benchmark >/dev/null 2>&1 ||
            missing+=(redis-server)
    fi
    # The function store's tests and benchmarks push images to a real
    # registry (Distribution 2.8, /usr/bin/docker-registry) with skopeo,
    # and drive the OpenWhisk API with Apache's npm client (node, npm).
    if [ "$recipe" = test ] || [ "$recipe" = bench ] || [ "$recipe" = bench-quick ]; then
        command -v docker-registry >/dev/null 2>&1 || missing+=(docker-registry)
        command -v skopeo >/dev/null 2>&1 || missing+=(skopeo)
        command -v node >/dev/null 2>&1 || missing+=(nodejs)
        command -v npm >/dev/null 2>&1 || missing+=(npm)
    fi
    # The two-host chaining test creates network namespaces and veth pairs
    # with `ip` (iproute2).
    if [ "$recipe" = test ] || [ "$recipe" = two-hosts ]; then
        command -v ip >/dev/null 2>&1 || missing+=(iproute2)
    fi
    echo "${missing[*]}"
}

# Debian packages the test recipe uses when it can (the container image is
# built with buildah and run with podman on runc); missing ones only skip
# the image tests.
missing_optional_packages() {
    local recipe=${1:-} missing=()
    case "$recipe" in test | image | test-image) ;; *) return 0 ;; esac
    command -v buildah >/dev/null 2>&1 || missing+=(buildah)
    command -v podman >/dev/null 2>&1 || missing+=(podman)
    command -v runc >/dev/null 2>&1 || missing+=(runc)
    echo "${missing[*]}"
}
