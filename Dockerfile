# metrics-gateway image: the release binary and the shipped plugins, on distroless.
#   docker build -t ghcr.io/metrics-gateway/metrics-gateway:0.1.0 .
# The binary links glibc and libgcc_s (see `ldd target/release/metrics-gateway`), so the final
# stage is distroless/cc (glibc, libgcc, CA certificates, no shell), of the same Debian release
# as the builder so the glibc versions match.

FROM docker.io/library/rust:1.95-bookworm AS builder
WORKDIR /src
# Plugins are components for wasm32-unknown-unknown, made by `metrics-gateway plugin build`.
RUN rustup target add wasm32-unknown-unknown
COPY . .
RUN cargo build --locked --release -p metrics-gateway --bin metrics-gateway
RUN mkdir -p /out/plugins \
 && for dir in plugins/*/; do \
      name="$(basename "$dir")"; \
      ./target/release/metrics-gateway plugin build --no-install "$dir" --out "/out/plugins/$name.wasm" \
        || exit 1; \
    done

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=builder /src/target/release/metrics-gateway /usr/bin/metrics-gateway
# Loaded by the [[plugins]] entries of config/deploy/base/gateway.toml; pinned by the image digest.
COPY --from=builder /out/plugins/ /usr/lib/metrics-gateway/plugins/
# The nonroot user of distroless (the Deployment's runAsUser).
USER 65532:65532
EXPOSE 6443
ENTRYPOINT ["/usr/bin/metrics-gateway"]
CMD ["serve", "--config=/etc/metrics-gateway/config/gateway.toml"]
