# hook-gateway.Dockerfile - the crmsync-hook-gateway image (HTTPS webhook receiver with an fsync'd journal).
# Build from the repository root:  docker build -f deploy/docker/hook-gateway.Dockerfile -t crmsync/hook-gateway .
# Stage 1 builds on Debian 12; stage 2 is debian:12-slim with the two binaries (crmsync-hook-gateway,
# crmsyncctl for the health check), the Debian packages of their shared libraries, and a
# non-root user. Every RUN is a step of deploy/docker/build-steps.sh, which deploy/check.sh
# runs outside a container engine.

FROM debian:12 AS build
COPY deploy/docker/build-steps.sh /usr/local/sbin/build-steps.sh
RUN sh /usr/local/sbin/build-steps.sh deps
COPY CMakeLists.txt /src/
COPY cmake /src/cmake
COPY proto /src/proto
COPY lib /src/lib
COPY services /src/services
COPY tools /src/tools
COPY tests /src/tests
RUN sh /usr/local/sbin/build-steps.sh build /src /build hook-gateway
RUN sh /usr/local/sbin/build-steps.sh stage /build /out hook-gateway

FROM debian:12-slim
COPY --from=build /out/setup /tmp/crmsync-setup
RUN sh /tmp/crmsync-setup/build-steps.sh runtime /tmp/crmsync-setup hook-gateway && rm -rf /tmp/crmsync-setup
COPY --from=build /out/rootfs /
# Inside a container the service listens on every interface; compose publishes nothing but
# what must be reached from outside (see deploy/compose/server-a.yml).
ENV CS_GATEWAY_LISTEN=0.0.0.0:8443 \
    CS_GATEWAY_HEALTH_URL=tcp://0.0.0.0:7311 \
    CS_GATEWAY_METRICS_ADDR=0.0.0.0:9102 \
    CS_GATEWAY_JOURNAL_DIR=/var/lib/crmsync/hook-gateway/journal \
    CS_GATEWAY_DEADLETTER_DIR=/var/lib/crmsync/hook-gateway/deadletter
VOLUME ["/var/lib/crmsync/hook-gateway"]
EXPOSE 8443 7311 9102
USER crmsync:crmsync
WORKDIR /var/lib/crmsync/hook-gateway
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["crmsyncctl", "probe", "-q", "hook-gateway"]
ENTRYPOINT ["/usr/local/bin/crmsync-hook-gateway"]
