/*
 * catalog_amo.c - every amoCRM (Kommo) entity crmsync mirrors, as data (see catalog.h).
 *
 * Order matters: services/amo-sync fetches entities in this order, so an entity whose
 * keys drive another's calls (catalogs -> catalog_elements) comes first, and events (the
 * source of soft deletes) come after the entities they delete. Shapes follow amoCRM's
 * public API v4 documentation and captured responses; where those leave a shape open the
 * columns are liberal (raw keeps everything anyway).
 *
 * Shared child tables, keyed by (entity_type, entity_id, idx):
 *   custom_field_values - one row per value of every custom field of leads, contacts,
 *                         companies, customers, segments and catalog elements;
 *   entity_tags         - the tags on leads, contacts, companies and customers.
 * Link tables (lead_contacts, contact_companies...) come from each row's _embedded.
 */
#include "catalog.h"

/* ---- shared children ------------------------------------------------------------------ */

static const struct cat_col amo_cfv_cols[] = {
	{ "^field_id",		"field_id",		CT_INT8,	0 },
	{ "^field_name",	"field_name",		CT_TEXT,	0 },
	{ "^field_code",	"field_code",		CT_TEXT,	0 },
	{ "^field_type",	"field_type",		CT_TEXT,	0 },
	{ "value",		"value",		CT_TEXT,	0 },
	{ "enum_id",		"enum_id",		CT_INT8,	0 },
	{ "enum_code",		"enum_code",		CT_TEXT,	0 },
	/* The value typed, by field type, beside its text. Date fields: unix seconds of a
	 * midnight in the account's zone (1642626000 = 2022-01-20 Moscow), or "YYYY-MM-DD". */
	{ "value?^field_type=date,birthday", "value_date",	CT_DATE_DAY,	0 },
	/* Numeric fields arrive as strings ("12"). */
	{ "value?^field_type=numeric,price,monetary", "value_number", CT_NUMERIC, 0 },
};

static const struct cat_col amo_tag_ref_cols[] = {
	{ "id",			"tag_id",		CT_INT8,	0 },
	{ "name",		"name",			CT_TEXT,	0 },
	{ "color",		"color",		CT_TEXT,	0 },
};

#define CFV(type) { "custom_fields_values[].values", "custom_field_values", amo_cfv_cols, \
	nitems(amo_cfv_cols), "entity_id", "entity_type=" type }
#define TAGS(type) { "_embedded.tags", "entity_tags", amo_tag_ref_cols, \
	nitems(amo_tag_ref_cols), "entity_id", "entity_type=" type }

/* ---- account, users, roles ------------------------------------------------------------- */

static const struct cat_col amo_account_cols[] = {
	{ "id",				"id",			CT_INT8,	CF_KEY },
	{ "name",			"name",			CT_TEXT,	0 },
	{ "subdomain",			"subdomain",		CT_TEXT,	0 },
	{ "country",			"country",		CT_TEXT,	0 },
	{ "currency",			"currency",		CT_TEXT,	0 },
	{ "currency_symbol",		"currency_symbol",	CT_TEXT,	0 },
	{ "customers_mode",		"customers_mode",	CT_TEXT,	0 },
	{ "is_unsorted_on",		"is_unsorted_on",	CT_BOOL,	0 },
	{ "is_loss_reason_enabled",	"is_loss_reason_enabled", CT_BOOL,	0 },
	{ "is_helpbot_enabled",		"is_helpbot_enabled",	CT_BOOL,	0 },
	{ "is_technical_account",	"is_technical_account",	CT_BOOL,	0 },
	{ "contact_name_display_order",	"contact_name_display_order", CT_INT8,	0 },
	{ "current_user_id",		"current_user_id",	CT_INT8,	0 },
	{ "amojo_id",			"amojo_id",		CT_TEXT,	0 },
	{ "uuid",			"uuid",			CT_TEXT,	0 },
	{ "version",			"version",		CT_INT8,	0 },
	{ "_embedded.datetime_settings.timezone", "timezone",	CT_TEXT,	0 },
	{ "_embedded.datetime_settings.timezone_offset", "timezone_offset", CT_TEXT, 0 },
	{ "created_at",			"created_at",		CT_TS_UNIX,	0 },
	{ "created_by",			"created_by",		CT_INT8,	0 },
	{ "updated_at",			"updated_at",		CT_TS_UNIX,	CF_VERSION },
	{ "updated_by",			"updated_by",		CT_INT8,	0 },
};

/* Child columns never reuse the parent's key column names (the store stages both). */
static const struct cat_col amo_user_group_cols[] = {
	{ "id",		"group_id",	CT_INT8,	0 },
	{ "name",	"name",		CT_TEXT,	0 },
	{ "uuid",	"uuid",		CT_TEXT,	0 },
};

static const struct cat_col amo_task_type_cols[] = {
	{ "id",		"task_type_id",	CT_INT8,	0 },
	{ "name",	"name",		CT_TEXT,	0 },
	{ "code",	"code",		CT_TEXT,	0 },
	{ "color",	"color",	CT_TEXT,	0 },
	{ "icon_id",	"icon_id",	CT_INT8,	0 },
};

static const struct cat_child amo_account_children[] = {
	{ "_embedded.users_groups", "user_groups", amo_user_group_cols, nitems(amo_user_group_cols),
	  "account_id", NULL },
	{ "_embedded.task_types", "task_types", amo_task_type_cols, nitems(amo_task_type_cols),
	  "account_id", NULL },
};

