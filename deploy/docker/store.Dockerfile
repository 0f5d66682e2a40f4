# store.Dockerfile - the crmsync-store image (the only writer of PostgreSQL).
# Build from the repository root:  docker build -f deploy/docker/store.Dockerfile -t crmsync/store .
# Stage 1 builds on Debian 12; stage 2 is debian:12-slim with the two binaries (crmsync-store,
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
RUN sh /usr/local/sbin/build-steps.sh build /src /build store
RUN sh /usr/local/sbin/build-steps.sh stage /build /out store

FROM debian:12-slim
COPY --from=build /out/setup /tmp/crmsync-setup
RUN sh /tmp/crmsync-setup/build-steps.sh runtime /tmp/crmsync-setup store && rm -rf /tmp/crmsync-setup
COPY --from=build /out/rootfs /
# Inside a container the service listens on every interface; compose publishes nothing but
# what must be reached from outside (see deploy/compose/server-a.yml).
ENV CS_STORE_URL=tcp://0.0.0.0:7701 \
    CS_STORE_HEALTH_URL=tcp://0.0.0.0:7711 \
    CS_STORE_METRICS_ADDR=0.0.0.0:9101
EXPOSE 7701 7711 9101
USER crmsync:crmsync
WORKDIR /var/lib/crmsync/store
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["crmsyncctl", "probe", "-q", "store"]
ENTRYPOINT ["/usr/local/bin/crmsync-store"]
