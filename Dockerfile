# sluice in a container: a static musl binary on distroless, running as non-root.
#   docker build -t sluice .
#   docker run --rm -p 7800:7800 sluice          # the mock on http://127.0.0.1:7800

FROM rust:1.95-alpine3.22 AS build
# musl-dev for linking; cmake, perl and g++ for aws-lc-sys (rustls' crypto).
# hadolint ignore=DL3018
RUN apk add --no-cache musl-dev g++ cmake make perl
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
# Cargo.toml names the benches; the manifest does not load without them.
COPY benches ./benches
RUN cargo build --release --locked --bin sluice \
    && cp target/release/sluice /sluice

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /sluice /usr/local/bin/sluice
COPY prompts /app/prompts
WORKDIR /app
# Inside a container the proxy must listen on all interfaces.
ENV SLUICE_LISTEN=0.0.0.0:7800
EXPOSE 7800
USER 65532:65532
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s --retries=3 \
    CMD ["/usr/local/bin/sluice", "health"]
ENTRYPOINT ["/usr/local/bin/sluice"]
