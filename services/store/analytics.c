/*
 * analytics.c - the engine of the analyst layer: the tables of analytics.h kept current.
 *
 * At start (analytics_init, under the migration lock) every table's create_sql runs, the
 * analyst roles get SELECT, and a table whose SQL changed since the last start (its hash
 * is in crmsync.analytics_state) is rebuilt, with the tables that read it. Inside each
 * batch's transaction apply.c hands over the keys the batch wrote or soft-deleted;
 * analytics_refresh runs the refresh of every table fed by the entity (or its child
 * tables), in array order, and passes the keys each table reports to the tables that name
 * "analytics.<name>" as a source. A failure rolls the whole batch back. After a complete
 * full run (runs.c) and a re-derivation (rederive.c) the tables fed by what changed are
 * rebuilt in one transaction of their own.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "analytics.h"
#include "buf.h"
#include "clock.h"
#include "errors.h"
#include "hash.h"
#include "log.h"
#include "store.h"

#define AN_MAX_TABLES	64
#define AN_MAX_TOUCH	(AN_MAX_TABLES + 32)
#define AN_KEYS_MAX	((size_t)256 << 20)

/* Refresh statements prepared on this connection, by table index. */
static int an_prepared[AN_MAX_TABLES];

/* The grant every start and every regenerated view calls (roles as in deploy/). */
static const char an_grant_sql[] =
	"CREATE OR REPLACE FUNCTION analytics.grant_readers() RETURNS void LANGUAGE plpgsql AS $$\n"
	"DECLARE r text; BEGIN\n"
	"  FOREACH r IN ARRAY ARRAY['crmsync_read', 'crmsync_analyst'] LOOP\n"
	"    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = r) THEN\n"
	"      EXECUTE format('GRANT USAGE ON SCHEMA analytics TO %I', r);\n"
	"      EXECUTE format('GRANT SELECT ON ALL TABLES IN SCHEMA analytics TO %I', r);\n"
	"    END IF;\n"
	"  END LOOP; END $$;\n"
	"COMMENT ON FUNCTION analytics.grant_readers() IS 'crmsync: SELECT on the analytics schema "
	"to the read-only roles (crmsync_read, crmsync_analyst) where they exist';\n";

/* What one batch touched so far: a source and its keys as a text[] literal. */
struct an_touch {
	char		src[160];
	struct buf	keys;
};

static size_t
an_count(void)
{
	size_t n = an_amo_ntables + an_school_ntables;

	return n > AN_MAX_TABLES ? AN_MAX_TABLES : n;
}

static const struct an_table *
an_at(size_t i)
{
	return i < an_amo_ntables ? &an_amo_tables[i] : &an_school_tables[i - an_amo_ntables];
}

/* Does the comma list sources name src exactly? */
static int
an_names(const char *sources, const char *src)
{
	size_t n = strlen(src);

	for (const char *p = sources; p != NULL && *p != '\0';) {
		const char *c = strchr(p, ',');
		size_t l = c != NULL ? (size_t)(c - p) : strlen(p);
		while (l > 0 && *p == ' ') {
			p++;
			l--;
		}
		if (l == n && strncmp(p, src, n) == 0)
			return 1;
		p = c != NULL ? c + 1 : NULL;
	}
	return 0;
}

/* Source i of entity e: 0 = "<schema>.<entity>", 1.. = its child tables. */
static const char *
an_src(const struct cat_entity *e, size_t i, char *buf, size_t cap)
{
	const char *schema = catalog_crm(e->crm)->schema;

	if (i == 0)
		snprintf(buf, cap, "%s.%s", schema, e->name);
	else
		snprintf(buf, cap, "%s.%s", schema, e->children[i - 1].table);
	return buf;
}

/* Does table t read entity e or one of its children? */
static int
an_reads_entity(const struct an_table *t, const struct cat_entity *e)
{
	char src[160];

	for (size_t i = 0; i <= e->nchildren; i++)
		if (an_names(t->sources, an_src(e, i, src, sizeof(src))))
			return 1;
	return 0;
}

