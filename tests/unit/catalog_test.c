/*
 * catalog_test.c - one table-driven check over every entity of both catalogues: names are
 * safe SQL identifiers, each table has a key, column names are unique and do not clash with
 * the columns the store adds, at most one version column, shared child tables agree, and
 * the DDL renders. (That the DDL is accepted by PostgreSQL is checked every time a store
 * starts in the integration tests.)
 */
#include <ctype.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "buf.h"
#include "catalog.h"

static int
ident_ok(const char *s)
{
	if (s == NULL || !(islower((unsigned char)s[0]) || s[0] == '_') || strlen(s) > 63)
		return 0;
	for (; *s; s++)
		if (!(islower((unsigned char)*s) || isdigit((unsigned char)*s) || *s == '_'))
			return 0;
	return 1;
}

static const char *const reserved[] = { "source_updated_at", "synced_at", "deleted_at", "raw", "idx" };

static void
check_cols(const char *table, const struct cat_col *cols, size_t n, int is_child)
{
	int versions = 0;

	for (size_t i = 0; i < n; i++) {
		if (!ident_ok(cols[i].column))
			fail_msg("%s: bad column name %s", table, cols[i].column);
		if (cols[i].json == NULL)
			fail_msg("%s.%s: no JSON path", table, cols[i].column);
		for (size_t r = 0; r < sizeof(reserved) / sizeof(reserved[0]); r++)
			if (strcmp(cols[i].column, reserved[r]) == 0)
				fail_msg("%s.%s clashes with a store column", table, cols[i].column);
		for (size_t k = 0; k < i; k++)
			if (strcmp(cols[i].column, cols[k].column) == 0)
				fail_msg("%s: column %s twice", table, cols[i].column);
		if (cols[i].flags & CF_VERSION)
			versions++;
		if (is_child && (cols[i].flags & CF_KEY))
			fail_msg("%s.%s: child columns cannot be keys (the key is parent + idx)", table, cols[i].column);
	}
	if (versions > 1)
		fail_msg("%s: %d version columns", table, versions);
}

static void
check_crm(const struct cat_crm_desc *d)
{
	assert_true(d->nentities > 0);
	for (size_t i = 0; i < d->nentities; i++) {
		const struct cat_entity *e = &d->entities[i];
		struct buf b;

		if (!ident_ok(e->name))
			fail_msg("bad entity name %s", e->name);
		if ((int)e->crm != (int)d->crm)
			fail_msg("%s: wrong crm", e->name);
		if (catalog_nkeys(e) == 0)
			fail_msg("%s: no key column", e->name);
		if (e->endpoint == NULL || e->endpoint[0] == '\0')
			fail_msg("%s: no endpoint", e->name);
		check_cols(e->name, e->cols, e->ncols, 0);
		for (size_t k = 0; k < i; k++)
			if (strcmp(d->entities[k].name, e->name) == 0)
				fail_msg("entity %s twice", e->name);
		assert_ptr_equal(catalog_find(e->crm, e->name), e);
		for (size_t c = 0; c < e->nchildren; c++) {
			const struct cat_child *ch = &e->children[c];
			if (!ident_ok(ch->table))
				fail_msg("%s: bad child table %s", e->name, ch->table);
			check_cols(ch->table, ch->cols, ch->ncols, 1);
			/* Child columns must not repeat the parent key columns or the discriminator. */
			char pcol[64], dcol[64];
			const char *dval = catalog_discriminator(ch, dcol, sizeof(dcol));
			for (size_t q = 0; q < ch->ncols; q++) {
				for (size_t k = 0; k < catalog_nkeys(e); k++) {
					assert_int_equal(catalog_child_parent_col(e, ch, k, pcol, sizeof(pcol)), 0);
					if (strcmp(pcol, ch->cols[q].column) == 0)
						fail_msg("child table %s of %s: column %s repeats a parent key column",
						    ch->table, e->name, pcol);
				}
				if (dval != NULL && strcmp(dcol, ch->cols[q].column) == 0)
					fail_msg("child table %s: column %s repeats the discriminator", ch->table, dcol);
			}
			/* A child table name may be shared only by children with the same columns. */
			for (size_t x = 0; x < d->nentities; x++) {
				for (size_t y = 0; y < d->entities[x].nchildren; y++) {
					const struct cat_child *o = &d->entities[x].children[y];
					if (o == ch || strcmp(o->table, ch->table) != 0)
						continue;
					if (o->ncols != ch->ncols || ch->discriminator == NULL)
						fail_msg("child table %s shared without a discriminator or with other columns",
						    ch->table);
					for (size_t q = 0; q < ch->ncols; q++)
						if (strcmp(o->cols[q].column, ch->cols[q].column) != 0 ||
						    o->cols[q].type != ch->cols[q].type)
							fail_msg("child table %s: column %zu differs", ch->table, q);
				}
				if (strcmp(d->entities[x].name, ch->table) == 0)
					fail_msg("child table %s has an entity's name", ch->table);
			}
		}
		buf_init(&b, 1 << 20);
		assert_int_equal(catalog_ddl(e, d->schema, &b), 0);
		assert_non_null(strstr(b.data, "raw jsonb NOT NULL"));
		buf_free(&b);
	}
}

static void
test_amo_catalogue(void **state)
{
	(void)state;
	check_crm(&catalog_amo);
}

static void
test_hollihop_catalogue(void **state)
{
	(void)state;
	check_crm(&catalog_hollihop);
}

