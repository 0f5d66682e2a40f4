/*
 * normalise_hollihop_test.c - the Hollihop catalogue and the generic normaliser on
 * fixture responses (tests/data/hollihop/<Method>.json, in the API's own shapes, both
 * spellings where the notes are UNSURE), plus hollihop-sync's parameter templates and
 * schedule. Registered from services/hollihop-sync/CMakeLists.txt (it links params.c and
 * schedule.c).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <cmocka.h>

#include "arena.h"
#include "buf.h"
#include "catalog.h"
#include "errors.h"
#include "hh.h"
#include "json.h"
#include "normalise.h"

#ifndef CS_TEST_DATA
#define CS_TEST_DATA "tests/data/hollihop"
#endif

struct fixture {
	char		*text;
	struct json	 j;
	int		 rows;		/* token of the rows array, or of the one row */
	int		 one_row;
	struct arena	 a;
};

static void
load(struct fixture *f, const char *method, const struct cat_entity *e)
{
	char path[512];
	FILE *fp;
	long n;

	snprintf(path, sizeof(path), "%s/%s.json", CS_TEST_DATA, method);
	fp = fopen(path, "rb");
	if (fp == NULL)
		fail_msg("cannot open %s", path);
	fseek(fp, 0, SEEK_END);
	n = ftell(fp);
	rewind(fp);
	f->text = malloc((size_t)n + 1);
	assert_int_equal(fread(f->text, 1, (size_t)n, fp), (size_t)n);
	f->text[n] = '\0';
	fclose(fp);
	assert_int_equal(json_parse(&f->j, f->text, (size_t)n, 100000), 0);
	f->one_row = e->list_key == NULL;
	f->rows = f->one_row ? 0 : json_path(&f->j, 0, e->list_key);
	arena_init(&f->a, 16u << 20);
}

static void
unload(struct fixture *f)
{
	json_free(&f->j);
	arena_free(&f->a);
	free(f->text);
}

/* The i-th row's token. */
static int
row_at(struct fixture *f, int i)
{
	int t = json_first(&f->j, f->rows);

	if (f->one_row)
		return 0;
	while (i-- > 0)
		t = json_skip(&f->j, t);
	return t;
}

static int
col_index(const struct cat_col *cols, size_t n, const char *name)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(cols[i].column, name) == 0)
			return (int)i;
	fail_msg("no column %s", name);
	return -1;
}

/* A value of the record as text; "NULL" for null. */
static const char *
val(const struct cat_entity *e, const Crmsync__Record *r, const char *col)
{
	int i = col_index(e->cols, e->ncols, col);

	return norm_isnull(&r->null_mask, (size_t)i) ? "NULL" : r->values[i];
}

/* A value of the k-th child row of child table `table`. */
static const char *
child_val(const struct cat_entity *e, const Crmsync__Record *r, const char *table, int k, const char *col)
{
	for (size_t c = 0; c < e->nchildren; c++) {
		if (strcmp(e->children[c].table, table) != 0)
			continue;
		for (size_t x = 0; x < r->n_children; x++) {
			const Crmsync__ChildRow *cr = r->children[x];
			if (cr->child != c || k-- > 0)
				continue;
			int i = col_index(e->children[c].cols, e->children[c].ncols, col);
			return norm_isnull(&cr->null_mask, (size_t)i) ? "NULL" : cr->values[i];
		}
		return "(no such child row)";
	}
	return "(no such child table)";
}

static size_t
nchild(const struct cat_entity *e, const Crmsync__Record *r, const char *table)
{
	size_t n = 0;

	for (size_t x = 0; x < r->n_children; x++)
		if (strcmp(e->children[r->children[x]->child].table, table) == 0)
			n++;
	return n;
}