int
analytics_reads(const struct cat_entity *e)
{
	for (size_t i = 0; i < an_count(); i++)
		if (an_reads_entity(an_at(i), e))
			return 1;
	return 0;
}

void
analytics_reset_conn(struct store *st)
{
	(void)st;
	memset(an_prepared, 0, sizeof(an_prepared));
}

/* Append v to an array literal opened with '{'. */
static int
an_array_add(struct buf *a, const char *v)
{
	int rv = (a->len > 1 ? buf_addc(a, ',') : 0) | buf_addc(a, '"');

	for (const char *p = v; *p != '\0'; p++) {
		if (*p == '"' || *p == '\\')
			rv |= buf_addc(a, '\\');
		rv |= buf_addc(a, *p);
	}
	return rv | buf_addc(a, '"');
}

/* An AN_LOG table's rows: one info line each, its columns as key=value. */
static void
an_log_rows(const struct an_table *t, PGresult *r)
{
	char line[1024];

	for (int row = 0; row < PQntuples(r); row++) {
		size_t o = 0;
		line[0] = '\0';
		for (int c = 0; c < PQnfields(r) && o < sizeof(line); c++)
			o += (size_t)snprintf(line + o, sizeof(line) - o, "%s%s=%s", c ? " " : "",
			    PQfname(r, c), PQgetisnull(r, row, c) ? "-" : lq(PQgetvalue(r, row, c)));
		log_info("analytics.schema_change", "table=%s %s", t->name, line);
	}
}

/*
 * Table i's refresh for (src, keys): the keys it reported are added to out, an array
 * literal opened with '{' (the caller closes it), or logged for an AN_LOG table.
 */
static int
an_refresh_one(struct store *st, size_t i, const char *src, const char *keys, struct buf *out,
    char *err, size_t errlen)
{
	const struct an_table *t = an_at(i);
	const char *v[2] = { src, keys };
	char name[32];
	PGresult *r = NULL;
	int64_t t0 = clock_mono_us();
	int rv, n;

	snprintf(name, sizeof(name), "an_r_%zu", i);
	if ((rv = db_execprep(st, name, &an_prepared[i], t->refresh_sql, 2, v, &r)) != 0) {
		snprintf(err, errlen, "analytics.%s refresh from %s: %s", t->name, src, db_errmsg(st, r));
		PQclear(r);
		return rv;
	}
	n = PQntuples(r);
	if (t->flags & AN_LOG)
		an_log_rows(t, r);
	else
		for (int row = 0; row < n; row++)
			rv |= an_array_add(out, PQgetvalue(r, row, 0));
	PQclear(r);
	log_debug("analytics.refreshed", "table=%s source=%s rows=%d us=%lld", t->name, src, n,
	    (long long)(clock_mono_us() - t0));
	if (rv != 0)
		snprintf(err, errlen, "analytics.%s: keys too large", t->name);
	return rv != 0 ? CS_ETOOBIG : 0;
}

static void
an_touch_free(struct an_touch *tc, size_t n)
{
	for (size_t i = 0; i < n; i++)
		buf_free(&tc[i].keys);
	free(tc);
}

