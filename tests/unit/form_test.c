/*
 * form_test.c - unit tests for services/hook-gateway/form.c (amoCRM webhook bodies).
 *
 * Hand-written bodies for every entity/action shape of amoCRM's webhook format (brackets
 * percent-encoded as amoCRM sends them), nested custom fields that must not leak into the
 * event, percent/plus/UTF-8 decoding, every limit and malformed inputs. With a directory
 * argument it also parses every *.form sample there (dumped by the fake amoCRM).
 */
#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "arena.h"
#include "errors.h"
#include "form.h"

static const char *samples_dir;

struct parsed {
	struct arena		a;
	Crmsync__HookDelivery	d;
	char			err[160];
	int			rv;
};

static struct form_limits lim_default = FORM_LIMITS_DEFAULT;

static void
parse_lim(struct parsed *p, const char *body, size_t len, const struct form_limits *lim)
{
	Crmsync__HookDelivery init = CRMSYNC__HOOK_DELIVERY__INIT;

	p->d = init;
	arena_init(&p->a, form_arena_size(len, lim));
	p->rv = form_parse(body, len, lim, &p->a, &p->d, p->err, sizeof(p->err));
}

static void
parse(struct parsed *p, const char *body)
{
	parse_lim(p, body, strlen(body), &lim_default);
}

static void
done(struct parsed *p)
{
	arena_free(&p->a);
}

/* Turn readable "leads[add][0][id]=1" into the wire form: brackets as %5B/%5D. */
static char *
wire(const char *s)
{
	size_t n = strlen(s);
	char *o = malloc(3 * n + 1), *q = o;

	for (; *s; s++) {
		if (*s == '[' || *s == ']')
			q += sprintf(q, "%%%02X", (unsigned char)*s);
		else
			*q++ = *s;
	}
	*q = '\0';
	return o;
}

static const Crmsync__HookEvent *
ev(struct parsed *p, size_t i)
{
	assert_true(i < p->d.n_events);
	return p->d.events[i];
}

/* ---- one test per kind of hook ---- */

struct kind_case {
	const char	*body;		/* readable; converted with wire() */
	const char	*entity, *action;
	int64_t		 id;
	const char	*uid;
	int64_t		 status_id, pipeline_id, old_status_id, old_pipeline_id;
	int64_t		 updated_at, element_id;
	const char	*element_type;
	const char	*type;		/* [type] as sent; NULL = "" */
};

#define ACC "&account[subdomain]=edu&account[id]=29&account[_links][self]=https://edu.amocrm.ru"

