# hollihop-sync.Dockerfile - the crmsync-hollihop-sync image (Hollihop API client: nightly and on-demand full export).
# Build from the repository root:  docker build -f deploy/docker/hollihop-sync.Dockerfile -t crmsync/hollihop-sync .
# Stage 1 builds on Debian 12; stage 2 is debian:12-slim with the two binaries (crmsync-hollihop-sync,
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
RUN sh /usr/local/sbin/build-steps.sh build /src /build hollihop-sync
RUN sh /usr/local/sbin/build-steps.sh stage /build /out hollihop-sync

FROM debian:12-slim
COPY --from=build /out/setup /tmp/crmsync-setup
RUN sh /tmp/crmsync-setup/build-steps.sh runtime /tmp/crmsync-setup hollihop-sync && rm -rf /tmp/crmsync-setup
COPY --from=build /out/rootfs /
# Inside a container the service listens on every interface; compose publishes nothing but
# what must be reached from outside (see deploy/compose/server-a.yml).
ENV CS_HOLLIHOP_URL=tcp://0.0.0.0:7703 \
    CS_HOLLIHOP_HEALTH_URL=tcp://0.0.0.0:7713 \
    CS_HOLLIHOP_METRICS_ADDR=0.0.0.0:9104
EXPOSE 7703 7713 9104
USER crmsync:crmsync
WORKDIR /var/lib/crmsync/hollihop-sync
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["crmsyncctl", "probe", "-q", "hollihop-sync"]
ENTRYPOINT ["/usr/local/bin/crmsync-hollihop-sync"]
