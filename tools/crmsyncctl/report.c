/*
 * report.c - `crmsyncctl report`: what the analytics schema says, as one page for people who
 * would rather look than read (funnel per pipeline, revenue per channel and manager, group
 * fill, teacher hours). The sections below are data: a title, the columns, one query. All
 * queries run in one read-only snapshot, so the numbers agree with each other; the page
 * itself is drawn by report_html.c (or report_text.c for --text).
 * Exit: 0 written, 1 failed (no database, no analytics tables, a query), 2 usage.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "ctl.h"
#include "errors.h"
#include "report.h"
#include "strlist.h"

#define REP_MAX_OUT	(64u << 20)
#define REP_STATEMENT_TIMEOUT "5min"

/* The analytic tables the report reads (created by the store at start). */
static const char *const rep_tables = "{amo_funnel,lead_revenue,group_fill,teacher_hours}";

/* One SQL fragment per "fold the rows past $3 into others" query: r has k and b (the bucket). */
#define REP_KIND	"CASE WHEN b > $3 THEN 'o' WHEN min(k) IS NULL THEN 'n' ELSE 'r' END"
#define REP_KEY		"CASE WHEN b <= $3 THEN min(k)::text END"
#define REP_REVENUE_COLS \
	"sum(leads)::text, sum(paying)::text, round(sum(paid), 2)::text, " \
	"round(sum(refunds), 2)::text, round(sum(paid) - sum(refunds), 2)::text"
#define REP_REVENUE_FROM(key) \
	"WITH g AS (SELECT " key " AS k, max(responsible_user_name) AS name, count(*) AS leads, " \
	"    count(first_paid_at) AS paying, coalesce(sum(total_paid), 0) AS paid, " \
	"    coalesce(sum(refunds), 0) AS refunds FROM analytics.lead_revenue " \
	"  WHERE ($1 IS NULL OR created_at >= $1) AND ($2 IS NULL OR pipeline_id = $2) GROUP BY 1), " \
	"r AS (SELECT *, " \
	"  least(row_number() OVER (ORDER BY paid - refunds DESC, k NULLS LAST), $3 + 1) AS b FROM g) "

static const struct rep_col funnel_cols[] = {
	{ "reached", "leads reached", REP_COUNT },
	{ "conv_next", "to next stage", REP_PCT },
	{ "conv_won", "to won", REP_PCT },
};

static const struct rep_col revenue_cols[] = {
	{ "leads", "leads", REP_COUNT },
	{ "paying", "paying", REP_COUNT },
	{ "paid", "paid", REP_MONEY },
	{ "refunds", "refunds", REP_MONEY },
	{ "net", "net (paid - refunds)", REP_MONEY },
};

static const struct rep_col office_cols[] = {
	{ "groups", "groups", REP_COUNT },
	{ "students", "students", REP_COUNT },
	{ "vacancies", "vacancies", REP_COUNT },
	{ "rate", "fill rate", REP_PCT },
};

static const struct rep_col group_cols[] = {
	{ "students", "students", REP_COUNT },
	{ "vacancies", "vacancies", REP_COUNT },
	{ "rate", "fill rate", REP_PCT },
};

static const struct rep_col teacher_cols[] = {
	{ "hours", "hours", REP_HOURS },
	{ "lessons", "lessons", REP_COUNT },
};

#define COLS(a)	a, .ncols = sizeof(a) / sizeof(a[0])

