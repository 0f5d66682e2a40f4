/*
 * gateway.h - the hook gateway's counters, shared by its modules and reported by the
 * health responder (lib/health). The array itself lives in main.c.
 */
#ifndef GW_GATEWAY_H
#define GW_GATEWAY_H

#include "stats.h"

enum gw_stat {
	GW_HOOKS_ACCEPTED,	/* answered 204: on disk */
	GW_HOOKS_REJECTED,	/* answered 4xx */
	GW_HOOKS_UNAVAILABLE,	/* answered 503: journal full or failing, overload */
	GW_HOOK_EVENTS,		/* events parsed from accepted hooks */
	GW_DEADLETTERS,		/* files written to the dead-letter directory */
	GW_CONNECTIONS,		/* gauge: open HTTP connections */
	GW_HTTP_PORT,		/* gauge: the bound HTTP(S) port */
	GW_JOURNAL_BYTES,	/* gauge */
	GW_JOURNAL_SEGMENTS,	/* gauge */
	GW_JOURNAL_BACKLOG,	/* gauge: committed, not yet acknowledged by amo-sync */
	GW_JOURNAL_COMMITTED,	/* gauge: last durable seq */
	GW_JOURNAL_ACKED,	/* gauge: last seq amo-sync acknowledged */
	GW_JOURNAL_FSYNCS,
	GW_JOURNAL_RECORDS,
	GW_FORWARDED,		/* deliveries acknowledged by amo-sync */
	GW_FORWARD_REJECTED,	/* deliveries amo-sync refused for good (dead-lettered) */
	GW_FORWARD_REWINDS,	/* amo-sync restarts that made us re-send unfinished deliveries */
	GW_FORWARD_BAD_DONE,	/* done_seqs refused: another journal's, or beyond ours */
	GW_JOURNAL_REFUSING,	/* gauge: 1 while hooks are refused (503): cap, disk full, I/O */
	GW_CONNS_REFUSED_CLIENT,	/* connections closed at once: their address had its share */
	GW_TLS_NOT_AFTER,	/* gauge: unix time the certificate in use expires */
	GW_TLS_RELOADS,		/* certificates loaded again on SIGHUP */
	GW_TLS_RELOAD_FAILURES,	/* reloads refused (unreadable, unparsable, key mismatch) */
	GW_NSTATS
};

extern struct stat_counter gw_stats[GW_NSTATS];

#endif
