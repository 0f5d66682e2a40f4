#!/bin/sh
# entrypoint.sh - crmsync server B: PostgreSQL 15 from Debian with TLS, run as postgres.
# On the first start (empty $PGDATA): initdb (checksums, UTF8, C.UTF-8), a start on the
# unix socket only, database $POSTGRES_DB, every /docker-entrypoint-initdb.d/*.sh (the
# image has 10-crmsync-roles.sh: roles crmsync_store, crmsync_read, crmsync_analyst), an
# optional password for postgres, stop. Then, every start: postgres with TLS on,
# /etc/postgresql/pg_hba.conf (TLS + scram-sha-256 only) and any extra arguments
# ("-c name=value ..." from the container's command) after the image's settings.
#
# Environment: CRMSYNC_STORE_PASSWORD, CRMSYNC_ANALYST_PASSWORD (required on the first
# start), POSTGRES_PASSWORD (optional: postgres logs in only over the local socket anyway),
# POSTGRES_DB (crmsync), POSTGRES_INITDB_ARGS (extra initdb flags).
# TLS: /etc/postgresql/tls/server.crt and server.key (mode 0600, owned by 999 = postgres).
set -eu
: "${PGDATA:=/var/lib/postgresql/data}"
: "${POSTGRES_DB:=crmsync}"
export PGDATA POSTGRES_DB
SOCK=/var/run/postgresql
TLS=/etc/postgresql/tls

log() { echo "crmsync-postgres: $*" >&2; }
die() { log "$*"; exit 1; }

[ "$(id -u)" != 0 ] || die "run as postgres (the image's USER), not root"
for f in server.crt server.key; do
	[ -r "$TLS/$f" ] || die "$TLS/$f missing or unreadable: mount server B's certificate and key (deploy/compose/make-certs.sh)"
done

if [ ! -s "$PGDATA/PG_VERSION" ]; then
	: "${CRMSYNC_STORE_PASSWORD:?set CRMSYNC_STORE_PASSWORD (server-b.env) for the first start}"
	: "${CRMSYNC_ANALYST_PASSWORD:?set CRMSYNC_ANALYST_PASSWORD (server-b.env) for the first start}"
	log "empty $PGDATA: initialising"
	# shellcheck disable=SC2086 # POSTGRES_INITDB_ARGS: a list of flags
	initdb -D "$PGDATA" -U postgres --auth-local=peer --auth-host=reject --data-checksums \
	    --encoding=UTF8 --locale=C.UTF-8 ${POSTGRES_INITDB_ARGS:-} >/dev/null
	pg_ctl -D "$PGDATA" -w -t 60 -l "$PGDATA/init.log" \
	    -o "-c listen_addresses='' -c unix_socket_directories=$SOCK" start >/dev/null
	export PGHOST=$SOCK
	# psql expands :"db" (a quoted identifier) only in its input, not in -c.
	psql -X -q -v ON_ERROR_STOP=1 -U postgres -d postgres -v db="$POSTGRES_DB" <<'SQL'
CREATE DATABASE :"db";
SQL
	for f in /docker-entrypoint-initdb.d/*.sh; do
		[ -e "$f" ] || continue
		log "running $f"
		sh "$f"
	done
	if [ -n "${POSTGRES_PASSWORD:-}" ]; then
		psql -X -q -v ON_ERROR_STOP=1 -U postgres -d postgres -v pw="$POSTGRES_PASSWORD" <<'SQL'
ALTER ROLE postgres PASSWORD :'pw';
SQL
	fi
	unset PGHOST
	pg_ctl -D "$PGDATA" -m fast -w stop >/dev/null
	rm -f "$PGDATA/init.log"
	log "initialised"
fi

exec postgres -D "$PGDATA" \
    -c listen_addresses='*' \
    -c unix_socket_directories="$SOCK" \
    -c ssl=on \
    -c ssl_cert_file="$TLS/server.crt" \
    -c ssl_key_file="$TLS/server.key" \
    -c ssl_min_protocol_version=TLSv1.2 \
    -c hba_file=/etc/postgresql/pg_hba.conf \
    -c password_encryption=scram-sha-256 \
    -c log_connections=on \
    "$@"