static const struct kind_case kinds[] = {
	{ "leads[add][0][id]=11&leads[add][0][status_id]=142&leads[add][0][pipeline_id]=7&leads[add][0][last_modified]=1700000000" ACC,
	  "leads", "add", 11, "", 142, 7, 0, 0, 1700000000, 0, "", NULL },
	{ "leads[update][0][id]=12&leads[update][0][updated_at]=1700000001&leads[update][0][last_modified]=1" ACC,
	  "leads", "update", 12, "", 0, 0, 0, 0, 1700000001, 0, "", NULL },
	{ "leads[delete][0][id]=13&leads[delete][0][status_id]=143&leads[delete][0][pipeline_id]=8" ACC,
	  "leads", "delete", 13, "", 143, 8, 0, 0, 0, 0, "", NULL },
	{ "leads[restore][0][id]=14" ACC, "leads", "restore", 14, "", 0, 0, 0, 0, 0, 0, "", NULL },
	{ "leads[status][0][id]=15&leads[status][0][status_id]=2&leads[status][0][pipeline_id]=3&leads[status][0][old_status_id]=4&leads[status][0][old_pipeline_id]=5" ACC,
	  "leads", "status", 15, "", 2, 3, 4, 5, 0, 0, "", NULL },
	{ "leads[responsible][0][id]=16&leads[responsible][0][responsible_user_id]=99" ACC,
	  "leads", "responsible", 16, "", 0, 0, 0, 0, 0, 0, "", NULL },
	{ "leads[note][0][note][id]=17&leads[note][0][note][element_id]=15&leads[note][0][note][element_type]=2&leads[note][0][note][date_create]=2022-10-26+03:00:00&leads[note][0][note][updated_at]=1666742400" ACC,
	  "leads", "note", 17, "", 0, 0, 0, 0, 1666742400, 15, "2", NULL },
	{ "contacts[add][0][id]=21&contacts[add][0][type]=contact" ACC, "contacts", "add", 21, "", 0, 0, 0, 0, 0, 0, "", "contact" },
	{ "contacts[update][0][id]=22&contacts[update][0][last_modified]=5" ACC, "contacts", "update", 22, "", 0, 0, 0, 0, 5, 0, "", NULL },
	{ "contacts[delete][0][id]=23" ACC, "contacts", "delete", 23, "", 0, 0, 0, 0, 0, 0, "", NULL },
	{ "contacts[restore][0][id]=24" ACC, "contacts", "restore", 24, "", 0, 0, 0, 0, 0, 0, "", NULL },
	{ "contacts[responsible][0][id]=25" ACC, "contacts", "responsible", 25, "", 0, 0, 0, 0, 0, 0, "", NULL },
	{ "contacts[note][0][note][id]=26&contacts[note][0][note][element_id]=21&contacts[note][0][note][element_type]=1" ACC,
	  "contacts", "note", 26, "", 0, 0, 0, 0, 0, 21, "1", NULL },
	/* Companies arrive as contacts[...] with [type]=company (captures 2016-2022): the event
	 * keeps the wire entity and the type; amo-sync routes by them. */
	{ "contacts[add][0][id]=31&contacts[add][0][name]=Школа&contacts[add][0][type]=company" ACC,
	  "contacts", "add", 31, "", 0, 0, 0, 0, 0, 0, "", "company" },
	{ "contacts[update][0][id]=32&contacts[update][0][last_modified]=6&contacts[update][0][type]=company" ACC,
	  "contacts", "update", 32, "", 0, 0, 0, 0, 6, 0, "", "company" },
	{ "contacts[delete][0][id]=33&contacts[delete][0][type]=company" ACC,
	  "contacts", "delete", 33, "", 0, 0, 0, 0, 0, 0, "", "company" },
	{ "contacts[restore][0][id]=34&contacts[restore][0][type]=company" ACC,
	  "contacts", "restore", 34, "", 0, 0, 0, 0, 0, 0, "", "company" },
	{ "contacts[responsible][0][id]=35&contacts[responsible][0][type]=company" ACC,
	  "contacts", "responsible", 35, "", 0, 0, 0, 0, 0, 0, "", "company" },
	{ "contacts[note][0][note][id]=36&contacts[note][0][note][element_id]=31&contacts[note][0][note][element_type]=3&contacts[note][0][type]=company" ACC,
	  "contacts", "note", 36, "", 0, 0, 0, 0, 0, 31, "3", "company" },
	/* A 2017 note: no [note][id], values single-quoted, the type outside [note]. */
	{ "contacts[note][0][note][text]='Звонок'&contacts[note][0][note][element_type]=3&contacts[note][0][note][element_id]=31&contacts[note][0][note][timestamp_x]='2017-01-09+13:01:35'&contacts[note][0][type]=company" ACC,
	  "contacts", "note", 0, "", 0, 0, 0, 0, 0, 31, "3", "company" },
	/* Never seen on the wire, still accepted as its own entity. */
	{ "companies[update][0][id]=37" ACC, "companies", "update", 37, "", 0, 0, 0, 0, 0, 0, "", NULL },
	{ "customers[add][0][id]=41&customers[add][0][status_id]=9" ACC, "customers", "add", 41, "", 9, 0, 0, 0, 0, 0, "", NULL },
	{ "customers[update][0][id]=42" ACC, "customers", "update", 42, "", 0, 0, 0, 0, 0, 0, "", NULL },
	{ "customers[delete][0][id]=43" ACC, "customers", "delete", 43, "", 0, 0, 0, 0, 0, 0, "", NULL },
	{ "customers[responsible][0][id]=44" ACC, "customers", "responsible", 44, "", 0, 0, 0, 0, 0, 0, "", NULL },
	{ "customers[note][0][note][id]=45&customers[note][0][note][element_id]=41&customers[note][0][note][element_type]=12" ACC,
	  "customers", "note", 45, "", 0, 0, 0, 0, 0, 41, "12", NULL },
	{ "task[add][0][id]=51&task[add][0][element_id]=11&task[add][0][element_type]=2&task[add][0][complete_till]=1686700799" ACC,
	  "task", "add", 51, "", 0, 0, 0, 0, 0, 11, "2", NULL },
	{ "task[update][0][id]=52&task[update][0][element_id]=21&task[update][0][element_type]=1" ACC,
	  "task", "update", 52, "", 0, 0, 0, 0, 0, 21, "1", NULL },
	{ "task[delete][0][id]=53" ACC, "task", "delete", 53, "", 0, 0, 0, 0, 0, 0, "", NULL },
	{ "task[responsible][0][id]=54" ACC, "task", "responsible", 54, "", 0, 0, 0, 0, 0, 0, "", NULL },
	{ "unsorted[add][0][uid]=b1c993be23&unsorted[add][0][source]=sip&unsorted[add][0][category]=sip&unsorted[add][0][lead_id]=61&unsorted[add][0][pipeline_id]=3&unsorted[add][0][data][contacts][0][id]=5&unsorted[add][0][source_data][from]=%2B7999" ACC,
	  "unsorted", "add", 0, "b1c993be23", 0, 3, 0, 0, 0, 61, "leads", NULL },
	{ "unsorted[update][0][uid]=c2" ACC, "unsorted", "update", 0, "c2", 0, 0, 0, 0, 0, 0, "", NULL },
	{ "unsorted[delete][0][action]=accept&unsorted[delete][0][uid]=1234&unsorted[delete][0][accept_result][leads][0]=3" ACC,
	  "unsorted", "delete", 0, "1234", 0, 0, 0, 0, 0, 0, "", NULL },
	{ "talk[add][0][talk_id]=71&talk[add][0][chat_id]=cfbe5876-ce99&talk[add][0][entity_id]=11&talk[add][0][entity_type]=lead&talk[add][0][updated_at]=1709424000" ACC,
	  "talk", "add", 71, "cfbe5876-ce99", 0, 0, 0, 0, 1709424000, 11, "lead", NULL },
	{ "talk[update][0][talk_id]=72&talk[update][0][id]=999" ACC, "talk", "update", 72, "", 0, 0, 0, 0, 0, 0, "", NULL },
	{ "message[add][0][id]=70ce158b-e5b9&message[add][0][chat_id]=cfbe&message[add][0][talk_id]=71&message[add][0][element_type]=2&message[add][0][entity_type]=lead&message[add][0][element_id]=12&message[add][0][entity_id]=13&message[add][0][type]=incoming&message[add][0][author][id]=a-1&message[add][0][author][type]=external" ACC,
	  "message", "add", 0, "70ce158b-e5b9", 0, 0, 0, 0, 0, 12, "2", "incoming" },
	{ "catalogs[add][0][id]=1000001&catalogs[add][0][catalog_id]=1001&catalogs[add][0][custom_fields][1][values][0][value][unit_price]=10" ACC,
	  "catalogs", "add", 1000001, "", 0, 0, 0, 0, 0, 1001, "catalogs", NULL },
	{ "catalogs[update][0][id]=1000002&catalogs[update][0][catalog_id]=1001" ACC,
	  "catalogs", "update", 1000002, "", 0, 0, 0, 0, 0, 1001, "catalogs", NULL },
	{ "catalogs[delete][0][id]=1000003" ACC, "catalogs", "delete", 1000003, "", 0, 0, 0, 0, 0, 0, "", NULL },
	/* Not in the notes but must not be lost: an unknown entity keeps the defaults. */
	{ "outgoing_message[add][0][id]=abc-1" ACC, "outgoing_message", "add", 0, "abc-1", 0, 0, 0, 0, 0, 0, "", NULL },
	{ "widgets[install][0][id]=81" ACC, "widgets", "install", 81, "", 0, 0, 0, 0, 0, 0, "", NULL },
};

