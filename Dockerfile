# syntax=docker/dockerfile:1
# connection-operator image: a static musl binary on distroless, running as non-root.
# It cannot be built on this project's development or CI machines (no container runtime,
# no registry access); see docs/install.md.

FROM rust:1.89-bookworm AS build
RUN apt-get update && apt-get install -y --no-install-recommends musl-tools \
    && rm -rf /var/lib/apt/lists/* \
    && rustup target add x86_64-unknown-linux-musl
WORKDIR /src
COPY . .
# rustls with aws-lc-rs: no OpenSSL to link; the binary is fully static.
RUN cargo build --release --locked --target x86_64-unknown-linux-musl -p connection-operator \
    && cp target/x86_64-unknown-linux-musl/release/connection-operator /connection-operator

# No shell, no package manager; UID/GID 65532 ("nonroot"), matching the chart's
# runAsUser/runAsGroup.
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /connection-operator /usr/local/bin/connection-operator
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/connection-operator"]
CMD ["run"]