static int
norm(const struct cat_entity *e, struct fixture *f, int row, const struct norm_ctx *ctx,
    Crmsync__Record *r, char *err)
{
	int bad = 0;
	int rv = normalise_row(e, &f->j, row_at(f, row), ctx, &f->a, r, &bad, err, 256);

	if (rv == 0 && bad != 0)
		fail_msg("%s row %d: %d unreadable values", e->name, row, bad);
	return rv;
}

static int
setup(void **state)
{
	(void)state;
	return normalise_set_timezone("Europe/Moscow");
}

/* ---- the catalogue ---- */

static void
test_catalogue_is_consistent(void **state)
{
	const struct cat_crm_desc *d = catalog_crm(CAT_HOLLIHOP);
	char pcol[64], err[256];

	(void)state;
	assert_int_equal(d->nentities, 30);	/* the 30 methods the plan names */
	for (size_t i = 0; i < d->nentities; i++) {
		const struct cat_entity *e = &d->entities[i];
		struct hh_vars v = { .today = "2025-06-01", .date_from = "2025-01-01", .date_to = "2025-12-31",
		    .parent = "100" };
		struct norm_ctx ctx = { 0 };
		char store[512];
		struct buf b;

		/* Templates expand; per-client methods follow the entity whose keys drive them. */
		buf_init(&b, 4096);
		if (params_expand(e->params, "x", &v, &b, &ctx, store, sizeof(store), err, sizeof(err)) != 0)
			fail_msg("%s: %s", e->name, err);
		buf_free(&b);
		if (e->paging == PAGE_PER_PARENT) {
			const struct cat_entity *p = catalog_find(CAT_HOLLIHOP, e->parent);
			assert_non_null(p);
			assert_true(p < e);
			assert_non_null(strstr(e->params, "{$parent}"));
		}
		assert_true(strncmp(e->endpoint, "Get", 3) == 0);
		assert_true(e->flags & CE_FULL_DELETES);
		if (e->list_key == NULL)
			assert_int_equal(e->paging, PAGE_PER_PARENT);
		for (size_t k = 0; k < i; k++)
			if (strcmp(d->entities[k].endpoint, e->endpoint) == 0)
				fail_msg("%s exported twice", e->endpoint);
		/* The store stages a child row beside its parent's key: no name may repeat. */
		for (size_t c = 0; c < e->nchildren; c++) {
			const struct cat_child *ch = &e->children[c];
			for (size_t k = 0; k < catalog_nkeys(e); k++) {
				assert_int_equal(catalog_child_parent_col(e, ch, k, pcol, sizeof(pcol)), 0);
				for (size_t x = 0; x < ch->ncols; x++) {
					if (strcmp(ch->cols[x].column, pcol) == 0)
						fail_msg("%s.%s repeats a parent key column", ch->table, pcol);
					for (size_t y = 0; y < e->ncols; y++)
						if ((e->cols[y].flags & CF_KEY) &&
						    strcmp(e->cols[y].column, ch->cols[x].column) == 0)
							fail_msg("%s.%s repeats the parent key %s", ch->table,
							    ch->cols[x].column, e->cols[y].column);
				}
			}
		}
	}
	/* The store's integration tests rely on these. */
	const struct cat_entity *s = catalog_find(CAT_HOLLIHOP, "students");
	assert_non_null(s);
	assert_string_equal(s->children[0].table, "student_agents");
	assert_true(s->cols[col_index(s->cols, s->ncols, "client_id")].flags & CF_KEY);
	assert_true(s->cols[col_index(s->cols, s->ncols, "updated")].flags & CF_VERSION);
	assert_int_equal(s->cols[col_index(s->cols, s->ncols, "updated")].type, CT_TS_LOCAL);
}

/* ---- fixtures ---- */