static void
test_every_kind(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++) {
		const struct kind_case *k = &kinds[i];
		char *body = wire(k->body);
		struct parsed p;
		const Crmsync__HookEvent *e;

		parse(&p, body);
		if (p.rv != 0)
			fail_msg("case %zu (%s): rv=%d %s", i, k->body, p.rv, p.err);
		assert_int_equal(p.d.n_events, 1);
		e = ev(&p, 0);
		assert_string_equal(e->entity, k->entity);
		assert_string_equal(e->action, k->action);
		if (e->id != k->id)
			fail_msg("case %zu: id %lld want %lld", i, (long long)e->id, (long long)k->id);
		assert_string_equal(e->uid, k->uid);
		assert_int_equal(e->status_id, k->status_id);
		assert_int_equal(e->pipeline_id, k->pipeline_id);
		assert_int_equal(e->old_status_id, k->old_status_id);
		assert_int_equal(e->old_pipeline_id, k->old_pipeline_id);
		assert_int_equal(e->updated_at, k->updated_at);
		assert_int_equal(e->element_id, k->element_id);
		assert_string_equal(e->element_type, k->element_type);
		assert_string_equal(e->type, k->type != NULL ? k->type : "");
		assert_int_equal(e->account_id, 29);
		assert_string_equal(p.d.subdomain, "edu");
		assert_int_equal(p.d.account_id, 29);
		done(&p);
		free(body);
	}
}

/* CAP-2 style: a status change with deep custom fields, tags, and a date field bare at
 * [values][0]. None of the nested ids may overwrite the lead's own fields. */