static const struct cat_col amo_user_cols[] = {
	{ "id",			"id",		CT_INT8,	CF_KEY },
	{ "name",		"name",		CT_TEXT,	0 },
	{ "email",		"email",	CT_TEXT,	0 },
	{ "lang",		"lang",		CT_TEXT,	0 },
	{ "uuid",		"uuid",		CT_TEXT,	0 },
	{ "amojo_id",		"amojo_id",	CT_TEXT,	0 },
	{ "phone_number",	"phone_number",	CT_TEXT,	0 },
	{ "user_rank",		"user_rank",	CT_TEXT,	0 },
	{ "rights.is_admin",	"is_admin",	CT_BOOL,	0 },
	{ "rights.is_free",	"is_free",	CT_BOOL,	0 },
	{ "rights.is_active",	"is_active",	CT_BOOL,	0 },
	{ "rights.group_id",	"group_id",	CT_INT8,	0 },
	{ "rights.role_id",	"role_id",	CT_INT8,	0 },
	{ "rights",		"rights",	CT_JSONB,	0 },
};

static const struct cat_col amo_role_cols[] = {
	{ "id",		"id",		CT_INT8,	CF_KEY },
	{ "name",	"name",		CT_TEXT,	0 },
	{ "rights",	"rights",	CT_JSONB,	0 },
};

/* ---- pipelines, statuses, loss reasons, sources ----------------------------------------- */

static const struct cat_col amo_pipeline_cols[] = {
	{ "id",			"id",		CT_INT8,	CF_KEY },
	{ "name",		"name",		CT_TEXT,	0 },
	{ "sort",		"sort",		CT_INT8,	0 },
	{ "is_main",		"is_main",	CT_BOOL,	0 },
	{ "is_unsorted_on",	"is_unsorted_on", CT_BOOL,	0 },
	{ "is_archive",		"is_archive",	CT_BOOL,	0 },
	{ "account_id",		"account_id",	CT_INT8,	0 },
};

/* Status ids 142 (won) and 143 (lost) repeat in every pipeline: join on (pipeline_id, status_id). */
static const struct cat_col amo_status_cols[] = {
	{ "id",			"status_id",	CT_INT8,	0 },
	{ "name",		"name",		CT_TEXT,	0 },
	{ "sort",		"sort",		CT_INT8,	0 },
	{ "is_editable",	"is_editable",	CT_BOOL,	0 },
	{ "color",		"color",	CT_TEXT,	0 },
	{ "type",		"type",		CT_INT8,	0 },
};

static const struct cat_child amo_pipeline_children[] = {
	{ "_embedded.statuses", "pipeline_statuses", amo_status_cols, nitems(amo_status_cols),
	  "pipeline_id", NULL },
};

static const struct cat_col amo_loss_reason_cols[] = {
	{ "id",		"id",		CT_INT8,	CF_KEY },
	{ "name",	"name",		CT_TEXT,	0 },
	{ "sort",	"sort",		CT_INT8,	0 },
	{ "created_at",	"created_at",	CT_TS_UNIX,	0 },
	{ "updated_at",	"updated_at",	CT_TS_UNIX,	CF_VERSION },
};

static const struct cat_col amo_source_cols[] = {
	{ "id",			"id",		CT_INT8,	CF_KEY },
	{ "name",		"name",		CT_TEXT,	0 },
	{ "pipeline_id",	"pipeline_id",	CT_INT8,	0 },
	{ "external_id",	"external_id",	CT_TEXT,	0 },
	{ "default",		"is_default",	CT_BOOL,	0 },
	{ "origin_code",	"origin_code",	CT_TEXT,	0 },
	{ "services",		"services",	CT_JSONB,	0 },
};

/* ---- catalogs (lists) and their elements ------------------------------------------------ */

static const struct cat_col amo_catalog_cols[] = {
	{ "id",			"id",			CT_INT8,	CF_KEY },
	{ "name",		"name",			CT_TEXT,	0 },
	{ "type",		"type",			CT_TEXT,	0 },
	{ "sort",		"sort",			CT_INT8,	0 },
	{ "can_add_elements",	"can_add_elements",	CT_BOOL,	0 },
	{ "can_show_in_cards",	"can_show_in_cards",	CT_BOOL,	0 },
	{ "can_link_multiple",	"can_link_multiple",	CT_BOOL,	0 },
	{ "can_be_deleted",	"can_be_deleted",	CT_BOOL,	0 },
	{ "sdk_widget_code",	"sdk_widget_code",	CT_TEXT,	0 },
	{ "created_by",		"created_by",		CT_INT8,	0 },
	{ "updated_by",		"updated_by",		CT_INT8,	0 },
	{ "created_at",		"created_at",		CT_TS_UNIX,	0 },
	{ "updated_at",		"updated_at",		CT_TS_UNIX,	CF_VERSION },
	{ "account_id",		"account_id",		CT_INT8,	0 },
};

static const struct cat_col amo_catalog_element_cols[] = {
	{ "id",		"id",		CT_INT8,	CF_KEY },
	{ "$catalog_id", "catalog_id",	CT_INT8,	0 },
	{ "name",	"name",		CT_TEXT,	0 },
	{ "is_deleted",	"is_deleted",	CT_BOOL,	0 },
	{ "created_by",	"created_by",	CT_INT8,	0 },
	{ "updated_by",	"updated_by",	CT_INT8,	0 },
	{ "created_at",	"created_at",	CT_TS_UNIX,	0 },
	{ "updated_at",	"updated_at",	CT_TS_UNIX,	CF_VERSION },
	{ "account_id",	"account_id",	CT_INT8,	0 },
};

