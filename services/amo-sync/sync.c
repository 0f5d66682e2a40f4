/*
 * sync.c - full and incremental runs over the catalogue, and the worker thread's loop.
 *
 * A run is bracketed by RunBegin/RunEnd in the store (crmsync.sync_runs) and walks the
 * catalogue in order. A full run reads every entity completely; its RunEnd lists which
 * entities were read to their end, so the store may soft-delete reference rows that
 * vanished (CE_FULL_DELETES). An incremental run reads CE_INCREMENTAL entities from their
 * cursors, and the small reference entities (users, pipelines, custom fields...) in full
 * when CS_AMO_REFERENCE_INTERVAL has passed. The worker loop runs due hook tasks, the
 * incremental timer and runs requested by SyncCommand (of the entities it names, the
 * union when several wait) or --full; when the token is
 * revoked or the account banned it makes no API calls and waits for the operator.
 * This file owns the wiring between the task queue and fetching: tasks.c executes a task
 * through sync_exec (fetch_ids, storecli_deletes), and fetch.c calls back between pages
 * to run due tasks. Worker thread only (sync_open/sync_close: main, around it).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "account.h"
#include "buf.h"
#include "bus.h"
#include "clock.h"
#include "errors.h"
#include "fetch.h"
#include "log.h"
#include "oauth.h"
#include "storecli.h"
#include "strlist.h"
#include "sync.h"
#include "tasks.h"
#include "webhook.h"

#define SYNC_MAX_ENTITIES	64
#define SYNC_STORE_TIMEOUT_MS	15000	/* one round trip (a page of 250 rows commits in ms) */
#define SYNC_STORE_GRACE_MS	5000	/* what queued messages still get, in all, once stopping */
#define SYNC_STORE_DEPTH	2	/* page batches queued ahead of the store */

static int64_t last_reference_ms = -1;	/* worker thread only */

/* One run in progress. */
struct run {
	const struct cat_entity	*ents[SYNC_MAX_ENTITIES];
	struct fetch_result	 res[SYNC_MAX_ENTITIES];
	int64_t			 last_rows[SYNC_MAX_ENTITIES];	/* from the store: -1 unknown */
	size_t			 n, done;
	int			 full, reference;
	int64_t			 run_id, rows, t0, req0, n429;
	Crmsync__RunStatus	 status;
	struct buf		 errs;
};

/* ---- the calls tasks.c executes a hook task with ---- */

static int
exec_api_ok(void *arg)
{
	return amo_api_state(arg) == API_OK;
}

static int
exec_fetch(void *arg, const struct cat_entity *e, const char *param, char *const *keys, size_t n,
    int64_t *rows)
{
	struct fetch_result res;
	int rv;

	(void)account_ensure(arg);	/* date fields' days need the account's zone */
	rv = fetch_ids(arg, e, param, keys, n, &res);

	*rows = res.rows;
	return rv;
}

static int
exec_deletes(void *arg, const struct cat_entity *e, const char *param, char *const *keys,
    const int64_t *ver_us, size_t n)
{
	struct amo *a = arg;

	return storecli_deletes(a->store, e, param, keys, ver_us, n, 0);
}

static void
run_tasks(struct amo *a, int max)
{
	const struct tasks_exec x = { .stop = &a->stop, .arg = a, .api_ok = exec_api_ok,
	    .fetch = exec_fetch, .deletes = exec_deletes };

	(void)tasks_run_ready(a->tasks, max, &x);
}

/* fetch.c's idle hook: hook tasks never wait for a long sync to finish. */
static void
between_pages(void *arg)
{
	run_tasks(arg, 1);
}

