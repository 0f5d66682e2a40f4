/*
 * analytics_school.c - the analyst layer's people, revenue and school-operations tables
 * (see analytics.h): contact points of both CRMs normalised (people), amoCRM contacts and
 * leads matched to Hollihop clients (person_matches), each amoCRM lead with what its
 * students paid (lead_revenue), active groups' fill (group_fill), teaching per lesson day,
 * per teacher and month, and attendance per group and month.
 *
 * Pure data: each table is its DDL, its sources, one refresh statement and one rebuild.
 * The rows a table holds are computed by one query per table (<NAME>_SRC, "what the rows
 * would be now"; a subquery, not a view, so that nothing pins the mirror's columns against
 * the store's schema evolution); refresh replaces the slice the touched keys reach (DELETE
 * of the slice and INSERT from the filtered query in one statement; the derived tables carry
 * no unique index, so the two never collide). A refresh returns keys only where its rows
 * may have changed, so what cascades stays small.
 * A rebuild replaces everything. Where the row query is written for a few keys (per-row
 * lateral lookups, correlated counts) the rebuild has its own set-based form of the same
 * rows (hash joins, aggregates computed once): at bench scale the per-key form took minutes
 * in all. school_test checks that refreshes and rebuild agree.
 */
#include "analytics.h"

#define nitems(a) (sizeof(a) / sizeof((a)[0]))

/* GRANT SELECT on the named objects to the read-only roles that exist (deploy/). */
#define GRANT_READ(objs)								\
	"DO $g$ DECLARE r text; BEGIN "							\
	"FOR r IN SELECT rolname FROM pg_roles WHERE rolname IN ('crmsync_read', 'crmsync_analyst') LOOP " \
	"EXECUTE format('GRANT USAGE ON SCHEMA analytics TO %I', r); "			\
	"EXECUTE format('GRANT SELECT ON " objs " TO %I', r); "				\
	"END LOOP; END $g$;\n"

/*
 * The touched keys, one row each: k as text, n as bigint where k is one (NULL otherwise).
 * Key sets are used as "col = ANY (ARRAY(SELECT ...))": an array the planner sees as a few
 * values, so it looks them up by index (an IN over a CTE was planned as a hash join over
 * whole tables).
 * Every cast of a key is guarded by what the key looks like, not only by a test of $1: the
 * engine runs refreshes under generic plans, where the planner may move a cast ahead of a
 * filter on a parameter.
 */
#define KEYS	"k AS (SELECT k, CASE WHEN k ~ '^[0-9]+$' THEN k::bigint END AS n\n"	\
		"      FROM unnest($2::text[]) AS k)"

/*
 * Run before each rebuild (PQexec runs the statements of rebuild_sql as one; LOCAL: until
 * the rebuild's transaction ends). The rebuilds aggregate and hash whole tables, which
 * spilled to disk in the default 4 MB. No nested loops: a rebuild reads analytic tables
 * rewritten earlier in the same transaction, whose statistics still describe the old (or
 * no) rows; planned as one row, a join of 100,000 candidates with their counts became a
 * nested loop that ran for minutes. REBUILD_READS(t) brings t's statistics up to date (a
 * sample; ANALYZE counts the transaction's own new rows). No JIT: the nested loops left
 * (a lateral unnest) carry the planner's penalty cost, which made every rebuild, small or
 * large, pay for compiling and optimising its expressions.
 */
#define REBUILD_SET		"SET LOCAL work_mem = '64MB';\nSET LOCAL enable_nestloop = off;\n" \
				"SET LOCAL jit = off;\n"
#define REBUILD_READS(t)	"ANALYZE " t ";\n"

/*
 * A rebuild inserts its rows in the order of an index (ORDER BY at its end): rows in hash
 * order went into every index at random places, and keeping the indexes (GIN ones above
 * all) was most of a rebuild's time. The order is the one refreshes look rows up by, so a
 * record's rows share pages.
 */

/* ---- people ------------------------------------------------------------------------------- */

#define PEOPLE_COLS "crm, entity, id, kind, value, raw_value, name, hollihop_client_id"

/* The contact points of one Hollihop row (alias x, names given), as (kind, value, raw). */
#define HH_POINTS(x)									\
	"CROSS JOIN LATERAL (VALUES ('phone', analytics.e164(" x ".mobile), " x ".mobile), "	\
	"('phone', analytics.e164(" x ".phone), " x ".phone), "				\
	"('email', analytics.email_norm(" x ".email), " x ".email)) p(kind, value, raw) "

/*
 * What analytics.people would hold now. The text keys are grouped (and a rebuild ordered)
 * by "C": the groups are the same (equal is byte-equal in the database's collation too),
 * and sorting a rebuild's 355,000 points by the locale's rules took 4 of its 19 s.
 */
#define PEOPLE_SRC(fc, fs, fl) \
	"SELECT src, crm, entity, id, kind, value, min(raw_value) AS raw_value, min(name) AS name,\n" \
	"       hollihop_client_id\n" \
	"FROM (SELECT src COLLATE \"C\" AS src, crm COLLATE \"C\" AS crm, entity COLLATE \"C\" AS entity, id,\n" \
	"             kind COLLATE \"C\" AS kind, value COLLATE \"C\" AS value, raw_value, name, hollihop_client_id\n" \
	"FROM (\n" \
	"  SELECT 'amo.contacts' AS src, 'amo' AS crm, 'contacts' AS entity, c.id,\n" \
	"         CASE v.field_code WHEN 'PHONE' THEN 'phone' ELSE 'email' END AS kind,\n" \
	"         CASE v.field_code WHEN 'PHONE' THEN analytics.e164(v.value)\n" \
	"              ELSE analytics.email_norm(v.value) END AS value,\n" \
	"         v.value AS raw_value, c.name, NULL::bigint AS hollihop_client_id\n" \
	"  FROM amo.contacts c\n" \
	"  JOIN amo.custom_field_values v ON v.entity_type = 'contacts' AND v.entity_id = c.id\n" \
	"   AND v.field_code IN ('PHONE', 'EMAIL')\n" \
	"  WHERE c.deleted_at IS NULL" fc "\n" \
	"  UNION ALL\n" \
	"  SELECT 'hollihop.students', 'hollihop', 'students', s.client_id, p.kind, p.value, p.raw,\n" \
	"         concat_ws(' ', s.last_name, s.first_name), s.client_id\n" \
	"  FROM hollihop.students s " HH_POINTS("s") "\n" \
	"  WHERE s.deleted_at IS NULL" fs "\n" \
	"  UNION ALL\n" \
	"  SELECT 'hollihop.students', 'hollihop', 'student_agents', a.client_id, p.kind, p.value, p.raw,\n" \
	"         concat_ws(' ', a.last_name, a.first_name), a.client_id\n" \
	"  FROM hollihop.student_agents a\n" \
	"  JOIN hollihop.students s ON s.client_id = a.client_id AND s.deleted_at IS NULL " HH_POINTS("a") \
	"  WHERE true" fs "\n" \
	"  UNION ALL\n" \
	"  SELECT 'hollihop.leads', 'hollihop', 'leads', l.id, p.kind, p.value, p.raw,\n" \
	"         concat_ws(' ', l.last_name, l.first_name), l.student_client_id\n" \
	"  FROM hollihop.leads l " HH_POINTS("l") "\n" \
	"  WHERE l.deleted_at IS NULL" fl "\n" \
	"  UNION ALL\n" \
	"  SELECT 'hollihop.leads', 'hollihop', 'lead_agents', a.lead_id, p.kind, p.value, p.raw,\n" \
	"         concat_ws(' ', a.last_name, a.first_name), l.student_client_id\n" \
	"  FROM hollihop.lead_agents a\n" \
	"  JOIN hollihop.leads l ON l.id = a.lead_id AND l.deleted_at IS NULL " HH_POINTS("a") \
	"  WHERE true" fl "\n" \
	") r\n" \
	"WHERE value IS NOT NULL) r\n" \
	"GROUP BY src, crm, entity, id, kind, value, hollihop_client_id\n"

