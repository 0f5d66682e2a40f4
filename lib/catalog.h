/*
 * catalog.h - the entity catalogue: every CRM entity described once, as data.
 *
 * One static const table per CRM (catalog_amo.c, catalog_hollihop.c) lists each entity:
 * where it is fetched, where its rows sit in the response, its typed columns (JSON path ->
 * column, SQL type) and its child collections. Generic code reads it:
 *   - normalise_row() (lib/normalise.c) turns one JSON row into a Record (sync services),
 *   - catalog_ddl() emits CREATE TABLE statements: the store runs them at start-up
 *     (services/store/migrate.c: CREATE TABLE / ADD COLUMN IF NOT EXISTS), crmsyncctl
 *     prints them,
 *   - the store builds its upsert SQL from it (services/store/apply.c),
 *   - the sync services' fetch loops page through it,
 *   - catalog_find_alias() maps the CRM's own words for an entity (webhook keys, event
 *     types) to its entry.
 * Adding an entity = adding a table entry: no code and no hand-written migration (the
 * store creates its tables; numbered migrations are for crmsync's own schema).
 *
 * JSON paths: "a.b.c" walks objects; a numeric segment indexes an array ("Offices.0.Id");
 * "" is the row itself (rows that are bare strings); "$name" is a context value supplied
 * by the fetcher (e.g. "$entity_type" for tags fetched per entity type);
 * "^path" in a flattened child resolves against the outer element (see cat_child).
 * "a|b" takes the first alternative present ("Name|" = an object's Name, or the row
 * itself when it is a bare string), for shapes the API notes are unsure about.
 * "arr[Key=want].x" picks the first element of array arr whose string member Key equals
 * want ("$name" = a context value), then x inside it: one entry of a {Name, Value} list
 * ("ExtraFields[Name=$amo_lead_field].Value"); no such element = NULL.
 * A "~marker" suffix (CT_INT8 columns) takes the integer right after marker in the string
 * ("...Value~/leads/detail/" on "https://x.amocrm.ru/leads/detail/24384061" = 24384061);
 * a string without it is NULL, not an unreadable value.
 * A "?test=v1,v2" suffix takes the value only when the string at path test ("^x" = the outer
 * element's x) is one of v1, v2...; otherwise NULL, not converted ("value?^field_type=numeric":
 * one typed column per kind of a custom field's value, beside its text).
 */
#ifndef CS_CATALOG_H
#define CS_CATALOG_H

#include <stddef.h>
#include <stdint.h>

enum cat_type {
	CT_INT8,	/* bigint; JSON integer, or a string of digits */
	CT_NUMERIC,	/* numeric; JSON number or numeric string */
	CT_MONEY_TEXT,	/* numeric, parsed from "33 000,00 руб." (NBSP, comma decimal) */
	CT_TEXT,	/* text; strings unescaped, other scalars as their JSON text */
	CT_BOOL,	/* boolean; true/false (also 0/1, "true"/"false") */
	CT_TS_UNIX,	/* timestamptz from unix seconds */
	CT_TS_LOCAL,	/* timestamptz from naive local "YYYY-MM-DDTHH:MM:SS" in the configured zone */
	CT_DATE,	/* date from "YYYY-MM-DD" (a longer timestamp keeps its date part) */
	CT_TIME,	/* time from "HH:MM[:SS]" */
	CT_JSONB,	/* jsonb: the JSON value as is (objects, arrays) */
	CT_INT8_ARRAY,	/* bigint[] from a JSON array of integers */
	CT_TEXT_ARRAY,	/* text[] from a JSON array of strings */
	/* (new types go last: the store's column signatures carry the type's number) */
	CT_DATE_DAY,	/* date of a day-valued field: "YYYY-MM-DD" as is, or unix seconds read in the
			   context's utc_offset (NORM_CTX_UTC_OFFSET, "+03:00"); an epoch without
			   a known offset is NULL (a UTC day would be a day early east of UTC) */
};

/* cat_col.flags */
#define CF_KEY		0x01	/* part of the primary key (never NULL) */
#define CF_VERSION	0x02	/* the source's version/updated time: newer row wins */
#define CF_REQUIRED	0x04	/* a row without it is rejected */

struct cat_col {
	const char	*json;	/* JSON path inside the row, see above */
	const char	*column;/* snake_case column name */
	enum cat_type	 type;
	unsigned	 flags;
};

/*
 * A child collection: an array inside each row stored in its own table, keyed by the
 * parent's key columns + idx (the element's ordinal). `json` is the array's path; with
 * "outer[].inner" each element of every outer[i].inner becomes a row ("^x" columns read
 * outer[i].x). Several parents may share one child table (custom field values of leads,
 * contacts...): they set `parent_cols` (the names of the parent key columns in the child
 * table) and `discriminator` ("entity_type=leads"), which becomes part of the child key.
 */
struct cat_child {
	const char		*json;
	const char		*table;
	const struct cat_col	*cols;
	size_t			 ncols;
	const char		*parent_cols;	/* NULL = the parent's key column names */
	const char		*discriminator;	/* NULL, or "column=value" */
};

