# syntax=docker/dockerfile:1
# redress worker image: one static binary on distroless, non-root.
#   docker build -t redress .
#   docker run --rm redress policy check /etc/redress/policy.toml
# Target size: the static binary (~25-40 MB) on distroless/static (~2 MB), no shell, no libc.

# ---- build: a static musl binary. The AWS SDK uses rustls (aws-lc-rs), no OpenSSL;
# aws-lc-sys compiles its C with musl-gcc.
FROM rust:1-bookworm AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends musl-tools cmake \
 && rm -rf /var/lib/apt/lists/* \
 && rustup target add x86_64-unknown-linux-musl
ENV CC_x86_64_unknown_linux_musl=musl-gcc
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p redress-workers --target x86_64-unknown-linux-musl \
 && cp target/x86_64-unknown-linux-musl/release/redress /redress

# ---- run
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /redress /usr/local/bin/redress
# The default policy where REDRESS_POLICY points in infra/cloudformation/redress.yaml;
# the packs beside it (choose one with REDRESS_POLICY=/etc/redress/policies/soc2.toml).
COPY infra/policies/default.toml /etc/redress/policy.toml
COPY infra/policies/ /etc/redress/policies/
ENV REDRESS_POLICY=/etc/redress/policy.toml \
    REDRESS_LOG_FORMAT=json
USER nonroot
ENTRYPOINT ["/usr/local/bin/redress"]
CMD ["run"]
