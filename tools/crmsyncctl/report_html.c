/*
 * report_html.c - the report as one self-contained HTML page: inline CSS, inline SVG bar
 * charts drawn here, tables; no script, nothing fetched. Every number shown is text in an
 * element with a stable data-k attribute ("revenue.channel.<name>.net"), so a test (or a
 * scraper) reads the same numbers a person sees. Every string from the database is escaped.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "errors.h"
#include "report.h"

#define SVG_LABEL_W	230	/* room for the row labels left of the bars */
#define SVG_BAR_W	300	/* the longest bar */
#define SVG_TEXT_W	190	/* room for the value right of the bars */
#define SVG_ROW_H	20
#define SVG_LABEL_CHARS	32	/* longer labels are cut in the chart (the table has them whole) */
#define REP_KEY_MAX	2048
#define REP_PIVOT_MAX	64	/* columns a pivot table holds at most, whatever the query says */

void
rep_putf(struct rep_w *w, const char *fmt, ...)
{
	char tmp[2048];
	va_list ap;
	int n;

	if (w->rv != 0)
		return;
	va_start(ap, fmt);
	n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
	va_end(ap);
	/* Formats here carry markup and numbers; strings from the database go through rep_esc. */
	if (n < 0 || (size_t)n >= sizeof(tmp))
		w->rv = CS_ETOOBIG;
	else
		w->rv = buf_add(w->b, tmp, (size_t)n);
}

void
rep_puts(struct rep_w *w, const char *s)
{
	if (w->rv == 0)
		w->rv = buf_addstr(w->b, s);
}

void
rep_esc(struct rep_w *w, const char *s)
{
	for (const char *p = s; *p != '\0' && w->rv == 0; p++) {
		size_t plain = strcspn(p, "&<>\"'");

		w->rv = buf_add(w->b, p, plain);
		p += plain;
		switch (*p) {
		case '&': rep_puts(w, "&amp;"); break;
		case '<': rep_puts(w, "&lt;"); break;
		case '>': rep_puts(w, "&gt;"); break;
		case '"': rep_puts(w, "&quot;"); break;
		case '\'': rep_puts(w, "&#39;"); break;
		default: return;	/* the terminating NUL */
		}
	}
}

void
rep_key(char *dst, size_t cap, const struct rep_section *s, PGresult *r, int row, const char *col)
{
	const char *grp = PQgetvalue(r, row, REP_C_GRP), *kind = PQgetvalue(r, row, REP_C_KIND);
	const char *tail = kind[0] == 'n' ? ":none" : kind[0] == 'o' ? ":others" :
	    kind[0] == 'm' ? ":more" : NULL;

	snprintf(dst, cap, "%s%s%s%s%s%s%s", s->id, s->shape == REP_BARS && grp[0] ? "." : "",
	    s->shape == REP_BARS ? grp : "", tail != NULL ? tail : ".",
	    tail != NULL ? "" : PQgetvalue(r, row, REP_C_KEY), col != NULL ? "." : "",
	    col != NULL ? col : "");
}

void
rep_value(char *dst, size_t cap, const struct rep_col *c, const char *v)
{
	if (v == NULL || v[0] == '\0')
		snprintf(dst, cap, "n/a");
	else
		snprintf(dst, cap, "%s%s", v, c->unit == REP_PCT ? "%" : "");
}

const char *
rep_label(const struct rep_section *s, PGresult *r, int row)
{
	return PQgetvalue(r, row, REP_C_KIND)[0] == 'n' ? s->none_label : PQgetvalue(r, row, REP_C_LABEL);
}

int
rep_run_end(PGresult *r, int from)
{
	int n = PQntuples(r), to = from + 1;

	if (PQgetvalue(r, from, REP_C_KIND)[0] == 'm')
		return to;
	while (to < n && strcmp(PQgetvalue(r, to, REP_C_GRP), PQgetvalue(r, from, REP_C_GRP)) == 0 &&
	    PQgetvalue(r, to, REP_C_KIND)[0] != 'm')
		to++;
	return to;
}

int
rep_nrows(PGresult *r)
{
	int n = 0;

	for (int i = 0; i < PQntuples(r); i++)
		n += strchr("rno", PQgetvalue(r, i, REP_C_KIND)[0]) != NULL;
	return n;
}

