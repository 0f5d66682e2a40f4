/*
 * catalog.c - lookups over the compiled-in catalogues and the DDL they imply.
 * Every entity table gets, beside its typed columns: source_updated_at (the source's
 * version), synced_at, deleted_at, raw jsonb (the source row, lossless) and content_hash
 * (the store's hash of raw and the typed values, to skip unchanged rows cheaply).
 */
#include <stdio.h>
#include <string.h>

#include "buf.h"
#include "catalog.h"
#include "errors.h"
#include "strlist.h"

const struct cat_crm_desc *
catalog_crm(enum cat_crm crm)
{
	switch (crm) {
	case CAT_AMO:		return &catalog_amo;
	case CAT_HOLLIHOP:	return &catalog_hollihop;
	}
	return NULL;
}

const struct cat_entity *
catalog_find(enum cat_crm crm, const char *name)
{
	const struct cat_crm_desc *d = catalog_crm(crm);

	if (d == NULL || name == NULL)
		return NULL;
	for (size_t i = 0; i < d->nentities; i++)
		if (strcmp(d->entities[i].name, name) == 0)
			return &d->entities[i];
	return NULL;
}

int
catalog_is_named(const struct cat_entity *e, const char *name, size_t len)
{
	return (strlen(e->name) == len && memcmp(e->name, name, len) == 0) ||
	    strlist_has(e->aliases, name, len);
}

const struct cat_entity *
catalog_find_alias(enum cat_crm crm, const char *name, size_t len)
{
	const struct cat_crm_desc *d = catalog_crm(crm);

	if (d == NULL || name == NULL || len == 0)
		return NULL;
	for (size_t i = 0; i < d->nentities; i++)
		if (catalog_is_named(&d->entities[i], name, len))
			return &d->entities[i];
	return NULL;
}

const char *
catalog_sql_type(enum cat_type t)
{
	switch (t) {
	case CT_INT8:		return "bigint";
	case CT_NUMERIC:
	case CT_MONEY_TEXT:	return "numeric";
	case CT_TEXT:		return "text";
	case CT_BOOL:		return "boolean";
	case CT_TS_UNIX:
	case CT_TS_LOCAL:	return "timestamptz";
	case CT_DATE:
	case CT_DATE_DAY:	return "date";
	case CT_TIME:		return "time";
	case CT_JSONB:		return "jsonb";
	case CT_INT8_ARRAY:	return "bigint[]";
	case CT_TEXT_ARRAY:	return "text[]";
	}
	return "text";
}

size_t
catalog_nkeys(const struct cat_entity *e)
{
	size_t n = 0;

	for (size_t i = 0; i < e->ncols; i++)
		if (e->cols[i].flags & CF_KEY)
			n++;
	return n;
}

int
catalog_changed_cols(const struct cat_entity *e, size_t *idx, size_t max)
{
	const struct cat_entity *p;
	const char *cur = e->changed_by, *item;
	size_t len, n = 0;

	if (e->changed_by == NULL)
		return 0;
	if (e->paging != PAGE_PER_PARENT || e->parent == NULL ||
	    (p = catalog_find(e->crm, e->parent)) == NULL)
		return -1;
	while (strlist_next(&cur, &item, &len)) {
		size_t k;
		for (k = 0; k < p->ncols; k++)
			if (strlen(p->cols[k].column) == len && memcmp(p->cols[k].column, item, len) == 0)
				break;
		if (k == p->ncols || n == max ||
		    (p->cols[k].type != CT_TS_LOCAL && p->cols[k].type != CT_TS_UNIX))
			return -1;
		idx[n++] = k;
	}
	return n > 0 ? (int)n : -1;
}

/* Index of e's column named name[0..len), or e->ncols. */
static size_t
col_index(const struct cat_entity *e, const char *name, size_t len)
{
	size_t k;

	for (k = 0; k < e->ncols; k++)
		if (strlen(e->cols[k].column) == len && memcmp(e->cols[k].column, name, len) == 0)
			break;
	return k;
}

int
catalog_changed_via(const struct cat_entity *e, size_t i, const struct cat_entity **src,
    size_t *kcol, size_t *scol)
{
	const char *cur = e->changed_via, *item, *c1, *c2;
	const struct cat_entity *self;
	char name[64];
	size_t len;

	if (e->changed_via == NULL)
		return 0;
	do {
		if (!strlist_next(&cur, &item, &len))
			return 0;
	} while (i-- > 0);
	if (e->changed_by == NULL || (c1 = memchr(item, ':', len)) == NULL ||
	    (c2 = memchr(c1 + 1, ':', len - (size_t)(c1 + 1 - item))) == NULL ||
	    (size_t)(c1 - item) >= sizeof(name))
		return -1;
	snprintf(name, sizeof(name), "%.*s", (int)(c1 - item), item);
	/* (e may be a copy: its place in the catalogue is found by name) */
	if ((*src = catalog_find(e->crm, name)) == NULL || (self = catalog_find(e->crm, e->name)) == NULL ||
	    *src >= self)
		return -1;
	*kcol = col_index(*src, c1 + 1, (size_t)(c2 - c1 - 1));
	*scol = col_index(*src, c2 + 1, len - (size_t)(c2 + 1 - item));
	if (*kcol == (*src)->ncols || *scol == (*src)->ncols ||
	    ((*src)->cols[*scol].type != CT_TS_LOCAL && (*src)->cols[*scol].type != CT_TS_UNIX))
		return -1;
	return 1;
}