static void
test_students_cyrillic_local_time_agents(void **state)
{
	const struct cat_entity *e = catalog_find(CAT_HOLLIHOP, "students");
	struct fixture f;
	Crmsync__Record r;
	char err[256];

	(void)state;
	load(&f, "GetStudents", e);
	assert_int_equal(norm(e, &f, 0, NULL, &r, err), 0);
	assert_string_equal(val(e, &r, "client_id"), "110");
	assert_string_equal(val(e, &r, "id"), "7");
	assert_string_equal(val(e, &r, "first_name"), "Анастасия");
	/* 15:41:31 in Moscow (UTC+3) */
	assert_string_equal(val(e, &r, "updated"), "2024-02-25 12:41:31+00");
	assert_true(r.source_updated_at_us == (int64_t)1708864891 * 1000000);
	assert_string_equal(val(e, &r, "gender"), "f");
	assert_string_equal(val(e, &r, "address_date"), "2021-12-08");
	assert_string_equal(val(e, &r, "middle_name"), "NULL");	/* absent = NULL */
	assert_string_equal(val(e, &r, "learning_types"), "{\"Групповые занятия\"}");
	assert_int_equal(nchild(e, &r, "student_agents"), 2);
	assert_string_equal(child_val(e, &r, "student_agents", 1, "who_is"), "Мама \"главная\"");
	assert_string_equal(child_val(e, &r, "student_agents", 1, "birthday"), "1985-03-08");
	assert_string_equal(child_val(e, &r, "student_agents", 0, "is_customer"), "t");
	assert_string_equal(child_val(e, &r, "student_offices", 0, "office_id"), "4");
	assert_string_equal(child_val(e, &r, "student_assignees", 0, "full_name"), "Комаров Тимофей");
	/* raw is the row's own bytes */
	assert_true(r.raw_json.len > 100 && r.raw_json.data[0] == '{' && r.raw_json.data[r.raw_json.len - 1] == '}');

	/* An id sent as a string still keys; no Updated = no version. */
	assert_int_equal(norm(e, &f, 1, NULL, &r, err), 0);
	assert_string_equal(val(e, &r, "client_id"), "113");
	assert_true(r.source_updated_at_us == 0);
	assert_string_equal(val(e, &r, "visit_date_time"), "2023-05-04");
	/* No ClientId: the row cannot be stored, and says why. */
	assert_int_equal(norm(e, &f, 2, NULL, &r, err), CS_EINVAL);
	assert_non_null(strstr(err, "client_id"));
	unload(&f);
}

static void
test_payments_money_escaped_unicode(void **state)
{
	const struct cat_entity *e = catalog_find(CAT_HOLLIHOP, "payments");
	struct fixture f;
	Crmsync__Record r;
	char err[256];

	(void)state;
	load(&f, "GetPayments", e);	/* every non-ASCII character \u-escaped */
	assert_int_equal(norm(e, &f, 0, NULL, &r, err), 0);
	assert_string_equal(val(e, &r, "value_quantity"), "-18000.0");
	assert_string_equal(val(e, &r, "value"), "-18000.00");
	assert_string_equal(val(e, &r, "type"), "Возврат");
	assert_string_equal(val(e, &r, "client_name"), "Зайцев Тимофей");
	assert_string_equal(val(e, &r, "created"), "2021-06-02 15:23:49+00");
	assert_string_equal(val(e, &r, "paid_date"), "2021-06-02");
	assert_int_equal(norm(e, &f, 1, NULL, &r, err), 0);
	assert_string_equal(val(e, &r, "value"), "1234567.89");
	assert_string_equal(val(e, &r, "paid_date"), "NULL");
	unload(&f);
}

