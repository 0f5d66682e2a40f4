/*
 * catalog_hollihop.c - every Hollihop API V2 method crmsync exports (the 30 the plan
 * names), as data (see catalog.h). services/hollihop-sync pages through them in this
 * order, one generic loop per paging mode; the store builds its tables from them.
 *
 * Conventions: table and column names are the API's PascalCase names in snake_case
 * (EMail -> email); ids, foreign keys, names, statuses, dates, booleans and money are
 * typed; nested arrays of objects get child tables; arrays of strings become text[].
 * Local times (Created, Updated, DateTime...) are CT_TS_LOCAL, read in the configured
 * zone. Money is numeric: value_quantity from ValueQuantity where the API sends it, and
 * the formatted strings ("33 000,00 руб.") parsed by CT_MONEY_TEXT where it does not.
 * `params` templates ("{$today}", "{a|b}", "{$parent}") are expanded by the fetcher; a
 * "$name" column reads the parameter `name` of the call (e.g. the clientId of a
 * per-client call). Methods whose shape is UNSURE in the API notes are CE_OPTIONAL: an
 * API error there skips the method instead of failing the run.
 *
 * Evidence: docs/api/hollihop.md says, for every typed column below, whether its source key
 * was seen in real traffic (real response shapes, kept as contract fixtures in
 * tests/contract/hollihop/), is named by the field list of a client that runs against live
 * accounts, or is an ASSUMPTION. Keys real traffic contradicts are not typed here.
 */
#include "catalog.h"

#define HH_DELETES	CE_FULL_DELETES
#define HH_UNSURE	(CE_FULL_DELETES | CE_OPTIONAL)

/* ---- shared shapes ---- */

/*
 * Child columns never repeat a parent key column's name (the store stages child rows
 * beside the parent key), hence office_id rather than id.
 */
static const struct cat_col hh_ref_cols[] = {		/* {Id, Name}: offices (or companies) */
	{ "Id",			"office_id",		CT_INT8,	0 },
	{ "Name",		"office_name",		CT_TEXT,	0 },
};

static const struct cat_col hh_assignee_cols[] = {	/* {Id, FullName}: employees */
	{ "Id",			"employee_id",		CT_INT8,	0 },
	{ "FullName",		"full_name",		CT_TEXT,	0 },
};

static const struct cat_col hh_extra_field_cols[] = {	/* {Name, Value} */
	{ "Name",		"name",			CT_TEXT,	0 },
	{ "Value",		"value",		CT_TEXT,	0 },
};

/* Agents (parents, relatives) of students, leads and unit memberships: no id of their own. */
static const struct cat_col hh_agent_cols[] = {
	{ "FirstName",		"first_name",		CT_TEXT,	0 },
	{ "WhoIs",		"who_is",		CT_TEXT,	0 },
	{ "Mobile",		"mobile",		CT_TEXT,	0 },
	{ "LastName",		"last_name",		CT_TEXT,	0 },
	{ "MiddleName",		"middle_name",		CT_TEXT,	0 },
	{ "Phone",		"phone",		CT_TEXT,	0 },
	{ "EMail",		"email",		CT_TEXT,	0 },
	{ "Skype",		"skype",		CT_TEXT,	0 },
	{ "JobOrStudyPlace",	"job_or_study_place",	CT_TEXT,	0 },
	{ "Position",		"position",		CT_TEXT,	0 },
	{ "Birthday",		"birthday",		CT_DATE,	0 },
	{ "IsCustomer",		"is_customer",		CT_BOOL,	0 },
	{ "UseMobileBySystem",	"use_mobile_by_system",	CT_BOOL,	0 },
	{ "UseEMailBySystem",	"use_email_by_system",	CT_BOOL,	0 },
};

/* ---- dictionaries ---- */

static const struct cat_col hh_location_cols[] = {
	{ "Id",			"id",			CT_INT8,	CF_KEY },
	{ "Name",		"name",			CT_TEXT,	0 },
};

static const struct cat_col hh_office_cols[] = {
	{ "Id",			"id",			CT_INT8,	CF_KEY },
	{ "Name",		"name",			CT_TEXT,	0 },
	{ "Location",		"location",		CT_TEXT,	0 },	/* a location's Name */
	{ "Address",		"address",		CT_TEXT,	0 },
	{ "Phone",		"phone",		CT_TEXT,	0 },
	{ "EMail",		"email",		CT_TEXT,	0 },
	{ "TimeZone",		"time_zone",		CT_TEXT,	0 },
	{ "NoClassrooms",	"no_classrooms",	CT_BOOL,	0 },
	{ "License",		"license",		CT_TEXT,	0 },
};

static const struct cat_col hh_lead_status_cols[] = {
	{ "Id",			"id",			CT_INT8,	CF_KEY },
	{ "Name",		"name",			CT_TEXT,	0 },
	{ "Type",		"type",			CT_TEXT,	0 },
};

static const struct cat_col hh_status_cols[] = {		/* client and employee statuses */
	{ "Id",			"id",			CT_INT8,	CF_KEY },
	{ "Name",		"name",			CT_TEXT,	0 },
};

static const struct cat_col hh_discipline_cols[] = {	/* the row is a bare string */
	{ "",			"name",			CT_TEXT,	CF_KEY },
};

static const struct cat_col hh_level_cols[] = {
	{ "Name",		"name",			CT_TEXT,	CF_KEY },
	{ "Disciplines",	"disciplines",		CT_TEXT_ARRAY,	0 },
};

static const struct cat_col hh_learning_type_cols[] = {	/* a string, or {Name} (UNSURE) */
	{ "Name|",		"name",			CT_TEXT,	CF_KEY },
};

static const struct cat_col hh_price_cols[] = {
	{ "Id",			"id",			CT_INT8,	CF_KEY },
	{ "Name",		"name",			CT_TEXT,	0 },
	{ "ValueQuantity",	"value_quantity",	CT_NUMERIC,	0 },
	{ "Value",		"value",		CT_MONEY_TEXT,	0 },
	{ "UnitsQuantity",	"units_quantity",	CT_NUMERIC,	0 },
	{ "UnitsType",		"units_type",		CT_TEXT,	0 },
};

static const struct cat_col hh_price_value_cols[] = {
	{ "Students",		"students",		CT_INT8,	0 },
	{ "ValueQuantity",	"value_quantity",	CT_NUMERIC,	0 },
	{ "Value",		"value",		CT_MONEY_TEXT,	0 },
	{ "ValueCurrency",	"value_currency",	CT_TEXT,	0 },
};

