/*
 * catalog_amo.c - every amoCRM entity crmsync mirrors, as data (see catalog.h).
 * (Filled in by the amoCRM work; this minimal table keeps the build and the store's
 * tests going.)
 */
#include "catalog.h"

static const struct cat_col amo_lead_cols[] = {
	{ "id",			"id",			CT_INT8,	CF_KEY },
	{ "name",		"name",			CT_TEXT,	0 },
	{ "price",		"price",		CT_NUMERIC,	0 },
	{ "status_id",		"status_id",		CT_INT8,	0 },
	{ "pipeline_id",	"pipeline_id",		CT_INT8,	0 },
	{ "updated_at",		"updated_at",		CT_TS_UNIX,	CF_VERSION },
};

static const struct cat_entity amo_entities[] = {
	{ .crm = CAT_AMO, .name = "leads", .endpoint = "/api/v4/leads",
	  .list_key = "_embedded.leads", .paging = PAGE_HAL,
	  .flags = CE_INCREMENTAL | CE_HOOKS | CE_EVENT_DELETES,
	  .cols = amo_lead_cols, .ncols = nitems(amo_lead_cols),
	  .doc = "Deals (leads)" },
};

const struct cat_crm_desc catalog_amo = { CAT_AMO, "amo", amo_entities, nitems(amo_entities) };
