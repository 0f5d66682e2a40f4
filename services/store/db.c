/*
 * db.c - the store's single PostgreSQL connection.
 *
 * db_connect() retries with exponential backoff (capped by CS_STORE_RECONNECT_MAX) until it
 * succeeds or the service is asked to stop; the caller never acks while it is down.
 * Errors are classified by SQLSTATE: class 08 (connection), 57P (shutdown/crash) and a
 * dead connection are "retry later"; everything else is a bad batch.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <nng/nng.h>
#include <nng/supplemental/util/platform.h>

#include "bus.h"
#include "errors.h"
#include "log.h"
#include "store.h"
#include "svc.h"

/* One connection attempt; on failure the next one is allowed only after the backoff. */
int
db_try_connect(struct store *st)
{
	int64_t now = bus_now_ms();

	if (st->pg_ok)
		return 0;
	if (now < st->next_connect_ms)
		return CS_EDBCONN;
	db_close(st);
	st->pg = PQconnectdb(st->conf.dsn);
	if (PQstatus(st->pg) == CONNECTION_OK) {
		char tmo[64];
		snprintf(tmo, sizeof(tmo), "SET statement_timeout = %lld",
		    (long long)st->conf.statement_timeout_ms);
		PQclear(PQexec(st->pg, tmo));
		PQclear(PQexec(st->pg, "SET synchronous_commit = on"));
		PQclear(PQexec(st->pg, "SET client_min_messages = warning"));
		PQclear(PQexec(st->pg, "SET application_name = 'crmsync-store'"));
		st->pg_ok = 1;
		stat_set(&store_stats[ST_DB_UP], 1);
		log_info("db.connected", "attempt=%d server=%d", st->connect_attempts + 1,
		    PQserverVersion(st->pg));
		st->connect_attempts = 0;
		st->backoff_ms = 0;
		return 0;
	}
	/* PQerrorMessage may echo the DSN's host but never its password. */
	if (st->connect_attempts % 10 == 0)
		log_warnx("db.connect_failed", "attempt=%d retry_in_ms=%lld err=%s",
		    st->connect_attempts + 1, (long long)st->backoff_ms, lq(PQerrorMessage(st->pg)));
	PQfinish(st->pg);
	st->pg = NULL;
	st->connect_attempts++;
	st->backoff_ms = st->backoff_ms == 0 ? 100 : st->backoff_ms * 2;
	if (st->backoff_ms > st->conf.reconnect_max_ms)
		st->backoff_ms = st->conf.reconnect_max_ms;
	st->next_connect_ms = now + st->backoff_ms;
	return CS_EDBCONN;
}

int
db_connect(struct store *st)
{
	while (!svc_stop) {
		if (db_try_connect(st) == 0)
			return 0;
		nng_msleep(50);
	}
	return CS_ECLOSED;
}

void
db_close(struct store *st)
{
	if (st->pg != NULL)
		PQfinish(st->pg);
	st->pg = NULL;
	st->pg_ok = 0;
	stat_set(&store_stats[ST_DB_UP], 0);
}

int
db_classify(struct store *st, const PGresult *r)
{
	const char *state = r != NULL ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;

	if (st->pg == NULL || PQstatus(st->pg) != CONNECTION_OK)
		return CS_EDBCONN;
	/* Every error the server reports carries a SQLSTATE; none means libpq lost the server. */
	if (state == NULL)
		return CS_EDBCONN;
	if (strncmp(state, "08", 2) == 0 || strncmp(state, "57P", 3) == 0 ||
	    strcmp(state, "53300") == 0 || strcmp(state, "40001") == 0 || strcmp(state, "40P01") == 0)
		return CS_EDBCONN;
	return CS_EDB;
}

const char *
db_errmsg(struct store *st, const PGresult *r)
{
	const char *m = r != NULL ? PQresultErrorMessage(r) : NULL;

	if (m == NULL || *m == '\0')
		m = st->pg != NULL ? PQerrorMessage(st->pg) : "no connection";
	return m;
}

/* Classify r, hand it to the caller (who inspects errors too) or free it. */
static int
db_result(struct store *st, PGresult *r, PGresult **out)
{
	int rv = 0;

	if (r == NULL || (PQresultStatus(r) != PGRES_COMMAND_OK && PQresultStatus(r) != PGRES_TUPLES_OK)) {
		rv = db_classify(st, r);
		log_debug("db.error", "err=%s", lq(db_errmsg(st, r)));
	}
	if (out != NULL)
		*out = r;
	else
		PQclear(r);
	return rv;
}

int
db_execp(struct store *st, const char *sql, int n, const char *const *vals, PGresult **out)
{
	if (out != NULL)
		*out = NULL;
	if (st->pg == NULL)
		return CS_EDBCONN;
	return db_result(st, n > 0 ? PQexecParams(st->pg, sql, n, NULL, vals, NULL, NULL, 0) :
	    PQexec(st->pg, sql), out);
}

int
db_execprep(struct store *st, const char *name, int *prepared, const char *sql, int n,
    const char *const *vals, PGresult **out)
{
	int rv;

	if (out != NULL)
		*out = NULL;
	if (st->pg == NULL)
		return CS_EDBCONN;
	if (!*prepared) {
		if ((rv = db_result(st, PQprepare(st->pg, name, sql, n, NULL), out)) != 0)
			return rv;
		if (out != NULL) {
			PQclear(*out);
			*out = NULL;
		}
		*prepared = 1;
	}
	return db_result(st, PQexecPrepared(st->pg, name, n, vals, NULL, NULL, 0), out);
}

int
db_exec(struct store *st, const char *sql)
{
	return db_execp(st, sql, 0, NULL, NULL);
}

void
db_rollback(struct store *st)
{
	if (st->pg != NULL && PQtransactionStatus(st->pg) != PQTRANS_IDLE)
		PQclear(PQexec(st->pg, "ROLLBACK"));
}

/*
 * Send b as COPY data for sql (inside the caller's transaction), in 1 MiB pieces. A unique
 * violation is CS_EEXISTS (a direct COPY raced another writer); the error text in err.
 */
int
db_copy_in(struct store *st, const char *sql, const struct buf *b, char *err, size_t errlen)
{
	PGresult *r = PQexec(st->pg, sql);
	int rv = 0;

	if (r == NULL || PQresultStatus(r) != PGRES_COPY_IN) {
		rv = db_classify(st, r);
		snprintf(err, errlen, "%s", db_errmsg(st, r));
		PQclear(r);
		return rv;
	}
	PQclear(r);
	for (size_t off = 0; off < b->len && rv == 0;) {
		size_t n = b->len - off > (1u << 20) ? (1u << 20) : b->len - off;
		if (PQputCopyData(st->pg, b->data + off, (int)n) != 1)
			rv = CS_EDBCONN;
		off += n;
	}
	if (PQputCopyEnd(st->pg, rv == 0 ? NULL : "aborted") != 1)
		rv = CS_EDBCONN;
	while ((r = PQgetResult(st->pg)) != NULL) {
		if (PQresultStatus(r) != PGRES_COMMAND_OK && rv == 0) {
			const char *state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
			rv = db_classify(st, r);
			if (rv == CS_EDB && state != NULL && strcmp(state, "23505") == 0)
				rv = CS_EEXISTS;
			snprintf(err, errlen, "%s", db_errmsg(st, r));
		}
		PQclear(r);
	}
	if (rv == CS_EDBCONN && err[0] == '\0')
		snprintf(err, errlen, "%s", db_errmsg(st, NULL));
	return rv;
}