/* The i-th key column of e (i < catalog_nkeys(e)). */
static const struct cat_col *
key_col(const struct cat_entity *e, size_t i)
{
	for (size_t k = 0; k < e->ncols; k++)
		if ((e->cols[k].flags & CF_KEY) && i-- == 0)
			return &e->cols[k];
	return NULL;
}

/* Name of the i-th parent key column inside child table c: from c->parent_cols or the parent's. */
int
catalog_child_parent_col(const struct cat_entity *e, const struct cat_child *c, size_t i,
    char *dst, size_t cap)
{
	if (c->parent_cols != NULL) {
		int rv = strlist_nth(c->parent_cols, i, dst, cap);
		return rv == CS_ENOENT ? CS_EINVAL : rv;
	}
	const struct cat_col *k = key_col(e, i);
	if (k == NULL || strlen(k->column) + 1 > cap)
		return CS_EINVAL;
	strcpy(dst, k->column);
	return 0;
}

/* Split "column=value" of a discriminator; column into dst, returns the value. */
const char *
catalog_discriminator(const struct cat_child *c, char *dst, size_t cap)
{
	const char *eq;

	if (c->discriminator == NULL || (eq = strchr(c->discriminator, '=')) == NULL)
		return NULL;
	if ((size_t)(eq - c->discriminator) + 1 > cap)
		return NULL;
	memcpy(dst, c->discriminator, (size_t)(eq - c->discriminator));
	dst[eq - c->discriminator] = '\0';
	return eq + 1;
}

int
catalog_ddl(const struct cat_entity *e, const char *schema, struct buf *b)
{
	size_t nk = catalog_nkeys(e);
	char name[64], dcol[64];
	int rv = 0;

	rv |= buf_printf(b, "CREATE TABLE IF NOT EXISTS %s.%s (\n", schema, e->name);
	for (size_t i = 0; i < e->ncols; i++)
		rv |= buf_printf(b, "    %s %s%s,\n", e->cols[i].column,
		    catalog_sql_type(e->cols[i].type), (e->cols[i].flags & CF_KEY) ? " NOT NULL" : "");
	rv |= buf_printf(b, "    source_updated_at timestamptz,\n"
	    "    synced_at timestamptz NOT NULL DEFAULT now(),\n"
	    "    deleted_at timestamptz,\n"
	    "    raw jsonb NOT NULL,\n"
	    "    content_hash bigint,\n    PRIMARY KEY (");
	for (size_t i = 0; i < nk; i++)
		rv |= buf_printf(b, "%s%s", i ? ", " : "", key_col(e, i)->column);
	rv |= buf_printf(b, ")\n);\n");
	if (e->doc != NULL) {
		rv |= buf_printf(b, "COMMENT ON TABLE %s.%s IS '", schema, e->name);
		for (const char *p = e->doc; *p; p++)
			rv |= *p == '\'' ? buf_add(b, "''", 2) : buf_addc(b, *p);
		rv |= buf_printf(b, "';\n");
	}

	for (size_t c = 0; c < e->nchildren; c++) {
		const struct cat_child *ch = &e->children[c];
		const char *dval = catalog_discriminator(ch, dcol, sizeof(dcol));

		rv |= buf_printf(b, "CREATE TABLE IF NOT EXISTS %s.%s (\n", schema, ch->table);
		if (dval != NULL)
			rv |= buf_printf(b, "    %s text NOT NULL,\n", dcol);
		for (size_t i = 0; i < nk; i++) {
			if (catalog_child_parent_col(e, ch, i, name, sizeof(name)) != 0)
				return CS_EINVAL;
			rv |= buf_printf(b, "    %s %s NOT NULL,\n", name,
			    catalog_sql_type(key_col(e, i)->type));
		}
		rv |= buf_printf(b, "    idx integer NOT NULL,\n");
		for (size_t i = 0; i < ch->ncols; i++)
			rv |= buf_printf(b, "    %s %s,\n", ch->cols[i].column,
			    catalog_sql_type(ch->cols[i].type));
		rv |= buf_printf(b, "    PRIMARY KEY (");
		if (dval != NULL)
			rv |= buf_printf(b, "%s, ", dcol);
		for (size_t i = 0; i < nk; i++) {
			catalog_child_parent_col(e, ch, i, name, sizeof(name));
			rv |= buf_printf(b, "%s, ", name);
		}
		rv |= buf_printf(b, "idx)\n);\n");
	}
	return rv ? CS_ETOOBIG : 0;
}