static const struct rep_section rep_sections[] = {
	{
	.id = "funnel", .title = "Funnel per pipeline",
	.about = "amoCRM leads by the stage they reached, summed over the cohorts (month a lead "
	    "was created) in range; conversion to the next stage and to won, weighted by leads "
	    "(analytics.amo_funnel).",
	.table = "analytics.amo_funnel", .row_header = "stage", .none_label = "(no stage)",
	.shape = REP_BARS, .cols = COLS(funnel_cols), .bar = 0, .bar_note = 1,
	.more = "more pipelines not shown (the report draws the ones with most leads; "
	    "--pipeline ID draws one)",
	.sql =
	"WITH f AS (SELECT pipeline_id, max(pipeline_name) AS pname, status_id, "
	"    max(status_name) AS sname, min(sort) AS sort, sum(leads_reached) AS reached, "
	"    sum(conv_next * leads_reached) FILTER (WHERE conv_next IS NOT NULL) "
	"      / nullif(sum(leads_reached) FILTER (WHERE conv_next IS NOT NULL), 0) AS cn, "
	"    sum(conv_won * leads_reached) FILTER (WHERE conv_won IS NOT NULL) "
	"      / nullif(sum(leads_reached) FILTER (WHERE conv_won IS NOT NULL), 0) AS cw "
	"  FROM analytics.amo_funnel "
	"  WHERE ($1 IS NULL OR cohort_month >= $1) AND ($2 IS NULL OR pipeline_id = $2) "
	"  GROUP BY pipeline_id, status_id), "
	"p AS (SELECT pipeline_id, row_number() OVER (ORDER BY max(reached) DESC, pipeline_id) AS rank "
	"  FROM f GROUP BY pipeline_id) "
	"SELECT * FROM ("
	"  SELECT f.pipeline_id::text, coalesce(f.pname, 'pipeline ' || f.pipeline_id), 'r', "
	"    f.status_id::text, coalesce(f.sname, 'status ' || f.status_id), f.reached::text, "
	"    round(100 * f.cn, 1)::text, round(100 * f.cw, 1)::text, p.rank, f.sort, f.status_id "
	"  FROM f JOIN p USING (pipeline_id) WHERE p.rank <= $4 "
	"  UNION ALL "
	"  SELECT '', count(*)::text, 'm', NULL, NULL, NULL, NULL, NULL, max(rank), NULL, NULL "
	"  FROM p WHERE rank > $4 HAVING count(*) > 0) x "
	"ORDER BY 9, 10, 11",
	},
	{
	.id = "revenue.channel", .title = "Revenue per channel",
	.about = "What the leads created in range brought, by acquisition channel: paid by the "
	    "matched Hollihop students, minus refunds (analytics.lead_revenue).",
	.table = "analytics.lead_revenue", .row_header = "channel", .none_label = "(no channel)",
	.shape = REP_BARS, .cols = COLS(revenue_cols), .bar = 4, .bar_note = -1,
	.sql =
	REP_REVENUE_FROM("channel")
	"SELECT '', '', " REP_KIND ", " REP_KEY ", "
	"  CASE WHEN b <= $3 THEN min(k) ELSE count(*)::text END, " REP_REVENUE_COLS " "
	"FROM r GROUP BY b ORDER BY b",
	},
	{
	.id = "revenue.manager", .title = "Revenue per manager",
	.about = "The same, by the lead's responsible user in amoCRM (analytics.lead_revenue).",
	.table = "analytics.lead_revenue", .row_header = "manager",
	.none_label = "(no responsible user)",
	.shape = REP_BARS, .cols = COLS(revenue_cols), .bar = 4, .bar_note = -1,
	.sql =
	REP_REVENUE_FROM("responsible_user_id")
	"SELECT '', '', " REP_KIND ", " REP_KEY ", "
	"  CASE WHEN b <= $3 THEN coalesce(max(name), 'user ' || min(k)) ELSE count(*)::text END, "
	REP_REVENUE_COLS " FROM r GROUP BY b ORDER BY b",
	},
	{
	.id = "fill.office", .title = "Group fill per office and discipline",
	.about = "Students in groups, and the fill rate: students / vacancies, over the groups "
	    "whose vacancies are set (analytics.group_fill, the groups as they are now).",
	.table = "analytics.group_fill", .row_header = "office · discipline", .none_label = "",
	.shape = REP_BARS, .cols = COLS(office_cols), .bar = 3, .bar_note = -1,
	.sql =
	"WITH g AS (SELECT coalesce(office, '') || ' / ' || coalesce(discipline, '') AS k, "
	"    coalesce(office, '(no office)') || ' · ' || coalesce(discipline, '(no discipline)') "
	"      AS name, count(*) AS groups, coalesce(sum(students), 0) AS students, "
	"    sum(vacancies) FILTER (WHERE vacancies > 0) AS vacancies, "
	"    sum(students) FILTER (WHERE vacancies > 0) AS filled "
	"  FROM analytics.group_fill GROUP BY 1, 2), "
	"r AS (SELECT *, least(row_number() OVER (ORDER BY students DESC, k), $3 + 1) AS b FROM g) "
	"SELECT '', '', " REP_KIND ", " REP_KEY ", "
	"  CASE WHEN b <= $3 THEN min(name) ELSE count(*)::text END, sum(groups)::text, "
	"  sum(students)::text, sum(vacancies)::text, "
	"  round(100 * sum(filled) / nullif(sum(vacancies), 0), 1)::text "
	"FROM r GROUP BY b ORDER BY b",
	},
	{
	.id = "fill.group", .title = "Group fill per group",
	.about = "The fullest groups first; a group without vacancies has no rate "
	    "(analytics.group_fill).",
	.table = "analytics.group_fill", .row_header = "group · office · discipline",
	.none_label = "(no group)",
	.shape = REP_BARS, .cols = COLS(group_cols), .bar = 2, .bar_note = -1,
	.sql =
	"WITH r AS (SELECT ed_unit_id AS k, coalesce(name, 'group ' || ed_unit_id) "
	"    || coalesce(' · ' || office, '') || coalesce(' · ' || discipline, '') AS name, "
	"    students, vacancies, fill_rate, "
	"    least(row_number() OVER (ORDER BY fill_rate DESC NULLS LAST, ed_unit_id), $3 + 1) AS b "
	"  FROM analytics.group_fill) "
	"SELECT '', '', " REP_KIND ", " REP_KEY ", "
	"  CASE WHEN b <= $3 THEN min(name) ELSE count(*)::text END, "
	"  sum(students)::text, sum(vacancies)::text, "
	"  CASE WHEN b <= $3 THEN round(100 * min(fill_rate), 1) "
	"    ELSE round(100 * sum(students) FILTER (WHERE vacancies > 0) "
	"      / nullif(sum(vacancies) FILTER (WHERE vacancies > 0), 0), 1) END::text "
	"FROM r GROUP BY b ORDER BY b",
	},
	{
	.id = "hours.teacher", .title = "Hours taught per teacher",
	.about = "Hours and lessons taught in the months in range (analytics.teacher_hours).",
	.table = "analytics.teacher_hours", .row_header = "teacher", .none_label = "(no teacher)",
	.shape = REP_BARS, .cols = COLS(teacher_cols), .bar = 0, .bar_note = -1,
	.sql =
	"WITH g AS (SELECT teacher_id AS k, max(teacher_name) AS name, sum(hours) AS hours, "
	"    sum(lessons) AS lessons FROM analytics.teacher_hours "
	"  WHERE ($1 IS NULL OR month >= $1) GROUP BY teacher_id), "
	"r AS (SELECT *, least(row_number() OVER (ORDER BY hours DESC NULLS LAST, k NULLS LAST), "
	"  $3 + 1) AS b FROM g) "
	"SELECT '', '', " REP_KIND ", " REP_KEY ", "
	"  CASE WHEN b <= $3 THEN coalesce(max(name), 'teacher ' || min(k)) "
	"    ELSE count(*)::text END, "
	"  round(sum(hours), 2)::text, sum(lessons)::text FROM r GROUP BY b ORDER BY b",
	},
	{
	.id = "hours.month", .title = "Hours per teacher and month",
	.about = "The same teachers, month by month (the last 12 months with lessons in range).",
	.table = "analytics.teacher_hours", .row_header = "teacher", .none_label = "(no teacher)",
	.shape = REP_PIVOT, .cols = COLS(teacher_cols), .bar = 0, .bar_note = -1,
	.sql =
	"WITH h AS (SELECT teacher_id, teacher_name, month, hours, lessons "
	"  FROM analytics.teacher_hours WHERE ($1 IS NULL OR month >= $1)), "
	"g AS (SELECT teacher_id AS k, sum(hours) AS hours FROM h GROUP BY teacher_id), "
	"r AS (SELECT k, least(row_number() OVER (ORDER BY hours DESC NULLS LAST, k NULLS LAST), "
	"  $3 + 1) AS b FROM g), "
	"m AS (SELECT DISTINCT month FROM h ORDER BY month DESC LIMIT $5) "
	"SELECT to_char(h.month, 'YYYY-MM'), to_char(h.month, 'YYYY-MM'), "
	"  CASE WHEN r.b > $3 THEN 'o' WHEN min(h.teacher_id) IS NULL THEN 'n' ELSE 'r' END, "
	"  CASE WHEN r.b <= $3 THEN min(h.teacher_id)::text END, "
	"  CASE WHEN r.b <= $3 THEN coalesce(max(h.teacher_name), 'teacher ' || min(h.teacher_id)) "
	"    ELSE (SELECT count(*) FROM r WHERE b > $3)::text END, "
	"  round(sum(h.hours), 2)::text, sum(h.lessons)::text, r.b "
	"FROM h JOIN r ON r.k IS NOT DISTINCT FROM h.teacher_id JOIN m USING (month) "
	"GROUP BY h.month, r.b ORDER BY r.b, h.month",
	},
};