int
analytics_refresh(struct store *st, const struct cat_entity *e, const char *keys, char *err,
    size_t errlen)
{
	struct an_touch *tc;
	size_t ntc = 0;
	int rv = 0;

	if (!st->conf.an_refresh || !analytics_reads(e) || strcmp(keys, "{}") == 0)
		return 0;
	/*
	 * Generic plans for the prepared refreshes: planning their CTEs for a custom plan
	 * (PostgreSQL's first five executions, and later ones when it estimates them cheaper)
	 * costs several times running them for a hook's few keys. Until the batch's COMMIT.
	 */
	if ((rv = db_exec(st, "SET LOCAL plan_cache_mode = force_generic_plan")) != 0) {
		snprintf(err, errlen, "analytics: %s", db_errmsg(st, NULL));
		return rv;
	}
	if ((tc = calloc(AN_MAX_TOUCH, sizeof(*tc))) == NULL)
		return CS_ENOMEM;
	for (size_t c = 0; c <= e->nchildren && ntc < AN_MAX_TOUCH; c++, ntc++) {
		an_src(e, c, tc[ntc].src, sizeof(tc[ntc].src));
		buf_init(&tc[ntc].keys, AN_KEYS_MAX);
		rv |= buf_addstr(&tc[ntc].keys, keys);
	}
	for (size_t i = 0; i < an_count() && rv == 0; i++) {
		const struct an_table *t = an_at(i);
		size_t seen = ntc;	/* a table never feeds itself */
		if (t->refresh_sql == NULL || ntc >= AN_MAX_TOUCH)
			continue;
		snprintf(tc[ntc].src, sizeof(tc[ntc].src), "analytics.%s", t->name);
		buf_init(&tc[ntc].keys, AN_KEYS_MAX);
		rv = buf_addc(&tc[ntc].keys, '{');
		for (size_t j = 0; j < seen && rv == 0; j++)
			if (an_names(t->sources, tc[j].src))
				rv = an_refresh_one(st, i, tc[j].src, tc[j].keys.data, &tc[ntc].keys, err, errlen);
		/* Keys reported: a source for the tables after this one. */
		if (rv == 0 && tc[ntc].keys.len > 1 && (rv = buf_addc(&tc[ntc].keys, '}')) == 0)
			ntc++;
		else
			buf_free(&tc[ntc].keys);
	}
	an_touch_free(tc, ntc);
	return rv;
}

/* Hex of the table's SQL hash: a changed definition means a rebuild. */
static void
an_hash(const struct an_table *t, char *dst, size_t cap)
{
	uint64_t h = HASH_FNV1A_INIT;
	const char *parts[4] = { t->create_sql, t->refresh_sql, t->rebuild_sql, t->sources };

	for (size_t i = 0; i < 4; i++)
		if (parts[i] != NULL)
			h = hash_fnv1a(h, parts[i], strlen(parts[i]) + 1);
	snprintf(dst, cap, "%016" PRIx64, h);
}

/* Rebuild table i inside the caller's transaction; logged, recorded in analytics_state. */
static int
an_rebuild_one(struct store *st, size_t i, const char *why)
{
	const struct an_table *t = an_at(i);
	char hash[24], ms[24], rows[24];
	const char *v[4] = { t->name, hash, ms, rows };
	int64_t t0 = clock_mono_us();
	PGresult *r = NULL;
	int rv;

	if ((rv = db_execp(st, t->rebuild_sql, 0, NULL, &r)) != 0) {
		log_warnx("analytics.rebuild_failed", "table=%s why=%s err=%s", t->name, lq(why),
		    lq(db_errmsg(st, r)));
		PQclear(r);
		return rv;
	}
	if (t->flags & AN_LOG)
		an_log_rows(t, r);
	snprintf(rows, sizeof(rows), "%s", (t->flags & AN_LOG) ? "0" : PQcmdTuples(r));
	if (rows[0] == '\0')
		snprintf(rows, sizeof(rows), "%d", PQntuples(r));
	PQclear(r);
	an_hash(t, hash, sizeof(hash));
	snprintf(ms, sizeof(ms), "%lld", (long long)((clock_mono_us() - t0) / 1000));
	log_info("analytics.rebuilt", "table=%s rows=%s ms=%s why=%s", t->name, rows, ms, lq(why));
	return db_execp(st, "INSERT INTO crmsync.analytics_state (name, definition_hash, rebuilt_at, "
	    "rebuild_ms, rebuild_rows) VALUES ($1, $2, now(), $3, $4) ON CONFLICT (name) DO UPDATE SET "
	    "definition_hash = $2, rebuilt_at = now(), rebuild_ms = $3, rebuild_rows = $4",
	    4, v, NULL);
}