static void
test_learning_types_both_shapes(void **state)
{
	const struct cat_entity *e = catalog_find(CAT_HOLLIHOP, "learning_types");
	const char *files[] = { "GetLearningTypes", "GetLearningTypes_alt" };

	(void)state;
	for (int i = 0; i < 2; i++) {
		struct fixture f;
		Crmsync__Record r;
		char err[256];
		load(&f, files[i], e);
		assert_int_equal(norm(e, &f, 1, NULL, &r, err), 0);
		assert_string_equal(val(e, &r, "name"), "Индивидуальные занятия");
		unload(&f);
	}
	const struct cat_entity *d = catalog_find(CAT_HOLLIHOP, "disciplines");
	struct fixture f;
	Crmsync__Record r;
	char err[256];
	load(&f, "GetDisciplines", d);
	assert_int_equal(norm(d, &f, 0, NULL, &r, err), 0);
	assert_string_equal(val(d, &r, "name"), "Английский язык");
	assert_int_equal((int)r.raw_json.len, (int)strlen("\"Английский язык\""));
	unload(&f);
}

static void
test_ledger_is_one_row_per_client(void **state)
{
	const struct cat_entity *e = catalog_find(CAT_HOLLIHOP, "incomes_and_outgoes");
	struct norm_ctx ctx = { 0 };
	struct fixture f;
	Crmsync__Record r;
	char err[256];

	(void)state;
	load(&f, "GetIncomesAndOutgoes", e);
	norm_ctx_set(&ctx, "clientId", "123");
	assert_int_equal(norm(e, &f, 0, &ctx, &r, err), 0);
	assert_string_equal(val(e, &r, "client_id"), "123");
	assert_int_equal(nchild(e, &r, "incomes_and_outgoes_study"), 2);
	assert_int_equal(nchild(e, &r, "incomes_and_outgoes_other"), 0);	/* "OtherPayments":{} */
	assert_string_equal(child_val(e, &r, "incomes_and_outgoes_study", 1, "value"), "-1300.00");
	assert_string_equal(child_val(e, &r, "incomes_and_outgoes_study", 1, "income"), "f");
	assert_string_equal(child_val(e, &r, "incomes_and_outgoes_study", 0, "begin"), "2024-01-15 07:30:00+00");
	assert_string_equal(child_val(e, &r, "incomes_and_outgoes_study", 0, "ed_unit_id"), "NULL");
	/* Without the context value the key is missing. */
	assert_int_equal(norm(e, &f, 0, NULL, &r, err), CS_EINVAL);
	unload(&f);
}

static void
test_ed_units_schedule_and_days(void **state)
{
	const struct cat_entity *e = catalog_find(CAT_HOLLIHOP, "ed_units");
	struct fixture f;
	Crmsync__Record r;
	char err[256];

	(void)state;
	load(&f, "GetEdUnits", e);
	assert_int_equal(norm(e, &f, 0, NULL, &r, err), 0);
	assert_string_equal(val(e, &r, "assignee_full_name"), "Федотова Ирина");
	assert_string_equal(val(e, &r, "students_count"), "4");
	assert_string_equal(child_val(e, &r, "ed_unit_schedule_items", 0, "teacher_ids"), "{12,14}");
	assert_string_equal(child_val(e, &r, "ed_unit_schedule_items", 0, "teachers"),
	    "{\"Назаров Тимофей\",\"Ким Ольга\"}");
	assert_string_equal(child_val(e, &r, "ed_unit_schedule_items", 0, "begin_time"), "11:00");
	assert_string_equal(child_val(e, &r, "ed_unit_schedule_items", 0, "end_date"), "NULL");
	assert_int_equal(nchild(e, &r, "ed_unit_days"), 2);
	assert_string_equal(child_val(e, &r, "ed_unit_days", 1, "pass"), "t");
	assert_string_equal(child_val(e, &r, "ed_unit_days", 1, "description"), "Перенос");
	assert_string_equal(child_val(e, &r, "ed_unit_days", 1, "schedule_item_ids"), "{4}");
	assert_string_equal(child_val(e, &r, "ed_unit_days", 0, "student_payable_minutes"), "120.0");
	unload(&f);
}

/*
 * GetEdUnits rows carry no Status, Created or Updated (real clients' field lists): the
 * status is the statuses= filter of the pass that read the row, one pass per status, and
 * ed units have no version column.
 */