static const char people_create[] =
	/*
	 * E.164 for the phone forms a Russian school meets; NULL for anything else, never a
	 * guess. Spaces, brackets, dots and dashes are dropped; any other character (letters,
	 * "доб.", a second "+") makes it NULL. "+7" and 10 digits -> +7...; without "+": 11
	 * digits starting 8 or 7 -> +7 and the last 10; 10 digits starting 9 (a mobile without
	 * its trunk prefix) -> +7...; everything else (other countries' numbers, "+8 9...",
	 * short or long numbers, "-") -> NULL.
	 * One expression, no FROM and not STRICT (NULL gives NULL all the same), so the planner
	 * inlines it: called as a function it cost ~40 us a value, most of a rebuild of people.
	 */
	"CREATE OR REPLACE FUNCTION analytics.e164(p text) RETURNS text\n"
	"LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $f$\n"
	"SELECT CASE\n"
	"  WHEN btrim(p) !~ '^\\+?[0-9[:space:]().-]+$' THEN NULL\n"
	"  WHEN btrim(p) LIKE '+%' THEN CASE WHEN regexp_replace(p, '[^0-9]', '', 'g') ~ '^7[0-9]{10}$'\n"
	"    THEN '+' || regexp_replace(p, '[^0-9]', '', 'g') END\n"
	"  WHEN regexp_replace(p, '[^0-9]', '', 'g') ~ '^[78][0-9]{10}$' THEN '+7' || substr(regexp_replace(p, '[^0-9]', '', 'g'), 2)\n"
	"  WHEN regexp_replace(p, '[^0-9]', '', 'g') ~ '^9[0-9]{9}$' THEN '+7' || regexp_replace(p, '[^0-9]', '', 'g')\n"
	"END\n$f$;\n"
	"COMMENT ON FUNCTION analytics.e164(text) IS 'A phone as E.164 (+7XXXXXXXXXX) from the "
	"forms 8 (912) 345-67-89, +7 912 3456789, 79123456789, 9123456789 (spaces, brackets, dots, "
	"dashes dropped); NULL for other countries, other lengths and anything with other characters: "
	"never a guessed number';\n"
	/* Not STRICT either: inlined. */
	"CREATE OR REPLACE FUNCTION analytics.email_norm(p text) RETURNS text\n"
	"LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $f$\n"
	"SELECT CASE WHEN lower(btrim(p)) ~ '^[^@[:space:]]+@[^@[:space:]]+\\.[^@[:space:]]+$' "
	"THEN lower(btrim(p)) END\n$f$;\n"
	"COMMENT ON FUNCTION analytics.email_norm(text) IS 'An e-mail trimmed and lower-cased; "
	"NULL unless it looks like local@domain.tld';\n"
	"CREATE TABLE IF NOT EXISTS analytics.people (\n"
	"    crm text NOT NULL,\n"
	"    entity text NOT NULL,\n"
	"    id bigint NOT NULL,\n"
	"    kind text NOT NULL,\n"
	"    value text NOT NULL,\n"
	"    raw_value text,\n"
	"    name text,\n"
	"    hollihop_client_id bigint\n"
	");\n"
	"CREATE INDEX IF NOT EXISTS people_source ON analytics.people (crm, entity, id);\n"
	"CREATE INDEX IF NOT EXISTS people_value ON analytics.people (kind, value);\n"
	"CREATE INDEX IF NOT EXISTS people_client ON analytics.people (hollihop_client_id);\n"
	"COMMENT ON TABLE analytics.people IS 'One row per distinct normalised phone or e-mail of "
	"one CRM record: amoCRM contacts (custom fields PHONE, EMAIL; crm=amo, entity=contacts, "
	"id=contact id), Hollihop students (entity=students, id=client_id), their agents/parents "
	"(student_agents, id=the student''s client_id), Hollihop leads and their agents (leads, "
	"lead_agents, id=lead id). kind phone|email; value = analytics.e164() / analytics.email_norm() "
	"(points they cannot read are left out); raw_value as written; hollihop_client_id = the "
	"Hollihop client the point leads to (the student, or the lead''s student_client_id). Live "
	"rows only; kept current by crmsync-store';\n"
	GRANT_READ("analytics.people");

/*
 * Identities whose contact points changed: "amo:<contact id>", "hollihop:<client id>"
 * (rows that lead to no Hollihop client match nothing and are not reported).
 */
static const char people_refresh[] =
	"WITH " KEYS ",\n"
	"ids AS (SELECT n AS id FROM k WHERE $1 IN ('amo.contacts', 'hollihop.students', 'hollihop.leads')),\n"
	"d AS (DELETE FROM analytics.people p\n"
	"      WHERE p.crm = split_part($1, '.', 1)\n"
	"        AND p.entity IN (split_part($1, '.', 2),\n"
	"            CASE $1 WHEN 'hollihop.students' THEN 'student_agents' WHEN 'hollihop.leads' THEN 'lead_agents' END)\n"
	"        AND p.id = ANY (ARRAY(SELECT id FROM ids))\n"
	"      RETURNING p.crm, p.entity, p.id, p.kind, p.value, p.hollihop_client_id),\n"
	"i AS (INSERT INTO analytics.people (" PEOPLE_COLS ")\n"
	"      SELECT " PEOPLE_COLS " FROM (" PEOPLE_SRC(
	"        AND $1 = 'amo.contacts' AND c.id = ANY (ARRAY(SELECT id FROM ids))",
	"        AND $1 = 'hollihop.students' AND s.client_id = ANY (ARRAY(SELECT id FROM ids))",
	"        AND $1 = 'hollihop.leads' AND l.id = ANY (ARRAY(SELECT id FROM ids))") ") s WHERE src = $1\n"
	"      RETURNING crm, entity, id, kind, value, hollihop_client_id),\n"
	"changed AS ((SELECT * FROM d EXCEPT SELECT * FROM i) UNION (SELECT * FROM i EXCEPT SELECT * FROM d))\n"
	"SELECT DISTINCT CASE WHEN crm = 'amo' THEN 'amo:' || id ELSE 'hollihop:' || hollihop_client_id END\n"
	"FROM changed WHERE crm = 'amo' OR hollihop_client_id IS NOT NULL";

static const char people_rebuild[] =
	REBUILD_SET
	"WITH d AS (DELETE FROM analytics.people)\n"
	"INSERT INTO analytics.people (" PEOPLE_COLS ") SELECT " PEOPLE_COLS " FROM (" PEOPLE_SRC("", "", "") ") s\n"
	"ORDER BY crm, entity, id";

/* ---- person_matches ----------------------------------------------------------------------- */

#define MATCH_COLS "amo_contact_id, amo_lead_id, hollihop_client_id, rule, confidence, ambiguous, matched_value"

/* amoCRM contact x live Hollihop client pairs sharing a phone or e-mail in analytics.people. */
#define MATCH_CANDIDATES(f) \
	"SELECT a.id AS amo_contact_id, h.hollihop_client_id, a.kind AS rule, min(a.value) AS matched_value\n" \
	"FROM analytics.people a\n" \
	"JOIN analytics.people h ON h.crm = 'hollihop' AND h.kind = a.kind AND h.value = a.value\n" \
	"JOIN hollihop.students s ON s.client_id = h.hollihop_client_id AND s.deleted_at IS NULL\n" \
	"WHERE a.crm = 'amo' AND a.entity = 'contacts'" f "\n" \
	"GROUP BY a.id, h.hollihop_client_id, a.kind\n"

