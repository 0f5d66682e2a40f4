/*
 * catalog_hollihop.c - every Hollihop API method crmsync exports, as data (see catalog.h).
 * (Filled in by the Hollihop work; this minimal table keeps the build and the store's
 * tests going.)
 */
#include "catalog.h"

static const struct cat_col hh_student_cols[] = {
	{ "ClientId",	"client_id",	CT_INT8,	CF_KEY },
	{ "Id",		"id",		CT_INT8,	0 },
	{ "FirstName",	"first_name",	CT_TEXT,	0 },
	{ "LastName",	"last_name",	CT_TEXT,	0 },
	{ "Updated",	"updated",	CT_TS_LOCAL,	CF_VERSION },
};

static const struct cat_col hh_agent_cols[] = {
	{ "FirstName",	"first_name",	CT_TEXT,	0 },
	{ "WhoIs",	"who_is",	CT_TEXT,	0 },
	{ "Mobile",	"mobile",	CT_TEXT,	0 },
};

static const struct cat_child hh_student_children[] = {
	{ "Agents", "student_agents", hh_agent_cols, nitems(hh_agent_cols), NULL, NULL },
};

static const struct cat_entity hh_entities[] = {
	{ .crm = CAT_HOLLIHOP, .name = "students", .endpoint = "GetStudents",
	  .list_key = "Students", .paging = PAGE_TAKE_SKIP, .flags = CE_FULL_DELETES,
	  .cols = hh_student_cols, .ncols = nitems(hh_student_cols),
	  .children = hh_student_children, .nchildren = nitems(hh_student_children),
	  .doc = "Student clients (GetStudents)" },
};

const struct cat_crm_desc catalog_hollihop = { CAT_HOLLIHOP, "hollihop", hh_entities, nitems(hh_entities) };