static const struct cat_child amo_catalog_element_children[] = {
	CFV("catalog_elements"),
};

/* ---- custom fields, field groups, tags (per entity type) -------------------------------- */

static const struct cat_col amo_custom_field_cols[] = {
	{ "$entity_type",	"entity_type",		CT_TEXT,	CF_KEY },
	{ "id",			"id",			CT_INT8,	CF_KEY },
	{ "name",		"name",			CT_TEXT,	0 },
	{ "type",		"type",			CT_TEXT,	0 },
	{ "code",		"code",			CT_TEXT,	0 },
	{ "sort",		"sort",			CT_INT8,	0 },
	{ "group_id",		"group_id",		CT_TEXT,	0 },
	{ "catalog_id",		"catalog_id",		CT_INT8,	0 },
	{ "is_api_only",	"is_api_only",		CT_BOOL,	0 },
	{ "is_deletable",	"is_deletable",		CT_BOOL,	0 },
	{ "is_predefined",	"is_predefined",	CT_BOOL,	0 },
	{ "is_required",	"is_required",		CT_BOOL,	0 },
	{ "is_visible",		"is_visible",		CT_BOOL,	0 },
	{ "currency",		"currency",		CT_TEXT,	0 },
	{ "required_statuses",	"required_statuses",	CT_JSONB,	0 },
	{ "hidden_statuses",	"hidden_statuses",	CT_JSONB,	0 },
	{ "account_id",		"account_id",		CT_INT8,	0 },
};

static const struct cat_col amo_enum_cols[] = {
	{ "id",		"enum_id",	CT_INT8,	0 },
	{ "value",	"value",	CT_TEXT,	0 },
	{ "sort",	"sort",		CT_INT8,	0 },
};

static const struct cat_child amo_custom_field_children[] = {
	{ "enums", "custom_field_enums", amo_enum_cols, nitems(amo_enum_cols),
	  "entity_type,field_id", NULL },
};

static const struct cat_col amo_catalog_custom_field_cols[] = {
	{ "$catalog_id",	"catalog_id",		CT_INT8,	CF_KEY },
	{ "id",			"id",			CT_INT8,	CF_KEY },
	{ "name",		"name",			CT_TEXT,	0 },
	{ "type",		"type",			CT_TEXT,	0 },
	{ "code",		"code",			CT_TEXT,	0 },
	{ "sort",		"sort",			CT_INT8,	0 },
	{ "group_id",		"group_id",		CT_TEXT,	0 },
	{ "is_api_only",	"is_api_only",		CT_BOOL,	0 },
	{ "is_deletable",	"is_deletable",		CT_BOOL,	0 },
	{ "is_predefined",	"is_predefined",	CT_BOOL,	0 },
	{ "is_required",	"is_required",		CT_BOOL,	0 },
	{ "account_id",		"account_id",		CT_INT8,	0 },
};

static const struct cat_child amo_catalog_custom_field_children[] = {
	{ "enums", "catalog_custom_field_enums", amo_enum_cols, nitems(amo_enum_cols),
	  "catalog_id,field_id", NULL },
};

static const struct cat_col amo_custom_field_group_cols[] = {
	{ "$entity_type",	"entity_type",	CT_TEXT,	CF_KEY },
	{ "id",			"id",		CT_TEXT,	CF_KEY },
	{ "name",		"name",		CT_TEXT,	0 },
	{ "sort",		"sort",		CT_INT8,	0 },
	{ "is_predefined",	"is_predefined", CT_BOOL,	0 },
	{ "fields",		"fields",	CT_JSONB,	0 },
};

static const struct cat_col amo_tag_cols[] = {
	{ "$entity_type",	"entity_type",	CT_TEXT,	CF_KEY },
	{ "id",			"id",		CT_INT8,	CF_KEY },
	{ "name",		"name",		CT_TEXT,	0 },
	{ "color",		"color",	CT_TEXT,	0 },
};

/* ---- customers: statuses, segments, customers, transactions ----------------------------- */

static const struct cat_col amo_customer_status_cols[] = {
	{ "id",		"id",		CT_INT8,	CF_KEY },
	{ "name",	"name",		CT_TEXT,	0 },
	{ "sort",	"sort",		CT_INT8,	0 },
	{ "is_default",	"is_default",	CT_BOOL,	0 },
	{ "color",	"color",	CT_TEXT,	0 },
	{ "type",	"type",		CT_INT8,	0 },
	{ "conditions",	"conditions",	CT_JSONB,	0 },
	{ "account_id",	"account_id",	CT_INT8,	0 },
};

static const struct cat_col amo_segment_cols[] = {
	{ "id",			"id",			CT_INT8,	CF_KEY },
	{ "name",		"name",			CT_TEXT,	0 },
	{ "color",		"color",		CT_TEXT,	0 },
	{ "customers_count",	"customers_count",	CT_INT8,	0 },
	{ "created_at",		"created_at",		CT_TS_UNIX,	0 },
	{ "updated_at",		"updated_at",		CT_TS_UNIX,	CF_VERSION },
	{ "account_id",		"account_id",		CT_INT8,	0 },
};

static const struct cat_child amo_segment_children[] = {
	CFV("customer_segments"),
};

