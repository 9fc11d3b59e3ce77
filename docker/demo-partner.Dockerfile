# syntax=docker/dockerfile:1
# A demo OCPI partner for trying the system out: a strict receiver of locations, sessions, cdrs,
# tariffs and tokens that keeps what the pushers send (GET /demo/state shows it; that endpoint
# has no token, so never expose it). Not for production.
# Build from the repository root:
#   docker build -f docker/demo-partner.Dockerfile -t cdc-fanout/demo-partner .
# Run:
#   docker run cdc-fanout/demo-partner --listen 0.0.0.0:8080 --token TOKEN \
#       [--ocpi-version 2.2.1|2.1.1] [--public-url http://HOST:8080]   (--help for the rest)

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
    cargo build --release --locked -p system-tests --bin demo_partner \
    && install -D -m 0755 target/release/demo_partner /out/demo_partner \
    && strip --strip-debug /out/demo_partner

FROM debian:bookworm-slim
RUN groupadd --system --gid 10001 partner \
    && useradd --system --uid 10001 --gid partner --no-create-home \
        --shell /usr/sbin/nologin partner
COPY --from=builder /out/demo_partner /usr/local/bin/demo_partner
USER 10001:10001
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/demo_partner"]
CMD ["--help"]
