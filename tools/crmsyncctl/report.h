/*
 * report.h - `crmsyncctl report`: the analytics schema as one page. What its three files share.
 *
 *   report.c       argv, the sections (each one query over analytics.*), running them
 *   report_html.c  the self-contained HTML page: inline CSS, inline SVG bar charts, tables
 *   report_text.c  the same numbers as plain aligned tables (--text, the demo)
 *
 * Every section's query returns the same leading columns, so one renderer draws them all:
 *   0 grp        a chart of its own per value ('' = one chart), e.g. the pipeline id
 *   1 grp_label  its title (pipeline name)
 *   2 kind       'r' a row with a key, 'n' the row whose key is NULL (no channel, no manager),
 *                'o' "others": the rows past the cap summed, 'm' "more": grp_label of the
 *                row says how many groups were left out (no chart)
 *   3 key        the row's stable key (an id, a channel name), used in data-k
 *   4 label      what a reader sees; for 'o' rows the number of rows folded into it
 *   5...         the values, as text already rounded by SQL (NULL = not applicable)
 */
#ifndef REPORT_H
#define REPORT_H

#include <stddef.h>

#include <libpq-fe.h>

#include "buf.h"

#define REP_C_GRP	0
#define REP_C_GRP_LABEL	1
#define REP_C_KIND	2
#define REP_C_KEY	3
#define REP_C_LABEL	4
#define REP_C_VALUES	5

#define REP_TOP_ROWS	20	/* rows per chart; the rest become one "others" row */
#define REP_TOP_GROUPS	10	/* pipelines with a funnel of their own */
#define REP_PIVOT_COLS	12	/* months in the teacher-hours table */

enum rep_unit { REP_COUNT, REP_MONEY, REP_HOURS, REP_PCT };

struct rep_col {
	const char	*name;		/* data-k suffix: "net" */
	const char	*header;	/* table header: "net (paid - refunds)" */
	enum rep_unit	 unit;
};

enum rep_shape {
	REP_BARS,	/* per grp: bars of one column, and a table of them all */
	REP_PIVOT,	/* one table: rows by key, a column per grp (a month), first value */
};

struct rep_section {
	const char		*id;	/* data-k prefix and --only name: "revenue.channel" */
	const char		*title;
	const char		*about;	/* a sentence under the title: what and from where */
	const char		*table;	/* analytics.<table> it reads, for "no data yet" */
	const char		*row_header;	/* header of the label column */
	const char		*none_label;	/* label of the 'n' row: "(no channel)" */
	enum rep_shape		 shape;
	const struct rep_col	*cols;
	size_t			 ncols;
	int			 bar;	/* index into cols drawn as bars */
	int			 bar_note;	/* a second cols index printed beside the bar, or -1 */
	const char		*more;	/* after the count of a 'm' row: "more pipelines not shown" */
	/*
	 * $1 since (date), $2 pipeline id (int8), $3 top rows, $4 top groups, $5 pivot columns
	 * (int4); NULL $1/$2 = no filter. Columns as above; more after the values are ignored.
	 */
	const char		*sql;
};

struct rep_filter {
	const char	*since;		/* "YYYY-MM-01" or NULL */
	const char	*pipeline;	/* decimal id or NULL */
	const char	*dbname;
	char		 generated[32];	/* "2026-12-05 12:00 UTC" */
};

/* Output into a bounded buffer; the first failed append is kept in rv, later ones skipped. */
struct rep_w {
	struct buf	*b;
	int		 rv;
};
void	rep_putf(struct rep_w *w, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void	rep_puts(struct rep_w *w, const char *s);
/* Append s with & < > " ' replaced by entities (for text and attribute values alike). */
void	rep_esc(struct rep_w *w, const char *s);

/* report_html.c: the page for sections s[i] with results res[i] (NULL: left out). */
void	rep_html(struct rep_w *w, const struct rep_filter *f, const struct rep_section *s,
	    PGresult *const *res, size_t n);

/* report_text.c: the same numbers as aligned plain-text tables. */
void	rep_text(struct rep_w *w, const struct rep_filter *f, const struct rep_section *s,
	    PGresult *const *res, size_t n);

/* report_html.c, shared with report_text.c */
/* The data-k key of a value (or of a row when col is NULL); into dst, truncated at cap. */
void	rep_key(char *dst, size_t cap, const struct rep_section *s, PGresult *r, int row,
	    const char *col);
/* A value as shown: "n/a" for NULL, with "%" for percentages. */
void	rep_value(char *dst, size_t cap, const struct rep_col *c, const char *v);
/* The label of a row as shown ("(no channel)"; for 'o' rows only the count); borrowed. */
const char *rep_label(const struct rep_section *s, PGresult *r, int row);
/* Rows of r that belong to chart rows (kind r/n/o); 0 = no data. */
int	rep_nrows(PGresult *r);
/* The end of the run of rows from `from` with the same grp (one chart); a 'm' row is alone. */
int	rep_run_end(PGresult *r, int from);
/* Are rows a and b the same pivot row (kind and key)? */
int	rep_same_row(PGresult *r, int a, int b);
/* A pivot's columns: the distinct grp values (borrowed), sorted; how many, at most max. */
int	rep_pivot_columns(PGresult *r, const char **cols, int max);

#endif