static void
test_nested_custom_fields(void **state)
{
	const char *raw =
	    "leads[status][0][id]=25399013&leads[status][0][name]=%D0%A1%D0%B4%D0%B5%D0%BB%D0%BA%D0%B0+1"
	    "&leads[status][0][status_id]=142&leads[status][0][old_status_id]=7&leads[status][0][pipeline_id]=9"
	    "&leads[status][0][custom_fields][0][id]=427183&leads[status][0][custom_fields][0][name]=Checkbox"
	    "&leads[status][0][custom_fields][0][values][0][value]=1"
	    "&leads[status][0][custom_fields][1][id]=427497&leads[status][0][custom_fields][1][values][0][value]=a"
	    "&leads[status][0][custom_fields][1][values][0][enum]=794355&leads[status][0][custom_fields][1][values][1][value]=b"
	    "&leads[status][0][custom_fields][2][id]=427531&leads[status][0][custom_fields][2][values][0]=1542067200"
	    "&leads[status][0][custom_fields][3][values][0][value][unit_price]=10&leads[status][0][custom_fields][3][values][0][value][status_id]=1"
	    "&leads[status][0][tags][0][id]=5&leads[status][0][tags][0][name]=x&leads[status][0][updated_at]=1542000000"
	    "&contacts[update][0][id]=31&contacts[update][0][linked_leads_id][25399013][ID]=25399013"
	    "&contacts[update][0][custom_fields][0][id]=1&contacts[update][0][custom_fields][0][code]=PHONE"
	    "&contacts[update][0][custom_fields][0][values][0][value]=%2B7+999&contacts[update][0][custom_fields][0][values][0][enum]=4808271"
	    "&account[subdomain]=test&account[id]=1";
	char *body = wire(raw);
	struct parsed p;

	(void)state;
	parse(&p, body);
	assert_int_equal(p.rv, 0);
	assert_int_equal(p.d.n_events, 2);
	assert_string_equal(ev(&p, 0)->entity, "leads");
	assert_int_equal(ev(&p, 0)->id, 25399013);
	assert_int_equal(ev(&p, 0)->status_id, 142);
	assert_int_equal(ev(&p, 0)->old_status_id, 7);
	assert_int_equal(ev(&p, 0)->pipeline_id, 9);
	assert_int_equal(ev(&p, 0)->updated_at, 1542000000);
	assert_string_equal(ev(&p, 1)->entity, "contacts");
	assert_string_equal(ev(&p, 1)->action, "update");
	assert_int_equal(ev(&p, 1)->id, 31);
	done(&p);
	free(body);
}

/* A bulk edit: many indexes and several entities in one body, keys interleaved. */
static void
test_batch_order(void **state)
{
	char raw[8192], *body;
	size_t o = 0;
	struct parsed p;

	(void)state;
	for (int i = 0; i < 50; i++)
		o += (size_t)snprintf(raw + o, sizeof(raw) - o, "leads[update][%d][id]=%d&", i, 1000 + i);
	for (int i = 0; i < 50; i++)
		o += (size_t)snprintf(raw + o, sizeof(raw) - o, "leads[update][%d][last_modified]=%d&", i, i);
	o += (size_t)snprintf(raw + o, sizeof(raw) - o,
	    "task[add][0][id]=7&leads[status][0][id]=5&account[id]=3");
	body = wire(raw);
	parse(&p, body);
	assert_int_equal(p.rv, 0);
	assert_int_equal(p.d.n_events, 52);
	for (int i = 0; i < 50; i++) {
		assert_string_equal(ev(&p, (size_t)i)->action, "update");
		assert_int_equal(ev(&p, (size_t)i)->id, 1000 + i);
		assert_int_equal(ev(&p, (size_t)i)->updated_at, i);
		assert_int_equal(ev(&p, (size_t)i)->account_id, 3);
	}
	assert_string_equal(ev(&p, 50)->entity, "task");
	assert_string_equal(ev(&p, 51)->action, "status");
	done(&p);
	free(body);
}

