/*
 * sync.c - full and incremental runs over the catalogue, and the worker thread's loop.
 *
 * A run is bracketed by RunBegin/RunEnd in the store (crmsync.sync_runs) and walks the
 * catalogue in order. A full run reads every entity completely; its RunEnd lists which
 * entities were read to their end, so the store may soft-delete reference rows that
 * vanished (CE_FULL_DELETES). An incremental run reads CE_INCREMENTAL entities from their
 * cursors, and the small reference entities (users, pipelines, custom fields...) in full
 * when CS_AMO_REFERENCE_INTERVAL has passed. The worker loop runs due hook tasks, the
 * incremental timer and runs requested by SyncCommand or --full; when the token is
 * revoked or the account banned it makes no API calls and waits for the operator.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "amo.h"
#include "buf.h"
#include "clock.h"
#include "errors.h"
#include "log.h"
#include "strlist.h"

static int64_t last_reference_ms = -1;	/* worker thread only */

int
sync_run(struct amo *a, Crmsync__SyncKind kind, const char *trigger)
{
	const struct cat_entity *ents[64];
	struct fetch_result res[64];
	size_t n = 0;
	int64_t run_id = 0, t0 = clock_mono_ms(), req0 = stat_get(&amo_stats[AS_REQUESTS]);
	int64_t rows = 0, n429 = stat_get(&amo_stats[AS_HTTP_429]);
	int full = kind == CRMSYNC__SYNC_KIND__SYNC_FULL;
	int reference = full || last_reference_ms < 0 ||
	    clock_mono_ms() - last_reference_ms >= a->conf.reference_ms;
	Crmsync__RunStatus status = CRMSYNC__RUN_STATUS__RUN_COMPLETE;
	struct buf errs;
	int rv = 0;

	for (size_t i = 0; i < catalog_amo.nentities && n < nitems(ents); i++) {
		const struct cat_entity *e = &catalog_amo.entities[i];
		if (a->conf.entities[0] != '\0' && !strlist_has_str(a->conf.entities, e->name))
			continue;
		if (!full && !(e->flags & CE_INCREMENTAL) && !reference)
			continue;
		ents[n++] = e;
	}
	if ((rv = sink_run_begin(a, kind, trigger, ents, n, &run_id)) != 0)
		return rv;
	log_info("sync.started", "run=%lld kind=%s trigger=%s entities=%zu reference=%d",
	    (long long)run_id, full ? "full" : "incremental", trigger, n, reference);
	buf_init(&errs, 16u << 10);
	memset(res, 0, sizeof(res));
	size_t done;
	for (done = 0; done < n; done++) {
		const struct cat_entity *e = ents[done];
		enum fetch_mode mode = full || !(e->flags & CE_INCREMENTAL) ? FETCH_FULL : FETCH_INCREMENTAL;
		int64_t te = clock_mono_ms();

		rv = fetch_entity(a, e, mode, run_id, &res[done]);
		rows += res[done].rows;
		log_info("sync.entity", "run=%lld entity=%s mode=%s rows=%lld pages=%lld complete=%d ms=%lld%s%s",
		    (long long)run_id, e->name, mode == FETCH_FULL ? "full" : "incremental",
		    (long long)res[done].rows, (long long)res[done].pages, res[done].complete,
		    (long long)(clock_mono_ms() - te), rv ? " err=" : "", rv ? lq(cs_strerror(rv)) : "");
		if (rv == 0)
			(void)sink_progress(a, run_id, e->name, res[done].rows, res[done].pages);
		if (rv == CS_ECANCELED || rv == CS_EREVOKED || rv == CS_EBANNED) {
			status = rv == CS_ECANCELED ? CRMSYNC__RUN_STATUS__RUN_PARTIAL :
			    CRMSYNC__RUN_STATUS__RUN_FAILED;
			buf_printf(&errs, "%s%s: %s", errs.len ? "; " : "", e->name, cs_strerror(rv));
			done++;
			break;
		}
		if (rv != 0) {
			status = CRMSYNC__RUN_STATUS__RUN_FAILED;
			buf_printf(&errs, "%s%s: %s", errs.len ? "; " : "", e->name, cs_strerror(rv));
		}
	}
	if (status == CRMSYNC__RUN_STATUS__RUN_COMPLETE && reference)
		last_reference_ms = clock_mono_ms();
	/* A stopping service still closes its run (sink gives it a bounded wait). */
	if (a->stop)
		status = CRMSYNC__RUN_STATUS__RUN_PARTIAL;
	rv = sink_run_end(a, run_id, status, errs.len ? errs.data : NULL, ents, res, done);
	int64_t ms = clock_mono_ms() - t0;
	int64_t reqs = stat_get(&amo_stats[AS_REQUESTS]) - req0;
	stat_add(&amo_stats[status == CRMSYNC__RUN_STATUS__RUN_COMPLETE ? AS_RUNS_OK : AS_RUNS_FAILED], 1);
	log_info("sync.finished", "run=%lld kind=%s status=%s rows=%lld requests=%lld http_429=%lld "
	    "ms=%lld rows_per_s=%.0f%s%s", (long long)run_id, full ? "full" : "incremental",
	    status == CRMSYNC__RUN_STATUS__RUN_COMPLETE ? "complete" :
	    status == CRMSYNC__RUN_STATUS__RUN_PARTIAL ? "partial" : "failed", (long long)rows,
	    (long long)reqs, (long long)(stat_get(&amo_stats[AS_HTTP_429]) - n429), (long long)ms,
	    ms > 0 ? (double)rows * 1000.0 / (double)ms : 0.0, errs.len ? " error=" : "",
	    errs.len ? lq(errs.data) : "");
	if (errs.len)
		amo_set_error(a, "%s", errs.data);
	buf_free(&errs);
	return status == CRMSYNC__RUN_STATUS__RUN_COMPLETE ? rv : (rv ? rv : CS_EREMOTE);
}