static const char matches_create[] =
	"CREATE TABLE IF NOT EXISTS analytics.person_matches (\n"
	"    amo_contact_id bigint,\n"
	"    amo_lead_id bigint,\n"
	"    hollihop_client_id bigint NOT NULL,\n"
	"    rule text NOT NULL,\n"
	"    confidence numeric NOT NULL,\n"
	"    ambiguous boolean NOT NULL,\n"
	"    matched_value text\n"
	");\n"
	"CREATE INDEX IF NOT EXISTS person_matches_contact ON analytics.person_matches (amo_contact_id);\n"
	"CREATE INDEX IF NOT EXISTS person_matches_lead ON analytics.person_matches (amo_lead_id);\n"
	"CREATE INDEX IF NOT EXISTS person_matches_client ON analytics.person_matches (hollihop_client_id);\n"
	/* Lookups the refresh makes in the mirror (the store's own tables, its own indexes). */
	"CREATE INDEX IF NOT EXISTS an_lead_contacts_contact ON amo.lead_contacts (contact_id);\n"
	"CREATE INDEX IF NOT EXISTS an_students_amo_lead ON hollihop.students (amo_lead_id);\n"
	"COMMENT ON TABLE analytics.person_matches IS 'amoCRM contact/lead <-> Hollihop client "
	"(student). rule explicit_link: the student''s extra field names the amoCRM lead "
	"(hollihop.students.amo_lead_id; amo_contact_id NULL), confidence 1.0; phone: an amoCRM "
	"contact and the student, one of its agents (parents) or a Hollihop lead converted to it "
	"share a normalised phone (analytics.people), 0.8; email: the same with an e-mail, 0.6. A "
	"phone or e-mail match has one row per live lead of the contact (amo_lead_id NULL when it "
	"has none). ambiguous: the contact matches several clients, or the client several contacts "
	"(by phone or e-mail); for explicit links: several students name the lead. Ambiguous "
	"matches are all kept and marked, none is picked';\n"
	GRANT_READ("analytics.person_matches");

/*
 * The rows of candidate pairs r, expanded to the contact's live leads, with ambiguity
 * counted over all candidates of their contact and of their client.
 */
#define MATCH_ROWS(r)									\
	"SELECT r.amo_contact_id, lc.lead_id, r.hollihop_client_id, r.rule,\n"		\
	"       CASE r.rule WHEN 'phone' THEN 0.8 ELSE 0.6 END,\n"				\
	"       (SELECT count(DISTINCT x.hollihop_client_id) FROM (" MATCH_CANDIDATES("") ") x\n" \
	"         WHERE x.amo_contact_id = r.amo_contact_id) > 1\n"			\
	"    OR (SELECT count(DISTINCT x.amo_contact_id) FROM (" MATCH_CANDIDATES("") ") x\n" \
	"         WHERE x.hollihop_client_id = r.hollihop_client_id) > 1,\n"		\
	"       r.matched_value\n"								\
	"FROM " r " r\n"									\
	"LEFT JOIN LATERAL (SELECT DISTINCT c.lead_id FROM amo.lead_contacts c\n"		\
	"    JOIN amo.leads l ON l.id = c.lead_id AND l.deleted_at IS NULL\n"		\
	"    WHERE c.contact_id = r.amo_contact_id) lc ON true\n"

/* Explicit links of the students naming leads that satisfy cond (alias s). */
#define EXPLICIT_ROWS(cond)								\
	"SELECT NULL::bigint, s.amo_lead_id, s.client_id, 'explicit_link', 1.0,\n"	\
	"       count(*) OVER (PARTITION BY s.amo_lead_id) > 1, NULL::text\n"		\
	"FROM hollihop.students s JOIN amo.leads l ON l.id = s.amo_lead_id AND l.deleted_at IS NULL\n" \
	"WHERE s.deleted_at IS NULL AND s.amo_lead_id IS NOT NULL" cond "\n"

/*
 * Sources: people (changed identities), amo.leads (their contacts and liveness),
 * hollihop.students (liveness, explicit links). A pair's ambiguity changes only when a
 * pair of its contact or of its client appears or goes, so the slice recomputed is every
 * pair whose contact or client is touched or shares a pair (old or new) with a touched
 * one. Returns the amoCRM lead ids whose rows were rewritten.
 */
static const char matches_refresh[] =
	"WITH " KEYS ",\n"
	"c0 AS (SELECT CASE WHEN k ~ '^amo:[0-9]+$' THEN substr(k, 5)::bigint END AS c FROM k\n"
	"         WHERE $1 = 'analytics.people' AND k LIKE 'amo:%'\n"
	"   UNION SELECT lc.contact_id FROM amo.lead_contacts lc\n"
	"         WHERE lc.lead_id IN (SELECT n FROM k WHERE $1 = 'amo.leads')\n"
	"   UNION SELECT m.amo_contact_id FROM analytics.person_matches m\n"
	"         WHERE m.amo_lead_id IN (SELECT n FROM k WHERE $1 = 'amo.leads')),\n"
	"h0 AS (SELECT CASE WHEN k ~ '^hollihop:[0-9]+$' THEN substr(k, 10)::bigint END AS h FROM k\n"
	"         WHERE $1 = 'analytics.people' AND k LIKE 'hollihop:%'\n"
	"   UNION SELECT n FROM k WHERE $1 = 'hollihop.students'),\n"
	"t AS (SELECT amo_contact_id AS c, hollihop_client_id AS h\n"
	"        FROM (" MATCH_CANDIDATES(" AND a.id = ANY (ARRAY(SELECT c FROM c0))") ") mc\n"
	"  UNION SELECT amo_contact_id, hollihop_client_id\n"
	"        FROM (" MATCH_CANDIDATES(" AND h.hollihop_client_id = ANY (ARRAY(SELECT h FROM h0))") ") mc\n"
	"  UNION SELECT amo_contact_id, hollihop_client_id FROM analytics.person_matches\n"
	"        WHERE rule <> 'explicit_link' AND (amo_contact_id = ANY (ARRAY(SELECT c FROM c0))\n"
	"              OR hollihop_client_id = ANY (ARRAY(SELECT h FROM h0)))),\n"
	"a1 AS (SELECT c FROM c0 UNION SELECT c FROM t),\n"
	"h1 AS (SELECT h FROM h0 UNION SELECT h FROM t),\n"
	"r AS (SELECT * FROM (" MATCH_CANDIDATES(" AND a.id = ANY (ARRAY(SELECT c FROM a1))") ") mc\n"
	"  UNION SELECT * FROM (" MATCH_CANDIDATES(" AND h.hollihop_client_id = ANY (ARRAY(SELECT h FROM h1))") ") mc),\n"
	"l1 AS (SELECT n AS l FROM k WHERE $1 = 'amo.leads'\n"
	"   UNION SELECT s.amo_lead_id FROM hollihop.students s WHERE s.client_id = ANY (ARRAY(SELECT h FROM h0))\n"
	"   UNION SELECT m.amo_lead_id FROM analytics.person_matches m\n"
	"         WHERE m.rule = 'explicit_link' AND m.hollihop_client_id = ANY (ARRAY(SELECT h FROM h0))),\n"
	"d AS (DELETE FROM analytics.person_matches m\n"
	"      WHERE (m.rule <> 'explicit_link' AND (m.amo_contact_id = ANY (ARRAY(SELECT c FROM a1))\n"
	"             OR m.hollihop_client_id = ANY (ARRAY(SELECT h FROM h1))))\n"
	"         OR (m.rule = 'explicit_link' AND m.amo_lead_id = ANY (ARRAY(SELECT l FROM l1)))\n"
	"      RETURNING m.amo_lead_id),\n"
	"i AS (INSERT INTO analytics.person_matches (" MATCH_COLS ")\n"
	MATCH_ROWS("r")
	"      UNION ALL\n"
	EXPLICIT_ROWS(" AND s.amo_lead_id = ANY (ARRAY(SELECT l FROM l1))")
	"      RETURNING amo_lead_id)\n"
	"SELECT amo_lead_id::text FROM d WHERE amo_lead_id IS NOT NULL\n"
	"UNION SELECT amo_lead_id::text FROM i WHERE amo_lead_id IS NOT NULL";

/*
 * MATCH_ROWS over every candidate, set-based: the candidates computed once, the clients per
 * contact and contacts per client counted once (MATCH_ROWS counts them again for each row),
 * the contacts' live leads joined by hash.
 */