static const char rep_css[] =
    "body{font:14px/1.4 system-ui,sans-serif;color:#1d2733;background:#fff;margin:24px auto;"
    "max-width:1180px;padding:0 16px}"
    "h1{font-size:24px;margin:0 0 4px}h2{font-size:19px;margin:0 0 2px}"
    "h3{font-size:15px;margin:14px 0 4px}"
    "section{border-top:2px solid #dfe5ec;padding:14px 0 8px;margin-top:16px}"
    ".meta,.about,.note{color:#55606e;margin:2px 0 8px}.note{font-style:italic}"
    ".empty{background:#f4f6f9;border:1px dashed #b8c2cc;padding:14px;color:#55606e}"
    ".chart{display:flex;flex-wrap:wrap;gap:18px;align-items:flex-start}"
    "table{border-collapse:collapse;font-variant-numeric:tabular-nums}"
    "th,td{border-bottom:1px solid #e3e8ee;padding:3px 8px;text-align:right;white-space:nowrap}"
    "th:first-child,td:first-child{text-align:left;white-space:normal;max-width:320px}"
    "th{background:#f4f6f9;font-weight:600}tr.others td{color:#6b7684;font-style:italic}"
    "svg text{font:12px system-ui,sans-serif;fill:#1d2733}";

static void
html_head(struct rep_w *w, const struct rep_filter *f)
{
	rep_puts(w, "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n"
	    "<title>crmsync report</title>\n<style>");
	rep_puts(w, rep_css);
	rep_puts(w, "</style></head>\n<body>\n<h1>crmsync report</h1>\n<p class=\"meta\">Database <b>");
	rep_esc(w, f->dbname != NULL ? f->dbname : "?");
	rep_putf(w, "</b>, generated %s. ", f->generated);
	if (f->since != NULL)
		rep_putf(w, "Leads created and lessons taught from %.7s on. ", f->since);
	else
		rep_puts(w, "All months. ");
	if (f->pipeline != NULL)
		rep_putf(w, "Funnel and revenue of amoCRM pipeline %s only.", f->pipeline);
	else
		rep_puts(w, "All pipelines.");
	rep_putf(w, "</p>\n<p class=\"meta\">Each chart shows its top %d rows; the rest are "
	    "summed in one &ldquo;others&rdquo; row. Every number drawn is also in the table beside "
	    "it.</p>\n", REP_TOP_ROWS);
}

/* "others (N more)" with N in a tag of its own (span, or tspan inside SVG text). */
static void
html_others(struct rep_w *w, const char *tag, PGresult *r, int i, const char *key)
{
	rep_putf(w, "others (<%s data-k=\"", tag);
	rep_esc(w, key);
	rep_puts(w, ".count\">");
	rep_esc(w, PQgetvalue(r, i, REP_C_LABEL));
	rep_putf(w, "</%s> more)", tag);
}

/* The label of row i, cut to SVG_LABEL_CHARS characters (not bytes) for the chart. */
static void
svg_label(struct rep_w *w, const struct rep_section *s, PGresult *r, int i, const char *key)
{
	const char *label = rep_label(s, r, i), *p;
	char cut[SVG_LABEL_CHARS * 4 + 1];
	size_t chars = 0;

	if (PQgetvalue(r, i, REP_C_KIND)[0] == 'o') {
		html_others(w, "tspan", r, i, key);
		return;
	}
	for (p = label; *p != '\0'; p++)
		if ((*p & 0xC0) != 0x80 && ++chars > SVG_LABEL_CHARS)
			break;
	if (*p == '\0') {
		rep_esc(w, label);
		return;
	}
	/* Cut at a character boundary, then "…". */
	snprintf(cut, sizeof(cut), "%.*s", (int)(p - label), label);
	rep_esc(w, cut);
	rep_puts(w, "\xE2\x80\xA6");
}

/* One value as text in an element carrying its data-k. */
static void
html_value(struct rep_w *w, const char *tag, const char *key, const struct rep_col *c,
    const char *v)
{
	char shown[128];

	rep_value(shown, sizeof(shown), c, v);
	rep_putf(w, "<%s data-k=\"", tag);
	rep_esc(w, key);
	rep_putf(w, ".%s\">", c->name);
	rep_esc(w, shown);
	rep_putf(w, "</%s>", tag);
}

/* The magnitude of row i's bar value (NULL: 0); *neg when it is below zero. */
static double
bar_value(const struct rep_section *s, PGresult *r, int i, int *neg)
{
	double v = strtod(PQgetvalue(r, i, REP_C_VALUES + s->bar), NULL);

	if (neg != NULL)
		*neg = v < 0;
	return v < 0 ? -v : v;
}

