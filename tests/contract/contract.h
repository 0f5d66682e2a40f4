/*
 * contract.h - the response half of the contract tests, shared by tests/contract/amo and
 * tests/contract/hollihop: a fixture with the shape of a real response goes through the
 * catalogue and the normaliser, into a real store and a throwaway PostgreSQL, and its
 * .expect says what must be in the tables afterwards, field by field:
 *   entity NAME                          the catalogue entity it feeds
 *   list PATH                            rows at PATH ("-": the body is one row; default:
 *                                        the entity's list key)
 *   ctx NAME=VALUE                       a "$NAME" context value
 *   rows N                               live rows in the table
 *   row KEY COLUMN VALUE                 typed value (PostgreSQL text, session zone UTC)
 *   version KEY VALUE                    source_updated_at
 *   childval KEY TABLE IDX COLUMN VALUE  a child row's value
 *   raw-only PATH                        a key of the rows that no typed column reads
 * KEY is "col=v[,col=v]" over the entity's key columns; VALUE is the rest of the line,
 * NULL for SQL NULL. Every row and every child row must be named, every typed column a line
 * does not name must be NULL, raw must equal the row, and the keys no typed column reads must
 * be exactly the raw-only list. A fixture without an .expect fails.
 */
#ifndef CONTRACT_H
#define CONTRACT_H

#include <stddef.h>
#include <libpq-fe.h>
#include <nng/nng.h>

#include "catalog.h"
#include "harness.h"

struct contract {
	enum cat_crm	 crm;
	int		 clean;		/* empty an entity's tables before each of its fixtures */
	char		 dir[512];	/* the fixtures: tests/contract/<crm> */
	struct h_pg	 pg;
	struct h_proc	 store;
	PGconn		*db;		/* session time zone UTC */
	nng_socket	 sock;		/* to the store */
};
extern struct contract ct;

/* PostgreSQL, the store, a socket to it and a connection; dir = CS_SOURCE_DIR/tests/contract/<sub>. */
int	ct_start(enum cat_crm crm, const char *sub, int clean);
int	ct_stop(void);
/* The fixture <name>.json against <name>.expect (fails the test on any difference). */
void	ct_run_fixture(const char *name);
/* Names of the files in d ending in ext (ext cut off), sorted; how many (at most max). */
int	ct_list(const char *d, const char *ext, char **names, int max);
/* docs/api/<doc> has a "### `<schema>.<table>`" section per table and a row per typed
 * column naming one of tags. */
void	ct_check_docs(const char *doc, const char *const *tags, size_t ntags);
char	*ct_slurp(const char *path, size_t *len);
/* "word rest": the first space-separated word into w; the rest, or NULL. */
const char *ct_word(const char *s, char *w, size_t cap);

#endif