int
sync_open(struct amo *a)
{
	const struct storecli_opts so = { .crm = CAT_AMO, .timeout_ms = SYNC_STORE_TIMEOUT_MS,
	    .grace_ms = SYNC_STORE_GRACE_MS, .depth = SYNC_STORE_DEPTH, .stop = &a->stop,
	    .batches = &a->stats[AS_BATCHES], .rows = &a->stats[AS_ROWS],
	    .rejected = &a->stats[AS_REJECTED], .deletes = &a->stats[AS_DELETES] };
	int rv;

	if ((rv = fetch_memo_new(a, between_pages, a)) != 0)
		return rv;
	if ((rv = bus_dial(&a->store_sock, a->conf.store_url, (size_t)a->conf.recv_max)) != 0)
		return rv;
	if ((rv = storecli_open(&a->store, a->store_sock, &so)) != 0) {
		bus_close(a->store_sock);
		return rv;
	}
	return 0;
}

void
sync_close(struct amo *a)
{
	if (a->store != NULL) {
		storecli_close(a->store);
		a->store = NULL;
		bus_close(a->store_sock);
	}
	fetch_memo_free(a);
}

void
sync_request(struct amo *a, Crmsync__SyncKind kind, const char *const *names, size_t n,
    int resync)
{
	pthread_mutex_lock(&a->mtx);
	int waiting = atomic_load(&a->want_full) || atomic_load(&a->want_incremental);
	a->want_resync = waiting ? a->want_resync && resync : resync;
	if (n == 0) {
		a->want_entities[0] = '\0';	/* all: a union with all is all */
	} else if (!waiting || a->want_entities[0] != '\0') {
		if (!waiting)
			a->want_entities[0] = '\0';
		for (size_t i = 0; i < n; i++) {
			size_t len = strlen(a->want_entities);
			if (strlist_has_str(a->want_entities, names[i]))
				continue;
			if (len + strlen(names[i]) + 2 > sizeof(a->want_entities)) {
				a->want_entities[0] = '\0';	/* too many to list: all */
				break;
			}
			snprintf(a->want_entities + len, sizeof(a->want_entities) - len, "%s%s",
			    len ? "," : "", names[i]);
		}
	}
	if (kind == CRMSYNC__SYNC_KIND__SYNC_FULL)
		atomic_store(&a->want_full, 1);
	else
		atomic_store(&a->want_incremental, 1);
	pthread_mutex_unlock(&a->mtx);
}

/*
 * The entities of this run: those asked for (only), else the configured selection, where
 * incremental runs read reference entities only every CS_AMO_REFERENCE_INTERVAL.
 */
static void
run_plan(struct amo *a, struct run *r, Crmsync__SyncKind kind, const char *only)
{
	r->full = kind == CRMSYNC__SYNC_KIND__SYNC_FULL;
	r->reference = r->full || last_reference_ms < 0 ||
	    clock_mono_ms() - last_reference_ms >= a->conf.reference_ms;
	r->status = CRMSYNC__RUN_STATUS__RUN_COMPLETE;
	r->t0 = clock_mono_ms();
	r->req0 = amo_stat(a, AS_REQUESTS);
	r->n429 = amo_stat(a, AS_HTTP_429);
	for (size_t i = 0; i < catalog_amo.nentities && r->n < SYNC_MAX_ENTITIES; i++) {
		const struct cat_entity *e = &catalog_amo.entities[i];
		if (only[0] != '\0') {
			if (!strlist_has_str(only, e->name))
				continue;
		} else {
			if (a->conf.entities[0] != '\0' && !strlist_has_str(a->conf.entities, e->name))
				continue;
			if (!r->full && !(e->flags & CE_INCREMENTAL) && !r->reference)
				continue;
		}
		r->ents[r->n++] = e;
	}
}