static void
test_ed_units_status_from_the_pass(void **state)
{
	const struct cat_entity *e = catalog_find(CAT_HOLLIHOP, "ed_units");
	const char *want[] = { "Reserve", "Forming", "Working", "Stopped", "Finished" };
	char alts[PARAMS_MAX_ALTS][64], store[512], err[256];
	struct hh_vars v = { .today = "2025-06-01", .date_from = "2025-01-01", .date_to = "2025-12-31" };
	struct fixture f;
	Crmsync__Record r;

	(void)state;
	assert_int_equal(params_alternatives(e->params, alts, PARAMS_MAX_ALTS), 5);
	for (int i = 0; i < 5; i++)
		assert_string_equal(alts[i], want[i]);
	for (size_t i = 0; i < e->ncols; i++) {
		assert_false(e->cols[i].flags & CF_VERSION);
		if (strcmp(e->cols[i].json, "Status") == 0 || strcmp(e->cols[i].json, "Created") == 0 ||
		    strcmp(e->cols[i].json, "Updated") == 0)
			fail_msg("ed_units types %s, which real rows do not have", e->cols[i].json);
	}
	load(&f, "GetEdUnits", e);
	for (int i = 0; i < 5; i++) {
		struct norm_ctx ctx = { 0 };
		struct buf b;
		/* The pass's own parameters are the row's context, as the fetcher makes them. */
		buf_init(&b, 4096);
		assert_int_equal(params_expand(e->params, alts[i], &v, &b, &ctx, store, sizeof(store), err,
		    sizeof(err)), 0);
		assert_non_null(strstr(b.data, "&statuses="));
		assert_non_null(strstr(b.data, want[i]));
		buf_free(&b);
		assert_int_equal(norm(e, &f, 0, &ctx, &r, err), 0);
		assert_string_equal(val(e, &r, "status"), want[i]);
		assert_true(r.source_updated_at_us == 0);
	}
	unload(&f);
}

/* Per-student lesson days carry Minutes; Payable, ScheduleItemIds, WorkingOff* do not exist. */
static void
test_student_days_minutes(void **state)
{
	const struct cat_entity *e = catalog_find(CAT_HOLLIHOP, "ed_unit_students");
	const char *phantom[] = { "Payable", "ScheduleItemIds", "WorkingOffToEdUnitId", "WorkingOffToDate",
	    "WorkingOffFromEdUnitId", "WorkingOffFromDate" };
	struct fixture f;
	Crmsync__Record r;
	char err[256];

	(void)state;
	for (size_t c = 0; c < e->nchildren; c++) {
		if (strcmp(e->children[c].table, "ed_unit_student_days") != 0)
			continue;
		for (size_t i = 0; i < e->children[c].ncols; i++)
			for (size_t k = 0; k < nitems(phantom); k++)
				if (strcmp(e->children[c].cols[i].json, phantom[k]) == 0)
					fail_msg("ed_unit_student_days types %s, which no real client has", phantom[k]);
	}
	load(&f, "GetEdUnitStudents", e);
	assert_int_equal(norm(e, &f, 0, NULL, &r, err), 0);
	assert_int_equal(nchild(e, &r, "ed_unit_student_days"), 2);
	assert_string_equal(child_val(e, &r, "ed_unit_student_days", 0, "minutes"), "90");
	assert_string_equal(child_val(e, &r, "ed_unit_student_days", 0, "student_payable_minutes"), "90.0");
	assert_string_equal(child_val(e, &r, "ed_unit_student_days", 1, "minutes"), "120");
	assert_string_equal(child_val(e, &r, "ed_unit_student_days", 1, "pass"), "t");
	assert_string_equal(child_val(e, &r, "ed_unit_student_days", 1, "accepted_description"), "ждёт справку");
	unload(&f);
}

/*
 * students.amo_lead_id: the lead id at the end of the amoCRM link in the extra field whose
 * name the context (CS_HOLLIHOP_AMO_LEAD_FIELD) gives; a placeholder link is NULL.
 */