static const char matches_rebuild[] =
	REBUILD_SET
	REBUILD_READS("analytics.people")
	"WITH d AS (DELETE FROM analytics.person_matches),\n"
	"mc AS MATERIALIZED (" MATCH_CANDIDATES("") "),\n"
	"nc AS (SELECT amo_contact_id, count(DISTINCT hollihop_client_id) AS n FROM mc GROUP BY 1),\n"
	"nh AS (SELECT hollihop_client_id, count(DISTINCT amo_contact_id) AS n FROM mc GROUP BY 1),\n"
	"lc AS (SELECT DISTINCT c.contact_id, c.lead_id FROM amo.lead_contacts c\n"
	"       JOIN amo.leads l ON l.id = c.lead_id AND l.deleted_at IS NULL)\n"
	"INSERT INTO analytics.person_matches (" MATCH_COLS ")\n"
	"SELECT r.amo_contact_id, lc.lead_id, r.hollihop_client_id, r.rule,\n"
	"       CASE r.rule WHEN 'phone' THEN 0.8 ELSE 0.6 END, nc.n > 1 OR nh.n > 1, r.matched_value\n"
	"FROM mc r\n"
	"JOIN nc ON nc.amo_contact_id = r.amo_contact_id\n"
	"JOIN nh ON nh.hollihop_client_id = r.hollihop_client_id\n"
	"LEFT JOIN lc ON lc.contact_id = r.amo_contact_id\n"
	"UNION ALL\n"
	EXPLICIT_ROWS("")
	"ORDER BY 1, 2";

/* ---- lead_revenue ------------------------------------------------------------------------- */

#define REVENUE_COLS									\
	"lead_id, name, channel, utm_source, utm_medium, utm_campaign, source_name, "	\
	"pipeline_id, status_id, responsible_user_id, responsible_user_name, created_at, won_at, " \
	"client_ids, match_rule, match_ambiguous, payment_ids, first_paid_at, first_paid_date, " \
	"total_paid, refunds"

/* What analytics.lead_revenue would hold now. */
#define REVENUE_SRC(f) \
	"SELECT l.id AS lead_id, l.name,\n" \
	"       COALESCE(NULLIF(lower(btrim(u.utm_source)), ''), NULLIF(btrim(so.name), ''), '(none)') AS channel,\n" \
	"       u.utm_source, u.utm_medium, u.utm_campaign, so.name AS source_name,\n" \
	"       l.pipeline_id, l.status_id, l.responsible_user_id, us.name AS responsible_user_name,\n" \
	"       l.created_at, CASE WHEN l.status_id = 142 THEN COALESCE(l.closed_at, l.updated_at) END AS won_at,\n" \
	"       COALESCE(m.client_ids, '{}') AS client_ids, m.match_rule, m.match_ambiguous,\n" \
	"       COALESCE(p.payment_ids, '{}') AS payment_ids, p.first_paid_at, p.first_paid_date,\n" \
	"       COALESCE(p.total_paid, 0) AS total_paid, COALESCE(p.refunds, 0) AS refunds\n" \
	"FROM amo.leads l\n" \
	"LEFT JOIN amo.users us ON us.id = l.responsible_user_id\n" \
	"LEFT JOIN amo.sources so ON so.id = l.source_id\n" \
	"LEFT JOIN LATERAL (\n" \
	"  SELECT max(v.value) FILTER (WHERE upper(v.field_code) = 'UTM_SOURCE') AS utm_source,\n" \
	"         max(v.value) FILTER (WHERE upper(v.field_code) = 'UTM_MEDIUM') AS utm_medium,\n" \
	"         max(v.value) FILTER (WHERE upper(v.field_code) = 'UTM_CAMPAIGN') AS utm_campaign\n" \
	"  FROM amo.custom_field_values v\n" \
	"  WHERE v.entity_type = 'leads' AND v.entity_id = l.id\n" \
	"    AND upper(v.field_code) IN ('UTM_SOURCE', 'UTM_MEDIUM', 'UTM_CAMPAIGN')) u ON true\n" \
	"LEFT JOIN LATERAL (\n" \
	"  SELECT array_agg(DISTINCT pm.hollihop_client_id ORDER BY pm.hollihop_client_id) AS client_ids,\n" \
	"         min(pm.rule) AS match_rule, bool_or(pm.ambiguous) AS match_ambiguous\n" \
	"  FROM analytics.person_matches pm\n" \
	"  WHERE pm.amo_lead_id = l.id AND pm.confidence =\n" \
	"        (SELECT max(x.confidence) FROM analytics.person_matches x WHERE x.amo_lead_id = l.id)) m ON true\n" \
	"LEFT JOIN LATERAL (\n" \
	"  SELECT array_agg(py.id ORDER BY py.id) AS payment_ids,\n" \
	"         min(py.created) FILTER (WHERE py.value_quantity > 0) AS first_paid_at,\n" \
	"         min(py.paid_date) FILTER (WHERE py.value_quantity > 0) AS first_paid_date,\n" \
	"         sum(py.value_quantity) FILTER (WHERE py.value_quantity > 0) AS total_paid,\n" \
	"         sum(-py.value_quantity) FILTER (WHERE py.value_quantity < 0) AS refunds\n" \
	"  FROM hollihop.payments py\n" \
	"  WHERE py.client_id = ANY (m.client_ids) AND py.deleted_at IS NULL AND py.state = 'Paid'\n" \
	"    AND py.value_quantity <> 0) p ON true\n" \
	"WHERE l.deleted_at IS NULL" f "\n"

static const char revenue_create[] =
	"CREATE TABLE IF NOT EXISTS analytics.lead_revenue (\n"
	"    lead_id bigint NOT NULL,\n"
	"    name text,\n"
	"    channel text NOT NULL,\n"
	"    utm_source text,\n"
	"    utm_medium text,\n"
	"    utm_campaign text,\n"
	"    source_name text,\n"
	"    pipeline_id bigint,\n"
	"    status_id bigint,\n"
	"    responsible_user_id bigint,\n"
	"    responsible_user_name text,\n"
	"    created_at timestamptz,\n"
	"    won_at timestamptz,\n"
	"    client_ids bigint[] NOT NULL,\n"
	"    match_rule text,\n"
	"    match_ambiguous boolean,\n"
	"    payment_ids bigint[] NOT NULL,\n"
	"    first_paid_at timestamptz,\n"
	"    first_paid_date date,\n"
	"    total_paid numeric NOT NULL,\n"
	"    refunds numeric NOT NULL\n"
	");\n"
	/*
	 * Room on each page for a row's next version: a refresh updates a lead's row in place
	 * (a hook's status change), and an update that fits its page and changes no indexed
	 * column adds no index entry (HOT); on full pages (the default) each one went into the
	 * lead, client and payment indexes, the last two GIN.
	 */
	"ALTER TABLE analytics.lead_revenue SET (fillfactor = 85);\n"
	"CREATE INDEX IF NOT EXISTS lead_revenue_lead ON analytics.lead_revenue (lead_id);\n"
	"CREATE INDEX IF NOT EXISTS lead_revenue_clients ON analytics.lead_revenue USING gin (client_ids);\n"
	"CREATE INDEX IF NOT EXISTS lead_revenue_payments ON analytics.lead_revenue USING gin (payment_ids);\n"
	"CREATE INDEX IF NOT EXISTS an_payments_client ON hollihop.payments (client_id);\n"
	"COMMENT ON TABLE analytics.lead_revenue IS 'One row per live amoCRM lead. channel = the "
	"lead''s UTM source (custom field code UTM_SOURCE, amoCRM''s tracking field; lower-cased, "
	"trimmed), else its amoCRM source''s name (amo.sources by source_id), else ''(none)''. "
	"won_at = closed_at (else updated_at) when status_id = 142. client_ids = the Hollihop "
	"clients matched to the lead by the surest rule it has in analytics.person_matches "
	"(explicit link, else phone, else e-mail; match_rule, match_ambiguous); payment_ids, "
	"first_paid_at (the earliest created of a paid positive payment), first_paid_date (its "
	"paid date), total_paid (sum of paid positive payments) and refunds (sum of paid negative "
	"payments, as a positive amount: Hollihop refunds are Type Возврат with a negative amount) "
	"over those clients'' live payments with State Paid in hollihop.payments. A client''s "
	"payments count for every lead matched to it. Revenue per channel or manager: GROUP BY channel "
	"or responsible_user_name';\n"
	GRANT_READ("analytics.lead_revenue");

