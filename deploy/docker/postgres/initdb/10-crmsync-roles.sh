#!/bin/sh
# 10-crmsync-roles.sh - the least-privilege roles of crmsync's database. Run once by the
# postgres image on an empty data directory (docker-entrypoint-initdb.d), or by hand on a
# plain PostgreSQL 15 as the postgres superuser:
#   CRMSYNC_STORE_PASSWORD=... CRMSYNC_ANALYST_PASSWORD=... POSTGRES_DB=crmsync sh 10-crmsync-roles.sh
#
#   crmsync_store    LOGIN; owns the schemas amo, hollihop, crmsync and everything in them
#                    (the store creates and migrates its tables). CONNECT, TEMPORARY (COPY
#                    stage tables) and CREATE on the database: migration 1 says CREATE SCHEMA
#                    IF NOT EXISTS, which PostgreSQL checks against that privilege even when
#                    the schema exists. Not a superuser; cannot create roles or databases.
#   crmsync_read     NOLOGIN group: SELECT on every table the store owns, now and later.
#   crmsync_analyst  LOGIN, member of crmsync_read; read-only sessions. crmsyncctl can use
#                    it too (CS_CTL_PG_DSN).
set -eu
: "${CRMSYNC_STORE_PASSWORD:?set CRMSYNC_STORE_PASSWORD (server-b.env)}"
: "${CRMSYNC_ANALYST_PASSWORD:?set CRMSYNC_ANALYST_PASSWORD (server-b.env)}"
db=${POSTGRES_DB:-crmsync}

psql -v ON_ERROR_STOP=1 --no-psqlrc --username "${POSTGRES_USER:-postgres}" --dbname "$db" \
    -v db="$db" <<'SQL'
-- The passwords from the environment (\getenv), never on a command line ps would show.
\getenv store_pw CRMSYNC_STORE_PASSWORD
\getenv analyst_pw CRMSYNC_ANALYST_PASSWORD
CREATE ROLE crmsync_store LOGIN PASSWORD :'store_pw'
    NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS CONNECTION LIMIT 20;
CREATE ROLE crmsync_read NOLOGIN;
CREATE ROLE crmsync_analyst LOGIN PASSWORD :'analyst_pw'
    NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS CONNECTION LIMIT 50
    IN ROLE crmsync_read;
ALTER ROLE crmsync_analyst SET default_transaction_read_only = on;
ALTER ROLE crmsync_analyst SET statement_timeout = '10min';

REVOKE ALL ON DATABASE :"db" FROM PUBLIC;
GRANT CONNECT, TEMPORARY, CREATE ON DATABASE :"db" TO crmsync_store;
GRANT CONNECT ON DATABASE :"db" TO crmsync_read;
REVOKE ALL ON SCHEMA public FROM PUBLIC;

CREATE SCHEMA crmsync AUTHORIZATION crmsync_store;
CREATE SCHEMA amo AUTHORIZATION crmsync_store;
CREATE SCHEMA hollihop AUTHORIZATION crmsync_store;
GRANT USAGE ON SCHEMA crmsync, amo, hollihop TO crmsync_read;
ALTER DEFAULT PRIVILEGES FOR ROLE crmsync_store IN SCHEMA crmsync, amo, hollihop
    GRANT SELECT ON TABLES TO crmsync_read;
SQL
echo "crmsync: roles crmsync_store, crmsync_read, crmsync_analyst ready in database $db"