/* Horizontal bars of rows [from, to) of r, scaled to the largest magnitude. */
static void
html_svg(struct rep_w *w, const struct rep_section *s, PGresult *r, int from, int to)
{
	double max = 0;
	int h = (to - from) * SVG_ROW_H + 8;

	for (int i = from; i < to; i++)
		if (bar_value(s, r, i, NULL) > max)
			max = bar_value(s, r, i, NULL);
	rep_putf(w, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" "
	    "viewBox=\"0 0 %d %d\" role=\"img\" aria-label=\"", SVG_LABEL_W + SVG_BAR_W + SVG_TEXT_W,
	    h, SVG_LABEL_W + SVG_BAR_W + SVG_TEXT_W, h);
	rep_esc(w, s->title);
	rep_puts(w, "\">\n");
	for (int i = from; i < to; i++) {
		int neg, y = (i - from) * SVG_ROW_H + 4;
		double v = bar_value(s, r, i, &neg);
		int len = max > 0 ? (int)(SVG_BAR_W * v / max + 0.5) : 0;
		/* others grey, below zero (refunds over payments) red */
		const char *fill = PQgetvalue(r, i, REP_C_KIND)[0] == 'o' ? "#9aa5b1" :
		    neg ? "#c0392b" : "#2f6db5";
		char key[REP_KEY_MAX];

		rep_key(key, sizeof(key), s, r, i, NULL);
		rep_putf(w, "<text x=\"%d\" y=\"%d\" text-anchor=\"end\">", SVG_LABEL_W - 6, y + 12);
		svg_label(w, s, r, i, key);
		rep_putf(w, "</text><rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"14\" fill=\"%s\"/>",
		    SVG_LABEL_W, y, len > 0 ? len : 1, fill);
		rep_putf(w, "<text x=\"%d\" y=\"%d\">", SVG_LABEL_W + (len > 0 ? len : 1) + 5, y + 12);
		html_value(w, "tspan", key, &s->cols[s->bar], PQgetvalue(r, i, REP_C_VALUES + s->bar));
		if (s->bar_note >= 0) {
			rep_puts(w, " \xC2\xB7 ");
			html_value(w, "tspan", key, &s->cols[s->bar_note],
			    PQgetvalue(r, i, REP_C_VALUES + s->bar_note));
			rep_putf(w, " %s", s->cols[s->bar_note].header);
		}
		rep_puts(w, "</text>\n");
	}
	rep_puts(w, "</svg>\n");
}

static void
html_row_label(struct rep_w *w, const struct rep_section *s, PGresult *r, int i, const char *key)
{
	if (PQgetvalue(r, i, REP_C_KIND)[0] == 'o')
		html_others(w, "span", r, i, key);
	else
		rep_esc(w, rep_label(s, r, i));
}

static void
html_table(struct rep_w *w, const struct rep_section *s, PGresult *r, int from, int to)
{
	rep_puts(w, "<table><thead><tr><th>");
	rep_esc(w, s->row_header);
	rep_puts(w, "</th>");
	for (size_t c = 0; c < s->ncols; c++) {
		rep_puts(w, "<th>");
		rep_esc(w, s->cols[c].header);
		rep_puts(w, "</th>");
	}
	rep_puts(w, "</tr></thead><tbody>\n");
	for (int i = from; i < to; i++) {
		char key[REP_KEY_MAX];

		rep_key(key, sizeof(key), s, r, i, NULL);
		rep_puts(w, PQgetvalue(r, i, REP_C_KIND)[0] == 'o' ? "<tr class=\"others\"><td>" : "<tr><td>");
		html_row_label(w, s, r, i, key);
		rep_puts(w, "</td>");
		for (size_t c = 0; c < s->ncols; c++)
			html_value(w, "td", key, &s->cols[c], PQgetvalue(r, i, REP_C_VALUES + (int)c));
		rep_puts(w, "</tr>\n");
	}
	rep_puts(w, "</tbody></table>\n");
}

/* One chart and table per run of rows with the same grp (a pipeline), "more" notes after. */
static void
html_bars(struct rep_w *w, const struct rep_section *s, PGresult *r)
{
	int n = PQntuples(r);

	for (int from = 0, to; from < n; from = to) {
		char key[REP_KEY_MAX];

		to = rep_run_end(r, from);
		if (PQgetvalue(r, from, REP_C_KIND)[0] == 'm') {
			rep_key(key, sizeof(key), s, r, from, NULL);
			rep_puts(w, "<p class=\"note\"><span data-k=\"");
			rep_esc(w, key);
			rep_puts(w, "\">");
			rep_esc(w, PQgetvalue(r, from, REP_C_GRP_LABEL));
			rep_puts(w, "</span> ");
			rep_esc(w, s->more != NULL ? s->more : "more not shown");
			rep_puts(w, ".</p>\n");
			continue;
		}
		if (PQgetvalue(r, from, REP_C_GRP)[0] != '\0') {
			rep_puts(w, "<h3>");
			rep_esc(w, PQgetvalue(r, from, REP_C_GRP_LABEL));
			rep_puts(w, "</h3>\n");
		}
		rep_puts(w, "<div class=\"chart\">\n");
		html_svg(w, s, r, from, to);
		html_table(w, s, r, from, to);
		rep_puts(w, "</div>\n");
	}
}