/* Which name wins does not depend on key order. */
static void
test_field_ranks(void **state)
{
	struct parsed p;

	(void)state;
	parse(&p, "leads[update][0][updated_at]=20&leads[update][0][last_modified]=10&leads[update][0][id]=1");
	assert_int_equal(p.rv, 0);
	assert_int_equal(ev(&p, 0)->updated_at, 20);
	done(&p);
	parse(&p, "leads[update][0][last_modified]=10&leads[update][0][updated_at]=20&leads[update][0][id]=1");
	assert_int_equal(ev(&p, 0)->updated_at, 20);
	done(&p);
	/* the [note] level beats a same-named field one level up */
	parse(&p, "leads[note][0][note][id]=5&leads[note][0][id]=9&leads[note][0][element_id]=1&leads[note][0][note][element_id]=2");
	assert_int_equal(p.rv, 0);
	assert_int_equal(ev(&p, 0)->id, 5);
	assert_int_equal(ev(&p, 0)->element_id, 2);
	done(&p);
	/* an entity's own account_id wins over account[id] */
	parse(&p, "leads[add][0][id]=1&leads[add][0][account_id]=77&account[id]=3");
	assert_int_equal(ev(&p, 0)->account_id, 77);
	done(&p);
	/* element_id beats entity_id beats the implied catalog/lead ids */
	parse(&p, "message[add][0][entity_id]=4&message[add][0][element_id]=3&message[add][0][entity_type]=lead");
	assert_int_equal(ev(&p, 0)->element_id, 3);
	assert_string_equal(ev(&p, 0)->element_type, "lead");
	done(&p);
	/* a number that is not one is ignored, not fatal */
	parse(&p, "leads[add][0][id]=12x&leads[add][0][status_id]=99999999999999999999&account[id]=1");
	assert_int_equal(p.rv, 0);
	assert_int_equal(ev(&p, 0)->id, 0);
	assert_string_equal(ev(&p, 0)->uid, "12x");
	assert_int_equal(ev(&p, 0)->status_id, 0);
	done(&p);
	parse(&p, "leads[add][0][id]=-9223372036854775808&account[id]=9223372036854775807");
	assert_int_equal(ev(&p, 0)->id, INT64_MIN);
	assert_int_equal(p.d.account_id, INT64_MAX);
	done(&p);
}

static void
test_decoding(void **state)
{
	struct parsed p;

	(void)state;
	/* '+' is a space, %2B a plus, Cyrillic percent-encoded, raw UTF-8 accepted too */
	parse(&p, "account%5Bsubdomain%5D=a+b%2Bc&unsorted%5Badd%5D%5B0%5D%5Buid%5D=%D1%82%D0%B5%D1%81%D1%82");
	assert_int_equal(p.rv, 0);
	assert_string_equal(p.d.subdomain, "a b+c");
	assert_string_equal(ev(&p, 0)->uid, "\xd1\x82\xd0\xb5\xd1\x81\xd1\x82");
	done(&p);
	parse(&p, "unsorted[add][0][uid]=\xf0\x9f\x99\x82&account[id]=1");
	assert_int_equal(p.rv, 0);
	assert_string_equal(ev(&p, 0)->uid, "\xf0\x9f\x99\x82");
	done(&p);
	/* lower-case hex, an '=' inside a value, empty values, empty pairs, a trailing newline */
	parse(&p, "account[subdomain]=x%3dy=z&&account[id]=&=orphan&leads[add][0][id]=3\r\n");
	assert_int_equal(p.rv, 0);
	assert_string_equal(p.d.subdomain, "x=y=z");
	assert_int_equal(p.d.account_id, 0);
	assert_int_equal(ev(&p, 0)->id, 3);
	done(&p);
	/* a key without '=' has an empty value */
	parse(&p, "leads[add][0][id]&account[id]=4");
	assert_int_equal(p.rv, 0);
	assert_int_equal(p.d.n_events, 1);
	assert_int_equal(ev(&p, 0)->id, 0);
	done(&p);
	/* PHP's empty index "[]" is still an index */
	parse(&p, "leads[add][][id]=8");
	assert_int_equal(p.rv, 0);
	assert_int_equal(ev(&p, 0)->id, 8);
	done(&p);
}

static void
test_account_only_and_no_index(void **state)
{
	struct parsed p;

	(void)state;
	parse(&p, "account[subdomain]=edu&account[id]=5&leads[add]=junk&leads=1");
	assert_int_equal(p.rv, 0);
	assert_int_equal(p.d.n_events, 0);
	assert_int_equal(p.d.account_id, 5);
	done(&p);
}

/*
 * Shapes of real hooks no other case produces (issue 10 item 6; tests/contract/amo has each
 * capture's whole shape): a stage move sent as leads[update] with old_status_id and no price;
 * a delete with [id] and [type] only; a 2016 body whose account is only its subdomain; a
 * 2017 note without [note][id], values single-quoted; HTML-escaped note text; an unsorted
 * chat with deep source_data; a message with author and attachment levels.
 */