enum cat_crm { CAT_AMO = 1, CAT_HOLLIHOP = 2 };	/* = Crmsync__Crm values */

enum cat_paging {
	PAGE_NONE,	/* one request returns everything */
	PAGE_TAKE_SKIP,	/* Hollihop take/skip until a short page */
	PAGE_HAL,	/* amoCRM page/limit + _links.next until 204 */
	PAGE_PER_PARENT,/* one call per row of another entity (Hollihop clientId methods) */
};

/* cat_entity.flags */
#define CE_INCREMENTAL	0x01	/* supports filter[updated_at] / lastUpdatedFrom */
#define CE_HOOKS	0x02	/* fetched by id for webhook events */
#define CE_EVENT_DELETES 0x04	/* deletions come from *_deleted events */
#define CE_FULL_DELETES	0x08	/* a complete full export soft-deletes rows not seen */
#define CE_OPTIONAL	0x10	/* an API error (e.g. feature off, 402/422) skips, not fails */
#define CE_EVENT_LOG	0x20	/* its rows are the CRM's event log: each page's "<name>_deleted"
				   events soft-delete rows of CE_EVENT_DELETES entities */

struct cat_entity {
	enum cat_crm		 crm;
	const char		*name;		/* table name in the CRM's schema, and the wire name */
	const char		*endpoint;	/* "/api/v4/leads", "GetStudents"; may hold {param} */
	const char		*list_key;	/* JSON path of the row array: "_embedded.leads", "Students" */
	enum cat_paging		 paging;
	unsigned		 flags;
	const char		*params;	/* fixed query parameters: "with=contacts", "queryDays=true" */
	const char		*parent;	/* PAGE_PER_PARENT / {param}: entity whose keys drive calls,
						   or a comma-separated list of literal values */
	int			 page_size;	/* 0 = CRM default */
	const struct cat_col	*cols;
	size_t			 ncols;
	const struct cat_child	*children;
	size_t			 nchildren;
	const char		*doc;		/* one line for analysts */
	const char		*aliases;	/* other names the CRM uses for it in webhooks and
						   events, comma-separated: "lead,task" (may be NULL) */
	/* PAGE_PER_PARENT only: the parent's timestamp columns (comma-separated) that say a
	 * parent row changed, so that the method need only be called again for parents with
	 * one of them at or after its last complete pass, plus a periodic full sweep. NULL:
	 * every parent on every run (nothing in the parent tells when the answer changes). */
	const char		*changed_by;
	/* PAGE_PER_PARENT with changed_by only: rows of other entities, exported earlier in the
	 * run, that also say a parent changed: "entity:parent_column:timestamp_column" items,
	 * comma-separated ("payments:client_id:created": a payment created since the method's
	 * last complete pass). Each source keeps a cursor of its own. */
	const char		*changed_via;
};

#define nitems(a) (sizeof(a) / sizeof((a)[0]))

struct cat_crm_desc {
	enum cat_crm		 crm;
	const char		*schema;	/* "amo", "hollihop" */
	const struct cat_entity	*entities;
	size_t			 nentities;
};

extern const struct cat_crm_desc catalog_amo;
extern const struct cat_crm_desc catalog_hollihop;

const struct cat_crm_desc *catalog_crm(enum cat_crm crm);
const struct cat_entity *catalog_find(enum cat_crm crm, const char *name);
/* The entity name[0..len) refers to: its catalogue name or one of its aliases (the CRM's
 * own words in webhooks and events: "lead", "common_note"), or NULL. */
const struct cat_entity *catalog_find_alias(enum cat_crm crm, const char *name, size_t len);
/* 1 when name[0..len) is e's name or one of its aliases. */
int catalog_is_named(const struct cat_entity *e, const char *name, size_t len);
const char *catalog_sql_type(enum cat_type t);
size_t catalog_nkeys(const struct cat_entity *e);
/*
 * The parent's column indexes e->changed_by names, into idx (at most max): their number,
 * 0 when e has no changed_by, -1 when it is wrong (not a per-parent entity, an unknown or
 * non-timestamp column, too many).
 */
int catalog_changed_cols(const struct cat_entity *e, size_t *idx, size_t max);
/*
 * The i-th item of e->changed_via: the source entity (*src), the index of its column that
 * names a parent (*kcol) and of its timestamp column (*scol). Returns 1, 0 past the last
 * item, -1 when the item is wrong (no changed_by, an unknown entity or one listed after e,
 * unknown columns, a column that is not a timestamp).
 */
int catalog_changed_via(const struct cat_entity *e, size_t i, const struct cat_entity **src,
    size_t *kcol, size_t *scol);

struct buf;
/* Append CREATE TABLE statements for e and its children (IF NOT EXISTS) to b. */
int catalog_ddl(const struct cat_entity *e, const char *schema, struct buf *b);



/* Helpers for code that builds SQL for child tables (store, DDL). */
int catalog_child_parent_col(const struct cat_entity *e, const struct cat_child *c, size_t i,
    char *dst, size_t cap);
const char *catalog_discriminator(const struct cat_child *c, char *dst, size_t cap);
#endif