/* changed_by names timestamp columns of a per-parent entity's parent, and is used. */
static void
test_changed_by_names_parent_timestamps(void **state)
{
	const struct cat_crm_desc *ds[] = { &catalog_amo, &catalog_hollihop };
	size_t idx[8];
	int uses = 0;

	(void)state;
	for (size_t c = 0; c < 2; c++) {
		for (size_t i = 0; i < ds[c]->nentities; i++) {
			const struct cat_entity *e = &ds[c]->entities[i];
			int n = catalog_changed_cols(e, idx, 8);
			if (n < 0)
				fail_msg("%s: changed_by \"%s\" must name timestamp columns of its parent %s",
				    e->name, e->changed_by, e->parent ? e->parent : "(none)");
			uses += n > 0;
		}
	}
	assert_true(uses >= 2);
	struct cat_entity bad = *catalog_find(CAT_HOLLIHOP, "client_files");
	bad.changed_by = "first_name";
	assert_int_equal(catalog_changed_cols(&bad, idx, 8), -1);
	bad.changed_by = "nosuch";
	assert_int_equal(catalog_changed_cols(&bad, idx, 8), -1);
}

/* changed_via names entities listed earlier, their column naming the parent and a timestamp. */
static void
test_changed_via_names_earlier_entities(void **state)
{
	const struct cat_entity *src;
	size_t kc, sc;
	int uses = 0;

	(void)state;
	for (size_t i = 0; i < catalog_hollihop.nentities; i++) {
		const struct cat_entity *e = &catalog_hollihop.entities[i];
		int r;
		for (size_t v = 0; (r = catalog_changed_via(e, v, &src, &kc, &sc)) == 1; v++)
			uses++;
		if (r < 0)
			fail_msg("%s: changed_via \"%s\" is wrong", e->name, e->changed_via);
	}
	assert_true(uses >= 1);
	struct cat_entity io = *catalog_find(CAT_HOLLIHOP, "incomes_and_outgoes");
	assert_int_equal(catalog_changed_via(&io, 0, &src, &kc, &sc), 1);
	assert_string_equal(src->name, "payments");
	assert_string_equal(src->cols[kc].column, "client_id");
	assert_string_equal(src->cols[sc].column, "created");
	assert_int_equal(catalog_changed_via(&io, 1, &src, &kc, &sc), 0);
	io.changed_via = "payments:client_id:value";		/* not a timestamp */
	assert_int_equal(catalog_changed_via(&io, 0, &src, &kc, &sc), -1);
	io.changed_via = "client_files:client_id:created";	/* listed after it */
	assert_int_equal(catalog_changed_via(&io, 0, &src, &kc, &sc), -1);
	io.changed_via = "payments:client_id";
	assert_int_equal(catalog_changed_via(&io, 0, &src, &kc, &sc), -1);
	io.changed_via = "payments:client_id:created";
	io.changed_by = NULL;
	assert_int_equal(catalog_changed_via(&io, 0, &src, &kc, &sc), -1);
}

/* Webhooks and events name entities in the singular ("lead", "common_note"): the aliases. */
static void
test_catalog_find_alias_resolves_names_and_aliases(void **state)
{
	const struct cat_entity *leads = catalog_find(CAT_AMO, "leads");
	const struct cat_entity *notes = catalog_find(CAT_AMO, "notes");

	(void)state;
	assert_non_null(leads);
	assert_non_null(notes);
	assert_ptr_equal(catalog_find_alias(CAT_AMO, "leads", 5), leads);
	assert_ptr_equal(catalog_find_alias(CAT_AMO, "lead", 4), leads);
	assert_ptr_equal(catalog_find_alias(CAT_AMO, "common_note_deleted", 11), notes);
	assert_ptr_equal(catalog_find_alias(CAT_AMO, "note", 4), notes);
	assert_null(catalog_find_alias(CAT_AMO, "lea", 3));		/* a prefix is not a name */
	assert_null(catalog_find_alias(CAT_AMO, "leadsx", 6));
	assert_null(catalog_find_alias(CAT_AMO, "", 0));
	assert_null(catalog_find_alias(CAT_HOLLIHOP, "lead", 4));	/* per CRM */
	assert_true(catalog_is_named(leads, "lead", 4));
	assert_true(catalog_is_named(leads, "leads", 5));
	assert_false(catalog_is_named(leads, "contact", 7));
}

/* The event log is a flag, not a name: exactly one amoCRM entity is scanned for deletions. */
static void
test_catalog_event_log_is_one_flagged_entity(void **state)
{
	const struct cat_crm_desc *d = &catalog_amo;
	int n = 0;

	(void)state;
	for (size_t i = 0; i < d->nentities; i++) {
		const struct cat_entity *e = &d->entities[i];
		if (!(e->flags & CE_EVENT_LOG))
			continue;
		n++;
		assert_true(e->list_key != NULL && e->list_key[0] != '\0');
		assert_false(e->flags & CE_EVENT_DELETES);
	}
	assert_int_equal(n, 1);
	for (size_t i = 0; i < catalog_hollihop.nentities; i++)
		assert_false(catalog_hollihop.entities[i].flags & CE_EVENT_LOG);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_amo_catalogue),
		cmocka_unit_test(test_hollihop_catalogue),
		cmocka_unit_test(test_catalog_find_alias_resolves_names_and_aliases),
		cmocka_unit_test(test_catalog_event_log_is_one_flagged_entity),
		cmocka_unit_test(test_changed_by_names_parent_timestamps),
		cmocka_unit_test(test_changed_via_names_earlier_entities),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
