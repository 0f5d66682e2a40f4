/*
 * tasks.h - the hook task queue: webhook events -> coalesced fetches and soft deletes
 * (see tasks.c). The queue knows nothing of fetching or of the store: the sync loop hands
 * it the calls that execute a task (struct tasks_exec).
 * Threads: the main thread queues deliveries, the worker executes; locked inside.
 */
#ifndef AMO_TASKS_H
#define AMO_TASKS_H

#include <stddef.h>
#include <stdint.h>

#include "catalog.h"
#include "crmsync.pb-c.h"
#include "stats.h"

struct tasks;

/* What executing a task takes; owned by the sync loop (sync.c). */
struct tasks_exec {
	volatile _Atomic int	*stop;
	void			*arg;
	/* 1 while the API may be called (deletes need no API). */
	int	(*api_ok)(void *arg);
	/* Fetch the rows with these keys (<= 250) of e for parent value param (may be NULL)
	 * and wait until the store committed them; *rows = rows sent. */
	int	(*fetch)(void *arg, const struct cat_entity *e, const char *param,
		    char *const *keys, size_t n, int64_t *rows);
	/* Soft-delete these keys of e (versions ver_us) and wait until committed. */
	int	(*deletes)(void *arg, const struct cat_entity *e, const char *param,
		    char *const *keys, const int64_t *ver_us, size_t n);
};

/* stats: the service's counters, indexed by enum amo_stat (queue depth, done_seq, hooks).
 * A fetch group is due quiet_ms after its latest hook, at most delay_ms after its oldest. */
int	tasks_new(struct tasks **out, size_t max_items, int64_t quiet_ms, int64_t delay_ms,
	    struct stat_counter *stats);
void	tasks_free(struct tasks *t);
/* Main thread: queue a delivery. Returns the Ack status; *done_seq is the current done_seq. */
Crmsync__AckStatus tasks_receive(struct tasks *t, const Crmsync__HookDelivery *d,
	    uint64_t *done_seq, char *err, size_t errlen);
uint64_t tasks_done_seq(struct tasks *t);
/*
 * What one hook event asks for: the catalogue entity (a [type] naming one wins over the wire
 * key: contacts[...][type]=company is a company), its parent value ("leads" for a lead's
 * note), the key, and whether it is a delete. 0 when actionable; otherwise
 * CS_EUNKNOWN_ENTITY or CS_EINVAL (no id) and *why says why it is ignored. Pure: no state.
 */
int	tasks_route(const Crmsync__HookEvent *ev, const struct cat_entity **e, const char **param,
	    char *key, size_t cap, int *del, const char **why);
/* Worker: execute what is due (at most max fetch requests; all due deletes). */
int	tasks_run_ready(struct tasks *t, int max, const struct tasks_exec *x);
/* Milliseconds until the next task is due (0 = now), or -1 when the queue is empty. */
int64_t	tasks_due_in_ms(struct tasks *t);
size_t	tasks_depth(struct tasks *t);

#endif
