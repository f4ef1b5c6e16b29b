# Builds the `switchboard` binary (rustls with ring: no OpenSSL) into a small Debian image.
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release -p switchboard-api --locked && strip target/release/switchboard

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates && rm -rf /var/lib/apt/lists/* \
    && useradd --system --home /data --uid 10001 switchboard && mkdir -p /data && chown switchboard /data
COPY --from=build /src/target/release/switchboard /usr/local/bin/switchboard
USER switchboard
WORKDIR /data
ENV SWITCHBOARD_DATA_DIR=/data
EXPOSE 8080
ENTRYPOINT ["switchboard"]
CMD ["serve", "--listen", "0.0.0.0:8080"]