/*
 * A lead_revenue row under alias a as text: rows compare by what a reader sees (numeric
 * 1000 and 1000.00 are equal but do not print alike).
 */
#define REVENUE_ROW(a)									\
	"ROW(" a ".lead_id, " a ".name, " a ".channel, " a ".utm_source, " a ".utm_medium, "	\
	a ".utm_campaign, " a ".source_name, " a ".pipeline_id, " a ".status_id, "		\
	a ".responsible_user_id, " a ".responsible_user_name, " a ".created_at, " a ".won_at, " \
	a ".client_ids, " a ".match_rule, " a ".match_ambiguous, " a ".payment_ids, "		\
	a ".first_paid_at, " a ".first_paid_date, " a ".total_paid, " a ".refunds)::text"

/*
 * Sources: amo.leads, amo.users (manager names), amo.sources (channel fallback),
 * analytics.person_matches (lead ids), hollihop.payments (the leads counting the payment
 * now, or counting its client now). Returns the lead ids rewritten.
 * The slice's new rows (s) against the stored ones by lead (the stored ones found through
 * the lead index, whatever the planner guesses of s's size: joined to s alone, a generic
 * plan could hash the whole table for a hook's ten leads): a row that differs is updated
 * in place (a hook's status change touches no indexed column: a HOT update, no entry in
 * the GIN indexes), a lead gone deleted, a new one inserted; an unchanged row is left
 * alone. One row per lead (what the rebuild and earlier refreshes leave).
 */
static const char revenue_refresh[] =
	"WITH " KEYS ",\n"
	"n AS (SELECT n AS id FROM k),\n"
	"aff AS (SELECT id FROM n WHERE $1 IN ('amo.leads', 'analytics.person_matches')\n"
	"  UNION SELECT l.id FROM amo.leads l\n"
	"        WHERE $1 = 'amo.users' AND l.responsible_user_id = ANY (ARRAY(SELECT id FROM n))\n"
	"  UNION SELECT l.id FROM amo.leads l\n"
	"        WHERE $1 = 'amo.sources' AND l.source_id = ANY (ARRAY(SELECT id FROM n))\n"
	"  UNION SELECT r.lead_id FROM analytics.lead_revenue r\n"
	"        WHERE $1 = 'hollihop.payments' AND r.payment_ids && (SELECT array_agg(id) FROM n)\n"
	"  UNION SELECT r.lead_id FROM analytics.lead_revenue r\n"
	"        WHERE $1 = 'hollihop.payments' AND r.client_ids && (SELECT array_agg(py.client_id)\n"
	"              FROM hollihop.payments py WHERE py.id = ANY (ARRAY(SELECT id FROM n)))),\n"
	"s AS MATERIALIZED (SELECT " REVENUE_COLS " FROM (" REVENUE_SRC(" AND l.id = ANY (ARRAY(SELECT id FROM aff))") ") s),\n"
	"d AS (DELETE FROM analytics.lead_revenue r WHERE r.lead_id = ANY (ARRAY(SELECT id FROM aff))\n"
	"      AND NOT EXISTS (SELECT 1 FROM s WHERE s.lead_id = r.lead_id) RETURNING r.lead_id),\n"
	"u AS (UPDATE analytics.lead_revenue r SET name = s.name, channel = s.channel, utm_source = s.utm_source,\n"
	"        utm_medium = s.utm_medium, utm_campaign = s.utm_campaign, source_name = s.source_name,\n"
	"        pipeline_id = s.pipeline_id, status_id = s.status_id, responsible_user_id = s.responsible_user_id,\n"
	"        responsible_user_name = s.responsible_user_name, created_at = s.created_at, won_at = s.won_at,\n"
	"        client_ids = s.client_ids, match_rule = s.match_rule, match_ambiguous = s.match_ambiguous,\n"
	"        payment_ids = s.payment_ids, first_paid_at = s.first_paid_at, first_paid_date = s.first_paid_date,\n"
	"        total_paid = s.total_paid, refunds = s.refunds\n"
	"      FROM s WHERE r.lead_id = ANY (ARRAY(SELECT id FROM aff)) AND r.lead_id = s.lead_id\n"
	"        AND " REVENUE_ROW("r") " IS DISTINCT FROM " REVENUE_ROW("s") "\n"
	"      RETURNING r.lead_id),\n"
	"i AS (INSERT INTO analytics.lead_revenue (" REVENUE_COLS ")\n"
	"      SELECT " REVENUE_COLS " FROM s\n"
	"      WHERE NOT EXISTS (SELECT 1 FROM analytics.lead_revenue r WHERE r.lead_id = s.lead_id)\n"
	"      RETURNING lead_id)\n"
	"SELECT lead_id::text FROM d UNION SELECT lead_id::text FROM u UNION SELECT lead_id::text FROM i";

/*
 * REVENUE_SRC for every lead, set-based: the UTM fields, the surest matches and the
 * payments of the matched clients each aggregated once per lead, then joined by hash.
 */
static const char revenue_rebuild[] =
	REBUILD_SET
	REBUILD_READS("analytics.person_matches")
	"WITH d AS (DELETE FROM analytics.lead_revenue),\n"
	"u AS (SELECT v.entity_id AS lead_id,\n"
	"         max(v.value) FILTER (WHERE upper(v.field_code) = 'UTM_SOURCE') AS utm_source,\n"
	"         max(v.value) FILTER (WHERE upper(v.field_code) = 'UTM_MEDIUM') AS utm_medium,\n"
	"         max(v.value) FILTER (WHERE upper(v.field_code) = 'UTM_CAMPAIGN') AS utm_campaign\n"
	"  FROM amo.custom_field_values v\n"
	"  WHERE v.entity_type = 'leads' AND upper(v.field_code) IN ('UTM_SOURCE', 'UTM_MEDIUM', 'UTM_CAMPAIGN')\n"
	"  GROUP BY v.entity_id),\n"
	"m AS MATERIALIZED (SELECT pm.amo_lead_id AS lead_id,\n"
	"         array_agg(DISTINCT pm.hollihop_client_id ORDER BY pm.hollihop_client_id) AS client_ids,\n"
	"         min(pm.rule) AS match_rule, bool_or(pm.ambiguous) AS match_ambiguous\n"
	"  FROM (SELECT x.*, max(x.confidence) OVER (PARTITION BY x.amo_lead_id) AS best\n"
	"        FROM analytics.person_matches x WHERE x.amo_lead_id IS NOT NULL) pm\n"
	"  WHERE pm.confidence = pm.best\n"
	"  GROUP BY pm.amo_lead_id),\n"
	"p AS (SELECT mc.lead_id, array_agg(py.id ORDER BY py.id) AS payment_ids,\n"
	"         min(py.created) FILTER (WHERE py.value_quantity > 0) AS first_paid_at,\n"
	"         min(py.paid_date) FILTER (WHERE py.value_quantity > 0) AS first_paid_date,\n"
	"         sum(py.value_quantity) FILTER (WHERE py.value_quantity > 0) AS total_paid,\n"
	"         sum(-py.value_quantity) FILTER (WHERE py.value_quantity < 0) AS refunds\n"
	"  FROM (SELECT m.lead_id, unnest(m.client_ids) AS client_id FROM m) mc\n"
	"  JOIN hollihop.payments py ON py.client_id = mc.client_id AND py.deleted_at IS NULL\n"
	"   AND py.state = 'Paid' AND py.value_quantity <> 0\n"
	"  GROUP BY mc.lead_id)\n"
	"INSERT INTO analytics.lead_revenue (" REVENUE_COLS ")\n"
	"SELECT l.id, l.name,\n"
	"       COALESCE(NULLIF(lower(btrim(u.utm_source)), ''), NULLIF(btrim(so.name), ''), '(none)'),\n"
	"       u.utm_source, u.utm_medium, u.utm_campaign, so.name,\n"
	"       l.pipeline_id, l.status_id, l.responsible_user_id, us.name,\n"
	"       l.created_at, CASE WHEN l.status_id = 142 THEN COALESCE(l.closed_at, l.updated_at) END,\n"
	"       COALESCE(m.client_ids, '{}'), m.match_rule, m.match_ambiguous,\n"
	"       COALESCE(p.payment_ids, '{}'), p.first_paid_at, p.first_paid_date,\n"
	"       COALESCE(p.total_paid, 0), COALESCE(p.refunds, 0)\n"
	"FROM amo.leads l\n"
	"LEFT JOIN amo.users us ON us.id = l.responsible_user_id\n"
	"LEFT JOIN amo.sources so ON so.id = l.source_id\n"
	"LEFT JOIN u ON u.lead_id = l.id\n"
	"LEFT JOIN m ON m.lead_id = l.id\n"
	"LEFT JOIN p ON p.lead_id = l.id\n"
	"WHERE l.deleted_at IS NULL\n"
	"ORDER BY l.id";

