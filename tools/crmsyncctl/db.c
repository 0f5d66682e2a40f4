/*
 * db.c - crmsyncctl's PostgreSQL session: read-only (default_transaction_read_only), short
 * connect and statement timeouts, so a slow or absent database delays `status` by
 * seconds, not minutes. A read-only role (see deploy/compose/server-b) is enough.
 */
#include <stdio.h>
#include <string.h>

#include "ctl.h"

const char *
ctl_dsn(void)
{
	if (ctl.ctl_dsn != NULL && ctl.ctl_dsn[0] != '\0')
		return ctl.ctl_dsn;
	if (ctl.pg_dsn != NULL && ctl.pg_dsn[0] != '\0')
		return ctl.pg_dsn;
	return NULL;
}

PGconn *
ctl_db_connect(void)
{
	/* Keywords before "dbname" are defaults the DSN may override. */
	const char *const keys[] = { "connect_timeout", "application_name", "options", "dbname", NULL };
	const char *vals[] = { "5", "crmsyncctl",
	    "-c default_transaction_read_only=on -c statement_timeout=10000", NULL, NULL };
	PGconn *c;

	if ((vals[3] = ctl_dsn()) == NULL)
		return NULL;
	c = PQconnectdbParams(keys, vals, 1);
	if (c == NULL || PQstatus(c) != CONNECTION_OK) {
		/* PQerrorMessage never contains the password. */
		fprintf(stderr, "crmsyncctl: PostgreSQL: %s", c != NULL ? PQerrorMessage(c) : "out of memory\n");
		PQfinish(c);
		return NULL;
	}
	return c;
}

PGresult *
ctl_db_query(PGconn *c, const char *what, const char *sql, int n, const char *const *vals)
{
	PGresult *r = PQexecParams(c, sql, n, NULL, vals, NULL, NULL, 0);

	if (PQresultStatus(r) != PGRES_TUPLES_OK) {
		const char *msg = PQresultErrorMessage(r);
		fprintf(stderr, "crmsyncctl: %s: %s", what, msg != NULL && msg[0] ? msg : PQerrorMessage(c));
		PQclear(r);
		return NULL;
	}
	return r;
}
