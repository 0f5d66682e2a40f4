/*
 * amo_contract_test.c - real amoCRM shapes through the real code path.
 *
 * Responses: every <name>.json here has the shape of a real response or of a vendor
 * documentation example (keys, key order, types, nesting, what is absent; README.md says
 * which) with values of our own; ../contract.h says how each is checked against its
 * <name>.expect (the response half is shared with hollihop_contract_test).
 *
 * Hooks: every hooks/<name>.form has the shape of a captured webhook body (keys, order,
 * encoding, what is absent) with values of our own. It goes through the gateway's form
 * parser and its journal (append, fsync, read back) and amo-sync's routing (tasks_route),
 * and hooks/<name>.expect says what must come out:
 *   subdomain S | account_id N | events N
 *   event I FIELD VALUE        a HookEvent member (entity action id uid account_id status_id
 *                              pipeline_id old_status_id old_pipeline_id updated_at
 *                              element_id element_type type); members not named are 0/""
 *   route I ENTITY PARAM KEY fetch|delete   or   route I ignored
 *
 * Last test: docs/api/amocrm.md documents every typed amo column with its evidence.
 */
#include <dirent.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <nng/nng.h>

#include "arena.h"
#include "batch.h"
#include "buf.h"
#include "bus.h"
#include "catalog.h"
#include "contract.h"
#include "errors.h"
#include "form.h"
#include "harness.h"
#include "journal.h"
#include "json.h"
#include "normalise.h"
#include "tasks.h"

/* ---------------------------------------------------------------- hooks */

static struct journal *jr;
static char jdir[256];

static const char *
ev_field(const Crmsync__HookEvent *e, const char *f, char *tmp, size_t cap)
{
	const struct { const char *name; const int64_t *v; } nums[] = {
		{ "id", &e->id }, { "account_id", &e->account_id }, { "status_id", &e->status_id },
		{ "pipeline_id", &e->pipeline_id }, { "old_status_id", &e->old_status_id },
		{ "old_pipeline_id", &e->old_pipeline_id }, { "updated_at", &e->updated_at },
		{ "element_id", &e->element_id },
	};

	if (strcmp(f, "entity") == 0)
		return e->entity;
	if (strcmp(f, "action") == 0)
		return e->action;
	if (strcmp(f, "uid") == 0)
		return e->uid;
	if (strcmp(f, "element_type") == 0)
		return e->element_type;
	if (strcmp(f, "type") == 0)
		return e->type;
	for (size_t i = 0; i < sizeof(nums) / sizeof(nums[0]); i++)
		if (strcmp(f, nums[i].name) == 0) {
			snprintf(tmp, cap, "%lld", (long long)*nums[i].v);
			return strcmp(tmp, "0") == 0 ? "" : tmp;
		}
	fail_msg("unknown event field %s", f);
	return NULL;
}

/* The value "event I FIELD VALUE" gives, or "" (0 / empty) when no line names it. */
static const char *
hook_want(char **lines, int n, int idx, const char *field)
{
	char pre[96];

	snprintf(pre, sizeof(pre), "event %d %s ", idx, field);
	for (int i = 0; i < n; i++)
		if (strncmp(lines[i], pre, strlen(pre)) == 0)
			return lines[i] + strlen(pre);
	return "";
}

static void
check_route(const char *name, const Crmsync__HookEvent *ev, int idx, char **lines, int n)
{
	const struct cat_entity *e = NULL;
	const char *param = NULL, *why = NULL;
	char key[64], got[256], pre[32];
	int del = 0, rv;

	rv = tasks_route(ev, &e, &param, key, sizeof(key), &del, &why);
	if (rv != 0)
		snprintf(got, sizeof(got), "ignored");
	else
		snprintf(got, sizeof(got), "%s %s %s %s", e->name, param != NULL ? param : "-", key,
		    del ? "delete" : "fetch");
	if (rv != 0 && (why == NULL || why[0] == '\0'))
		fail_msg("%s: event %d ignored without a reason", name, idx);
	snprintf(pre, sizeof(pre), "route %d ", idx);
	for (int i = 0; i < n; i++)
		if (strncmp(lines[i], pre, strlen(pre)) == 0) {
			if (strcmp(lines[i] + strlen(pre), got) != 0)
				fail_msg("%s: event %d routes to \"%s\", want \"%s\"", name, idx, got,
				    lines[i] + strlen(pre));
			return;
		}
	fail_msg("%s: no route line for event %d (it routes to \"%s\")", name, idx, got);
}