#define REP_NSECTIONS	(sizeof(rep_sections) / sizeof(rep_sections[0]))

struct rep_opts {
	const char	*out;
	const char	*only;
	int		 text;
	char		 since[16];	/* "YYYY-MM-01", "" = all */
	char		 pipeline[24];	/* "" = all */
};

static void
rep_usage(FILE *f)
{
	fprintf(f,
	    "usage: crmsyncctl report [--out FILE] [--since YYYY-MM] [--pipeline ID] [--text]\n"
	    "                         [--only SECTION,...]\n"
	    "\n"
	    "One self-contained HTML page (inline CSS and SVG, no scripts, nothing fetched) of the\n"
	    "analytics schema: funnel per pipeline, revenue per channel and manager, group fill,\n"
	    "teacher hours. Charts show the top %d rows and sum the rest as \"others\".\n"
	    "\n"
	    "  --out FILE       write the page to FILE (atomically); default: standard output\n"
	    "  --since YYYY-MM  leads created (funnel, revenue) and teacher hours from that month\n"
	    "  --pipeline ID    only leads of this amoCRM pipeline (funnel, revenue)\n"
	    "  --text           the same numbers as plain aligned tables instead of HTML\n"
	    "  --only LIST      only these sections (comma list, a prefix is enough):\n"
	    "                   funnel, revenue.channel, revenue.manager, fill.office, fill.group,\n"
	    "                   hours.teacher, hours.month\n"
	    "\n"
	    "Reads with CS_CTL_PG_DSN (or CS_PG_DSN); the crmsync_analyst role is enough.\n"
	    "Exit: 0 written, 1 failed (database, missing analytics tables, output), 2 usage.\n",
	    REP_TOP_ROWS);
}