static const struct cat_child hh_price_children[] = {
	{ "Offices",	 "price_offices",	hh_ref_cols,	     nitems(hh_ref_cols),	  "price_id", NULL },
	{ "PriceValues", "price_values",	hh_price_value_cols, nitems(hh_price_value_cols), "price_id", NULL },
};

static const struct cat_col hh_discount_cols[] = {	/* discounts and surcharges (UNSURE) */
	{ "Id",			"id",			CT_INT8,	CF_KEY },
	{ "Name",		"name",			CT_TEXT,	0 },
	{ "Type",		"type",			CT_TEXT,	0 },	/* Percent / Money */
	{ "ValueQuantity",	"value_quantity",	CT_NUMERIC,	0 },
	{ "Value",		"value",		CT_TEXT,	0 },	/* "15%" or money text */
	{ "Description",	"description",		CT_TEXT,	0 },
};

/* ---- staff ---- */

static const struct cat_col hh_teacher_cols[] = {
	{ "Id",			"id",			CT_INT8,	CF_KEY },
	{ "Created",		"created",		CT_TS_LOCAL,	0 },
	{ "FirstName",		"first_name",		CT_TEXT,	0 },
	{ "LastName",		"last_name",		CT_TEXT,	0 },
	{ "MiddleName",		"middle_name",		CT_TEXT,	0 },
	{ "Birthday",		"birthday",		CT_DATE,	0 },
	{ "Mobile",		"mobile",		CT_TEXT,	0 },
	{ "Phone",		"phone",		CT_TEXT,	0 },
	{ "EMail",		"email",		CT_TEXT,	0 },
	{ "UseMobileBySystem",	"use_mobile_by_system",	CT_BOOL,	0 },
	{ "UseEMailBySystem",	"use_email_by_system",	CT_BOOL,	0 },
	{ "Fired",		"fired",		CT_BOOL,	0 },
	{ "StatusId",		"status_id",		CT_INT8,	0 },
	{ "Status",		"status",		CT_TEXT,	0 },
	{ "Disciplines",	"disciplines",		CT_TEXT_ARRAY,	0 },
	{ "Levels",		"levels",		CT_TEXT_ARRAY,	0 },
	{ "Maturities",		"maturities",		CT_TEXT_ARRAY,	0 },
	{ "Corporative",	"corporative",		CT_BOOL,	0 },
	{ "PhotoUrls",		"photo_urls",		CT_TEXT_ARRAY,	0 },	/* ASSUMPTION */
};

static const struct cat_child hh_teacher_children[] = {
	{ "Offices",	"teacher_offices",	hh_ref_cols,	nitems(hh_ref_cols),	"teacher_id", NULL },
};

static const struct cat_col hh_employee_cols[] = {
	{ "Id",			"id",			CT_INT8,	CF_KEY },
	{ "FirstName",		"first_name",		CT_TEXT,	0 },
	{ "LastName",		"last_name",		CT_TEXT,	0 },
	{ "MiddleName",		"middle_name",		CT_TEXT,	0 },
	{ "Birthday",		"birthday",		CT_DATE,	0 },
	{ "Mobile",		"mobile",		CT_TEXT,	0 },
	{ "Phone",		"phone",		CT_TEXT,	0 },
	{ "EMail",		"email",		CT_TEXT,	0 },
	{ "Position",		"position",		CT_TEXT,	0 },
	{ "Fired",		"fired",		CT_BOOL,	0 },
	{ "Corporative",	"corporative",		CT_BOOL,	0 },
	{ "StatusId",		"status_id",		CT_INT8,	0 },
	{ "Status",		"status",		CT_TEXT,	0 },
	{ "PhotoUrls",		"photo_urls",		CT_TEXT_ARRAY,	0 },
};

static const struct cat_child hh_employee_children[] = {
	{ "Offices",	"employee_offices",	hh_ref_cols,	nitems(hh_ref_cols),	"employee_id", NULL },
};

/* ---- clients ---- */

static const struct cat_col hh_company_cols[] = {	/* fields UNSURE */
	{ "Id",			"id",			CT_INT8,	CF_KEY },
	{ "ClientId",		"client_id",		CT_INT8,	0 },
	{ "Created",		"created",		CT_TS_LOCAL,	0 },
	{ "Updated",		"updated",		CT_TS_LOCAL,	CF_VERSION },
	{ "Name",		"name",			CT_TEXT,	0 },
	{ "FullName",		"full_name",		CT_TEXT,	0 },
	{ "Inn",		"inn",			CT_TEXT,	0 },
	{ "Kpp",		"kpp",			CT_TEXT,	0 },
	{ "Address",		"address",		CT_TEXT,	0 },
	{ "EMail",		"email",		CT_TEXT,	0 },
	{ "ContactPerson",	"contact_person",	CT_TEXT,	0 },
};

static const struct cat_col hh_phone_cols[] = {
	{ "Number",		"number",		CT_TEXT,	0 },
	{ "Description",	"description",		CT_TEXT,	0 },
};

static const struct cat_child hh_company_children[] = {
	{ "Phones",		 "company_phones",	hh_phone_cols,	  nitems(hh_phone_cols),    "company_id", NULL },
	{ "OfficesAndCompanies", "company_offices",	hh_ref_cols,	  nitems(hh_ref_cols),	    "company_id", NULL },
	{ "Assignees",		 "company_assignees",	hh_assignee_cols, nitems(hh_assignee_cols), "company_id", NULL },
};

