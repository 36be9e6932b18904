# Multi-stage build of the release binary, the same `cargo build --release --locked` the load
# scripts and the README use. No container engine runs on the development machines, so this
# file is kept in step with that build by hand (see README, "Packaging").
FROM rust:1-slim-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin trunkline

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home-dir /data trunkline \
    && mkdir -p /data /etc/trunkline && chown trunkline /data
COPY --from=build /src/target/release/trunkline /usr/local/bin/trunkline
COPY sip-config /etc/trunkline
USER trunkline
WORKDIR /data
VOLUME ["/data"]
# SIP (UDP and TCP), HTTP API, RTP range of the example config.
EXPOSE 5060/udp 5060/tcp 8080/tcp 20000-29999/udp
ENTRYPOINT ["trunkline"]
# Listen on all interfaces inside the container (the example config binds loopback). The address
# peers reach the container at must be written into Via, Contact and SDP: pass it when running,
#   docker run ... IMAGE serve --config /etc/trunkline --data /data --sip 0.0.0.0:5060 \
#     --http 0.0.0.0:8080 --rtp-address 0.0.0.0 --public-address 203.0.113.10
# (trunkline refuses to start with a wildcard address and no public address).
CMD ["serve", "--config", "/etc/trunkline", "--data", "/data", "--sip", "0.0.0.0:5060", "--http", "0.0.0.0:8080", "--rtp-address", "0.0.0.0"]