/* "YYYY-MM" into "YYYY-MM-01"; -1 when it is not a month. */
static int
rep_parse_month(const char *s, char *dst, size_t cap)
{
	int month;

	if (strlen(s) != 7 || s[4] != '-')
		return -1;
	for (int i = 0; i < 7; i++)
		if (i != 4 && (s[i] < '0' || s[i] > '9'))
			return -1;
	month = (s[5] - '0') * 10 + (s[6] - '0');
	if (month < 1 || month > 12 || s[0] == '0')
		return -1;
	snprintf(dst, cap, "%.7s-01", s);
	return 0;
}

static int
rep_parse_id(const char *s, char *dst, size_t cap)
{
	char *end;
	long long v;

	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0' || v <= 0)
		return -1;
	snprintf(dst, cap, "%lld", v);
	return 0;
}

/* Does the --only item [item, item + n) name section id (whole, or a prefix up to a dot)? */
static int
rep_names(const char *item, size_t n, const char *id)
{
	return n > 0 && strncmp(id, item, n) == 0 && (id[n] == '\0' || id[n] == '.');
}

/* Is section id selected by the list (NULL: all)? */
static int
rep_selected(const char *only, const char *id)
{
	const char *cur = only, *item;
	size_t n;

	if (only == NULL)
		return 1;
	while (strlist_next(&cur, &item, &n))
		if (rep_names(item, n, id))
			return 1;
	return 0;
}

static int
rep_check_only(const char *only)
{
	const char *cur = only, *item;
	size_t n, i;

	while (strlist_next(&cur, &item, &n)) {
		for (i = 0; i < REP_NSECTIONS && !rep_names(item, n, rep_sections[i].id); i++)
			;
		if (i == REP_NSECTIONS) {
			fprintf(stderr, "crmsyncctl: report: unknown section \"%.*s\" in --only\n", (int)n, item);
			return -1;
		}
	}
	return 0;
}