static const struct cat_col hh_student_cols[] = {
	{ "ClientId",		"client_id",		CT_INT8,	CF_KEY },	/* the FK everywhere */
	{ "Id",			"id",			CT_INT8,	0 },		/* another number */
	{ "FirstName",		"first_name",		CT_TEXT,	0 },
	{ "LastName",		"last_name",		CT_TEXT,	0 },
	{ "Updated",		"updated",		CT_TS_LOCAL,	CF_VERSION },
	{ "MiddleName",		"middle_name",		CT_TEXT,	0 },
	{ "Created",		"created",		CT_TS_LOCAL,	0 },
	{ "Gender",		"gender",		CT_BOOL,	0 },	/* true = male (UNSURE) */
	{ "Birthday",		"birthday",		CT_DATE,	0 },
	{ "AddressDate",	"address_date",		CT_DATE,	0 },
	{ "VisitDateTime",	"visit_date_time",	CT_DATE,	0 },	/* a date despite the name */
	{ "StatusId",		"status_id",		CT_INT8,	0 },
	{ "Status",		"status",		CT_TEXT,	0 },
	{ "Mobile",		"mobile",		CT_TEXT,	0 },
	{ "Phone",		"phone",		CT_TEXT,	0 },
	{ "EMail",		"email",		CT_TEXT,	0 },
	{ "UseMobileBySystem",	"use_mobile_by_system",	CT_BOOL,	0 },
	{ "UseEMailBySystem",	"use_email_by_system",	CT_BOOL,	0 },
	{ "Skype",		"skype",		CT_TEXT,	0 },
	{ "Address",		"address",		CT_TEXT,	0 },
	{ "SocialNetworkPage",	"social_network_page",	CT_TEXT,	0 },
	{ "JobOrStudyPlace",	"job_or_study_place",	CT_TEXT,	0 },
	{ "Position",		"position",		CT_TEXT,	0 },
	{ "Maturity",		"maturity",		CT_TEXT,	0 },
	{ "AdSource",		"ad_source",		CT_TEXT,	0 },
	{ "LearningTypes",	"learning_types",	CT_TEXT_ARRAY,	0 },
	{ "PhotoUrls",		"photo_urls",		CT_TEXT_ARRAY,	0 },
	/* The amoCRM lead linked by the extra field CS_HOLLIHOP_AMO_LEAD_FIELD ("Ссылка на
	 * amoCRM" = "https://<sub>.amocrm.ru/leads/detail/<lead id>"): joins amo.leads.id. */
	{ "ExtraFields[Name=$amo_lead_field].Value~/leads/detail/", "amo_lead_id", CT_INT8, 0 },
};

static const struct cat_col hh_student_discipline_cols[] = {
	{ "Discipline",		"discipline",		CT_TEXT,	0 },
	{ "Level",		"level",		CT_TEXT,	0 },
};

static const struct cat_child hh_student_children[] = {
	/* student_agents stays first: the store's tests use child 0. */
	{ "Agents",		 "student_agents",	 hh_agent_cols,	nitems(hh_agent_cols),	NULL, NULL },
	{ "OfficesAndCompanies", "student_offices",	 hh_ref_cols,	nitems(hh_ref_cols),	NULL, NULL },
	{ "Assignees",		 "student_assignees",	 hh_assignee_cols, nitems(hh_assignee_cols), NULL, NULL },
	{ "Disciplines",	 "student_disciplines",	 hh_student_discipline_cols,
	  nitems(hh_student_discipline_cols), NULL, NULL },
	{ "ExtraFields",	 "student_extra_fields", hh_extra_field_cols, nitems(hh_extra_field_cols), NULL, NULL },
};

static const struct cat_col hh_client_file_cols[] = {	/* per client; fields UNSURE */
	{ "Id",			"id",			CT_INT8,	CF_KEY },
	{ "$clientId",		"client_id",		CT_INT8,	0 },
	{ "Created",		"created",		CT_TS_LOCAL,	0 },
	{ "Name",		"name",			CT_TEXT,	0 },
	{ "Url",		"url",			CT_TEXT,	0 },
	{ "Size",		"size",			CT_INT8,	0 },
	{ "Description",	"description",		CT_TEXT,	0 },
};

static const struct cat_col hh_office_settings_cols[] = {	/* per client; fields UNSURE */
	{ "$clientId",		"client_id",		CT_INT8,	CF_KEY },
	{ "Enabled",		"enabled",		CT_BOOL,	0 },
	{ "Login",		"login",		CT_TEXT,	0 },
	{ "LastLoginDate",	"last_login_date",	CT_TS_LOCAL,	0 },
	{ "ShowSchedule",	"show_schedule",	CT_BOOL,	0 },
	{ "ShowPayments",	"show_payments",	CT_BOOL,	0 },
	{ "ShowBalance",	"show_balance",		CT_BOOL,	0 },
	{ "ShowHomework",	"show_homework",	CT_BOOL,	0 },
	{ "ShowMarks",		"show_marks",		CT_BOOL,	0 },
	{ "AllowOnlinePayment",	"allow_online_payment",	CT_BOOL,	0 },
};

/* ---- leads ---- */

static const struct cat_col hh_lead_cols[] = {
	{ "Id",			"id",			CT_INT8,	CF_KEY },
	{ "Created",		"created",		CT_TS_LOCAL,	0 },
	{ "Updated",		"updated",		CT_TS_LOCAL,	CF_VERSION },
	{ "FirstName",		"first_name",		CT_TEXT,	0 },
	{ "LastName",		"last_name",		CT_TEXT,	0 },
	{ "MiddleName",		"middle_name",		CT_TEXT,	0 },
	{ "Birthday",		"birthday",		CT_DATE,	0 },
	{ "AddressDate",	"address_date",		CT_DATE,	0 },
	{ "StatusId",		"status_id",		CT_INT8,	0 },
	{ "Status",		"status",		CT_TEXT,	0 },
	{ "Mobile",		"mobile",		CT_TEXT,	0 },
	{ "Phone",		"phone",		CT_TEXT,	0 },
	{ "EMail",		"email",		CT_TEXT,	0 },
	{ "UseMobileBySystem",	"use_mobile_by_system",	CT_BOOL,	0 },
	{ "UseEMailBySystem",	"use_email_by_system",	CT_BOOL,	0 },
	{ "Discipline",		"discipline",		CT_TEXT,	0 },
	{ "Level",		"level",		CT_TEXT,	0 },
	{ "LearningType",	"learning_type",	CT_TEXT,	0 },
	{ "Maturity",		"maturity",		CT_TEXT,	0 },
	{ "AdSource",		"ad_source",		CT_TEXT,	0 },
	{ "StudentClientId",	"student_client_id",	CT_INT8,	0 },
};

static const struct cat_child hh_lead_children[] = {
	{ "Agents",		 "lead_agents",		hh_agent_cols,	  nitems(hh_agent_cols),    "lead_id", NULL },
	{ "OfficesAndCompanies", "lead_offices",	hh_ref_cols,	  nitems(hh_ref_cols),	    "lead_id", NULL },
	{ "Assignees",		 "lead_assignees",	hh_assignee_cols, nitems(hh_assignee_cols), "lead_id", NULL },
	{ "ExtraFields",	 "lead_extra_fields",	hh_extra_field_cols, nitems(hh_extra_field_cols), "lead_id", NULL },
};