static void
test_real_world_shapes(void **state)
{
	char *body = wire(
	    "leads[update][0][id]=501&leads[update][0][status_id]=142&leads[update][0][old_status_id]=77"
	    "&leads[update][0][pipeline_id]=9&leads[update][0][last_modified]=1700000500"
	    "&contacts[delete][0][id]=502&contacts[delete][0][type]=company"
	    "&leads[note][0][note][text]='%26lt%3Bb%26gt%3B%D0%9F%D1%80%D0%B8%D0%B2%D0%B5%D1%82%26lt%3B%2Fb%26gt%3B+%26quot%3B%D0%B0%26quot%3B'"
	    "&leads[note][0][note][attachement]=''&leads[note][0][note][note_type]=4"
	    "&leads[note][0][note][element_type]=2&leads[note][0][note][element_id]=501"
	    "&leads[note][0][note][timestamp_x]='2017-01-09+13:01:19'"
	    "&unsorted[add][0][uid]=00b6258&unsorted[add][0][category]=chats"
	    "&unsorted[add][0][source_data][origin][chat_id]=c-1&unsorted[add][0][source_data][data][0][id]=x"
	    "&unsorted[add][0][lead_id]=503&unsorted[add][0][pipeline_id]=9"
	    "&message[add][0][id]=b26bbe6d&message[add][0][chat_id]=f743&message[add][0][talk_id]=166"
	    "&message[add][0][type]=incoming&message[add][0][author][type]=external"
	    "&message[add][0][attachment][type]=picture"
	    "&account[subdomain]=old2016");
	struct parsed p;

	(void)state;
	parse(&p, body);
	assert_int_equal(p.rv, 0);
	assert_int_equal(p.d.n_events, 5);
	assert_string_equal(p.d.subdomain, "old2016");
	assert_int_equal(p.d.account_id, 0);
	/* the stage move */
	assert_string_equal(ev(&p, 0)->action, "update");
	assert_int_equal(ev(&p, 0)->id, 501);
	assert_int_equal(ev(&p, 0)->status_id, 142);
	assert_int_equal(ev(&p, 0)->old_status_id, 77);
	assert_int_equal(ev(&p, 0)->updated_at, 1700000500);
	/* the delete: id and type, nothing else */
	assert_int_equal(ev(&p, 1)->id, 502);
	assert_string_equal(ev(&p, 1)->type, "company");
	assert_int_equal(ev(&p, 1)->updated_at, 0);
	/* the note: no id, its element kept; the text is not read */
	assert_string_equal(ev(&p, 2)->action, "note");
	assert_int_equal(ev(&p, 2)->id, 0);
	assert_int_equal(ev(&p, 2)->element_id, 501);
	assert_string_equal(ev(&p, 2)->element_type, "2");
	/* the unsorted chat: deep keys do not leak (chat_id there is no uid) */
	assert_string_equal(ev(&p, 3)->uid, "00b6258");
	assert_int_equal(ev(&p, 3)->element_id, 503);
	/* the message: its own [type], not the author's */
	assert_string_equal(ev(&p, 4)->uid, "b26bbe6d");
	assert_string_equal(ev(&p, 4)->type, "incoming");
	for (size_t i = 0; i < p.d.n_events; i++)
		assert_int_equal(ev(&p, i)->account_id, 0);
	done(&p);
	free(body);
}

static void
expect_rv(const char *body, size_t len, int want)
{
	struct parsed p;

	parse_lim(&p, body, len, &lim_default);
	if (p.rv != want)
		fail_msg("body \"%.*s\": rv=%d (%s) want %d", (int)len, body, p.rv, p.err, want);
	assert_true(p.err[0] != '\0');
	done(&p);
}

#define EXPECT(body, want) expect_rv(body, sizeof(body) - 1, want)

static void
test_utf8(void **state)
{
	(void)state;
	EXPECT("leads[add][0][uid]=%C3%28", CS_EUTF8);		/* bad continuation */
	EXPECT("leads[add][0][uid]=%C0%AF", CS_EUTF8);		/* overlong '/' */
	EXPECT("leads[add][0][uid]=%E0%80%AF", CS_EUTF8);	/* overlong, 3 bytes */
	EXPECT("leads[add][0][uid]=%ED%A0%80", CS_EUTF8);	/* surrogate */
	EXPECT("leads[add][0][uid]=%F4%90%80%80", CS_EUTF8);	/* > U+10FFFF */
	EXPECT("leads[add][0][uid]=%F0%9F%99", CS_EUTF8);	/* truncated */
	EXPECT("leads[add][0][uid]=%FF", CS_EUTF8);
	EXPECT("leads[add][0][uid]=a%00b", CS_EUTF8);		/* NUL */
	EXPECT("leads[add][0][uid]=\xff", CS_EUTF8);		/* raw byte */
	EXPECT("leads[add][0][%80]=1", CS_EUTF8);		/* in a key */
	assert_true(form_utf8_valid((const unsigned char *)"\xe2\x82\xac\xf4\x8f\xbf\xbf", 7));
	assert_false(form_utf8_valid((const unsigned char *)"\xe2\x82", 2));
	assert_false(form_utf8_valid((const unsigned char *)"\x80", 1));
	assert_true(form_utf8_valid((const unsigned char *)"", 0));
}