static const struct cat_col amo_customer_cols[] = {
	{ "id",			"id",			CT_INT8,	CF_KEY },
	{ "name",		"name",			CT_TEXT,	0 },
	{ "next_price",		"next_price",		CT_NUMERIC,	0 },
	{ "next_date",		"next_date",		CT_TS_UNIX,	0 },
	{ "responsible_user_id", "responsible_user_id",	CT_INT8,	0 },
	{ "status_id",		"status_id",		CT_INT8,	0 },
	{ "periodicity",	"periodicity",		CT_INT8,	0 },
	{ "ltv",		"ltv",			CT_NUMERIC,	0 },
	{ "purchases_count",	"purchases_count",	CT_INT8,	0 },
	{ "average_check",	"average_check",	CT_NUMERIC,	0 },
	{ "is_deleted",		"is_deleted",		CT_BOOL,	0 },
	{ "created_by",		"created_by",		CT_INT8,	0 },
	{ "updated_by",		"updated_by",		CT_INT8,	0 },
	{ "created_at",		"created_at",		CT_TS_UNIX,	0 },
	{ "updated_at",		"updated_at",		CT_TS_UNIX,	CF_VERSION },
	{ "closest_task_at",	"closest_task_at",	CT_TS_UNIX,	0 },
	{ "account_id",		"account_id",		CT_INT8,	0 },
};

static const struct cat_col amo_contact_ref_cols[] = {
	{ "id",		"contact_id",	CT_INT8,	0 },
	{ "is_main",	"is_main",	CT_BOOL,	0 },
};

static const struct cat_col amo_company_ref_cols[] = {
	{ "id",		"company_id",	CT_INT8,	0 },
};

static const struct cat_col amo_segment_ref_cols[] = {
	{ "id",		"segment_id",	CT_INT8,	0 },
};

static const struct cat_col amo_lead_ref_cols[] = {
	{ "id",		"lead_id",	CT_INT8,	0 },
};

static const struct cat_col amo_customer_ref_cols[] = {
	{ "id",		"customer_id",	CT_INT8,	0 },
};

static const struct cat_col amo_element_ref_cols[] = {
	{ "id",			"catalog_element_id",	CT_INT8,	0 },
	{ "metadata.catalog_id", "catalog_id",		CT_INT8,	0 },
	{ "metadata.quantity",	"quantity",		CT_NUMERIC,	0 },
	{ "metadata.price_id",	"price_id",		CT_INT8,	0 },
};

static const struct cat_child amo_customer_children[] = {
	CFV("customers"),
	TAGS("customers"),
	{ "_embedded.contacts", "customer_contacts", amo_contact_ref_cols,
	  nitems(amo_contact_ref_cols), "customer_id", NULL },
	{ "_embedded.companies", "customer_companies", amo_company_ref_cols,
	  nitems(amo_company_ref_cols), "customer_id", NULL },
	{ "_embedded.segments", "customer_segment_links", amo_segment_ref_cols,
	  nitems(amo_segment_ref_cols), "customer_id", NULL },
	{ "_embedded.catalog_elements", "customer_catalog_elements", amo_element_ref_cols,
	  nitems(amo_element_ref_cols), "customer_id", NULL },
};

static const struct cat_col amo_transaction_cols[] = {
	{ "id",			"id",		CT_INT8,	CF_KEY },
	{ "customer_id",	"customer_id",	CT_INT8,	0 },
	{ "comment",		"comment",	CT_TEXT,	0 },
	{ "price",		"price",	CT_NUMERIC,	0 },
	{ "completed_at",	"completed_at",	CT_TS_UNIX,	0 },
	{ "is_deleted",		"is_deleted",	CT_BOOL,	0 },
	{ "created_by",		"created_by",	CT_INT8,	0 },
	{ "updated_by",		"updated_by",	CT_INT8,	0 },
	{ "created_at",		"created_at",	CT_TS_UNIX,	0 },
	{ "updated_at",		"updated_at",	CT_TS_UNIX,	CF_VERSION },
	{ "account_id",		"account_id",	CT_INT8,	0 },
};

/* ---- leads, unsorted, contacts, companies ----------------------------------------------- */

static const struct cat_col amo_lead_cols[] = {
	{ "id",				"id",			CT_INT8,	CF_KEY },
	{ "name",			"name",			CT_TEXT,	0 },
	{ "price",			"price",		CT_NUMERIC,	0 },
	{ "status_id",			"status_id",		CT_INT8,	0 },
	{ "pipeline_id",		"pipeline_id",		CT_INT8,	0 },
	{ "responsible_user_id",	"responsible_user_id",	CT_INT8,	0 },
	{ "group_id",			"group_id",		CT_INT8,	0 },
	{ "loss_reason_id",		"loss_reason_id",	CT_INT8,	0 },
	{ "source_id",			"source_id",		CT_INT8,	0 },
	{ "_embedded.companies.0.id",	"company_id",		CT_INT8,	0 },
	{ "score",			"score",		CT_NUMERIC,	0 },
	/* On every lead since 2022 (null in all captures; the docs: time spent, seconds). */
	{ "labor_cost",			"labor_cost",		CT_NUMERIC,	0 },
	{ "is_deleted",			"is_deleted",		CT_BOOL,	0 },
	{ "is_price_modified_by_robot",	"is_price_modified_by_robot", CT_BOOL,	0 },
	{ "created_by",			"created_by",		CT_INT8,	0 },
	{ "updated_by",			"updated_by",		CT_INT8,	0 },
	{ "created_at",			"created_at",		CT_TS_UNIX,	0 },
	{ "updated_at",			"updated_at",		CT_TS_UNIX,	CF_VERSION },
	{ "closed_at",			"closed_at",		CT_TS_UNIX,	0 },
	{ "closest_task_at",		"closest_task_at",	CT_TS_UNIX,	0 },
	{ "account_id",			"account_id",		CT_INT8,	0 },
};