static const struct cat_col hh_study_request_cols[] = {
	{ "Id",			"id",			CT_INT8,	CF_KEY },
	{ "Created",		"created",		CT_TS_LOCAL,	0 },
	{ "Status",		"status",		CT_TEXT,	0 },
	{ "Type",		"type",			CT_TEXT,	0 },
	{ "Location",		"location",		CT_TEXT,	0 },
	{ "Office",		"office",		CT_TEXT,	0 },
	{ "Name",		"name",			CT_TEXT,	0 },
	{ "Phone",		"phone",		CT_TEXT,	0 },
	{ "EMail",		"email",		CT_TEXT,	0 },
	{ "Discipline",		"discipline",		CT_TEXT,	0 },
	{ "Level",		"level",		CT_TEXT,	0 },
	{ "Teacher",		"teacher",		CT_TEXT,	0 },
	{ "BeginDate",		"begin_date",		CT_DATE,	0 },
	{ "EndDate",		"end_date",		CT_DATE,	0 },
	{ "Reffer|Referrer",	"referrer",		CT_TEXT,	0 },	/* "Reffer" (sic) per a strict client */
	{ "Utm.Source",		"utm_source",		CT_TEXT,	0 },
	{ "Utm.Medium",		"utm_medium",		CT_TEXT,	0 },
	{ "Utm.Campaign",	"utm_campaign",		CT_TEXT,	0 },
	{ "Utm.Term",		"utm_term",		CT_TEXT,	0 },
	{ "Utm.Content",	"utm_content",		CT_TEXT,	0 },
	{ "LeadId",		"lead_id",		CT_INT8,	0 },
	{ "StudentClientId",	"student_client_id",	CT_INT8,	0 },
};

static const struct cat_child hh_study_request_children[] = {
	{ "ExtraFields", "study_request_extra_fields", hh_extra_field_cols, nitems(hh_extra_field_cols), "study_request_id", NULL },
};

static const struct cat_col hh_lead_history_cols[] = {	/* no id: (LeadId, DateTime, AfterId) */
	{ "LeadId",		"lead_id",		CT_INT8,	CF_KEY },
	{ "DateTime",		"date_time",		CT_TS_LOCAL,	CF_KEY },
	{ "AfterId",		"after_id",		CT_INT8,	CF_KEY },
	{ "AfterName",		"after_name",		CT_TEXT,	0 },
	{ "BeforeId",		"before_id",		CT_INT8,	0 },	/* UNSURE */
	{ "BeforeName",		"before_name",		CT_TEXT,	0 },	/* UNSURE */
};

/* ---- teaching units ---- */

static const struct cat_col hh_ed_unit_cols[] = {
	{ "Id",			"id",			CT_INT8,	CF_KEY },
	{ "Type",		"type",			CT_TEXT,	0 },
	{ "Name",		"name",			CT_TEXT,	0 },
	/* Rows carry no Status: it is the statuses= filter of the pass that read the row. */
	{ "$statuses",		"status",		CT_TEXT,	0 },
	{ "Corporative",	"corporative",		CT_BOOL,	0 },
	{ "OfficeOrCompanyId",	"office_or_company_id",	CT_INT8,	0 },
	{ "OfficeOrCompanyName", "office_or_company_name", CT_TEXT,	0 },
	{ "OfficeOrCompanyAddress", "office_or_company_address", CT_TEXT, 0 },
	{ "OfficeTimeZone",	"office_time_zone",	CT_TEXT,	0 },
	{ "Discipline",		"discipline",		CT_TEXT,	0 },
	{ "Level",		"level",		CT_TEXT,	0 },
	{ "Maturity",		"maturity",		CT_TEXT,	0 },
	{ "LearningType",	"learning_type",	CT_TEXT,	0 },
	{ "StudentsCount",	"students_count",	CT_INT8,	0 },
	{ "Vacancies",		"vacancies",		CT_INT8,	0 },
	{ "StudyUnitsInRange",	"study_units_in_range",	CT_TEXT,	0 },
	{ "Description",	"description",		CT_TEXT,	0 },
	{ "CompanyContractNumber", "company_contract_number", CT_TEXT,	0 },
	{ "CompanyContractDate", "company_contract_date", CT_DATE,	0 },
	{ "Assignee.Id",	"assignee_id",		CT_INT8,	0 },
	{ "Assignee.FullName",	"assignee_full_name",	CT_TEXT,	0 },
	/* No Created / Updated: rows have neither, so ed units have no version column. */
};

static const struct cat_col hh_schedule_item_cols[] = {
	{ "Id",			"schedule_item_id",	CT_INT8,	0 },
	{ "BeginDate",		"begin_date",		CT_DATE,	0 },
	{ "EndDate",		"end_date",		CT_DATE,	0 },	/* NULL = open-ended */
	{ "BeginTime",		"begin_time",		CT_TIME,	0 },
	{ "EndTime",		"end_time",		CT_TIME,	0 },
	{ "Weekdays",		"weekdays",		CT_INT8,	0 },	/* bit0 = Monday */
	{ "ClassroomId",	"classroom_id",		CT_INT8,	0 },
	{ "ClassroomName",	"classroom_name",	CT_TEXT,	0 },
	{ "ClassroomLink",	"classroom_link",	CT_TEXT,	0 },
	{ "TeacherId",		"teacher_id",		CT_INT8,	0 },
	{ "TeacherIds",		"teacher_ids",		CT_INT8_ARRAY,	0 },
	{ "Teacher",		"teacher",		CT_TEXT,	0 },
	{ "Teachers",		"teachers",		CT_TEXT_ARRAY,	0 },
};

static const struct cat_col hh_unit_day_cols[] = {	/* what actually happened, per lesson day */
	{ "Date",		"date",			CT_DATE,	0 },
	{ "Minutes",		"minutes",		CT_NUMERIC,	0 },
	{ "Pass",		"pass",			CT_BOOL,	0 },	/* the lesson was not held */
	{ "Description",	"description",		CT_TEXT,	0 },
	{ "ScheduleItemIds",	"schedule_item_ids",	CT_INT8_ARRAY,	0 },
	{ "StudentPayableMinutes", "student_payable_minutes", CT_NUMERIC, 0 },
	{ "TeacherPayableMinutes", "teacher_payable_minutes", CT_NUMERIC, 0 },
};

