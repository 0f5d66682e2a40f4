/*
 * account.h - the account settings the normaliser reads (its time zone's UTC offset; see
 * account.c). Worker thread only.
 */
#ifndef AMO_ACCOUNT_H
#define AMO_ACCOUNT_H

#include "amo.h"

/* Read the account's UTC offset and hand it to the normaliser (normalise_set_default).
 * Returns 0 or the API/parse error (logged; the previous offset, if any, stays). */
int	account_refresh(struct amo *a);
/* 1 once an offset has been read. */
int	account_known(void);
/* account_refresh() when no offset is known yet, at most once a minute (before fetching rows
 * for hook tasks: each would otherwise pay a request while the account cannot be read). */
int	account_ensure(struct amo *a);

#endif
