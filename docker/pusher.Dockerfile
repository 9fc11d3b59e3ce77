# syntax=docker/dockerfile:1
# The pusher: drains each partner's queue and delivers the changes to the partner's OCPI API.
# Build from the repository root:
#   docker build -f docker/pusher.Dockerfile -t cdc-fanout/pusher .
# Run: mount the configuration at /etc/pusher/pusher.toml (and the mapping file it names) and a
# volume at /var/lib/pusher for the CDR ledger, shared by every pusher that may take over the
# same partners (docker/compose.yaml does this). `setup` and `partners` work with the same image.

# The locked dependencies need Rust 1.89 or newer. The builder must be Debian bookworm like the
# runtime image, so the binary links against the same glibc.
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
    cargo build --release --locked -p pusher \
    && install -D -m 0755 target/release/pusher /out/pusher \
    && strip --strip-debug /out/pusher

# Nothing to install: HTTPS to partners uses rustls with its own bundled Mozilla root
# certificates, and the binary needs only glibc.
FROM debian:bookworm-slim
RUN groupadd --system --gid 10001 pusher \
    && useradd --system --uid 10001 --gid pusher --home-dir /var/lib/pusher \
        --shell /usr/sbin/nologin pusher \
    && install -d -o pusher -g pusher -m 0750 /var/lib/pusher \
    && install -d -m 0755 /etc/pusher
COPY --from=builder /out/pusher /usr/local/bin/pusher
USER 10001:10001
WORKDIR /var/lib/pusher
# The CDR ledger (state_dir): keeps a CDR from being POSTed twice across restarts.
VOLUME ["/var/lib/pusher"]
ENTRYPOINT ["/usr/local/bin/pusher"]
CMD ["run", "--config", "/etc/pusher/pusher.toml"]