static const struct cat_child hh_ed_unit_children[] = {
	{ "ScheduleItems", "ed_unit_schedule_items", hh_schedule_item_cols, nitems(hh_schedule_item_cols), "ed_unit_id", NULL },
	{ "Days",	   "ed_unit_days",	     hh_unit_day_cols,	    nitems(hh_unit_day_cols),	   "ed_unit_id", NULL },
	{ "ExtraFields",   "ed_unit_extra_fields",   hh_extra_field_cols,   nitems(hh_extra_field_cols),   "ed_unit_id", NULL },
};

static const struct cat_col hh_ed_unit_student_cols[] = {	/* no id: (EdUnitId, StudentClientId) */
	{ "EdUnitId",		"ed_unit_id",		CT_INT8,	CF_KEY },
	{ "StudentClientId",	"student_client_id",	CT_INT8,	CF_KEY },
	{ "EdUnitType",		"ed_unit_type",		CT_TEXT,	0 },
	{ "EdUnitName",		"ed_unit_name",		CT_TEXT,	0 },
	{ "EdUnitCorporative",	"ed_unit_corporative",	CT_BOOL,	0 },
	{ "EdUnitOfficeOrCompanyId", "ed_unit_office_or_company_id", CT_INT8, 0 },
	{ "EdUnitOfficeOrCompanyName", "ed_unit_office_or_company_name", CT_TEXT, 0 },
	{ "EdUnitDiscipline",	"ed_unit_discipline",	CT_TEXT,	0 },
	{ "EdUnitLevel",	"ed_unit_level",	CT_TEXT,	0 },
	{ "EdUnitLearningType",	"ed_unit_learning_type", CT_TEXT,	0 },
	{ "EdUnitMaturity",	"ed_unit_maturity",	CT_TEXT,	0 },
	{ "StudentName",	"student_name",		CT_TEXT,	0 },
	{ "StudentMobile",	"student_mobile",	CT_TEXT,	0 },
	{ "StudentPhone",	"student_phone",	CT_TEXT,	0 },
	{ "StudentEMail",	"student_email",	CT_TEXT,	0 },
	{ "BeginDate",		"begin_date",		CT_DATE,	0 },
	{ "EndDate",		"end_date",		CT_DATE,	0 },
	{ "BeginTime",		"begin_time",		CT_TIME,	0 },
	{ "EndTime",		"end_time",		CT_TIME,	0 },
	{ "Weekdays",		"weekdays",		CT_INT8,	0 },
	{ "Status",		"status",		CT_TEXT,	0 },	/* Normal / Stopped / Reserve */
	{ "StudyMinutes",	"study_minutes",	CT_NUMERIC,	0 },
	{ "StudyUnits",		"study_units",		CT_TEXT,	0 },
};

static const struct cat_col hh_student_day_cols[] = {	/* attendance of one student */
	{ "Date",		"date",			CT_DATE,	0 },
	{ "Minutes",		"minutes",		CT_NUMERIC,	0 },	/* this student's lesson */
	{ "Pass",		"pass",			CT_BOOL,	0 },	/* true = absent */
	{ "StudentPayableMinutes", "student_payable_minutes", CT_NUMERIC, 0 },
	{ "TeacherPayableMinutes", "teacher_payable_minutes", CT_NUMERIC, 0 },
	{ "Description",	"description",		CT_TEXT,	0 },
	{ "Accepted",		"accepted",		CT_BOOL,	0 },
	{ "AcceptedDescription", "accepted_description", CT_TEXT,	0 },
};

static const struct cat_col hh_payer_cols[] = {
	{ "ClientId",		"client_id",		CT_INT8,	0 },
	{ "IsCompany",		"is_company",		CT_BOOL,	0 },
	{ "Name",		"name",			CT_TEXT,	0 },
	{ "Actual",		"actual",		CT_BOOL,	0 },
	{ "PriceId",		"price_id",		CT_INT8,	0 },
	{ "PriceName",		"price_name",		CT_TEXT,	0 },
	{ "PayableMinutes",	"payable_minutes",	CT_NUMERIC,	0 },
	{ "PayableUnits",	"payable_units",	CT_TEXT,	0 },
	{ "Value",		"value",		CT_MONEY_TEXT,	0 },
	{ "ValueRanged",	"value_ranged",		CT_MONEY_TEXT,	0 },
	{ "ValuePaidRanged",	"value_paid_ranged",	CT_MONEY_TEXT,	0 },
	{ "ContractValue",	"contract_value",	CT_MONEY_TEXT,	0 },
	{ "ContractValueRanged", "contract_value_ranged", CT_MONEY_TEXT, 0 },
	{ "DebtDate",		"debt_date",		CT_DATE,	0 },
};

static const struct cat_child hh_ed_unit_student_children[] = {
	{ "Days",		"ed_unit_student_days",	  hh_student_day_cols, nitems(hh_student_day_cols), NULL, NULL },
	{ "Payers",		"ed_unit_student_payers", hh_payer_cols,       nitems(hh_payer_cols),	    NULL, NULL },
	{ "StudentAgents",	"ed_unit_student_agents", hh_agent_cols,       nitems(hh_agent_cols),	    NULL, NULL },
	{ "StudentExtraFields",	"ed_unit_student_extra_fields", hh_extra_field_cols, nitems(hh_extra_field_cols), NULL, NULL },
};

static const struct cat_col hh_ed_unit_lead_cols[] = {	/* trial lessons: (EdUnitId, LeadId) */
	{ "EdUnitId",		"ed_unit_id",		CT_INT8,	CF_KEY },
	{ "LeadId",		"lead_id",		CT_INT8,	CF_KEY },
	{ "EdUnitType",		"ed_unit_type",		CT_TEXT,	0 },
	{ "EdUnitName",		"ed_unit_name",		CT_TEXT,	0 },
	{ "EdUnitDiscipline",	"ed_unit_discipline",	CT_TEXT,	0 },
	{ "EdUnitOfficeOrCompanyId", "ed_unit_office_or_company_id", CT_INT8, 0 },
	{ "EdUnitOfficeOrCompanyName", "ed_unit_office_or_company_name", CT_TEXT, 0 },
	{ "Date",		"date",			CT_DATE,	0 },
	{ "BeginTime",		"begin_time",		CT_TIME,	0 },
	{ "EndTime",		"end_time",		CT_TIME,	0 },
	{ "Visited",		"visited",		CT_BOOL,	0 },
};