/* Fetch the run's next entity; 0 to go on, 1 when the run must stop here. */
static int
run_entity(struct amo *a, struct run *r)
{
	const struct cat_entity *e = r->ents[r->done];
	struct fetch_result *res = &r->res[r->done];
	enum fetch_mode mode = r->full || !(e->flags & CE_INCREMENTAL) ? FETCH_FULL : FETCH_INCREMENTAL;
	int64_t te = clock_mono_ms();
	int rv;

	rv = fetch_entity(a, e, mode, r->run_id, r->last_rows[r->done], res);
	r->done++;
	r->rows += res->rows;
	log_info("sync.entity", "run=%lld entity=%s mode=%s rows=%lld rejected=%lld pages=%lld "
	    "complete=%d ms=%lld%s%s", (long long)r->run_id, e->name,
	    mode == FETCH_FULL ? "full" : "incremental", (long long)res->rows,
	    (long long)res->rows_rejected, (long long)res->pages, res->complete,
	    (long long)(clock_mono_ms() - te), rv ? " err=" : "", rv ? lq(cs_strerror(rv)) : "");
	if (rv == 0)
		storecli_progress(a->store, r->run_id, e->name, res->rows, res->pages);
	if (rv != 0)
		buf_printf(&r->errs, "%s%s: %s", r->errs.len ? "; " : "", e->name, cs_strerror(rv));
	if (rv == CS_ECANCELED || rv == CS_EREVOKED || rv == CS_EBANNED) {
		r->status = rv == CS_ECANCELED ? CRMSYNC__RUN_STATUS__RUN_PARTIAL :
		    CRMSYNC__RUN_STATUS__RUN_FAILED;
		return 1;
	}
	if (rv != 0)
		r->status = CRMSYNC__RUN_STATUS__RUN_FAILED;
	return 0;
}

/* Record the run's end (a stopping service still closes its run), then counters and logs. */
static int
run_end(struct amo *a, struct run *r)
{
	struct storecli_entity er[SYNC_MAX_ENTITIES];
	int rv;

	if (r->status == CRMSYNC__RUN_STATUS__RUN_COMPLETE && r->reference)
		last_reference_ms = clock_mono_ms();
	if (a->stop)
		r->status = CRMSYNC__RUN_STATUS__RUN_PARTIAL;
	for (size_t i = 0; i < r->done; i++) {
		er[i].entity = r->ents[i]->name;
		er[i].complete = r->res[i].complete;
		er[i].rows = r->res[i].rows;
		er[i].pages = r->res[i].pages;
		er[i].rows_rejected = r->res[i].rows_rejected;
		er[i].has_total = r->res[i].complete && r->res[i].has_total;
		er[i].api_total = r->res[i].api_total;
	}
	rv = storecli_run_end(a->store, r->run_id, r->status, r->errs.len ? r->errs.data : NULL, er,
	    r->done);
	int64_t ms = clock_mono_ms() - r->t0;
	int ok = r->status == CRMSYNC__RUN_STATUS__RUN_COMPLETE;
	amo_count(a, ok ? AS_RUNS_OK : AS_RUNS_FAILED, 1);
	log_info("sync.finished", "run=%lld kind=%s status=%s rows=%lld requests=%lld http_429=%lld "
	    "ms=%lld rows_per_s=%.0f%s%s", (long long)r->run_id, r->full ? "full" : "incremental",
	    ok ? "complete" : r->status == CRMSYNC__RUN_STATUS__RUN_PARTIAL ? "partial" : "failed",
	    (long long)r->rows, (long long)(amo_stat(a, AS_REQUESTS) - r->req0),
	    (long long)(amo_stat(a, AS_HTTP_429) - r->n429), (long long)ms,
	    ms > 0 ? (double)r->rows * 1000.0 / (double)ms : 0.0, r->errs.len ? " error=" : "",
	    r->errs.len ? lq(r->errs.data) : "");
	if (r->errs.len)
		amo_set_error(a, "%s", r->errs.data);
	return ok ? rv : (rv ? rv : CS_EREMOTE);
}

