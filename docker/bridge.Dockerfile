# syntax=docker/dockerfile:1
# The bridge: reads the MySQL/MariaDB binlog as a replica and publishes every captured change to
# RabbitMQ. Build from the repository root:
#   docker build -f docker/bridge.Dockerfile -t cdc-fanout/bridge .
# Run: mount the configuration at /etc/bridge/bridge.toml and a volume at /var/lib/bridge for
# the checkpoint (docker/compose.yaml does both).

# The locked dependencies need Rust 1.89 or newer. The builder must be Debian bookworm like the
# runtime image, so the binary links against the same glibc and OpenSSL.
ARG RUST_VERSION=1.95
FROM rust:${RUST_VERSION}-bookworm AS builder
WORKDIR /src
COPY . .
# Cache mounts keep downloaded crates and compiled dependencies between builds (shared with the
# other images of docker/, one build at a time); the binary is copied out of the cached target
# directory in the same step, without its line tables (four fifths of its size; symbols stay, so
# a backtrace still names the functions).
RUN --mount=type=cache,target=/usr/local/cargo/registry,sharing=locked \
    --mount=type=cache,target=/src/target,sharing=locked \
    cargo build --release --locked -p bridge \
    && install -D -m 0755 target/release/bridge /out/bridge \
    && strip --strip-debug /out/bridge

FROM debian:bookworm-slim
# libssl3: the binlog reader links OpenSSL (RSA exchange of MySQL 8's caching_sha2_password).
RUN apt-get update \
    && apt-get install -y --no-install-recommends libssl3 \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 bridge \
    && useradd --system --uid 10001 --gid bridge --home-dir /var/lib/bridge \
        --shell /usr/sbin/nologin bridge \
    && install -d -o bridge -g bridge -m 0750 /var/lib/bridge \
    && install -d -m 0755 /etc/bridge
COPY --from=builder /out/bridge /usr/local/bin/bridge
USER 10001:10001
WORKDIR /var/lib/bridge
# The checkpoint (binlog position confirmed by the broker) must outlive the container: without
# it a new container starts where source.start says instead of where the old one stopped.
VOLUME ["/var/lib/bridge"]
ENTRYPOINT ["/usr/local/bin/bridge"]
CMD ["run", "--config", "/etc/bridge/bridge.toml"]