static const struct cat_col hh_lesson_plan_cols[] = {	/* fields UNSURE */
	{ "Id",			"id",			CT_INT8,	CF_KEY },
	{ "EdUnitId",		"ed_unit_id",		CT_INT8,	0 },
	{ "EdUnitName",		"ed_unit_name",		CT_TEXT,	0 },
	{ "Date",		"date",			CT_DATE,	0 },
	{ "TeacherId",		"teacher_id",		CT_INT8,	0 },
	{ "Topic",		"topic",		CT_TEXT,	0 },
	{ "Description",	"description",		CT_TEXT,	0 },
	{ "Homework",		"homework",		CT_TEXT,	0 },
};

/* ---- finance ---- */

static const struct cat_col hh_payment_cols[] = {
	{ "Id",			"id",			CT_INT8,	CF_KEY },
	{ "Created",		"created",		CT_TS_LOCAL,	0 },
	{ "Type",		"type",			CT_TEXT,	0 },	/* localized: Обучение, Возврат */
	{ "Date",		"date",			CT_DATE,	0 },
	{ "PaidDate",		"paid_date",		CT_DATE,	0 },
	{ "RequiredPaidDate",	"required_paid_date",	CT_DATE,	0 },
	{ "State",		"state",		CT_TEXT,	0 },	/* Paid / Unpaid */
	{ "OfficeOrCompanyId",	"office_or_company_id",	CT_INT8,	0 },
	{ "OfficeOrCompanyName", "office_or_company_name", CT_TEXT,	0 },
	{ "ClientId",		"client_id",		CT_INT8,	0 },
	{ "ClientName",		"client_name",		CT_TEXT,	0 },
	{ "ValueQuantity",	"value_quantity",	CT_NUMERIC,	0 },	/* the amount, signed */
	{ "Value",		"value",		CT_MONEY_TEXT,	0 },	/* parsed from the text */
	{ "ValueCurrency",	"value_currency",	CT_TEXT,	0 },
	{ "PaymentMethodId",	"payment_method_id",	CT_INT8,	0 },
	{ "PaymentMethodName",	"payment_method_name",	CT_TEXT,	0 },
	{ "Description",	"description",		CT_TEXT,	0 },
};

static const struct cat_col hh_balance_cols[] = {		/* as of the run's day (balanceDate) */
	{ "ClientId",		"client_id",		CT_INT8,	CF_KEY },
	{ "ClientName",		"client_name",		CT_TEXT,	0 },
	{ "BalanceUnits",	"balance_units",	CT_TEXT,	0 },
	{ "BalanceMoney",	"balance_money",	CT_MONEY_TEXT,	0 },
	{ "DebtUnits",		"debt_units",		CT_TEXT,	0 },
	{ "DebtMoney",		"debt_money",		CT_MONEY_TEXT,	0 },
	{ "HasAnyDebtUnits",	"has_any_debt_units",	CT_BOOL,	0 },
	{ "HasAnyDebtMoney",	"has_any_debt_money",	CT_BOOL,	0 },
	{ "HasAggregateDebtUnits", "has_aggregate_debt_units", CT_BOOL, 0 },
	{ "HasAggregateDebtMoney", "has_aggregate_debt_money", CT_BOOL, 0 },
	{ "StudyBalance.BalanceMoney", "study_balance_money", CT_MONEY_TEXT, 0 },
	{ "StudyBalance.DebtMoney", "study_debt_money",	CT_MONEY_TEXT,	0 },
	{ "StudyBalance.IsDebtMoney", "study_is_debt_money", CT_BOOL,	0 },
};

static const struct cat_col hh_unit_balance_cols[] = {
	{ "EdUnitId",		"ed_unit_id",		CT_INT8,	0 },
	{ "EdUnitType",		"ed_unit_type",		CT_TEXT,	0 },
	{ "EdUnitName",		"ed_unit_name",		CT_TEXT,	0 },
	{ "StudentName",	"student_name",		CT_TEXT,	0 },
	{ "BalanceUnits",	"balance_units",	CT_TEXT,	0 },
	{ "BalanceMoney",	"balance_money",	CT_MONEY_TEXT,	0 },
	{ "DebtUnits",		"debt_units",		CT_TEXT,	0 },
	{ "DebtMoney",		"debt_money",		CT_MONEY_TEXT,	0 },
	{ "IsDebtUnits",	"is_debt_units",	CT_BOOL,	0 },
	{ "IsDebtMoney",	"is_debt_money",	CT_BOOL,	0 },
};

static const struct cat_child hh_balance_children[] = {
	{ "EdUnitsBalances", "balance_ed_units", hh_unit_balance_cols, nitems(hh_unit_balance_cols), NULL, NULL },
};

static const struct cat_col hh_ledger_cols[] = {		/* one row per client: the response */
	{ "$clientId",		"client_id",		CT_INT8,	CF_KEY },
};

static const struct cat_col hh_ledger_item_cols[] = {	/* OtherPayments items UNSURE */
	{ "Type",		"type",			CT_TEXT,	0 },
	{ "Income",		"income",		CT_BOOL,	0 },	/* false = charge */
	{ "Value",		"value",		CT_MONEY_TEXT,	0 },
	{ "Begin",		"begin",		CT_TS_LOCAL,	0 },
	{ "EdUnitId",		"ed_unit_id",		CT_INT8,	0 },
	{ "EdUnitName",		"ed_unit_name",		CT_TEXT,	0 },
	{ "Units",		"units",		CT_TEXT,	0 },
	{ "Description",	"description",		CT_TEXT,	0 },
};

static const struct cat_child hh_ledger_children[] = {
	{ "Study.Items",	 "incomes_and_outgoes_study", hh_ledger_item_cols, nitems(hh_ledger_item_cols), NULL, NULL },
	{ "OtherPayments.Items", "incomes_and_outgoes_other", hh_ledger_item_cols, nitems(hh_ledger_item_cols), NULL, NULL },
};

/* ---- misc ---- */