static void
test_malformed(void **state)
{
	(void)state;
	EXPECT("leads[add][0][id]=%zz", CS_EPROTO);
	EXPECT("leads[add][0][id]=%4", CS_EPROTO);
	EXPECT("leads[add][0][id]=%", CS_EPROTO);
	EXPECT("leads%5Badd%5D%5B0%5D%5Bid%5=1", CS_EPROTO);	/* bad escape in a key */
	EXPECT("leads[add[0][id]=1", CS_EPROTO);		/* '[' inside a segment */
	EXPECT("leads[add][0][id=1", CS_EPROTO);		/* unclosed */
	EXPECT("leads[add]x[0]=1", CS_EPROTO);			/* text after ']' */
	EXPECT("lea]ds[add][0][id]=1", CS_EPROTO);		/* ']' in the name */
	EXPECT("[add][0][id]=1", CS_EPROTO);			/* no name */
	EXPECT("{\"leads\":{\"add\":[{\"id\":1}]}}", CS_EPROTO);	/* JSON is not a hook */
	EXPECT("hello", CS_EPROTO);
	EXPECT("", CS_EPROTO);
	EXPECT("\n", CS_EPROTO);
}

static void
test_limits(void **state)
{
	struct form_limits lim = FORM_LIMITS_DEFAULT;
	struct parsed p;
	char *big;
	size_t n;

	(void)state;
	/* pairs */
	lim.max_pairs = 3;
	parse_lim(&p, "a=1&b=2&account[id]=3", 21, &lim);
	assert_int_equal(p.rv, 0);
	done(&p);
	parse_lim(&p, "a=1&b=2&c=3&account[id]=3", 25, &lim);
	assert_int_equal(p.rv, CS_ETOOBIG);
	done(&p);
	/* depth: name + 4 segments ok at 4, not at 3 */
	lim = (struct form_limits)FORM_LIMITS_DEFAULT;
	lim.max_depth = 4;
	parse_lim(&p, "leads[a][0][b][c]=1", 19, &lim);
	assert_int_equal(p.rv, 0);
	done(&p);
	lim.max_depth = 3;
	parse_lim(&p, "leads[a][0][b][c]=1", 19, &lim);
	assert_int_equal(p.rv, CS_ETOOBIG);
	done(&p);
	/* the default depth takes amoCRM's deepest shape (9 segments) */
	parse(&p, "catalogs[add][0][custom_fields][1][values][0][value][unit_price]=1");
	assert_int_equal(p.rv, 0);
	done(&p);
	/* key length, counted after decoding */
	lim = (struct form_limits)FORM_LIMITS_DEFAULT;
	lim.max_key = 16;
	parse_lim(&p, "leads[a][0][id]=1", 17, &lim);	/* 15 bytes */
	assert_int_equal(p.rv, 0);
	done(&p);
	parse_lim(&p, "leads%5Ba%5D%5B0%5D%5Bidxx%5D=1", 31, &lim);	/* 17 bytes */
	assert_int_equal(p.rv, CS_ETOOBIG);
	done(&p);
	/* events */
	lim = (struct form_limits)FORM_LIMITS_DEFAULT;
	lim.max_events = 2;
	parse_lim(&p, "l[a][0][id]=1&l[a][1][id]=2&l[a][0][x]=3", 40, &lim);
	assert_int_equal(p.rv, 0);
	done(&p);
	parse_lim(&p, "l[a][0][id]=1&l[a][1][id]=2&l[a][2][id]=3", 41, &lim);
	assert_int_equal(p.rv, CS_ETOOBIG);
	done(&p);
	/* a huge body parses within its arena bound; a too-small arena fails cleanly */
	n = 200000;
	big = malloc(n * 32);
	for (size_t i = 0, o = 0; i < n; i++)
		o += (size_t)sprintf(big + o, "l[a][%zu][id]=%zu%s", i % 9000, i, i + 1 < n ? "&" : "");
	parse_lim(&p, big, strlen(big), &(struct form_limits){ 1000000, 16, 1024, 10000 });
	assert_int_equal(p.rv, 0);
	assert_int_equal(p.d.n_events, 9000);
	done(&p);
	{
		Crmsync__HookDelivery d = CRMSYNC__HOOK_DELIVERY__INIT;
		struct arena a;
		arena_init(&a, 4096);
		assert_int_equal(form_parse(big, strlen(big), &lim_default, &a, &d, NULL, 0), CS_ETOOBIG);
		arena_free(&a);
		arena_init(&a, 4096);
		assert_int_equal(form_parse(big, 4000, &lim_default, &a, &d, NULL, 0), CS_ENOMEM);
		arena_free(&a);
	}
	free(big);
}