int
sync_run(struct amo *a, Crmsync__SyncKind kind, const char *trigger, const char *only)
{
	struct run *r = calloc(1, sizeof(*r));
	const char *names[SYNC_MAX_ENTITIES];
	int rv;

	if (r == NULL)
		return CS_ENOMEM;
	run_plan(a, r, kind, only != NULL ? only : "");
	for (size_t i = 0; i < r->n; i++)
		names[i] = r->ents[i]->name;
	if ((rv = storecli_run_begin(a->store, kind, trigger, names, r->n, &r->run_id, r->last_rows,
	    NULL, 0)) != 0)
		goto out;
	log_info("sync.started", "run=%lld kind=%s trigger=%s entities=%zu reference=%d%s%s",
	    (long long)r->run_id, r->full ? "full" : "incremental", trigger, r->n, r->reference,
	    only != NULL && only[0] ? " only=" : "", only != NULL && only[0] ? lq(only) : "");
	buf_init(&r->errs, 16u << 10);
	/* The account's zone, for date fields' days: with the reference data (it may change). */
	if (r->reference)
		(void)account_refresh(a);
	else
		(void)account_ensure(a);
	while (r->done < r->n && run_entity(a, r) == 0)
		;
	rv = run_end(a, r);
	buf_free(&r->errs);
out:
	free(r);
	return rv;
}

/* What the worker does next while the API is usable: a requested or due run. 1 = ran one. */
static int
worker_runs(struct amo *a, int64_t *next_incr)
{
	char only[sizeof(a->want_entities)];
	int asked, full, resync;

	/* What was asked, and for which entities, taken together (sync_request). */
	pthread_mutex_lock(&a->mtx);
	full = atomic_exchange(&a->want_full, 0);
	asked = atomic_exchange(&a->want_incremental, 0);
	snprintf(only, sizeof(only), "%s", a->want_entities);
	a->want_entities[0] = '\0';
	resync = a->want_resync;
	a->want_resync = 0;
	pthread_mutex_unlock(&a->mtx);
	if (full) {
		(void)sync_run(a, CRMSYNC__SYNC_KIND__SYNC_FULL, a->once ? "cli" : resync ? "resync" :
		    "command", only);
	} else if (asked || (*next_incr >= 0 && clock_mono_ms() >= *next_incr)) {
		(void)sync_run(a, CRMSYNC__SYNC_KIND__SYNC_INCREMENTAL,
		    a->once ? "cli" : asked ? "command" : "schedule", asked ? only : "");
	} else {
		return 0;
	}
	if (*next_incr >= 0)
		*next_incr = clock_mono_ms() + a->conf.incremental_ms;
	return 1;
}

/* How long the worker may sleep: until the next hook task, incremental run or webhook
 * check is due. */
static int64_t
worker_idle_ms(struct amo *a, enum api_state st, int64_t next_incr, int64_t next_wh)
{
	int64_t wait = 1000;

	if (st == API_OK) {
		if (next_wh >= 0 && next_wh < wait)
			wait = next_wh;
		int64_t due = tasks_due_in_ms(a->tasks);
		if (due >= 0 && due < wait)
			wait = due;
		if (next_incr >= 0 && next_incr - clock_mono_ms() < wait)
			wait = next_incr - clock_mono_ms();
	}
	return wait < 5 ? 5 : wait;
}

void *
sync_worker(void *arg)
{
	struct amo *a = arg;
	int64_t next_incr = a->conf.incremental_ms > 0 ? clock_mono_ms() : -1;
	int64_t banned_note = 0;

	while (!a->stop) {
		enum api_state st = amo_api_state(a);
		int64_t next_wh = -1;

		if (st == API_REVOKED && oauth_reload(a) == 0)
			st = API_OK;
		/* Deletes need no API; fetches only run while the API is usable. */
		run_tasks(a, 16);
		if (a->stop)
			break;
		if (st == API_OK && (next_wh = webhook_tick(a)) >= 0 && a->stop)
			break;
		if (st == API_OK && worker_runs(a, &next_incr)) {
			if (a->once)
				break;
			continue;
		}
		if (st == API_BANNED && clock_mono_ms() - banned_note > 3600 * 1000) {
			banned_note = clock_mono_ms();
			log_warnx("api.still_banned", "syncing is stopped: amoCRM blocked this account's API "
			    "access; after support unblocks it, restart or send a sync command");
		}
		amo_wait(a, worker_idle_ms(a, st, next_incr, next_wh));
	}
	if (a->once)
		a->stop = 1;
	return NULL;
}
