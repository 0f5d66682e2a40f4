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
/* One run over the catalogue (SYNC_FULL or SYNC_INCREMENTAL). Worker thread. */
int	sync_run(struct amo *a, Crmsync__SyncKind kind, const char *trigger);
/* The worker thread: hook tasks, the incremental timer, requested runs. */
void	*sync_worker(void *arg);

#endif