/* ---- school operations: groups, teaching, attendance --------------------------------------- */

/* The ed units a batch of ed_units or ed_unit_students ("<unit>|<client>") reaches. */
#define UNITS	"units AS (SELECT CASE WHEN k ~ '^[0-9]+(\\|[0-9]+)?$' THEN split_part(k, '|', 1)::bigint END AS id FROM k\n" \
		"      WHERE $1 IN ('hollihop.ed_units', 'hollihop.ed_unit_students'))"

#define MONTH(d) "date_trunc('month', (" d ")::timestamp)::date"

#define FILL_COLS "ed_unit_id, name, type, office_id, office, discipline, level, status, students, vacancies, fill_rate"

/* What analytics.group_fill would hold now. */
#define FILL_SRC(f) \
	"SELECT u.id AS ed_unit_id, u.name, u.type, u.office_or_company_id AS office_id,\n" \
	"       u.office_or_company_name AS office, u.discipline, u.level, u.status,\n" \
	"       s.n AS students, u.vacancies::int AS vacancies,\n" \
	"       CASE WHEN u.vacancies > 0 THEN round(s.n::numeric / u.vacancies, 4) END AS fill_rate\n" \
	"FROM hollihop.ed_units u\n" \
	"CROSS JOIN LATERAL (SELECT count(*)::int AS n FROM hollihop.ed_unit_students m\n" \
	"    WHERE m.ed_unit_id = u.id AND m.deleted_at IS NULL AND m.status = 'Normal'\n" \
	"      AND (m.end_date IS NULL OR m.end_date >= current_date)) s\n" \
	"WHERE u.deleted_at IS NULL AND u.status IN ('Reserve', 'Forming', 'Working')" f "\n" \
	"  AND u.type IS DISTINCT FROM 'Individual'\n"

static const char fill_create[] =
	"CREATE TABLE IF NOT EXISTS analytics.group_fill (\n"
	"    ed_unit_id bigint NOT NULL,\n"
	"    name text,\n"
	"    type text,\n"
	"    office_id bigint,\n"
	"    office text,\n"
	"    discipline text,\n"
	"    level text,\n"
	"    status text,\n"
	"    students int NOT NULL,\n"
	"    vacancies int,\n"
	"    fill_rate numeric\n"
	");\n"
	"CREATE INDEX IF NOT EXISTS group_fill_unit ON analytics.group_fill (ed_unit_id);\n"
	"COMMENT ON TABLE analytics.group_fill IS 'One row per active group: a live Hollihop ed "
	"unit of any type but Individual whose status (the GetEdUnits statuses= pass that read it) "
	"is Reserve, Forming or Working. students = its live memberships (hollihop.ed_unit_students) "
	"with status Normal and no end date before today; vacancies = the unit''s Vacancies (NULL "
	"when not set); fill_rate = students / vacancies, NULL when vacancies is NULL or 0. The "
	"end-date test uses the day of the last refresh: a full rebuild after each complete run "
	"moves it on';\n"
	GRANT_READ("analytics.group_fill");

static const char fill_refresh[] =
	"WITH " KEYS ",\n" UNITS ",\n"
	"d AS (DELETE FROM analytics.group_fill g WHERE g.ed_unit_id = ANY (ARRAY(SELECT id FROM units)) RETURNING g.ed_unit_id),\n"
	"i AS (INSERT INTO analytics.group_fill (" FILL_COLS ")\n"
	"      SELECT " FILL_COLS " FROM (" FILL_SRC(" AND u.id = ANY (ARRAY(SELECT id FROM units))") ") s\n"
	"      RETURNING ed_unit_id)\n"
	"SELECT ed_unit_id::text FROM d UNION SELECT ed_unit_id::text FROM i";

static const char fill_rebuild[] =
	REBUILD_SET
	"WITH d AS (DELETE FROM analytics.group_fill)\n"
	"INSERT INTO analytics.group_fill (" FILL_COLS ") SELECT " FILL_COLS " FROM (" FILL_SRC("") ") s";

#define LESSON_COLS "ed_unit_id, date, teacher_id, lessons, minutes"

/*
 * What analytics.teacher_lessons would hold now. The test of d.minutes is inside the
 * lateral query (a one-time filter there): as the join's condition it was tested after the
 * lookup, which ran for every day.
 */
#define LESSONS_SRC(f) \
	"SELECT d.ed_unit_id, d.date, t.teacher_id, count(*)::int AS lessons,\n" \
	"       sum(COALESCE(d.minutes, sm.minutes, 0)) AS minutes\n" \
	"FROM hollihop.ed_unit_days d\n" \
	"JOIN hollihop.ed_units un ON un.id = d.ed_unit_id AND un.deleted_at IS NULL\n" \
	"LEFT JOIN LATERAL (SELECT max(sd.minutes) AS minutes FROM hollihop.ed_unit_student_days sd\n" \
	"    JOIN hollihop.ed_unit_students m ON m.ed_unit_id = sd.ed_unit_id\n" \
	"     AND m.student_client_id = sd.student_client_id AND m.deleted_at IS NULL\n" \
	"    WHERE d.minutes IS NULL AND sd.ed_unit_id = d.ed_unit_id AND sd.date = d.date) sm ON true\n" \
	"CROSS JOIN LATERAL (SELECT DISTINCT tid AS teacher_id FROM hollihop.ed_unit_schedule_items si\n" \
	"    CROSS JOIN LATERAL unnest(CASE WHEN cardinality(si.teacher_ids) > 0 THEN si.teacher_ids\n" \
	"                                   ELSE ARRAY[si.teacher_id] END) tid\n" \
	"    WHERE si.ed_unit_id = d.ed_unit_id AND tid IS NOT NULL\n" \
	"      AND CASE WHEN cardinality(d.schedule_item_ids) > 0\n" \
	"               THEN si.schedule_item_id = ANY (d.schedule_item_ids)\n" \
	"               ELSE (si.begin_date IS NULL OR si.begin_date <= d.date)\n" \
	"                AND (si.end_date IS NULL OR si.end_date >= d.date) END) t\n" \
	"WHERE d.pass IS NOT TRUE AND d.date IS NOT NULL" f "\n" \
	"GROUP BY d.ed_unit_id, d.date, t.teacher_id\n"

static const char lessons_create[] =
	"CREATE TABLE IF NOT EXISTS analytics.teacher_lessons (\n"
	"    ed_unit_id bigint NOT NULL,\n"
	"    date date NOT NULL,\n"
	"    teacher_id bigint NOT NULL,\n"
	"    lessons int NOT NULL,\n"
	"    minutes numeric NOT NULL\n"
	");\n"
	"CREATE INDEX IF NOT EXISTS teacher_lessons_unit ON analytics.teacher_lessons (ed_unit_id);\n"
	"CREATE INDEX IF NOT EXISTS teacher_lessons_teacher ON analytics.teacher_lessons (teacher_id, date);\n"
	"COMMENT ON TABLE analytics.teacher_lessons IS 'One row per teacher, ed unit and day with "
	"lessons held: the unit''s lesson days (hollihop.ed_unit_days) that were not cancelled "
	"(pass not true), of live units. minutes = the day''s Minutes, or when the day has none the "
	"longest per-student Minutes of that unit and day (hollihop.ed_unit_student_days). The "
	"teacher: every teacher of the schedule items the day names (ScheduleItemIds), or when it "
	"names none, of the unit''s schedule items whose dates cover the day (TeacherIds, else "
	"TeacherId); co-teachers each get the whole lesson; a day with no known teacher is left out';\n"
	GRANT_READ("analytics.teacher_lessons");