static int
rep_args(int argc, char **argv, struct rep_opts *o)
{
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
		int takes = strcmp(a, "--out") == 0 || strcmp(a, "-o") == 0 || strcmp(a, "--since") == 0 ||
		    strcmp(a, "--pipeline") == 0 || strcmp(a, "--only") == 0;

		if (strcmp(a, "--text") == 0) {
			o->text = 1;
			continue;
		}
		if (!takes) {
			fprintf(stderr, "crmsyncctl: report: unexpected argument \"%s\" (try --help)\n", a);
			return -1;
		}
		if (v == NULL) {
			fprintf(stderr, "crmsyncctl: report: %s needs a value\n", a);
			return -1;
		}
		i++;
		if (strcmp(a, "--since") == 0 && rep_parse_month(v, o->since, sizeof(o->since)) != 0) {
			fprintf(stderr, "crmsyncctl: report: --since \"%s\": expected a month, YYYY-MM\n", v);
			return -1;
		}
		if (strcmp(a, "--pipeline") == 0 && rep_parse_id(v, o->pipeline, sizeof(o->pipeline)) != 0) {
			fprintf(stderr, "crmsyncctl: report: --pipeline \"%s\": expected a pipeline id\n", v);
			return -1;
		}
		if (strcmp(a, "--only") == 0 && rep_check_only(v) != 0)
			return -1;
		if (strcmp(a, "--out") == 0 || strcmp(a, "-o") == 0)
			o->out = v;
		else if (strcmp(a, "--only") == 0)
			o->only = v;
	}
	return 0;
}

/* 0 when every analytic table the report reads exists; else says what to do. */
static int
rep_check_tables(PGconn *c)
{
	const char *const vals[] = { rep_tables };
	PGresult *r = ctl_db_query(c, "checking the analytics tables",
	    "SELECT n FROM unnest($1::text[]) AS n WHERE to_regclass('analytics.' || n) IS NULL",
	    1, vals);
	int ok;

	if (r == NULL)
		return -1;
	if ((ok = PQntuples(r) == 0) == 0) {
		fprintf(stderr, "crmsyncctl: report: this database has no analytics.%s%s: its store "
		    "predates the analyst layer. Upgrade crmsync-store (it creates the analytics "
		    "schema when it starts; see README, Upgrading), then run the report again.\n",
		    PQgetvalue(r, 0, 0), PQntuples(r) > 1 ? " (and more)" : "");
	}
	PQclear(r);
	return ok ? 0 : -1;
}

static PGresult *
rep_query(PGconn *c, const struct rep_section *s, const struct rep_opts *o)
{
	/* date, int8, int4 x3: typed, so a parameter a query does not use is no error. */
	const Oid types[] = { 1082, 20, 23, 23, 23 };
	char top[16], groups[16], cols[16];
	const char *vals[5];
	PGresult *r;

	snprintf(top, sizeof(top), "%d", REP_TOP_ROWS);
	snprintf(groups, sizeof(groups), "%d", REP_TOP_GROUPS);
	snprintf(cols, sizeof(cols), "%d", REP_PIVOT_COLS);
	vals[0] = o->since[0] ? o->since : NULL;
	vals[1] = o->pipeline[0] ? o->pipeline : NULL;
	vals[2] = top;
	vals[3] = groups;
	vals[4] = cols;
	r = PQexecParams(c, s->sql, 5, types, vals, NULL, NULL, 0);
	if (PQresultStatus(r) != PGRES_TUPLES_OK) {
		fprintf(stderr, "crmsyncctl: report: section %s: %s", s->id, PQresultErrorMessage(r));
		PQclear(r);
		return NULL;
	}
	if (PQnfields(r) < REP_C_VALUES + (int)s->ncols) {
		fprintf(stderr, "crmsyncctl: report: section %s: %d columns, expected %zu\n", s->id,
		    PQnfields(r), REP_C_VALUES + s->ncols);
		PQclear(r);
		return NULL;
	}
	return r;
}

static int
rep_exec(PGconn *c, const char *sql)
{
	PGresult *r = PQexec(c, sql);
	int ok = PQresultStatus(r) == PGRES_COMMAND_OK;

	if (!ok)
		fprintf(stderr, "crmsyncctl: report: %s: %s", sql, PQresultErrorMessage(r));
	PQclear(r);
	return ok ? 0 : -1;
}