static void
test_students_amo_lead_id(void **state)
{
	const struct cat_entity *e = catalog_find(CAT_HOLLIHOP, "students");
	struct norm_ctx ctx = { 0 };
	struct fixture f;
	Crmsync__Record r;
	char err[256];

	(void)state;
	load(&f, "GetStudents", e);
	norm_ctx_set(&ctx, "amo_lead_field", "Ссылка на amoCRM");
	assert_int_equal(norm(e, &f, 0, &ctx, &r, err), 0);
	assert_string_equal(val(e, &r, "amo_lead_id"), "31337042");
	assert_int_equal(nchild(e, &r, "student_extra_fields"), 3);
	/* The name matched after \u-unescaping; the value is only "https://": NULL, not bad. */
	assert_int_equal(norm(e, &f, 1, &ctx, &r, err), 0);
	assert_string_equal(val(e, &r, "amo_lead_id"), "NULL");
	/* Another configured name: that field is looked for instead. */
	norm_ctx_set(&ctx, "amo_lead_field", "Ссылка на Мой класс");
	assert_int_equal(norm(e, &f, 0, &ctx, &r, err), 0);
	assert_string_equal(val(e, &r, "amo_lead_id"), "NULL");	/* no "/leads/detail/" in it */
	norm_ctx_set(&ctx, "amo_lead_field", "");
	assert_int_equal(norm(e, &f, 0, &ctx, &r, err), 0);
	assert_string_equal(val(e, &r, "amo_lead_id"), "NULL");	/* off */
	assert_int_equal(norm(e, &f, 0, NULL, &r, err), 0);
	assert_string_equal(val(e, &r, "amo_lead_id"), "NULL");
	unload(&f);
}

static void
test_announcements_keyed_by_target(void **state)
{
	const struct cat_entity *e = catalog_find(CAT_HOLLIHOP, "announcements");
	struct norm_ctx ctx = { 0 };
	struct fixture f;
	Crmsync__Record r;
	char err[256];

	(void)state;
	load(&f, "GetAnnouncements", e);
	norm_ctx_set(&ctx, "targets", "Students");
	assert_int_equal(norm(e, &f, 0, &ctx, &r, err), 0);
	assert_string_equal(val(e, &r, "target"), "Students");
	assert_string_equal(val(e, &r, "id"), "3");
	assert_string_equal(val(e, &r, "text"), "Занятия 1–3 мая не проводятся.");
	unload(&f);
}

/* ---- parameter templates, dates, schedule ---- */

static void
test_params_templates(void **state)
{
	struct hh_vars v;
	struct norm_ctx ctx = { 0 };
	char alts[PARAMS_MAX_ALTS][64], store[512], err[256];
	struct buf b;

	(void)state;
	memset(&v, 0, sizeof(v));
	strcpy(v.today, "2025-06-01");
	strcpy(v.date_from, "2024-06-01");
	strcpy(v.date_to, "2025-09-01");
	assert_int_equal(params_alternatives("targets={Students|Employees|Companies}", alts, PARAMS_MAX_ALTS), 3);
	assert_string_equal(alts[2], "Companies");
	assert_int_equal(params_alternatives("clientId={$parent}", alts, PARAMS_MAX_ALTS), 0);
	assert_int_equal(params_alternatives(NULL, alts, PARAMS_MAX_ALTS), 0);

	buf_init(&b, 4096);
	assert_int_equal(params_expand("queryDays=true&dateFrom={$date_from}&dateTo={$date_to}", NULL, &v, &b,
	    &ctx, store, sizeof(store), err, sizeof(err)), 0);
	assert_string_equal(b.data, "&queryDays=true&dateFrom=2024-06-01&dateTo=2025-09-01");
	buf_reset(&b);
	v.parent = "1 23/4";
	memset(&ctx, 0, sizeof(ctx));
	assert_int_equal(params_expand("clientId={$parent}", NULL, &v, &b, &ctx, store, sizeof(store), err,
	    sizeof(err)), 0);
	assert_string_equal(b.data, "&clientId=1%2023%2F4");
	assert_string_equal(ctx.name[0], "clientId");
	assert_string_equal(ctx.value[0], "1 23/4");
	buf_reset(&b);
	assert_int_equal(params_expand("targets={Students|Employees}", "Employees", &v, &b, &ctx, store,
	    sizeof(store), err, sizeof(err)), 0);
	assert_string_equal(b.data, "&targets=Employees");
	assert_int_equal(params_expand("x={$nope}", NULL, &v, &b, &ctx, store, sizeof(store), err,
	    sizeof(err)), CS_EINVAL);
	assert_non_null(strstr(err, "unknown variable"));
	assert_int_equal(params_expand("novalue", NULL, &v, &b, &ctx, store, sizeof(store), err,
	    sizeof(err)), CS_EINVAL);
	buf_free(&b);
}