static int
cmp_str(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

int
rep_pivot_columns(PGresult *r, const char **cols, int max)
{
	int n = 0;

	for (int i = 0; i < PQntuples(r); i++) {
		const char *g = PQgetvalue(r, i, REP_C_GRP);
		int k;

		for (k = 0; k < n && strcmp(cols[k], g) != 0; k++)
			;
		if (k == n && n < max)
			cols[n++] = g;
	}
	qsort(cols, (size_t)n, sizeof(cols[0]), cmp_str);
	return n;
}

int
rep_same_row(PGresult *r, int a, int b)
{
	return strcmp(PQgetvalue(r, a, REP_C_KIND), PQgetvalue(r, b, REP_C_KIND)) == 0 &&
	    strcmp(PQgetvalue(r, a, REP_C_KEY), PQgetvalue(r, b, REP_C_KEY)) == 0;
}

/* The cells of the row first seen at index first, one per column (blank where none). */
static void
pivot_row(struct rep_w *w, const struct rep_section *s, PGresult *r, int first,
    const char **cols, int ncols)
{
	char key[REP_KEY_MAX];

	rep_key(key, sizeof(key), s, r, first, NULL);
	rep_puts(w, PQgetvalue(r, first, REP_C_KIND)[0] == 'o' ? "<tr class=\"others\"><td>" : "<tr><td>");
	html_row_label(w, s, r, first, key);
	rep_puts(w, "</td>");
	for (int c = 0; c < ncols; c++) {
		int i;

		for (i = first; i < PQntuples(r); i++)
			if (rep_same_row(r, i, first) && strcmp(PQgetvalue(r, i, REP_C_GRP), cols[c]) == 0)
				break;
		if (i == PQntuples(r)) {
			rep_puts(w, "<td></td>");
			continue;
		}
		html_value(w, "td", key, &(struct rep_col){ cols[c], NULL, s->cols[s->bar].unit },
		    PQgetvalue(r, i, REP_C_VALUES + s->bar));
	}
	rep_puts(w, "</tr>\n");
}

static void
html_pivot(struct rep_w *w, const struct rep_section *s, PGresult *r)
{
	const char *cols[REP_PIVOT_MAX];
	int ncols = rep_pivot_columns(r, cols, REP_PIVOT_MAX);

	rep_puts(w, "<table><thead><tr><th>");
	rep_esc(w, s->row_header);
	rep_puts(w, "</th>");
	for (int c = 0; c < ncols; c++) {
		rep_puts(w, "<th>");
		rep_esc(w, cols[c]);
		rep_puts(w, "</th>");
	}
	rep_puts(w, "</tr></thead><tbody>\n");
	for (int i = 0; i < PQntuples(r); i++) {
		int seen = 0;

		for (int k = 0; k < i && !seen; k++)
			seen = rep_same_row(r, k, i);
		if (!seen)
			pivot_row(w, s, r, i, cols, ncols);
	}
	rep_puts(w, "</tbody></table>\n");
}

static void
html_section(struct rep_w *w, const struct rep_section *s, PGresult *r)
{
	rep_puts(w, "<section id=\"");
	rep_esc(w, s->id);
	rep_puts(w, "\"><h2>");
	rep_esc(w, s->title);
	rep_puts(w, "</h2>\n<p class=\"about\">");
	rep_esc(w, s->about);
	rep_puts(w, "</p>\n");
	if (rep_nrows(r) == 0) {
		rep_puts(w, "<p class=\"empty\" data-empty=\"");
		rep_esc(w, s->id);
		rep_puts(w, "\">No data yet: <code>");
		rep_esc(w, s->table);
		rep_puts(w, "</code> has no rows for this report's filters.</p>\n</section>\n");
		return;
	}
	if (s->shape == REP_PIVOT)
		html_pivot(w, s, r);
	else
		html_bars(w, s, r);
	rep_puts(w, "</section>\n");
}

void
rep_html(struct rep_w *w, const struct rep_filter *f, const struct rep_section *s,
    PGresult *const *res, size_t n)
{
	html_head(w, f);
	for (size_t i = 0; i < n; i++)
		if (res[i] != NULL)
			html_section(w, &s[i], res[i]);
	rep_puts(w, "</body></html>\n");
}