static const struct cat_child amo_lead_children[] = {
	CFV("leads"),
	TAGS("leads"),
	{ "_embedded.contacts", "lead_contacts", amo_contact_ref_cols,
	  nitems(amo_contact_ref_cols), "lead_id", NULL },
	{ "_embedded.companies", "lead_companies", amo_company_ref_cols,
	  nitems(amo_company_ref_cols), "lead_id", NULL },
	{ "_embedded.catalog_elements", "lead_catalog_elements", amo_element_ref_cols,
	  nitems(amo_element_ref_cols), "lead_id", NULL },
};

/* Incoming leads waiting in a pipeline's first stage; uid is a string. */
static const struct cat_col amo_unsorted_cols[] = {
	{ "uid",			"uid",		CT_TEXT,	CF_KEY },
	{ "source_uid",			"source_uid",	CT_TEXT,	0 },
	{ "source_name",		"source_name",	CT_TEXT,	0 },
	{ "category",			"category",	CT_TEXT,	0 },
	{ "pipeline_id",		"pipeline_id",	CT_INT8,	0 },
	{ "_embedded.leads.0.id",	"lead_id",	CT_INT8,	0 },
	{ "_embedded.contacts.0.id",	"contact_id",	CT_INT8,	0 },
	{ "_embedded.companies.0.id",	"company_id",	CT_INT8,	0 },
	{ "metadata",			"metadata",	CT_JSONB,	0 },
	{ "created_at",			"created_at",	CT_TS_UNIX,	CF_VERSION },
	{ "account_id",			"account_id",	CT_INT8,	0 },
};

static const struct cat_col amo_contact_cols[] = {
	{ "id",				"id",			CT_INT8,	CF_KEY },
	{ "name",			"name",			CT_TEXT,	0 },
	{ "first_name",			"first_name",		CT_TEXT,	0 },
	{ "last_name",			"last_name",		CT_TEXT,	0 },
	{ "responsible_user_id",	"responsible_user_id",	CT_INT8,	0 },
	{ "group_id",			"group_id",		CT_INT8,	0 },
	{ "_embedded.companies.0.id",	"company_id",		CT_INT8,	0 },
	{ "is_deleted",			"is_deleted",		CT_BOOL,	0 },
	{ "is_unsorted",		"is_unsorted",		CT_BOOL,	0 },
	{ "created_by",			"created_by",		CT_INT8,	0 },
	{ "updated_by",			"updated_by",		CT_INT8,	0 },
	{ "created_at",			"created_at",		CT_TS_UNIX,	0 },
	{ "updated_at",			"updated_at",		CT_TS_UNIX,	CF_VERSION },
	{ "closest_task_at",		"closest_task_at",	CT_TS_UNIX,	0 },
	{ "account_id",			"account_id",		CT_INT8,	0 },
};

static const struct cat_child amo_contact_children[] = {
	CFV("contacts"),
	TAGS("contacts"),
	{ "_embedded.companies", "contact_companies", amo_company_ref_cols,
	  nitems(amo_company_ref_cols), "contact_id", NULL },
	{ "_embedded.customers", "contact_customers", amo_customer_ref_cols,
	  nitems(amo_customer_ref_cols), "contact_id", NULL },
	{ "_embedded.catalog_elements", "contact_catalog_elements", amo_element_ref_cols,
	  nitems(amo_element_ref_cols), "contact_id", NULL },
};

static const struct cat_col amo_company_cols[] = {
	{ "id",				"id",			CT_INT8,	CF_KEY },
	{ "name",			"name",			CT_TEXT,	0 },
	{ "responsible_user_id",	"responsible_user_id",	CT_INT8,	0 },
	{ "group_id",			"group_id",		CT_INT8,	0 },
	{ "is_deleted",			"is_deleted",		CT_BOOL,	0 },
	{ "created_by",			"created_by",		CT_INT8,	0 },
	{ "updated_by",			"updated_by",		CT_INT8,	0 },
	{ "created_at",			"created_at",		CT_TS_UNIX,	0 },
	{ "updated_at",			"updated_at",		CT_TS_UNIX,	CF_VERSION },
	{ "closest_task_at",		"closest_task_at",	CT_TS_UNIX,	0 },
	{ "account_id",			"account_id",		CT_INT8,	0 },
};

static const struct cat_child amo_company_children[] = {
	CFV("companies"),
	TAGS("companies"),
	{ "_embedded.contacts", "company_contacts", amo_contact_ref_cols,
	  nitems(amo_contact_ref_cols), "company_id", NULL },
	{ "_embedded.leads", "company_leads", amo_lead_ref_cols,
	  nitems(amo_lead_ref_cols), "company_id", NULL },
	{ "_embedded.customers", "company_customers", amo_customer_ref_cols,
	  nitems(amo_customer_ref_cols), "company_id", NULL },
};

/* ---- tasks, notes, events, talks -------------------------------------------------------- */