/* Every selected section's rows, in one snapshot; res[i] NULL for the others. */
static int
rep_load(PGconn *c, const struct rep_opts *o, PGresult **res)
{
	/*
	 * crmsyncctl's 10 s statement limit is for status; some analytic tables are views
	 * (amo_funnel) computed when read, which takes longer on a large account.
	 */
	if (rep_exec(c, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY") != 0 ||
	    rep_exec(c, "SET LOCAL statement_timeout = '" REP_STATEMENT_TIMEOUT "'") != 0)
		return -1;
	for (size_t i = 0; i < REP_NSECTIONS; i++) {
		if (!rep_selected(o->only, rep_sections[i].id))
			continue;
		if ((res[i] = rep_query(c, &rep_sections[i], o)) == NULL)
			return -1;
	}
	return rep_exec(c, "COMMIT");
}

/* Write the page to path through a temporary file, so a reader never sees half of it. */
static int
rep_write(const char *path, const struct buf *b)
{
	char tmp[4096];
	FILE *f;
	int ok;

	if (path == NULL || strcmp(path, "-") == 0) {
		ok = fwrite(b->data, 1, b->len, stdout) == b->len && fflush(stdout) == 0;
		if (!ok)
			fprintf(stderr, "crmsyncctl: report: writing standard output: %s\n", strerror(errno));
		return ok ? 0 : -1;
	}
	if ((size_t)snprintf(tmp, sizeof(tmp), "%s.tmp%ld", path, (long)getpid()) >= sizeof(tmp)) {
		fprintf(stderr, "crmsyncctl: report: --out: path too long\n");
		return -1;
	}
	if ((f = fopen(tmp, "w")) == NULL) {
		fprintf(stderr, "crmsyncctl: report: cannot create %s: %s\n", tmp, strerror(errno));
		return -1;
	}
	ok = fwrite(b->data, 1, b->len, f) == b->len;
	ok = (fclose(f) == 0) && ok;
	if (ok && rename(tmp, path) != 0)
		ok = 0;
	if (!ok) {
		fprintf(stderr, "crmsyncctl: report: writing %s: %s\n", path, strerror(errno));
		unlink(tmp);
		return -1;
	}
	fprintf(stderr, "crmsyncctl: report: wrote %s (%zu bytes)\n", path, b->len);
	return 0;
}

static void
rep_filter_init(struct rep_filter *f, const struct rep_opts *o, PGconn *c)
{
	time_t now = time(NULL);
	struct tm tm;

	f->since = o->since[0] ? o->since : NULL;
	f->pipeline = o->pipeline[0] ? o->pipeline : NULL;
	f->dbname = PQdb(c);
	gmtime_r(&now, &tm);
	strftime(f->generated, sizeof(f->generated), "%Y-%m-%d %H:%M UTC", &tm);
}

static int
rep_render(const struct rep_opts *o, PGconn *c, PGresult *const *res)
{
	struct rep_filter f;
	struct buf b;
	struct rep_w w = { &b, 0 };
	int rv;

	rep_filter_init(&f, o, c);
	buf_init(&b, REP_MAX_OUT);
	if (o->text)
		rep_text(&w, &f, rep_sections, res, REP_NSECTIONS);
	else
		rep_html(&w, &f, rep_sections, res, REP_NSECTIONS);
	if ((rv = w.rv) != 0)
		fprintf(stderr, "crmsyncctl: report: %s\n", cs_strerror(rv));
	else
		rv = rep_write(o->out, &b);
	buf_free(&b);
	return rv == 0 ? 0 : 1;
}

int
ctl_report(int argc, char **argv)
{
	struct rep_opts o = { 0 };
	PGresult *res[REP_NSECTIONS] = { 0 };
	PGconn *c = NULL;
	int rv = 1;

	for (int i = 1; i < argc; i++)
		if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
			rep_usage(stdout);
			return 0;
		}
	if (rep_args(argc, argv, &o) != 0)
		return 2;
	if (!o.text && (o.out == NULL || strcmp(o.out, "-") == 0) && isatty(STDOUT_FILENO)) {
		fprintf(stderr, "crmsyncctl: report: not writing HTML to a terminal: use --out FILE "
		    "(or --text)\n");
		return 2;
	}
	if (ctl_dsn() == NULL) {
		fprintf(stderr, "crmsyncctl: report: no database: set CS_CTL_PG_DSN (or CS_PG_DSN)\n");
		return 1;
	}
	if ((c = ctl_db_connect()) == NULL)
		goto out;
	if (rep_check_tables(c) != 0 || rep_load(c, &o, res) != 0)
		goto out;
	rv = rep_render(&o, c, res);
out:
	for (size_t i = 0; i < REP_NSECTIONS; i++)
		PQclear(res[i]);
	PQfinish(c);
	return rv;
}