/* Mark in need[] the tables that read a table already marked (array order). */
static void
an_cascade(unsigned char *need)
{
	char src[160];

	for (size_t i = 0; i < an_count(); i++) {
		if (!need[i])
			continue;
		snprintf(src, sizeof(src), "analytics.%s", an_at(i)->name);
		for (size_t j = i + 1; j < an_count(); j++)
			if (an_names(an_at(j)->sources, src))
				need[j] = 1;
	}
}

/* Rebuild the tables marked in need[], in one transaction. */
static int
an_rebuild_marked(struct store *st, const unsigned char *need, const char *why)
{
	int rv;

	if ((rv = db_exec(st, "BEGIN")) != 0)
		return rv;
	for (size_t i = 0; i < an_count() && rv == 0; i++)
		if (need[i] && an_at(i)->rebuild_sql != NULL)
			rv = an_rebuild_one(st, i, why);
	if (rv == 0)
		rv = db_exec(st, "COMMIT");
	if (rv != 0)
		db_rollback(st);
	return rv;
}

int
analytics_rebuild(struct store *st, enum cat_crm crm, const char *entity, const char *why)
{
	const struct cat_crm_desc *d = catalog_crm(crm);
	unsigned char need[AN_MAX_TABLES] = { 0 };
	int any = 0;

	if (!st->conf.an_rebuild)
		return 0;
	for (size_t i = 0; i < an_count(); i++)
		for (size_t k = 0; k < d->nentities && !need[i]; k++)
			if (entity == NULL || strcmp(d->entities[k].name, entity) == 0)
				any |= need[i] = (unsigned char)an_reads_entity(an_at(i), &d->entities[k]);
	if (!any)
		return 0;
	an_cascade(need);
	return an_rebuild_marked(st, need, why);
}

/* Each table's create_sql, the grants, and which tables need a rebuild (need[]). */
static int
an_create(struct store *st, unsigned char *need)
{
	PGresult *r = NULL;
	int rv;

	if ((rv = db_exec(st, an_grant_sql)) != 0)
		return rv;
	for (size_t i = 0; i < an_count(); i++) {
		if ((rv = db_exec(st, an_at(i)->create_sql)) != 0) {
			log_warnx("analytics.create_failed", "table=%s err=%s", an_at(i)->name,
			    lq(db_errmsg(st, NULL)));
			return rv;
		}
	}
	if ((rv = db_exec(st, "SELECT analytics.grant_readers()")) != 0 ||
	    (rv = db_execp(st, "SELECT name, definition_hash FROM crmsync.analytics_state", 0, NULL, &r)) != 0) {
		PQclear(r);
		return rv;
	}
	for (size_t i = 0; i < an_count(); i++) {
		char hash[24];
		int same = 0;
		an_hash(an_at(i), hash, sizeof(hash));
		for (int row = 0; row < PQntuples(r); row++)
			same |= strcmp(PQgetvalue(r, row, 0), an_at(i)->name) == 0 &&
			    strcmp(PQgetvalue(r, row, 1), hash) == 0;
		need[i] = !same || (an_at(i)->flags & AN_START);
	}
	PQclear(r);
	an_cascade(need);
	return 0;
}

int
analytics_init(struct store *st)
{
	unsigned char need[AN_MAX_TABLES] = { 0 };
	int rv;

	if (an_amo_ntables + an_school_ntables > AN_MAX_TABLES) {
		log_warnx("analytics.too_many", "tables=%zu max=%d", an_amo_ntables + an_school_ntables,
		    AN_MAX_TABLES);
		return CS_EINVAL;
	}
	if ((rv = db_exec(st, "BEGIN")) != 0)
		return rv;
	if ((rv = an_create(st, need)) == 0)
		rv = db_exec(st, "COMMIT");
	if (rv != 0) {
		db_rollback(st);
		return rv;
	}
	if (!st->conf.an_rebuild) {
		log_info("analytics.off", "tables=%zu", an_count());
		return 0;
	}
	rv = an_rebuild_marked(st, need, "start");
	log_info("analytics.ready", "tables=%zu ok=%d", an_count(), rv == 0);
	return rv;
}