static const struct cat_col hh_supply_cols[] = {		/* materials sold; fields UNSURE */
	{ "Id",			"id",			CT_INT8,	CF_KEY },
	{ "Created",		"created",		CT_TS_LOCAL,	0 },
	{ "Date",		"date",			CT_DATE,	0 },
	{ "OfficeOrCompanyId",	"office_or_company_id",	CT_INT8,	0 },
	{ "OfficeOrCompanyName", "office_or_company_name", CT_TEXT,	0 },
	{ "ClientId",		"client_id",		CT_INT8,	0 },
	{ "ClientName",		"client_name",		CT_TEXT,	0 },
	{ "Name",		"name",			CT_TEXT,	0 },
	{ "Quantity",		"quantity",		CT_NUMERIC,	0 },
	{ "Price",		"price",		CT_MONEY_TEXT,	0 },
	{ "ValueQuantity",	"value_quantity",	CT_NUMERIC,	0 },
	{ "Value",		"value",		CT_MONEY_TEXT,	0 },
};

static const struct cat_col hh_ed_material_cols[] = {	/* fields UNSURE */
	{ "Id",			"id",			CT_INT8,	CF_KEY },
	{ "Name",		"name",			CT_TEXT,	0 },
	{ "Type",		"type",			CT_TEXT,	0 },
	{ "Discipline",		"discipline",		CT_TEXT,	0 },
	{ "Level",		"level",		CT_TEXT,	0 },
	{ "Url",		"url",			CT_TEXT,	0 },
	{ "Description",	"description",		CT_TEXT,	0 },
	{ "Created",		"created",		CT_TS_LOCAL,	0 },
};

static const struct cat_col hh_announcement_cols[] = {	/* fields UNSURE; one pass per target */
	{ "$targets",		"target",		CT_TEXT,	CF_KEY },
	{ "Id",			"id",			CT_INT8,	CF_KEY },
	{ "Created",		"created",		CT_TS_LOCAL,	0 },
	{ "Title",		"title",		CT_TEXT,	0 },
	{ "Text",		"text",			CT_TEXT,	0 },
	{ "Author",		"author",		CT_TEXT,	0 },
	{ "BeginDate",		"begin_date",		CT_DATE,	0 },
	{ "EndDate",		"end_date",		CT_DATE,	0 },
};

#define E(name_, method_, key_, paging_, flags_, params_, parent_, cols_, doc_)		\
	{ .crm = CAT_HOLLIHOP, .name = name_, .endpoint = method_, .list_key = key_,		\
	  .paging = paging_, .flags = flags_, .params = params_, .parent = parent_,		\
	  .cols = cols_, .ncols = nitems(cols_), .doc = doc_ }
/* A per-client method (clientId={$parent}) called again only for parents changed_ names. */
#define EPK(name_, method_, key_, flags_, parent_, changed_, cols_, doc_)			\
	{ .crm = CAT_HOLLIHOP, .name = name_, .endpoint = method_, .list_key = key_,		\
	  .paging = PAGE_PER_PARENT, .flags = flags_, .params = "clientId={$parent}",		\
	  .parent = parent_, .cols = cols_, .ncols = nitems(cols_), .doc = doc_,		\
	  .changed_by = changed_ }
#define EC(name_, method_, key_, paging_, flags_, params_, parent_, cols_, kids_, doc_)	\
	ECP(name_, method_, key_, paging_, flags_, params_, parent_, 0, cols_, kids_, doc_)
#define ECP(name_, method_, key_, paging_, flags_, params_, parent_, take_, cols_, kids_, doc_) \
	{ .crm = CAT_HOLLIHOP, .name = name_, .endpoint = method_, .list_key = key_,		\
	  .paging = paging_, .flags = flags_, .params = params_, .parent = parent_,		\
	  .page_size = take_, .cols = cols_, .ncols = nitems(cols_), .children = kids_,	\
	  .nchildren = nitems(kids_), .doc = doc_ }

/*
 * Export order: dictionaries, staff, clients, leads, teaching, finance, then the methods
 * that cost one call per client (they read the ClientIds exported by `students` earlier
 * in the same run).
 */
