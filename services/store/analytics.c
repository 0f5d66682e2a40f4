/*
 * analytics.c - the engine of the analyst layer: the tables of analytics.h kept current.
 *
 * At start (analytics_init, under the migration lock) every table's create_sql runs, the
 * analyst roles get SELECT, and a table whose SQL changed since the last start (its hash
 * is in crmsync.analytics_state) is rebuilt, with the tables that read it. Inside each
 * batch's transaction apply.c hands over the keys the batch wrote or soft-deleted;
 * analytics_refresh runs the refresh of every table fed by the entity (or its child
 * tables), in array order, and passes the keys each table reports to the tables that name
 * "analytics.<name>" as a source; the statements go out in libpq pipelines (one round trip
 * per batch unless a table waits for another's keys). A failure rolls the whole batch
 * back. After a complete full run (runs.c) and a re-derivation (rederive.c) the tables fed
 * by what changed are rebuilt in one transaction of their own.
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

/*
 * A rebuilt table's statistics, taken in the rebuild's transaction. Without them the
 * refreshes that follow were planned for a table of unknown content until autovacuum came
 * by: at 50,000 leads a hook batch's lead_revenue refresh hashed the whole table (its
 * UPDATE 20 ms instead of 0.2). Views have nothing to analyse.
 */
static const char an_analyze_sql[] =
	"CREATE OR REPLACE FUNCTION analytics.analyze_rebuilt(p_name text) RETURNS boolean LANGUAGE plpgsql AS $$\n"
	"BEGIN\n"
	"  IF NOT EXISTS (SELECT 1 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace\n"
	"                 WHERE n.nspname = 'analytics' AND c.relname = p_name AND c.relkind = 'r') THEN\n"
	"    RETURN false;\n"
	"  END IF;\n"
	"  EXECUTE format('ANALYZE analytics.%I', p_name);\n"
	"  RETURN true;\n"
	"END $$;\n"
	"REVOKE ALL ON FUNCTION analytics.analyze_rebuilt(text) FROM PUBLIC;\n"
	"COMMENT ON FUNCTION analytics.analyze_rebuilt(text) IS 'crmsync: ANALYZE of the analytic "
	"table analytics.<p_name> after its rebuild (false: not a table)';\n";

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
 * One batch's refreshes go out in pipelines (libpq pipeline mode): each "wave" is sent
 * whole and its results read after a single Sync, so a batch costs one round trip for its
 * refreshes instead of one per statement. A wave is read when a table needs the keys a
 * table of it reports (that table's other refreshes go first), and before AN_WAVE_BYTES of
 * statements and keys: a wave that fits the socket's kernel buffer is sent without
 * waiting, so client and server never both wait for the other to read.
 */
#define AN_WAVE_BYTES	((size_t)64 << 10)

struct an_sent {
	size_t		 table;		/* index; AN_MAX_TABLES: the settings */
	const char	*src;
	int		 parse;		/* its Parse went just before it */
};

/* One batch's refresh: its sources, what each table reported, the wave in flight. */
struct an_run {
	struct store	*st;
	struct an_touch	*tc;		/* the batch's sources, then the tables' reports */
	size_t		 ntc;
	struct buf	 out[AN_MAX_TABLES];	/* keys each table reported, "{..." */
	unsigned char	 pending[AN_MAX_TABLES];	/* sent in the wave in flight */
	struct an_sent	 sent[AN_MAX_TOUCH + 1];
	size_t		 nsent, bytes, nwaves;
	size_t		 open;		/* the table being queued: its keys stay open */
	char		*err;
	size_t		 errlen;
};

/* The next result of the pipeline (each query's results end with a NULL: skipped). */
static PGresult *
an_next(PGconn *pg)
{
	PGresult *r = PQgetResult(pg);

	return r != NULL ? r : PQgetResult(pg);
}

/* Queue table i's refresh for (src, keys) in the wave (its Parse first, once per connection). */
static int
an_send(struct an_run *w, size_t i, const char *src, const char *keys)
{
	PGconn *pg = w->st->pg;
	const struct an_table *t = an_at(i);
	const char *v[2] = { src, keys };
	char name[32];
	int parse = an_prepared[i] == 0;

	snprintf(name, sizeof(name), "an_r_%zu", i);
	if ((parse && !PQsendPrepare(pg, name, t->refresh_sql, 2, NULL)) ||
	    !PQsendQueryPrepared(pg, name, 2, v, NULL, NULL, 0)) {
		snprintf(w->err, w->errlen, "analytics.%s refresh from %s: %s", t->name, src,
		    PQerrorMessage(pg));
		return CS_EDBCONN;
	}
	if (parse)
		an_prepared[i] = 2;	/* sent: 1 once its result says so */
	w->sent[w->nsent++] = (struct an_sent){ i, src, parse };
	w->bytes += strlen(keys) + (parse ? strlen(t->refresh_sql) : 0);
	w->pending[i] = 1;
	return 0;
}

/* A refresh's result: its keys into out[table] (an AN_LOG table's rows logged). */
static int
an_take(struct an_run *w, const struct an_sent *s, PGresult *r)
{
	const struct an_table *t = an_at(s->table);
	int rv = 0, n = PQntuples(r);

	if (t->flags & AN_LOG)
		an_log_rows(t, r);
	else
		for (int row = 0; row < n; row++)
			rv |= an_array_add(&w->out[s->table], PQgetvalue(r, row, 0));
	log_debug("analytics.refreshed", "table=%s source=%s rows=%d wave=%zu", t->name, s->src, n,
	    w->nwaves);
	if (rv != 0)
		snprintf(w->err, w->errlen, "analytics.%s: keys too large", t->name);
	return rv != 0 ? CS_ETOOBIG : 0;
}

/* The first failure of the wave (later statements of the pipeline were skipped by it). */
static int
an_fail(struct an_run *w, const struct an_sent *s, PGresult *r)
{
	const char *what = s->table == AN_MAX_TABLES ? "settings" : an_at(s->table)->name;

	snprintf(w->err, w->errlen, "analytics.%s refresh from %s: %s", what, s->src,
	    db_errmsg(w->st, r));
	return db_classify(w->st, r);
}

/* Sync the wave in flight and read its results in order. */
static int
an_read(struct an_run *w)
{
	PGconn *pg = w->st->pg;
	int64_t t0 = clock_mono_us();
	PGresult *r = NULL;
	int rv = 0, lost = 0;

	if (!PQpipelineSync(pg)) {
		snprintf(w->err, w->errlen, "analytics: pipeline sync: %s", PQerrorMessage(pg));
		return CS_EDBCONN;
	}
	for (size_t k = 0; k < w->nsent && !lost; k++) {
		const struct an_sent *s = &w->sent[k];
		int parsed = 1;
		if (s->parse) {
			r = an_next(pg);
			parsed = r != NULL && PQresultStatus(r) == PGRES_COMMAND_OK;
			an_prepared[s->table] = parsed;
			lost |= r == NULL;
			if (!parsed && rv == 0)
				rv = an_fail(w, s, r);
			PQclear(r);
		}
		r = lost ? NULL : an_next(pg);
		lost |= r == NULL;
		if (r != NULL && PQresultStatus(r) == PGRES_PIPELINE_ABORTED)
			;	/* an earlier failure, already reported */
		else if (r == NULL || (PQresultStatus(r) != PGRES_TUPLES_OK &&
		    PQresultStatus(r) != PGRES_COMMAND_OK))
			rv = rv != 0 ? rv : an_fail(w, s, r);
		else if (rv == 0 && s->table < AN_MAX_TABLES)
			rv = an_take(w, s, r);
		PQclear(r);
	}
	/* Up to the Sync (a lost connection ends it early: no result at all). */
	while (!lost && (r = an_next(pg)) != NULL && PQresultStatus(r) != PGRES_PIPELINE_SYNC)
		PQclear(r);
	if ((lost || r == NULL) && rv == 0) {
		snprintf(w->err, w->errlen, "analytics: pipeline: %s", PQerrorMessage(pg));
		rv = CS_EDBCONN;
	}
	PQclear(r);
	log_debug("analytics.wave", "wave=%zu statements=%zu us=%lld", w->nwaves, w->nsent,
	    (long long)(clock_mono_us() - t0));
	w->nsent = w->bytes = 0;
	w->nwaves++;
	return rv;
}

/*
 * Sync the wave in flight and read its results; then each table of it that reported keys
 * becomes a source (in array order) for the tables after it, but for the table still being
 * queued (w->open): its keys come from more than one wave.
 */
static int
an_flush(struct an_run *w)
{
	int rv = w->nsent > 0 ? an_read(w) : 0;

	for (size_t i = 0; i < an_count(); i++) {
		if (!w->pending[i] || i == w->open)
			continue;
		w->pending[i] = 0;
		if (rv == 0 && w->out[i].len > 1 && w->ntc < AN_MAX_TOUCH &&
		    (rv = buf_addc(&w->out[i], '}')) == 0) {
			snprintf(w->tc[w->ntc].src, sizeof(w->tc[w->ntc].src), "analytics.%s", an_at(i)->name);
			w->tc[w->ntc++].keys = w->out[i];
			buf_init(&w->out[i], AN_KEYS_MAX);
		}
	}
	return rv;
}

/* Does table t read a table of the wave in flight? */
static int
an_reads_pending(const struct an_run *w, const struct an_table *t)
{
	char src[160];

	for (size_t i = 0; i < an_count(); i++) {
		if (!w->pending[i])
			continue;
		snprintf(src, sizeof(src), "analytics.%s", an_at(i)->name);
		if (an_names(t->sources, src))
			return 1;
	}
	return 0;
}

/* Table i's refreshes for the sources in tc[from, to) it reads (never itself). */
static int
an_send_from(struct an_run *w, size_t i, size_t from, size_t to)
{
	const struct an_table *t = an_at(i);
	char self[160];
	int rv = 0;

	snprintf(self, sizeof(self), "analytics.%s", t->name);
	for (size_t j = from; j < to && rv == 0; j++) {
		if (!an_names(t->sources, w->tc[j].src) || strcmp(w->tc[j].src, self) == 0)
			continue;
		if (w->nsent > 0 && (w->nsent >= AN_MAX_TOUCH ||
		    w->bytes + w->tc[j].keys.len + strlen(t->refresh_sql) > AN_WAVE_BYTES) &&
		    (rv = an_flush(w)) != 0)
			return rv;
		rv = an_send(w, i, w->tc[j].src, w->tc[j].keys.data);
	}
	return rv;
}

/*
 * Table i's refreshes, one per source the batch or a table before it touched, in that
 * order: first those known now, then, when it reads a table of the wave in flight, the
 * ones that wave's reports add (a round trip: the wave is read first).
 */
static int
an_queue(struct an_run *w, size_t i)
{
	size_t known = w->ntc;
	int rv;

	buf_reset(&w->out[i]);
	if (buf_addc(&w->out[i], '{') != 0)
		return CS_ENOMEM;
	w->open = i;
	rv = an_send_from(w, i, 0, known);
	if (rv == 0 && an_reads_pending(w, an_at(i)) && (rv = an_flush(w)) == 0)
		rv = an_send_from(w, i, known, w->ntc);
	w->open = AN_MAX_TABLES;
	return rv;
}

static void
an_touch_free(struct an_touch *tc, size_t n)
{
	for (size_t i = 0; i < n; i++)
		buf_free(&tc[i].keys);
	free(tc);
}

/*
 * The refreshes in pipeline mode, first the settings, until the batch's COMMIT: generic
 * plans for the prepared refreshes (planning their CTEs for a custom plan, PostgreSQL's
 * first five executions and later ones when it estimates them cheaper, costs several times
 * running them for a hook's few keys), and crmsync.keys_new (analytics.h).
 */
static int
an_pipeline(struct an_run *w, int keys_new)
{
	const char *v[1] = { keys_new ? "on" : "off" };

	PGconn *pg = w->st->pg;
	int rv = 0;

	if (!PQenterPipelineMode(pg)) {
		snprintf(w->err, w->errlen, "analytics: pipeline mode: %s", PQerrorMessage(pg));
		return CS_EDBCONN;
	}
	if (!PQsendQueryParams(pg, "SELECT set_config('plan_cache_mode', 'force_generic_plan', true), "
	    "set_config('crmsync.keys_new', $1, true)", 1, NULL, v, NULL, NULL, 0)) {
		snprintf(w->err, w->errlen, "analytics: %s", PQerrorMessage(pg));
		rv = CS_EDBCONN;
	} else
		w->sent[w->nsent++] = (struct an_sent){ AN_MAX_TABLES, "", 0 };
	for (size_t i = 0; i < an_count() && rv == 0; i++)
		if (an_at(i)->refresh_sql != NULL)
			rv = an_queue(w, i);
	/* What was sent is read even after a failure: pipeline mode ends only when idle. */
	int frv = an_flush(w);
	if (rv == 0)
		rv = frv;
	if (!PQexitPipelineMode(pg)) {
		/* Results still due: the connection cannot be trusted; the store reconnects. */
		log_warnx("analytics.pipeline_stuck", "err=%s", lq(PQerrorMessage(pg)));
		db_close(w->st);
		rv = CS_EDBCONN;
	}
	return rv;
}

static int
an_refresh(struct store *st, const struct cat_entity *e, const char *keys, int keys_new, char *err,
    size_t errlen)
{
	struct an_run *w;
	int rv = 0;

	if (!st->conf.an_refresh || !analytics_reads(e) || strcmp(keys, "{}") == 0)
		return 0;
	if ((w = calloc(1, sizeof(*w))) == NULL || (w->tc = calloc(AN_MAX_TOUCH, sizeof(*w->tc))) == NULL) {
		free(w);
		return CS_ENOMEM;
	}
	w->st = st, w->err = err, w->errlen = errlen, w->open = AN_MAX_TABLES;
	for (size_t i = 0; i < AN_MAX_TABLES; i++)
		buf_init(&w->out[i], AN_KEYS_MAX);
	for (size_t c = 0; c <= e->nchildren && w->ntc < AN_MAX_TOUCH; c++, w->ntc++) {
		an_src(e, c, w->tc[w->ntc].src, sizeof(w->tc[w->ntc].src));
		buf_init(&w->tc[w->ntc].keys, AN_KEYS_MAX);
		rv |= buf_addstr(&w->tc[w->ntc].keys, keys);
	}
	if (rv != 0)
		rv = CS_ENOMEM;
	else
		rv = an_pipeline(w, keys_new);
	for (size_t i = 0; i < AN_MAX_TABLES; i++)
		buf_free(&w->out[i]);
	an_touch_free(w->tc, w->ntc);
	free(w);
	return rv;
}

int
analytics_refresh(struct store *st, const struct cat_entity *e, const char *keys, char *err,
    size_t errlen)
{
	return an_refresh(st, e, keys, 0, err, errlen);
}

int
analytics_refresh_new(struct store *st, const struct cat_entity *e, const char *keys, char *err,
    size_t errlen)
{
	return an_refresh(st, e, keys, 1, err, errlen);
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
	if ((rv = db_execp(st, "SELECT analytics.analyze_rebuilt($1)", 1, v, NULL)) != 0) {
		log_warnx("analytics.analyze_failed", "table=%s err=%s", t->name, lq(db_errmsg(st, NULL)));
		return rv;
	}
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

void
analytics_rebuild_due(struct store *st)
{
	for (unsigned c = 0; st->an_due.crms != 0; c++)
		if (st->an_due.crms & (1u << c)) {
			st->an_due.crms &= ~(1u << c);
			(void)analytics_rebuild(st, (enum cat_crm)c, NULL, st->an_due.why);	/* logged */
		}
}

/* Each table's create_sql, the grants, and which tables need a rebuild (need[]). */
static int
an_create(struct store *st, unsigned char *need)
{
	PGresult *r = NULL;
	int rv;

	if ((rv = db_exec(st, an_grant_sql)) != 0 || (rv = db_exec(st, an_analyze_sql)) != 0)
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
