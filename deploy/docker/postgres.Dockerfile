# postgres.Dockerfile - crmsync server B: Debian 12's PostgreSQL 15, TLS on, pg_hba admitting
# only TLS + scram-sha-256, the least-privilege roles made on the first start
# (postgres/initdb/10-crmsync-roles.sh). The same image the container test runs.
#   docker build -f deploy/docker/postgres.Dockerfile -t crmsync/postgres .
#   podman build --format docker -f deploy/docker/postgres.Dockerfile -t crmsync/postgres .
# Run: deploy/compose/server-b.yml (volume for the data, server.crt/key mounted, the
# passwords in server-b.env). postgres is uid/gid 999, as in the Docker Hub image.
# It also carries crmsync-backup and crmsync-restore (deploy/backup/) for the backup job.

FROM debian:12-slim
# Fixed ids, so a mounted key can be chowned to 999 on the host; no "main" cluster from
# the package's postinst: the entrypoint makes the cluster in the volume.
RUN groupadd --system --gid 999 postgres && \
    useradd --system --uid 999 --gid postgres --home-dir /var/lib/postgresql --shell /bin/sh postgres && \
    mkdir -p /etc/postgresql-common/createcluster.d && \
    echo 'create_main_cluster = false' >/etc/postgresql-common/createcluster.d/crmsync.conf && \
    export DEBIAN_FRONTEND=noninteractive && \
    apt-get update -qq && \
    apt-get install -y -qq --no-install-recommends postgresql-15 && \
    apt-get clean && rm -rf /var/lib/apt/lists/* && \
    install -d -o postgres -g postgres -m 0700 /var/lib/postgresql/data && \
    install -d -o postgres -g postgres -m 2775 /var/run/postgresql && \
    install -d -m 0755 /etc/postgresql/tls /docker-entrypoint-initdb.d
COPY deploy/docker/postgres/pg_hba.conf /etc/postgresql/pg_hba.conf
COPY deploy/docker/postgres/initdb/ /docker-entrypoint-initdb.d/
COPY deploy/docker/postgres/entrypoint.sh /usr/local/bin/crmsync-postgres
# Backup and restore (deploy/backup/; README "Backups of server B"): podman run --rm --entrypoint
# crmsync-backup ... with this image, so the dump is made by the server's own pg_dump.
COPY deploy/backup/crmsync-backup deploy/backup/crmsync-restore /usr/local/bin/
ENV PATH=/usr/lib/postgresql/15/bin:$PATH \
    PGDATA=/var/lib/postgresql/data \
    LANG=C.UTF-8
VOLUME ["/var/lib/postgresql/data"]
EXPOSE 5432
USER postgres:postgres
WORKDIR /var/lib/postgresql
# SIGINT: fast shutdown (roll back open transactions, checkpoint, exit).
STOPSIGNAL SIGINT
HEALTHCHECK --interval=10s --timeout=5s --start-period=60s --retries=5 \
    CMD ["pg_isready", "-q", "-h", "/var/run/postgresql", "-U", "postgres", "-d", "crmsync"]
ENTRYPOINT ["/bin/sh", "/usr/local/bin/crmsync-postgres"]
