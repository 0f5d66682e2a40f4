/*
 * sync.h - full and incremental runs over the catalogue, and the worker thread that runs
 * them, the hook tasks and the incremental timer (see sync.c).
 */
#ifndef AMO_SYNC_H
#define AMO_SYNC_H

#include "amo.h"

/* Dial the store and prepare the worker's state (a->store, a->memo); main, before the
 * worker starts. */
int	sync_open(struct amo *a);
/* After the worker has stopped: send what is still queued (bounded), free. */
void	sync_close(struct amo *a);
/*
 * Ask the worker for a run of these entities (n = 0: the configured selection). Requests
 * that wait together become one run of the union (of all, when any asked for all); its
 * trigger is "resync" when each of them was a resync (crmsyncctl resync). Any thread
 * (main, for SyncCommand).
 */
void	sync_request(struct amo *a, Crmsync__SyncKind kind, const char *const *names, size_t n,
	    int resync);
/* One run over the catalogue (SYNC_FULL or SYNC_INCREMENTAL) of the comma list `only` ("":
 * the configured selection). Worker thread. */
int	sync_run(struct amo *a, Crmsync__SyncKind kind, const char *trigger, const char *only);
/* The worker thread: hook tasks, the incremental timer, requested runs. */
void	*sync_worker(void *arg);

#endif