/* What the gateway journals survives protobuf packing byte for byte. */
static void
test_pack_roundtrip(void **state)
{
	char *body = wire(kinds[6].body);
	struct parsed p;
	Crmsync__HookDelivery *u;
	uint8_t *buf;
	size_t n;

	(void)state;
	parse(&p, body);
	assert_int_equal(p.rv, 0);
	p.d.seq = 77;
	n = crmsync__hook_delivery__get_packed_size(&p.d);
	buf = malloc(n);
	crmsync__hook_delivery__pack(&p.d, buf);
	u = crmsync__hook_delivery__unpack(NULL, n, buf);
	assert_non_null(u);
	assert_int_equal(u->seq, 77);
	assert_string_equal(u->subdomain, "edu");
	assert_int_equal(u->n_events, 1);
	assert_string_equal(u->events[0]->action, "note");
	assert_int_equal(u->events[0]->element_id, 15);
	crmsync__hook_delivery__free_unpacked(u, NULL);
	free(buf);
	done(&p);
	free(body);
}

/* Every sample body the fake amoCRM dumps: parsed, with the account and an identity. */
static void
test_samples(void **state)
{
	DIR *d;
	struct dirent *de;
	int n = 0;

	(void)state;
	if (samples_dir == NULL)
		skip();
	assert_non_null(d = opendir(samples_dir));
	while ((de = readdir(d)) != NULL) {
		char path[4096], *body, kind[128];
		size_t len = strlen(de->d_name);
		struct parsed p;
		FILE *f;
		long sz;

		if (len < 6 || strcmp(de->d_name + len - 5, ".form") != 0)
			continue;
		snprintf(path, sizeof(path), "%s/%s", samples_dir, de->d_name);
		assert_non_null(f = fopen(path, "rb"));
		fseek(f, 0, SEEK_END);
		sz = ftell(f);
		rewind(f);
		body = malloc((size_t)sz + 1);
		assert_int_equal(fread(body, 1, (size_t)sz, f), (size_t)sz);
		fclose(f);
		parse_lim(&p, body, (size_t)sz, &lim_default);
		if (p.rv != 0)
			fail_msg("%s: rv=%d %s", de->d_name, p.rv, p.err);
		assert_true(p.d.n_events >= 1);
		assert_true(p.d.account_id > 0);
		assert_true(p.d.subdomain[0] != '\0');
		for (size_t i = 0; i < p.d.n_events; i++) {
			const Crmsync__HookEvent *e = p.d.events[i];
			if (e->id == 0 && e->uid[0] == '\0')
				fail_msg("%s: event %zu (%s/%s) has no id", de->d_name, i, e->entity, e->action);
			assert_int_equal(e->account_id, p.d.account_id);
			/* delete hooks carry ids only */
			if (strcmp(e->action, "delete") != 0 && (strcmp(e->action, "note") == 0 ||
			    strcmp(e->entity, "task") == 0 || strcmp(e->entity, "message") == 0))
				assert_true(e->element_id > 0);
			if (strcmp(e->action, "status") == 0)
				assert_true(e->status_id > 0 && e->pipeline_id > 0);
		}
		/* single-kind samples are named <entity>_<action>[...].form */
		if (strncmp(de->d_name, "batch", 5) != 0) {
			/* companies are sent as contacts[...] with [type]=company */
			snprintf(kind, sizeof(kind), "%s_%s", strcmp(p.d.events[0]->type, "company") == 0 ?
			    "companies" : p.d.events[0]->entity, p.d.events[0]->action);
			if (strncmp(de->d_name, kind, strlen(kind)) != 0)
				fail_msg("%s parsed as %s", de->d_name, kind);
		}
		done(&p);
		free(body);
		n++;
	}
	closedir(d);
	assert_true(n >= 30);
}

int
main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_every_kind),
		cmocka_unit_test(test_nested_custom_fields),
		cmocka_unit_test(test_batch_order),
		cmocka_unit_test(test_field_ranks),
		cmocka_unit_test(test_decoding),
		cmocka_unit_test(test_account_only_and_no_index),
		cmocka_unit_test(test_real_world_shapes),
		cmocka_unit_test(test_utf8),
		cmocka_unit_test(test_malformed),
		cmocka_unit_test(test_limits),
		cmocka_unit_test(test_pack_roundtrip),
		cmocka_unit_test(test_samples),
	};

	if (argc > 1)
		samples_dir = argv[1];
	return cmocka_run_group_tests(tests, NULL, NULL);
}
