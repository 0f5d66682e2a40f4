/* batch.c - test-side RecordBatch builder (see batch.h). Memory is plain malloc; tests are short. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "batch.h"
#include "bus.h"

struct h_batch {
	const struct cat_entity	*e;
	Crmsync__RecordBatch	 msg;
	size_t			 cap;
	uint64_t		 next_id;
};

static uint64_t h_batch_seq = 1;

struct h_batch *
h_batch_new(enum cat_crm crm, const char *entity, int64_t run_id)
{
	struct h_batch *b = calloc(1, sizeof(*b));

	b->e = catalog_find(crm, entity);
	if (b->e == NULL) {
		fprintf(stderr, "batch: unknown entity %s\n", entity);
		abort();
	}
	crmsync__record_batch__init(&b->msg);
	b->msg.crm = (Crmsync__Crm)crm;
	b->msg.entity = strdup(entity);
	b->msg.run_id = run_id;
	b->msg.batch_id = h_batch_seq++;
	b->msg.replace_children = 1;
	return b;
}

/* Fill values/mask for cols from "name", "value" pairs; unnamed columns are NULL. */
static void
fill(const struct cat_col *cols, size_t ncols, va_list ap, char ***values, ProtobufCBinaryData *mask)
{
	const char *name;

	*values = calloc(ncols ? ncols : 1, sizeof(char *));
	mask->len = (ncols + 7) / 8;
	mask->data = calloc(mask->len ? mask->len : 1, 1);
	for (size_t i = 0; i < ncols; i++)
		mask->data[i / 8] |= (uint8_t)(1u << (i % 8));
	while ((name = va_arg(ap, const char *)) != NULL) {
		const char *val = va_arg(ap, const char *);
		size_t i;
		for (i = 0; i < ncols && strcmp(cols[i].column, name) != 0; i++)
			;
		if (i == ncols) {
			fprintf(stderr, "batch: no column %s\n", name);
			abort();
		}
		if (val != NULL) {
			(*values)[i] = strdup(val);
			mask->data[i / 8] &= (uint8_t)~(1u << (i % 8));
		}
	}
	for (size_t i = 0; i < ncols; i++)
		if ((*values)[i] == NULL)
			(*values)[i] = strdup("");
}

void
h_rec(struct h_batch *b, const char *raw, int64_t version_us, int deleted, ...)
{
	Crmsync__Record *r = calloc(1, sizeof(*r));
	va_list ap;

	crmsync__record__init(r);
	va_start(ap, deleted);
	fill(b->e->cols, b->e->ncols, ap, &r->values, &r->null_mask);
	va_end(ap);
	r->n_values = b->e->ncols;
	r->source_updated_at_us = version_us;
	r->deleted = deleted;
	if (raw != NULL) {
		r->raw_json.data = (uint8_t *)strdup(raw);
		r->raw_json.len = strlen(raw);
	}
	if (b->msg.n_records == b->cap) {
		b->cap = b->cap ? b->cap * 2 : 16;
		b->msg.records = realloc(b->msg.records, b->cap * sizeof(*b->msg.records));
	}
	b->msg.records[b->msg.n_records++] = r;
}

void
h_child(struct h_batch *b, unsigned child, ...)
{
	Crmsync__Record *r = b->msg.records[b->msg.n_records - 1];
	Crmsync__ChildRow *c = calloc(1, sizeof(*c));
	va_list ap;

	crmsync__child_row__init(c);
	c->child = child;
	va_start(ap, child);
	fill(b->e->children[child].cols, b->e->children[child].ncols, ap, &c->values, &c->null_mask);
	va_end(ap);
	c->n_values = b->e->children[child].ncols;
	r->children = realloc(r->children, (r->n_children + 1) * sizeof(*r->children));
	r->children[r->n_children++] = c;
}

Crmsync__RecordBatch *
h_batch_msg(struct h_batch *b)
{
	return &b->msg;
}

int
h_batch_send(nng_socket s, struct h_batch *b, Crmsync__Envelope **ack)
{
	Crmsync__Envelope env = CRMSYNC__ENVELOPE__INIT;

	env.body_case = CRMSYNC__ENVELOPE__BODY_BATCH;
	env.batch = &b->msg;
	return bus_call_ack(s, &env, ack, 5000, 60000, NULL);
}

static void
free_values(char **v, size_t n, ProtobufCBinaryData *m)
{
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
	free(m->data);
}

void
h_batch_free(struct h_batch *b)
{
	if (b == NULL)
		return;
	for (size_t i = 0; i < b->msg.n_records; i++) {
		Crmsync__Record *r = b->msg.records[i];
		free_values(r->values, r->n_values, &r->null_mask);
		for (size_t c = 0; c < r->n_children; c++) {
			free_values(r->children[c]->values, r->children[c]->n_values, &r->children[c]->null_mask);
			free(r->children[c]);
		}
		free(r->children);
		free(r->raw_json.data);
		free(r);
	}
	free(b->msg.records);
	free(b->msg.entity);
	free(b);
}

int
h_run_begin(nng_socket s, enum cat_crm crm, int full, int64_t *run_id)
{
	Crmsync__Envelope env = CRMSYNC__ENVELOPE__INIT, *ack = NULL;
	Crmsync__RunBegin rb = CRMSYNC__RUN_BEGIN__INIT;
	int rv;

	rb.crm = (Crmsync__Crm)crm;
	rb.kind = full ? CRMSYNC__SYNC_KIND__SYNC_FULL : CRMSYNC__SYNC_KIND__SYNC_INCREMENTAL;
	rb.trigger = (char *)"test";
	env.body_case = CRMSYNC__ENVELOPE__BODY_RUN_BEGIN;
	env.run_begin = &rb;
	rv = bus_call_ack(s, &env, &ack, 5000, 60000, NULL);
	*run_id = rv == 0 ? ack->ack->run_id : 0;
	bus_free(ack);
	return rv;
}

int
h_run_end(nng_socket s, int64_t run_id, Crmsync__RunStatus status, const char *entity, int complete)
{
	Crmsync__Envelope env = CRMSYNC__ENVELOPE__INIT;
	Crmsync__RunEnd re = CRMSYNC__RUN_END__INIT;
	Crmsync__EntityResult er = CRMSYNC__ENTITY_RESULT__INIT, *ers[1] = { &er };

	re.run_id = run_id;
	re.status = status;
	re.error = (char *)"";
	er.entity = (char *)entity;
	er.complete = complete;
	re.n_entities = 1;
	re.entities = ers;
	env.body_case = CRMSYNC__ENVELOPE__BODY_RUN_END;
	env.run_end = &re;
	return bus_call_ack(s, &env, NULL, 5000, 60000, NULL);
}