/*
 * Returns "<teacher id>|<month>" of the rows that changed, for teacher_hours.
 * The units' rows are computed (s) and compared with the stored ones (by difference, as
 * lead_revenue): a row gone is deleted, a new or different one inserted, an unchanged one
 * left alone. A membership (ed_unit_students, its per-student days) counts only for the
 * days without Minutes of their own: a batch of memberships recomputes only units that
 * have such a day (in a first export, one in a hundred thousand days; every unit's rows
 * were rewritten unchanged once per memberships batch).
 */
static const char lessons_refresh[] =
	"WITH " KEYS ",\n" UNITS ",\n"
	"lu AS (SELECT u.id FROM units u\n"
	"       WHERE $1 <> 'hollihop.ed_unit_students'\n"
	"          OR EXISTS (SELECT 1 FROM hollihop.ed_unit_days d WHERE d.ed_unit_id = u.id AND d.minutes IS NULL)),\n"
	"s AS MATERIALIZED (SELECT " LESSON_COLS " FROM (" LESSONS_SRC(" AND d.ed_unit_id = ANY (ARRAY(SELECT id FROM lu))") ") s),\n"
	"o AS MATERIALIZED (SELECT t.ctid AS tid, " LESSON_COLS " FROM analytics.teacher_lessons t\n"
	"      WHERE t.ed_unit_id = ANY (ARRAY(SELECT id FROM lu))),\n"
	"gone AS (SELECT o.tid, o.teacher_id, o.date FROM o WHERE NOT EXISTS (SELECT 1 FROM s\n"
	"      WHERE s.ed_unit_id = o.ed_unit_id AND s.date = o.date AND s.teacher_id = o.teacher_id\n"
	"        AND s.lessons = o.lessons AND s.minutes::text = o.minutes::text)),\n"
	"d AS (DELETE FROM analytics.teacher_lessons t WHERE t.ctid = ANY (ARRAY(SELECT tid FROM gone))\n"
	"      RETURNING t.teacher_id, t.date),\n"
	"i AS (INSERT INTO analytics.teacher_lessons (" LESSON_COLS ")\n"
	"      SELECT " LESSON_COLS " FROM s WHERE NOT EXISTS (SELECT 1 FROM o\n"
	"        WHERE o.ed_unit_id = s.ed_unit_id AND o.date = s.date AND o.teacher_id = s.teacher_id\n"
	"          AND o.lessons = s.lessons AND o.minutes::text = s.minutes::text)\n"
	"      RETURNING teacher_id, date)\n"
	"SELECT DISTINCT teacher_id || '|' || to_char(" MONTH("date") ", 'YYYY-MM-DD')\n"
	"FROM (SELECT * FROM d UNION ALL SELECT * FROM i) c";

/*
 * LESSONS_SRC for every day, set-based: each day's distinct teachers by a hash join of the
 * days with their units' schedule items; the per-student minutes aggregated once, for the
 * days without Minutes only.
 */
static const char lessons_rebuild[] =
	REBUILD_SET
	"WITH d AS (DELETE FROM analytics.teacher_lessons),\n"
	"dt AS (SELECT DISTINCT d.ed_unit_id, d.idx, d.date, d.minutes, tid AS teacher_id\n"
	"  FROM hollihop.ed_unit_days d\n"
	"  JOIN hollihop.ed_units un ON un.id = d.ed_unit_id AND un.deleted_at IS NULL\n"
	"  JOIN hollihop.ed_unit_schedule_items si ON si.ed_unit_id = d.ed_unit_id\n"
	"   AND CASE WHEN cardinality(d.schedule_item_ids) > 0\n"
	"            THEN si.schedule_item_id = ANY (d.schedule_item_ids)\n"
	"            ELSE (si.begin_date IS NULL OR si.begin_date <= d.date)\n"
	"             AND (si.end_date IS NULL OR si.end_date >= d.date) END\n"
	"  CROSS JOIN LATERAL unnest(CASE WHEN cardinality(si.teacher_ids) > 0 THEN si.teacher_ids\n"
	"                                 ELSE ARRAY[si.teacher_id] END) tid\n"
	"  WHERE d.pass IS NOT TRUE AND d.date IS NOT NULL AND tid IS NOT NULL),\n"
	"sm AS (SELECT sd.ed_unit_id, sd.date, max(sd.minutes) AS minutes\n"
	"  FROM hollihop.ed_unit_student_days sd\n"
	"  JOIN hollihop.ed_unit_students m ON m.ed_unit_id = sd.ed_unit_id\n"
	"   AND m.student_client_id = sd.student_client_id AND m.deleted_at IS NULL\n"
	"  WHERE (sd.ed_unit_id, sd.date) IN (SELECT ed_unit_id, date FROM hollihop.ed_unit_days WHERE minutes IS NULL)\n"
	"  GROUP BY sd.ed_unit_id, sd.date)\n"
	"INSERT INTO analytics.teacher_lessons (" LESSON_COLS ")\n"
	"SELECT dt.ed_unit_id, dt.date, dt.teacher_id, count(*)::int, sum(COALESCE(dt.minutes, sm.minutes, 0))\n"
	"FROM dt LEFT JOIN sm ON dt.minutes IS NULL AND sm.ed_unit_id = dt.ed_unit_id AND sm.date = dt.date\n"
	"GROUP BY dt.ed_unit_id, dt.date, dt.teacher_id\n"
	"ORDER BY dt.ed_unit_id, dt.date";

#define HOURS_COLS "teacher_id, teacher_name, month, hours, lessons, minutes"

/* What analytics.teacher_hours would hold now, from the teacher_lessons rows ls (a FROM item). */
#define HOURS_SRC(ls) \
	"SELECT tl.teacher_id, NULLIF(concat_ws(' ', t.last_name, t.first_name, t.middle_name), '') AS teacher_name,\n" \
	"       " MONTH("tl.date") " AS month, round(sum(tl.minutes) / 60, 2) AS hours,\n" \
	"       sum(tl.lessons)::bigint AS lessons, sum(tl.minutes) AS minutes\n" \
	"FROM " ls " tl\n" \
	"LEFT JOIN hollihop.teachers t ON t.id = tl.teacher_id\n" \
	"GROUP BY tl.teacher_id, t.last_name, t.first_name, t.middle_name, " MONTH("tl.date") "\n"

static const char hours_create[] =
	"CREATE TABLE IF NOT EXISTS analytics.teacher_hours (\n"
	"    teacher_id bigint NOT NULL,\n"
	"    teacher_name text,\n"
	"    month date NOT NULL,\n"
	"    hours numeric NOT NULL,\n"
	"    lessons bigint NOT NULL,\n"
	"    minutes numeric NOT NULL\n"
	");\n"
	"CREATE INDEX IF NOT EXISTS teacher_hours_teacher ON analytics.teacher_hours (teacher_id, month);\n"
	"COMMENT ON TABLE analytics.teacher_hours IS 'One row per teacher and month (first day of "
	"the month) with lessons held: analytics.teacher_lessons summed; hours = minutes / 60 "
	"(2 decimals); teacher_name from hollihop.teachers (last, first, middle name)';\n"
	GRANT_READ("analytics.teacher_hours");

/*
 * Sources: analytics.teacher_lessons ("<teacher>|<month>"), hollihop.teachers (names).
 * A teacher-month's lessons are read by the (teacher_id, date) index, one range each: a
 * filter on the pairs was a sequential scan of all lessons for every batch of ed units.
 */