static const struct cat_col amo_task_cols[] = {
	{ "id",				"id",			CT_INT8,	CF_KEY },
	{ "entity_id",			"entity_id",		CT_INT8,	0 },
	{ "entity_type",		"entity_type",		CT_TEXT,	0 },
	{ "task_type_id",		"task_type_id",		CT_INT8,	0 },
	{ "text",			"text",			CT_TEXT,	0 },
	{ "result.text",		"result_text",		CT_TEXT,	0 },
	{ "is_completed",		"is_completed",		CT_BOOL,	0 },
	{ "duration",			"duration",		CT_INT8,	0 },
	{ "complete_till",		"complete_till",	CT_TS_UNIX,	0 },
	{ "responsible_user_id",	"responsible_user_id",	CT_INT8,	0 },
	{ "group_id",			"group_id",		CT_INT8,	0 },
	{ "created_by",			"created_by",		CT_INT8,	0 },
	{ "updated_by",			"updated_by",		CT_INT8,	0 },
	{ "created_at",			"created_at",		CT_TS_UNIX,	0 },
	{ "updated_at",			"updated_at",		CT_TS_UNIX,	CF_VERSION },
	{ "account_id",			"account_id",		CT_INT8,	0 },
};

/* Notes of every entity type in one table; entity_type says whose (leads, contacts...). */
static const struct cat_col amo_note_cols[] = {
	{ "id",				"id",			CT_INT8,	CF_KEY },
	{ "$entity_type",		"entity_type",		CT_TEXT,	0 },
	{ "entity_id",			"entity_id",		CT_INT8,	0 },
	{ "note_type",			"note_type",		CT_TEXT,	0 },
	{ "params.text",		"text",			CT_TEXT,	0 },
	{ "params",			"params",		CT_JSONB,	0 },
	{ "is_pinned",			"is_pinned",		CT_BOOL,	0 },
	{ "responsible_user_id",	"responsible_user_id",	CT_INT8,	0 },
	{ "group_id",			"group_id",		CT_INT8,	0 },
	{ "created_by",			"created_by",		CT_INT8,	0 },
	{ "updated_by",			"updated_by",		CT_INT8,	0 },
	{ "created_at",			"created_at",		CT_TS_UNIX,	0 },
	{ "updated_at",			"updated_at",		CT_TS_UNIX,	CF_VERSION },
	{ "account_id",			"account_id",		CT_INT8,	0 },
};

/* Events are immutable: created_at is their version and their incremental cursor. */
static const struct cat_col amo_event_cols[] = {
	{ "id",			"id",		CT_TEXT,	CF_KEY },
	{ "type",		"type",		CT_TEXT,	0 },
	{ "entity_id",		"entity_id",	CT_INT8,	0 },
	{ "entity_type",	"entity_type",	CT_TEXT,	0 },
	{ "created_by",		"created_by",	CT_INT8,	0 },
	{ "created_at",		"created_at",	CT_TS_UNIX,	CF_VERSION },
	{ "value_before",	"value_before",	CT_JSONB,	0 },
	{ "value_after",	"value_after",	CT_JSONB,	0 },
	{ "account_id",		"account_id",	CT_INT8,	0 },
};

/* Chats over REST: conversations (talks) only; message texts are not reachable. */
static const struct cat_col amo_talk_cols[] = {
	{ "talk_id",			"talk_id",	CT_INT8,	CF_KEY },
	{ "chat_id",			"chat_id",	CT_TEXT,	0 },
	{ "contact_id",			"contact_id",	CT_INT8,	0 },
	{ "entity_id",			"entity_id",	CT_INT8,	0 },
	{ "entity_type",		"entity_type",	CT_TEXT,	0 },
	{ "origin",			"origin",	CT_TEXT,	0 },
	{ "is_in_work",			"is_in_work",	CT_BOOL,	0 },
	{ "is_read",			"is_read",	CT_BOOL,	0 },
	{ "rate",			"rate",		CT_INT8,	0 },
	{ "missed_at",			"missed_at",	CT_TS_UNIX,	0 },
	{ "created_at",			"created_at",	CT_TS_UNIX,	0 },
	{ "updated_at",			"updated_at",	CT_TS_UNIX,	CF_VERSION },
	{ "account_id",			"account_id",	CT_INT8,	0 },
};

/* ---- the catalogue ---------------------------------------------------------------------- */

#define ENTITY_TYPES	"leads,contacts,companies,customers"

