# The OpenWhisk action container: ow-executor answering POST /init and
# POST /run on port 8080 (see docs/openwhisk.md).
#
#   docker build -t myorg/ow-executor:0.1.0 .
#
# Not built with Docker here (no Docker engine on our machines): `just image`
# builds the same layout from the same script with buildah, and the tests run
# it with podman.

# ---- builder: the executor (all three engines) and the precompiler ----

# The toolchain the workspace asks for (rust-version = 1.95), on Debian 12.
FROM rust:1.95-bookworm AS builder

# WAMR's build script runs cmake, and bindgen needs clang and libclang.
RUN apt-get update \
    && apt-get install -y --no-install-recommends cmake clang libclang-dev \
    && rm -rf /var/lib/apt/lists/*

# The whole workspace; .dockerignore keeps target/, .git and fuzzing state out.
WORKDIR /src
COPY . .

# Exactly the versions in Cargo.lock. The precompiler is built here so that it
# uses the same engine versions as the executor; run it from this stage
# (`docker build --target builder`), it is not copied into the runtime image.
RUN cargo build --release --locked -p ow-executor -p ow-precompiler

# The image's root filesystem, laid out by the same script `just image` uses
# (the executor, the libraries ldd lists, passwd/group for user 10001, /tmp).
RUN scripts/image-rootfs.sh target/release/ow-executor /rootfs

# ---- runtime: the executor and the libraries it loads, nothing else ----

# No shell, no package manager: the same layout as Containerfile's image.
# The binary's glibc comes with it, from the builder's Debian release.
FROM scratch
COPY --from=builder /rootfs/ /

# The unprivileged user (numeric ids, for runAsNonRoot checks).
USER 10001:10001

# Listen on every interface of the container, on the port the invoker expects.
ENV OW_HOST=0.0.0.0 PORT=8080
EXPOSE 8080

# Flags may follow the image name (`docker run IMAGE --engine wamr`); every
# flag is also an environment variable.
ENTRYPOINT ["/usr/local/bin/ow-executor"]