static const char hours_refresh[] =
	"WITH " KEYS ",\n"
	"tm AS (SELECT DISTINCT split_part(k, '|', 1)::bigint AS teacher_id, split_part(k, '|', 2)::date AS month\n"
	"       FROM (SELECT k FROM k WHERE k ~ '^[0-9]+\\|[0-9]{4}-[0-9]{2}-[0-9]{2}$' OFFSET 0) g\n"
	"       WHERE $1 = 'analytics.teacher_lessons'),\n"
	"tt AS (SELECT n AS teacher_id FROM k WHERE $1 = 'hollihop.teachers'),\n"
	"d AS (DELETE FROM analytics.teacher_hours h\n"
	"      WHERE (h.teacher_id, h.month) IN (SELECT teacher_id, month FROM tm)\n"
	"         OR h.teacher_id = ANY (ARRAY(SELECT teacher_id FROM tt)) RETURNING h.teacher_id, h.month),\n"
	"i AS (INSERT INTO analytics.teacher_hours (" HOURS_COLS ")\n"
	"      SELECT " HOURS_COLS " FROM (" HOURS_SRC("(SELECT l.* FROM tm CROSS JOIN LATERAL (\n"
	"          SELECT * FROM analytics.teacher_lessons x WHERE x.teacher_id = tm.teacher_id\n"
	"             AND x.date >= tm.month AND x.date < (tm.month + interval '1 month')::date) l\n"
	"        UNION ALL SELECT x.* FROM analytics.teacher_lessons x\n"
	"         WHERE x.teacher_id = ANY (ARRAY(SELECT teacher_id FROM tt)))") ") s\n"
	"      RETURNING teacher_id, month)\n"
	"SELECT teacher_id || '|' || to_char(month, 'YYYY-MM-DD') FROM d\n"
	"UNION SELECT teacher_id || '|' || to_char(month, 'YYYY-MM-DD') FROM i";

static const char hours_rebuild[] =
	REBUILD_SET
	REBUILD_READS("analytics.teacher_lessons")
	"WITH d AS (DELETE FROM analytics.teacher_hours)\n"
	"INSERT INTO analytics.teacher_hours (" HOURS_COLS ") SELECT " HOURS_COLS
	" FROM (" HOURS_SRC("analytics.teacher_lessons") ") s";

#define ATT_COLS "ed_unit_id, month, lessons, student_visits, student_absences, attendance_rate, student_minutes"

/*
 * What analytics.group_attendance would hold now. Live units are picked after the
 * per-month counts: joined to every per-student day, the unit was looked up for each.
 */
#define ATT_SRC(fd, fs) \
	"SELECT ed_unit_id, month, sum(lessons)::int AS lessons, sum(visits)::int AS student_visits,\n" \
	"       sum(absences)::int AS student_absences,\n" \
	"       CASE WHEN sum(visits) + sum(absences) > 0\n" \
	"            THEN round(sum(visits)::numeric / (sum(visits) + sum(absences)), 4) END AS attendance_rate,\n" \
	"       sum(minutes) AS student_minutes\n" \
	"FROM (\n" \
	"  SELECT d.ed_unit_id, " MONTH("d.date") " AS month, count(*) FILTER (WHERE d.pass IS NOT TRUE) AS lessons,\n" \
	"         0 AS visits, 0 AS absences, 0 AS minutes\n" \
	"  FROM hollihop.ed_unit_days d\n" \
	"  WHERE d.date IS NOT NULL" fd "\n" \
	"  GROUP BY 1, 2\n" \
	"  UNION ALL\n" \
	"  SELECT sd.ed_unit_id, " MONTH("sd.date") ", 0, count(*) FILTER (WHERE sd.pass IS FALSE),\n" \
	"         count(*) FILTER (WHERE sd.pass IS TRUE),\n" \
	"         COALESCE(sum(sd.minutes) FILTER (WHERE sd.pass IS FALSE), 0)\n" \
	"  FROM hollihop.ed_unit_student_days sd\n" \
	"  JOIN hollihop.ed_unit_students m ON m.ed_unit_id = sd.ed_unit_id\n" \
	"   AND m.student_client_id = sd.student_client_id AND m.deleted_at IS NULL\n" \
	"  WHERE sd.date IS NOT NULL" fs "\n" \
	"  GROUP BY 1, 2\n" \
	") x\n" \
	"WHERE ed_unit_id IN (SELECT un.id FROM hollihop.ed_units un WHERE un.deleted_at IS NULL)\n" \
	"GROUP BY ed_unit_id, month\n"

static const char attendance_create[] =
	"CREATE TABLE IF NOT EXISTS analytics.group_attendance (\n"
	"    ed_unit_id bigint NOT NULL,\n"
	"    month date NOT NULL,\n"
	"    lessons int NOT NULL,\n"
	"    student_visits int NOT NULL,\n"
	"    student_absences int NOT NULL,\n"
	"    attendance_rate numeric,\n"
	"    student_minutes numeric NOT NULL\n"
	");\n"
	"CREATE INDEX IF NOT EXISTS group_attendance_unit ON analytics.group_attendance (ed_unit_id, month);\n"
	"COMMENT ON TABLE analytics.group_attendance IS 'One row per live ed unit and month with "
	"lesson days: lessons = its days not cancelled (hollihop.ed_unit_days, pass not true); "
	"student_visits / student_absences = per-student days of its live memberships "
	"(hollihop.ed_unit_student_days) with pass false / true; attendance_rate = visits / (visits "
	"+ absences), NULL when none is marked; student_minutes = the per-student Minutes of the "
	"visits';\n"
	GRANT_READ("analytics.group_attendance");

static const char attendance_refresh[] =
	"WITH " KEYS ",\n" UNITS ",\n"
	"d AS (DELETE FROM analytics.group_attendance g WHERE g.ed_unit_id = ANY (ARRAY(SELECT id FROM units))\n"
	"      RETURNING g.ed_unit_id),\n"
	"i AS (INSERT INTO analytics.group_attendance (" ATT_COLS ")\n"
	"      SELECT " ATT_COLS " FROM (" ATT_SRC(" AND d.ed_unit_id = ANY (ARRAY(SELECT id FROM units))",
	"        AND sd.ed_unit_id = ANY (ARRAY(SELECT id FROM units))") ") s\n"
	"      RETURNING ed_unit_id)\n"
	"SELECT ed_unit_id::text FROM d UNION SELECT ed_unit_id::text FROM i";

static const char attendance_rebuild[] =
	REBUILD_SET
	"WITH d AS (DELETE FROM analytics.group_attendance)\n"
	"INSERT INTO analytics.group_attendance (" ATT_COLS ") SELECT " ATT_COLS
	" FROM (" ATT_SRC("", "") ") s ORDER BY ed_unit_id, month";

/* In dependency order: a table reads only the tables before it. */
const struct an_table an_school_tables[] = {
	{ "people", "amo.contacts,hollihop.students,hollihop.leads",
	  people_create, people_refresh, people_rebuild, 0 },
	{ "person_matches", "analytics.people,amo.leads,hollihop.students",
	  matches_create, matches_refresh, matches_rebuild, 0 },
	{ "lead_revenue", "amo.leads,amo.users,amo.sources,analytics.person_matches,hollihop.payments",
	  revenue_create, revenue_refresh, revenue_rebuild, 0 },
	{ "group_fill", "hollihop.ed_units,hollihop.ed_unit_students",
	  fill_create, fill_refresh, fill_rebuild, 0 },
	{ "teacher_lessons", "hollihop.ed_units,hollihop.ed_unit_students",
	  lessons_create, lessons_refresh, lessons_rebuild, 0 },
	{ "teacher_hours", "analytics.teacher_lessons,hollihop.teachers",
	  hours_create, hours_refresh, hours_rebuild, 0 },
	{ "group_attendance", "hollihop.ed_units,hollihop.ed_unit_students",
	  attendance_create, attendance_refresh, attendance_rebuild, 0 },
};

const size_t an_school_ntables = nitems(an_school_tables);