static const struct cat_entity amo_entities[] = {
	{ .crm = CAT_AMO, .name = "account", .endpoint = "/api/v4/account",
	  .list_key = "", .paging = PAGE_NONE,
	  .params = "with=amojo_id,uuid,users_groups,task_types,version,datetime_settings",
	  .cols = amo_account_cols, .ncols = nitems(amo_account_cols),
	  .children = amo_account_children, .nchildren = nitems(amo_account_children),
	  .doc = "The account; its user groups and task types are child tables" },
	{ .crm = CAT_AMO, .name = "users", .endpoint = "/api/v4/users",
	  .list_key = "_embedded.users", .paging = PAGE_HAL, .flags = CE_FULL_DELETES,
	  .params = "with=role,group,uuid,amojo_id,user_rank,phone_number",
	  .cols = amo_user_cols, .ncols = nitems(amo_user_cols),
	  .doc = "Users (inactive ones stay: old rows reference them)" },
	{ .crm = CAT_AMO, .name = "roles", .endpoint = "/api/v4/roles",
	  .list_key = "_embedded.roles", .paging = PAGE_HAL, .flags = CE_FULL_DELETES | CE_OPTIONAL,
	  .cols = amo_role_cols, .ncols = nitems(amo_role_cols),
	  .doc = "User roles and their rights" },
	{ .crm = CAT_AMO, .name = "pipelines", .endpoint = "/api/v4/leads/pipelines",
	  .list_key = "_embedded.pipelines", .paging = PAGE_NONE, .flags = CE_FULL_DELETES,
	  .cols = amo_pipeline_cols, .ncols = nitems(amo_pipeline_cols),
	  .children = amo_pipeline_children, .nchildren = nitems(amo_pipeline_children),
	  .doc = "Lead pipelines; their stages are in pipeline_statuses" },
	{ .crm = CAT_AMO, .name = "loss_reasons", .endpoint = "/api/v4/leads/loss_reasons",
	  .list_key = "_embedded.loss_reasons", .paging = PAGE_HAL,
	  .flags = CE_FULL_DELETES | CE_OPTIONAL,
	  .cols = amo_loss_reason_cols, .ncols = nitems(amo_loss_reason_cols),
	  .doc = "Reasons a lead was lost" },
	{ .crm = CAT_AMO, .name = "sources", .endpoint = "/api/v4/sources",
	  .list_key = "_embedded.sources", .paging = PAGE_HAL, .flags = CE_FULL_DELETES | CE_OPTIONAL,
	  .cols = amo_source_cols, .ncols = nitems(amo_source_cols),
	  .doc = "Lead sources (chat channels, telephony, forms) tied to pipelines" },
	{ .crm = CAT_AMO, .name = "catalogs", .endpoint = "/api/v4/catalogs",
	  .list_key = "_embedded.catalogs", .paging = PAGE_HAL, .flags = CE_FULL_DELETES | CE_OPTIONAL,
	  .cols = amo_catalog_cols, .ncols = nitems(amo_catalog_cols),
	  .doc = "Catalogs (lists: products, invoices, suppliers, custom lists)" },
	{ .crm = CAT_AMO, .name = "catalog_elements", .endpoint = "/api/v4/catalogs/{catalog_id}/elements",
	  .list_key = "_embedded.elements", .paging = PAGE_HAL, .parent = "catalogs",
	  .flags = CE_FULL_DELETES | CE_OPTIONAL,
	  .cols = amo_catalog_element_cols, .ncols = nitems(amo_catalog_element_cols),
	  .children = amo_catalog_element_children, .nchildren = nitems(amo_catalog_element_children),
	  .doc = "Elements of every catalog" },
	{ .crm = CAT_AMO, .name = "custom_fields", .endpoint = "/api/v4/{entity_type}/custom_fields",
	  .list_key = "_embedded.custom_fields", .paging = PAGE_HAL, .page_size = 50,
	  .parent = ENTITY_TYPES ",customers/segments", .flags = CE_FULL_DELETES | CE_OPTIONAL,
	  .cols = amo_custom_field_cols, .ncols = nitems(amo_custom_field_cols),
	  .children = amo_custom_field_children, .nchildren = nitems(amo_custom_field_children),
	  .doc = "Custom field definitions per entity type; list options in custom_field_enums" },
	{ .crm = CAT_AMO, .name = "catalog_custom_fields",
	  .endpoint = "/api/v4/catalogs/{catalog_id}/custom_fields",
	  .list_key = "_embedded.custom_fields", .paging = PAGE_HAL, .page_size = 50,
	  .parent = "catalogs", .flags = CE_FULL_DELETES | CE_OPTIONAL,
	  .cols = amo_catalog_custom_field_cols, .ncols = nitems(amo_catalog_custom_field_cols),
	  .children = amo_catalog_custom_field_children,
	  .nchildren = nitems(amo_catalog_custom_field_children),
	  .doc = "Custom field definitions of each catalog" },
	{ .crm = CAT_AMO, .name = "custom_field_groups",
	  .endpoint = "/api/v4/{entity_type}/custom_fields/groups",
	  .list_key = "_embedded.custom_field_groups", .paging = PAGE_HAL, .parent = ENTITY_TYPES,
	  .flags = CE_FULL_DELETES | CE_OPTIONAL,
	  .cols = amo_custom_field_group_cols, .ncols = nitems(amo_custom_field_group_cols),
	  .doc = "Custom field groups (card tabs) per entity type" },
	{ .crm = CAT_AMO, .name = "tags", .endpoint = "/api/v4/{entity_type}/tags",
	  .list_key = "_embedded.tags", .paging = PAGE_HAL, .parent = ENTITY_TYPES,
	  .flags = CE_FULL_DELETES | CE_OPTIONAL,
	  .cols = amo_tag_cols, .ncols = nitems(amo_tag_cols),
	  .doc = "Tags per entity type (the same name has another id for leads and contacts)" },
	{ .crm = CAT_AMO, .name = "customer_statuses", .endpoint = "/api/v4/customers/statuses",
	  .list_key = "_embedded.statuses", .paging = PAGE_HAL, .flags = CE_FULL_DELETES | CE_OPTIONAL,
	  .cols = amo_customer_status_cols, .ncols = nitems(amo_customer_status_cols),
	  .doc = "Customer statuses (periodic purchases mode)" },
	{ .crm = CAT_AMO, .name = "customer_segments", .endpoint = "/api/v4/customers/segments",
	  .list_key = "_embedded.segments", .paging = PAGE_HAL, .flags = CE_FULL_DELETES | CE_OPTIONAL,
	  .cols = amo_segment_cols, .ncols = nitems(amo_segment_cols),
	  .children = amo_segment_children, .nchildren = nitems(amo_segment_children),
	  .doc = "Customer segments (dynamic segmentation mode)" },
	{ .crm = CAT_AMO, .name = "leads", .endpoint = "/api/v4/leads",
	  .list_key = "_embedded.leads", .paging = PAGE_HAL,
	  .flags = CE_INCREMENTAL | CE_HOOKS | CE_EVENT_DELETES,
	  .params = "with=contacts,catalog_elements,loss_reason,source_id,is_price_modified_by_robot",
	  .cols = amo_lead_cols, .ncols = nitems(amo_lead_cols),
	  .children = amo_lead_children, .nchildren = nitems(amo_lead_children),
	  .doc = "Deals (leads)", .aliases = "lead" },
	{ .crm = CAT_AMO, .name = "unsorted", .endpoint = "/api/v4/leads/unsorted",
	  .list_key = "_embedded.unsorted", .paging = PAGE_HAL,
	  .flags = CE_HOOKS | CE_OPTIONAL,
	  .cols = amo_unsorted_cols, .ncols = nitems(amo_unsorted_cols),
	  .doc = "Incoming leads not yet accepted (forms, calls, mail, chats)" },
	{ .crm = CAT_AMO, .name = "contacts", .endpoint = "/api/v4/contacts",
	  .list_key = "_embedded.contacts", .paging = PAGE_HAL,
	  .flags = CE_INCREMENTAL | CE_HOOKS | CE_EVENT_DELETES,
	  .params = "with=catalog_elements,customers",
	  .cols = amo_contact_cols, .ncols = nitems(amo_contact_cols),
	  .children = amo_contact_children, .nchildren = nitems(amo_contact_children),
	  .doc = "Contacts; phones and e-mails are custom field values (PHONE, EMAIL)",
	  .aliases = "contact" },
	{ .crm = CAT_AMO, .name = "companies", .endpoint = "/api/v4/companies",
	  .list_key = "_embedded.companies", .paging = PAGE_HAL,
	  .flags = CE_INCREMENTAL | CE_HOOKS | CE_EVENT_DELETES,
	  .params = "with=contacts,leads,customers",
	  .cols = amo_company_cols, .ncols = nitems(amo_company_cols),
	  .children = amo_company_children, .nchildren = nitems(amo_company_children),
	  .doc = "Companies", .aliases = "company" },
	{ .crm = CAT_AMO, .name = "customers", .endpoint = "/api/v4/customers",
	  .list_key = "_embedded.customers", .paging = PAGE_HAL,
	  .flags = CE_INCREMENTAL | CE_HOOKS | CE_EVENT_DELETES | CE_OPTIONAL,
	  .params = "with=contacts,companies,catalog_elements,segments",
	  .cols = amo_customer_cols, .ncols = nitems(amo_customer_cols),
	  .children = amo_customer_children, .nchildren = nitems(amo_customer_children),
	  .doc = "Customers (repeat purchases)", .aliases = "customer" },
	{ .crm = CAT_AMO, .name = "customer_transactions", .endpoint = "/api/v4/customers/transactions",
	  .list_key = "_embedded.transactions", .paging = PAGE_HAL, .flags = CE_OPTIONAL,
	  .cols = amo_transaction_cols, .ncols = nitems(amo_transaction_cols),
	  .doc = "Purchases (transactions) of customers" },
	{ .crm = CAT_AMO, .name = "tasks", .endpoint = "/api/v4/tasks",
	  .list_key = "_embedded.tasks", .paging = PAGE_HAL,
	  .flags = CE_INCREMENTAL | CE_HOOKS | CE_EVENT_DELETES,
	  .cols = amo_task_cols, .ncols = nitems(amo_task_cols),
	  .doc = "Tasks; task types are in task_types", .aliases = "task" },
	{ .crm = CAT_AMO, .name = "notes", .endpoint = "/api/v4/{entity_type}/notes",
	  .list_key = "_embedded.notes", .paging = PAGE_HAL, .parent = ENTITY_TYPES,
	  .flags = CE_INCREMENTAL | CE_HOOKS | CE_EVENT_DELETES | CE_OPTIONAL,
	  .cols = amo_note_cols, .ncols = nitems(amo_note_cols),
	  .doc = "Notes of leads, contacts, companies and customers", .aliases = "note,common_note" },
	{ .crm = CAT_AMO, .name = "talks", .endpoint = "/api/v4/talks",
	  .list_key = "_embedded.talks", .paging = PAGE_HAL,
	  .flags = CE_INCREMENTAL | CE_HOOKS | CE_OPTIONAL,
	  .cols = amo_talk_cols, .ncols = nitems(amo_talk_cols),
	  .doc = "Chat conversations (talks); message texts are not available over REST",
	  .aliases = "talk" },
	{ .crm = CAT_AMO, .name = "events", .endpoint = "/api/v4/events",
	  .list_key = "_embedded.events", .paging = PAGE_HAL, .page_size = 100,
	  .flags = CE_INCREMENTAL | CE_EVENT_LOG,
	  .cols = amo_event_cols, .ncols = nitems(amo_event_cols),
	  .doc = "The account's event log (field history, deletions, calls, chats)" },
};

const struct cat_crm_desc catalog_amo = { CAT_AMO, "amo", amo_entities, nitems(amo_entities) };
