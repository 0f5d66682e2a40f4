/*
 * report_text.c - `crmsyncctl report --text`: the report's numbers as plain aligned tables,
 * for a terminal, a mail or the demo. Same sections, rows and values as the HTML page;
 * widths count characters, not bytes, so Cyrillic names line up.
 */
#include <stdio.h>
#include <string.h>

#include "report.h"

#define TXT_LABEL_MAX	40	/* label column width at most, in characters */
#define TXT_PIVOT_MAX	64

static size_t
u8len(const char *s)
{
	size_t n = 0;

	for (; *s != '\0'; s++)
		n += (*s & 0xC0) != 0x80;
	return n;
}

/* s in a cell of width characters: cut with "…" when longer, padded left or right. */
static void
txt_cell(struct rep_w *w, const char *s, size_t width, int right)
{
	size_t len = u8len(s), chars = 0;
	const char *p;

	if (len > width) {
		for (p = s; *p != '\0'; p++)
			if ((*p & 0xC0) != 0x80 && ++chars > width - 1)
				break;
		rep_putf(w, "%.*s\xE2\x80\xA6", (int)(p - s), s);
		return;
	}
	if (right)
		rep_putf(w, "%*s", (int)(width - len), "");
	rep_puts(w, s);
	if (!right)
		rep_putf(w, "%*s", (int)(width - len), "");
}

/* The label of row i as shown; others: "others (N more)". */
static const char *
txt_label(char *dst, size_t cap, const struct rep_section *s, PGresult *r, int i)
{
	if (PQgetvalue(r, i, REP_C_KIND)[0] != 'o')
		return rep_label(s, r, i);
	snprintf(dst, cap, "others (%s more)", PQgetvalue(r, i, REP_C_LABEL));
	return dst;
}

static size_t
txt_label_width(const struct rep_section *s, PGresult *r, int from, int to)
{
	size_t width = u8len(s->row_header);
	char tmp[64];

	for (int i = from; i < to; i++)
		if (u8len(txt_label(tmp, sizeof(tmp), s, r, i)) > width)
			width = u8len(txt_label(tmp, sizeof(tmp), s, r, i));
	return width < TXT_LABEL_MAX ? width : TXT_LABEL_MAX;
}

/* Rows [from, to) of one chart: a header line, then a line per row. */
static void
txt_table(struct rep_w *w, const struct rep_section *s, PGresult *r, int from, int to)
{
	size_t lw = txt_label_width(s, r, from, to), vw[16];
	char shown[128], tmp[64];

	for (size_t c = 0; c < s->ncols && c < 16; c++) {
		vw[c] = strlen(s->cols[c].header);
		for (int i = from; i < to; i++) {
			rep_value(shown, sizeof(shown), &s->cols[c], PQgetvalue(r, i, REP_C_VALUES + (int)c));
			if (strlen(shown) > vw[c])
				vw[c] = strlen(shown);
		}
	}
	rep_puts(w, "  ");
	txt_cell(w, s->row_header, lw, 0);
	for (size_t c = 0; c < s->ncols && c < 16; c++) {
		rep_puts(w, "  ");
		txt_cell(w, s->cols[c].header, vw[c], 1);
	}
	rep_puts(w, "\n");
	for (int i = from; i < to; i++) {
		rep_puts(w, "  ");
		txt_cell(w, txt_label(tmp, sizeof(tmp), s, r, i), lw, 0);
		for (size_t c = 0; c < s->ncols && c < 16; c++) {
			rep_value(shown, sizeof(shown), &s->cols[c], PQgetvalue(r, i, REP_C_VALUES + (int)c));
			rep_puts(w, "  ");
			txt_cell(w, shown, vw[c], 1);
		}
		rep_puts(w, "\n");
	}
}

static void
txt_bars(struct rep_w *w, const struct rep_section *s, PGresult *r)
{
	int n = PQntuples(r);

	for (int from = 0, to; from < n; from = to) {
		to = rep_run_end(r, from);
		if (PQgetvalue(r, from, REP_C_KIND)[0] == 'm') {
			rep_putf(w, "\n  %s ", PQgetvalue(r, from, REP_C_GRP_LABEL));
			rep_puts(w, s->more != NULL ? s->more : "more not shown");
			rep_puts(w, "\n");
			continue;
		}
		if (PQgetvalue(r, from, REP_C_GRP)[0] != '\0') {
			rep_putf(w, "%s-- ", from > 0 ? "\n" : "");
			rep_puts(w, PQgetvalue(r, from, REP_C_GRP_LABEL));
			rep_puts(w, "\n");
		}
		txt_table(w, s, r, from, to);
	}
}

/* Teacher x month: months as columns (sorted), a row per teacher in the query's order. */
static void
txt_pivot(struct rep_w *w, const struct rep_section *s, PGresult *r)
{
	const char *cols[TXT_PIVOT_MAX];
	int ncols = rep_pivot_columns(r, cols, TXT_PIVOT_MAX), n = PQntuples(r);
	size_t lw = txt_label_width(s, r, 0, n);
	char tmp[64], shown[128];

	rep_puts(w, "  ");
	txt_cell(w, s->row_header, lw, 0);
	for (int c = 0; c < ncols; c++) {
		rep_puts(w, "  ");
		txt_cell(w, cols[c], 9, 1);
	}
	rep_puts(w, "\n");
	for (int i = 0; i < n; i++) {
		int seen = 0;

		for (int k = 0; k < i && !seen; k++)
			seen = rep_same_row(r, k, i);
		if (seen)
			continue;
		rep_puts(w, "  ");
		txt_cell(w, txt_label(tmp, sizeof(tmp), s, r, i), lw, 0);
		for (int c = 0; c < ncols; c++) {
			int j;

			for (j = i; j < n; j++)
				if (rep_same_row(r, j, i) && strcmp(PQgetvalue(r, j, REP_C_GRP), cols[c]) == 0)
					break;
			rep_value(shown, sizeof(shown), &s->cols[s->bar],
			    j < n ? PQgetvalue(r, j, REP_C_VALUES + s->bar) : NULL);
			rep_puts(w, "  ");
			txt_cell(w, j < n ? shown : "", 9, 1);
		}
		rep_puts(w, "\n");
	}
}

void
rep_text(struct rep_w *w, const struct rep_filter *f, const struct rep_section *s,
    PGresult *const *res, size_t n)
{
	rep_putf(w, "crmsync report: database %s, generated %s; ", f->dbname != NULL ? f->dbname : "?",
	    f->generated);
	if (f->since != NULL)
		rep_putf(w, "from %.7s", f->since);
	else
		rep_puts(w, "all months");
	if (f->pipeline != NULL)
		rep_putf(w, "; pipeline %s only", f->pipeline);
	else
		rep_puts(w, "; all pipelines");
	rep_putf(w, "; top %d rows per table, the rest summed as \"others\"\n", REP_TOP_ROWS);
	for (size_t i = 0; i < n; i++) {
		if (res[i] == NULL)
			continue;
		rep_putf(w, "\n== %s\n", s[i].title);
		if (rep_nrows(res[i]) == 0)
			rep_putf(w, "  no data yet: %s has no rows for this report's filters\n", s[i].table);
		else if (s[i].shape == REP_PIVOT)
			txt_pivot(w, &s[i], res[i]);
		else
			txt_bars(w, &s[i], res[i]);
	}
}