static void
run_hook(const char *name)
{
	static const char *fields[] = { "entity", "action", "id", "uid", "account_id", "status_id",
	    "pipeline_id", "old_status_id", "old_pipeline_id", "updated_at", "element_id",
	    "element_type", "type" };
	const struct form_limits lim = FORM_LIMITS_DEFAULT;
	Crmsync__HookDelivery d = CRMSYNC__HOOK_DELIVERY__INIT, *back;
	char path[1024], err[160], *lines[512], *save = NULL, tmp[32];
	size_t len, elen, plen;
	struct arena a;
	uint64_t seq, rseq;
	void *payload;
	int n = 0;

	snprintf(path, sizeof(path), "%s/hooks/%s.form", ct.dir, name);
	char *body = ct_slurp(path, &len);
	assert_non_null(body);
	snprintf(path, sizeof(path), "%s/hooks/%s.expect", ct.dir, name);
	char *exp = ct_slurp(path, &elen);
	if (exp == NULL)
		fail_msg("%s: missing (every hook fixture needs its expectations)", path);
	for (char *ln = strtok_r(exp, "\n", &save); ln != NULL && n < 512; ln = strtok_r(NULL, "\n", &save))
		if (ln[0] != '#' && ln[0] != '\0')
			lines[n++] = ln;

	/* The gateway: parse, journal (fsync'd), read back as amo-sync would receive it. */
	arena_init(&a, form_arena_size(len, &lim));
	if (form_parse(body, len, &lim, &a, &d, err, sizeof(err)) != 0)
		fail_msg("%s: the form parser refused it: %s", name, err);
	plen = crmsync__hook_delivery__get_packed_size(&d);
	uint8_t *buf = malloc(plen + 1);
	assert_non_null(buf);
	crmsync__hook_delivery__pack(&d, buf);
	assert_int_equal(journal_append_wait(jr, buf, plen, &seq), 0);
	assert_int_equal(journal_read(jr, 5000, &rseq, &payload, &plen), 0);
	assert_int_equal(rseq, seq);
	back = crmsync__hook_delivery__unpack(NULL, plen, payload);
	assert_non_null(back);

	for (int i = 0; i < n; i++) {
		char kw[32];
		const char *p = ct_word(lines[i], kw, sizeof(kw));
		if (p == NULL)
			fail_msg("%s: bad line %s", name, lines[i]);
		if (strcmp(kw, "subdomain") == 0 && strcmp(p, back->subdomain[0] ? back->subdomain : "-") != 0)
			fail_msg("%s: subdomain \"%s\", want \"%s\"", name, back->subdomain, p);
		if (strcmp(kw, "account_id") == 0 && back->account_id != strtoll(p, NULL, 10))
			fail_msg("%s: account_id %lld, want %s", name, (long long)back->account_id, p);
		if (strcmp(kw, "events") == 0 && (long)back->n_events != strtol(p, NULL, 10))
			fail_msg("%s: %zu events, want %s", name, back->n_events, p);
		if (strcmp(kw, "subdomain") != 0 && strcmp(kw, "account_id") != 0 &&
		    strcmp(kw, "events") != 0 && strcmp(kw, "event") != 0 && strcmp(kw, "route") != 0)
			fail_msg("%s: unknown keyword %s", name, kw);
	}
	for (size_t k = 0; k < back->n_events; k++) {
		const Crmsync__HookEvent *ev = back->events[k];
		for (size_t f = 0; f < sizeof(fields) / sizeof(fields[0]); f++) {
			const char *got = ev_field(ev, fields[f], tmp, sizeof(tmp));
			const char *want = hook_want(lines, n, (int)k, fields[f]);
			if (strcmp(got, want) != 0)
				fail_msg("%s: event %zu %s is \"%s\", want \"%s\"", name, k, fields[f], got, want);
		}
		check_route(name, ev, (int)k, lines, n);
	}
	crmsync__hook_delivery__free_unpacked(back, NULL);
	free(payload);
	free(buf);
	arena_free(&a);
	free(exp);
	free(body);
}

/* ---------------------------------------------------------------- tests */

static void
test_real_shapes_land_field_by_field(void **state)
{
	char *names[64];
	int n = ct_list(ct.dir, ".json", names, 64);

	(void)state;
	assert_true(n >= 7);
	for (int i = 0; i < n; i++) {
		fprintf(stderr, "contract: %s\n", names[i]);
		ct_run_fixture(names[i]);
		free(names[i]);
	}
}

static void
test_real_hooks_parse_journal_and_route(void **state)
{
	char hdir[600], *names[128];
	int n;

	(void)state;
	snprintf(hdir, sizeof(hdir), "%s/hooks", ct.dir);
	n = ct_list(hdir, ".form", names, 128);
	assert_true(n >= 29);
	for (int i = 0; i < n; i++) {
		fprintf(stderr, "contract: hooks/%s\n", names[i]);
		run_hook(names[i]);
		free(names[i]);
	}
}

/* docs/api/amocrm.md: a section per table, a row per typed column with its evidence. */
static void
test_every_typed_column_is_documented(void **state)
{
	const char *const tags[] = { "REAL", "DOCS", "ASSUMPTION" };

	(void)state;
	ct_check_docs("amocrm.md", tags, sizeof(tags) / sizeof(tags[0]));
}

static int
setup(void **state)
{
	(void)state;
	snprintf(jdir, sizeof(jdir), "/tmp/amo_contract_journal.XXXXXX");
	if (mkdtemp(jdir) == NULL)
		return -1;
	struct journal_opts jo = { .dir = jdir, .max_bytes = 64u << 20, .segment_bytes = 1u << 20,
	    .cursor_interval_ms = 1000, .nosync = 0 };
	if (journal_open(&jr, &jo) != 0)
		return -1;
	return ct_start(CAT_AMO, "amo", 1);
}

static int
teardown(void **state)
{
	char cmd[512];

	(void)state;
	journal_close(jr);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", jdir);
	(void)system(cmd);
	return ct_stop();
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_real_shapes_land_field_by_field),
		cmocka_unit_test(test_real_hooks_parse_journal_and_route),
		cmocka_unit_test(test_every_typed_column_is_documented),
	};
	return h_done(cmocka_run_group_tests(tests, setup, teardown));
}
