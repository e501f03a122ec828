# The OpenWhisk action container: ow-executor answering POST /init and
# POST /run on port 8080 (see docs/openwhisk.md).
#
#   docker build -t myorg/ow-executor:0.1.0 .
#
# Reviewed, not built on the machine it was written on (no Docker engine there).

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

# ---- runtime: the executor alone ----

# Same Debian release as the builder, so the binary's glibc matches. Nothing
# else is installed (no ca-certificates): actions have no network and the
# executor makes no outbound connection.
FROM debian:bookworm-slim

# An unprivileged user with fixed ids (numeric, for runAsNonRoot checks), no
# home directory and no login shell.
RUN groupadd --system --gid 10001 ow \
    && useradd --system --uid 10001 --gid 10001 --no-create-home --shell /usr/sbin/nologin ow

# The one binary; every engine is linked into it.
COPY --from=builder /src/target/release/ow-executor /usr/local/bin/ow-executor

# Run as that user from here on.
USER 10001:10001

# Listen on every interface of the container, on the port the invoker expects.
ENV OW_HOST=0.0.0.0 PORT=8080
EXPOSE 8080

# Flags may follow the image name (`docker run IMAGE --engine wamr`); every
# flag is also an environment variable.
ENTRYPOINT ["/usr/local/bin/ow-executor"]
