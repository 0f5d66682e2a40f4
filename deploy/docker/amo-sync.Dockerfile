# amo-sync.Dockerfile - the crmsync-amo-sync image (amoCRM REST client: OAuth2, hook tasks, incremental and full sync).
# Build from the repository root:  docker build -f deploy/docker/amo-sync.Dockerfile -t crmsync/amo-sync .
# Stage 1 builds on Debian 12; stage 2 is debian:12-slim with the two binaries (crmsync-amo-sync,
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
RUN sh /usr/local/sbin/build-steps.sh build /src /build amo-sync
RUN sh /usr/local/sbin/build-steps.sh stage /build /out amo-sync

FROM debian:12-slim
COPY --from=build /out/setup /tmp/crmsync-setup
RUN sh /tmp/crmsync-setup/build-steps.sh runtime /tmp/crmsync-setup amo-sync && rm -rf /tmp/crmsync-setup
COPY --from=build /out/rootfs /
# Inside a container the service listens on every interface; compose publishes nothing but
# what must be reached from outside (see deploy/compose/server-a.yml).
ENV CS_AMO_URL=tcp://0.0.0.0:7702 \
    CS_AMO_HEALTH_URL=tcp://0.0.0.0:7712 \
    CS_AMO_METRICS_ADDR=0.0.0.0:9103 \
    CS_AMO_TOKEN_FILE=/var/lib/crmsync/amo-sync/amo-token.json
VOLUME ["/var/lib/crmsync/amo-sync"]
EXPOSE 7702 7712 9103
USER crmsync:crmsync
WORKDIR /var/lib/crmsync/amo-sync
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["crmsyncctl", "probe", "-q", "amo-sync"]
ENTRYPOINT ["/usr/local/bin/crmsync-amo-sync"]