static const struct cat_entity hh_entities[] = {
	E("locations", "GetLocations", "Locations", PAGE_NONE, HH_DELETES, NULL, NULL,
	  hh_location_cols, "Locations (cities) of the offices (GetLocations)"),
	E("offices", "GetOffices", "Offices", PAGE_NONE, HH_DELETES, NULL, NULL,
	  hh_office_cols, "Offices / branches (GetOffices); location = locations.name"),
	E("lead_statuses", "GetLeadStatuses", "Statuses", PAGE_NONE, HH_DELETES, NULL, NULL,
	  hh_lead_status_cols, "Lead statuses (GetLeadStatuses)"),
	E("client_statuses", "GetClientStatuses", "Statuses", PAGE_NONE, HH_UNSURE, NULL, NULL,
	  hh_status_cols, "Client statuses, the values of students.status_id (GetClientStatuses)"),
	E("employee_statuses", "GetEmployeeStatuses", "Statuses", PAGE_NONE, HH_UNSURE, NULL, NULL,
	  hh_status_cols, "Staff statuses (GetEmployeeStatuses)"),
	E("disciplines", "GetDisciplines", "Disciplines", PAGE_NONE, HH_DELETES, NULL, NULL,
	  hh_discipline_cols, "Disciplines (GetDisciplines); referenced by name elsewhere"),
	E("levels", "GetLevels", "Levels", PAGE_NONE, HH_DELETES, NULL, NULL,
	  hh_level_cols, "Levels and the disciplines they apply to (GetLevels)"),
	E("learning_types", "GetLearningTypes", "LearningTypes", PAGE_NONE, HH_DELETES, NULL, NULL,
	  hh_learning_type_cols, "Learning types (GetLearningTypes)"),
	EC("prices", "GetPrices", "Prices", PAGE_NONE, HH_DELETES, NULL, NULL,
	  hh_price_cols, hh_price_children, "Price list / subscriptions (GetPrices)"),
	E("discounts", "GetDiscounts", "Discounts", PAGE_NONE, HH_UNSURE, NULL, NULL,
	  hh_discount_cols, "Discounts (GetDiscounts)"),
	E("surcharges", "GetSurcharges", "Surcharges", PAGE_NONE, HH_UNSURE, NULL, NULL,
	  hh_discount_cols, "Surcharges (GetSurcharges)"),
	EC("teachers", "GetTeachers", "Teachers", PAGE_TAKE_SKIP, HH_DELETES, NULL, NULL,
	  hh_teacher_cols, hh_teacher_children, "Teachers (GetTeachers)"),
	EC("employees", "GetEmployees", "Employees", PAGE_TAKE_SKIP, HH_DELETES,
	  "queryPhoto=false", NULL, hh_employee_cols, hh_employee_children,
	  "Staff other than teachers (GetEmployees, queryPhoto=false)"),
	EC("companies", "GetCompanies", "Companies", PAGE_TAKE_SKIP, HH_UNSURE, NULL, NULL,
	  hh_company_cols, hh_company_children, "Corporate clients (GetCompanies)"),
	EC("students", "GetStudents", "Students", PAGE_TAKE_SKIP, HH_DELETES, NULL, NULL,
	  hh_student_cols, hh_student_children,
	  "Student clients (GetStudents); client_id is the key other methods use"),
	EC("leads", "GetLeads", "Leads", PAGE_TAKE_SKIP, HH_DELETES, NULL, NULL,
	  hh_lead_cols, hh_lead_children, "Leads (GetLeads)"),
	EC("study_requests", "GetStudyRequests", "StudyRequests", PAGE_TAKE_SKIP, HH_DELETES, NULL, NULL,
	  hh_study_request_cols, hh_study_request_children, "Study requests / applications (GetStudyRequests)"),
	E("history_modify_lead_status", "GetHistoryModifyLeadStatus", "Actions", PAGE_TAKE_SKIP,
	  HH_DELETES, NULL, NULL, hh_lead_history_cols,
	  "Lead status changes (GetHistoryModifyLeadStatus)"),
	/* Heavy with lesson days (Hollihop support says so too): smaller pages. */
	/*
	 * One pass per status: rows carry no Status, and the server's default for a call without
	 * statuses= is not known to include them all. A unit is seen by the pass of its status;
	 * deletions consider the union of all passes (one entity, one run).
	 */
	ECP("ed_units", "GetEdUnits", "EdUnits", PAGE_TAKE_SKIP, HH_DELETES,
	  "queryDays=true&dateFrom={$date_from}&dateTo={$date_to}"
	  "&statuses={Reserve|Forming|Working|Stopped|Finished}", NULL, 250,
	  hh_ed_unit_cols, hh_ed_unit_children,
	  "Teaching units: groups, mini-groups, individual courses (GetEdUnits, one pass per status); days within the configured range"),
	ECP("ed_unit_students", "GetEdUnitStudents", "EdUnitStudents", PAGE_TAKE_SKIP, HH_DELETES,
	  "queryDays=true&queryPayers=true&dateFrom={$date_from}&dateTo={$date_to}", NULL, 250,
	  hh_ed_unit_student_cols, hh_ed_unit_student_children,
	  "Students in teaching units, with attendance and payers (GetEdUnitStudents)"),
	E("ed_unit_leads", "GetEdUnitLeads", "EdUnitLeads", PAGE_TAKE_SKIP, HH_DELETES, NULL, NULL,
	  hh_ed_unit_lead_cols, "Leads placed in teaching units: trial lessons (GetEdUnitLeads)"),
	E("lesson_plans", "GetLessonPlans", "LessonPlans", PAGE_TAKE_SKIP, HH_UNSURE, NULL, NULL,
	  hh_lesson_plan_cols, "Lesson plans (GetLessonPlans)"),
	E("payments", "GetPayments", "Payments", PAGE_TAKE_SKIP, HH_DELETES, NULL, NULL,
	  hh_payment_cols, "Payments and refunds (GetPayments); value_quantity is the signed amount"),
	EC("balances", "GetBalances", "Balances", PAGE_TAKE_SKIP, HH_DELETES,
	  "balanceDate={$today}", NULL, hh_balance_cols, hh_balance_children,
	  "Client balances as of the export day (GetBalances)"),
	E("supplies", "GetSupplies", "Supplies", PAGE_TAKE_SKIP, HH_UNSURE, NULL, NULL,
	  hh_supply_cols, "Materials sold (GetSupplies)"),
	E("ed_materials", "GetEdMaterials", "EdMaterials", PAGE_TAKE_SKIP, HH_UNSURE, NULL, NULL,
	  hh_ed_material_cols, "Teaching materials (GetEdMaterials)"),
	E("announcements", "GetAnnouncements", "Announcements", PAGE_TAKE_SKIP, HH_UNSURE,
	  "targets={Students|Employees|Companies}", NULL, hh_announcement_cols,
	  "Announcements, one pass per target (GetAnnouncements)"),
	/*
	 * A client's ledger is called again only for students whose Updated or Created is at or
	 * after its last complete pass, and for clients with a payment created since then (the
	 * payments listing of the same run; a payment is a ledger item). Lesson charges move
	 * ledgers without either (nightly that is most clients of a school: the budget of the
	 * night); they, edited or deleted payments wait for the sweep (CS_HOLLIHOP_SWEEP_EVERY),
	 * while balances carry every client's money each night. GetIncomesAndOutgoes takes only
	 * clientId (no date range, no paging: every client that calls it anywhere sends one).
	 */
	{ .crm = CAT_HOLLIHOP, .name = "incomes_and_outgoes", .endpoint = "GetIncomesAndOutgoes",
	  .paging = PAGE_PER_PARENT, .flags = HH_DELETES, .params = "clientId={$parent}",
	  .parent = "students", .cols = hh_ledger_cols, .ncols = nitems(hh_ledger_cols),
	  .children = hh_ledger_children, .nchildren = nitems(hh_ledger_children),
	  .doc = "Per-client ledger, one row per client; items in the child tables (GetIncomesAndOutgoes)",
	  .changed_by = "updated,created", .changed_via = "payments:client_id:created" },
	/* A client's files and cabinet settings are the client's own: called again only for
	 * students whose Updated or Created is at or after the last complete pass (ASSUMPTION:
	 * such a change bumps Updated), all of them on the sweep (CS_HOLLIHOP_SWEEP_EVERY). */
	EPK("client_files", "GetClientFiles", "ClientFiles", HH_UNSURE, "students", "updated,created",
	  hh_client_file_cols, "Files attached to clients (GetClientFiles)"),
	EPK("student_personal_office_settings", "GetStudentPersonalOfficeSettings",
	  "StudentPersonalOfficeSettings", HH_UNSURE, "students", "updated,created",
	  hh_office_settings_cols, "Personal cabinet settings per student (GetStudentPersonalOfficeSettings)"),
};

const struct cat_crm_desc catalog_hollihop = { CAT_HOLLIHOP, "hollihop", hh_entities, nitems(hh_entities) };