/* Sleep on the wake-up condition for at most ms. */
static void
worker_wait(struct amo *a, int64_t ms)
{
	struct timespec ts;

	if (ms <= 0)
		return;
	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += (time_t)(ms / 1000);
	ts.tv_nsec += (long)(ms % 1000) * 1000000L;
	if (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&a->mtx);
	if (!a->stop && !atomic_load(&a->want_full) && !atomic_load(&a->want_incremental))
		pthread_cond_timedwait(&a->wake, &a->mtx, &ts);
	pthread_mutex_unlock(&a->mtx);
}

void *
sync_worker(void *arg)
{
	struct amo *a = arg;
	int64_t next_incr = a->conf.incremental_ms > 0 ? clock_mono_ms() : -1;
	int64_t banned_note = 0;

	while (!a->stop) {
		int st = atomic_load(&a->state);

		if (st == API_REVOKED && oauth_reload(a) == 0)
			st = API_OK;
		/* Deletes need no API; fetches only run while the API is usable. */
		(void)tasks_run_ready(a, 16);
		if (a->stop)
			break;
		if (st == API_OK && atomic_exchange(&a->want_full, 0)) {
			atomic_store(&a->want_incremental, 0);
			(void)sync_run(a, CRMSYNC__SYNC_KIND__SYNC_FULL, a->once ? "cli" : "command");
			if (a->once)
				break;
			if (next_incr >= 0)
				next_incr = clock_mono_ms() + a->conf.incremental_ms;
			continue;
		}
		int asked = st == API_OK && atomic_exchange(&a->want_incremental, 0);
		if (st == API_OK && (asked || (next_incr >= 0 && clock_mono_ms() >= next_incr))) {
			(void)sync_run(a, CRMSYNC__SYNC_KIND__SYNC_INCREMENTAL,
			    a->once ? "cli" : asked ? "command" : "schedule");
			if (a->once)
				break;
			if (next_incr >= 0)
				next_incr = clock_mono_ms() + a->conf.incremental_ms;
			continue;
		}
		if (st == API_BANNED && clock_mono_ms() - banned_note > 3600 * 1000) {
			banned_note = clock_mono_ms();
			log_warnx("api.still_banned", "syncing is stopped: amoCRM blocked this account's API "
			    "access; after support unblocks it, restart or send a sync command");
		}
		int64_t wait = 1000;
		if (st == API_OK) {
			int64_t due = tasks_due_in_ms(a->tasks);
			if (due >= 0 && due < wait)
				wait = due;
			if (next_incr >= 0 && next_incr - clock_mono_ms() < wait)
				wait = next_incr - clock_mono_ms();
		}
		if (wait < 5)
			wait = 5;
		worker_wait(a, wait);
	}
	if (a->once)
		a->stop = 1;
	return NULL;
}