static void
test_params_dates(void **state)
{
	struct tm tm = { .tm_year = 124, .tm_mon = 1, .tm_mday = 28, .tm_hour = 23, .tm_min = 30, .tm_isdst = -1 };
	time_t now = mktime(&tm);	/* 2024-02-28 23:30 Moscow */
	char out[16];

	(void)state;
	assert_int_equal(params_date("0d", now, out), 0);
	assert_string_equal(out, "2024-02-28");
	assert_int_equal(params_date("+1d", now, out), 0);
	assert_string_equal(out, "2024-02-29");
	assert_int_equal(params_date("-365d", now, out), 0);
	assert_string_equal(out, "2023-02-28");
	assert_int_equal(params_date("2023-01-01", now, out), 0);
	assert_string_equal(out, "2023-01-01");
	assert_int_equal(params_date("2023-13-01", now, out), CS_EINVAL);
	assert_int_equal(params_date("yesterday", now, out), CS_EINVAL);
	assert_int_equal(params_date("5w", now, out), CS_EINVAL);
}

static void
test_schedule_next_local_time(void **state)
{
	int m;

	(void)state;
	assert_int_equal(schedule_parse("03:30", &m), 0);
	assert_int_equal(m, 210);
	assert_int_equal(schedule_parse("off", &m), 0);
	assert_int_equal(m, -1);
	assert_int_equal(schedule_parse("24:00", &m), CS_EINVAL);
	assert_int_equal(schedule_parse("3:30", &m), CS_EINVAL);
	/* 2025-06-01 02:00 UTC = 05:00 Moscow: the next 03:30 Moscow is 2025-06-02 00:30 UTC. */
	time_t now = 1748743200;
	assert_true(schedule_next(now, 210) == 1748824200);
	/* At 00:00 UTC (03:00 Moscow) it is the same day, 30 minutes later. */
	assert_true(schedule_next(1748736000, 210) == 1748736000 + 1800);
	assert_true(schedule_next(now, -1) == (time_t)-1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_catalogue_is_consistent),
		cmocka_unit_test(test_students_cyrillic_local_time_agents),
		cmocka_unit_test(test_payments_money_escaped_unicode),
		cmocka_unit_test(test_learning_types_both_shapes),
		cmocka_unit_test(test_ledger_is_one_row_per_client),
		cmocka_unit_test(test_ed_units_schedule_and_days),
		cmocka_unit_test(test_ed_units_status_from_the_pass),
		cmocka_unit_test(test_student_days_minutes),
		cmocka_unit_test(test_students_amo_lead_id),
		cmocka_unit_test(test_announcements_keyed_by_target),
		cmocka_unit_test(test_params_templates),
		cmocka_unit_test(test_params_dates),
		cmocka_unit_test(test_schedule_next_local_time),
	};
	return cmocka_run_group_tests(tests, setup, NULL);
}
