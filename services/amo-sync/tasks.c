/*
 * tasks.c - the hook task queue: webhook events -> coalesced fetches and soft deletes.
 *
 * The main thread queues each HookDelivery (tasks_receive); the worker executes what is
 * due (tasks_run_ready). Events are grouped per (entity, parent value, fetch|delete); a
 * group holds each key once, however many events named it, so a burst of 1,000 hooks
 * for 300 leads becomes two list requests of <= 250 ids (filter[id][]). A fetch group
 * is due once it is quiet (no hook for it for CS_AMO_HOOK_QUIET), but never later than
 * CS_AMO_HOOK_DELAY after its oldest key (group_due_at): a lone hook is fetched almost at
 * once, while a burst keeps pushing its group's time out, bounded, and coalesces instead
 * of being fetched piecemeal (a key asked for again after its fetch started must be
 * fetched again). QUIET >= DELAY gives the old fixed delay. Delete groups are due at once
 * and need no API call. Groups run oldest first, one request at a time,
 * under the same rate limit as the syncs.
 *
 * Acknowledgement (the gateway's journal depends on it): every key remembers the first
 * delivery seq that asked for it, and within a group keys are in seq order. done_seq =
 * (lowest seq still pending or in flight) - 1, or the highest seq received when nothing
 * is pending: every delivery up to done_seq is fully processed and committed by the store.
 * A batch that fails for a temporary reason (network, revoked token, stop) stays in
 * flight and is retried, so done_seq never passes it. Nothing here is persisted: after a
 * restart the gateway re-sends everything after the last done_seq it was told.
 * Seqs count within one gateway journal (HookDelivery.journal_id): a delivery from another
 * journal (a gateway restarted on an empty volume) starts the count again, so its seqs are
 * never mistaken for re-sends of what the old journal delivered.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "amo.h"
#include "clock.h"
#include "errors.h"
#include "hash.h"
#include "log.h"
#include "strlist.h"
#include "tasks.h"

#define TASK_BATCH	250	/* ids per filter[id][] request */
#define TASK_KEY_MAX	64
#define TASK_PARAM_MAX	64
#define TASK_EVENTS_MAX	100000	/* events in one delivery */

struct item {
	char		 key[TASK_KEY_MAX];
	uint64_t	 seq;		/* first delivery that asked for it */
	int64_t		 queued_us;
	int64_t		 ver_us;	/* deletes: the version of the delete */
};

struct group {
	const struct cat_entity	*e;
	char			 param[TASK_PARAM_MAX];
	int			 del;
	struct item		*items;		/* pending: items[head..n) */
	size_t			 head, n, cap;
	int32_t			*slots;		/* open addressing: key -> item index */
	size_t			 nslots;
	int64_t			 last_us;	/* the latest event for the group */
	struct group		*next;		/* creation order */
};

/* The batch being executed (or waiting to be retried). */
struct inflight {
	int			 active;
	const struct cat_entity	*e;
	char			 param[TASK_PARAM_MAX];
	int			 del;
	char			*keys[TASK_BATCH];
	int64_t			 ver[TASK_BATCH];
	size_t			 n;
	uint64_t		 min_seq;
	int			 attempts;
};

struct tasks {
	pthread_mutex_t		 mtx;
	struct group		*head, *tail;
	size_t			 depth;		/* pending keys */
	size_t			 max_items;
	int64_t			 delay_us;	/* the bound: a fetch waits at most this */
	int64_t			 quiet_us;	/* due once no hook came for this long */
	uint64_t		 max_seq;	/* highest delivery seq received from journal_id */
	uint64_t		 journal_id;	/* the gateway journal seqs count in */
	struct inflight		 cur;		/* the worker's once active */
	struct stat_counter	*stats;		/* enum amo_stat */
};


static uint64_t
hash_key(const char *s)
{
	return hash_fnv1a(HASH_FNV1A_INIT, s, strlen(s));
}

int
tasks_new(struct tasks **out, size_t max_items, int64_t quiet_ms, int64_t delay_ms,
    struct stat_counter *stats)
{
	struct tasks *t = calloc(1, sizeof(*t));

	*out = NULL;
	if (t == NULL)
		return CS_ENOMEM;
	pthread_mutex_init(&t->mtx, NULL);
	t->max_items = max_items;
	t->delay_us = delay_ms * 1000;
	t->quiet_us = quiet_ms * 1000;
	t->stats = stats;
	*out = t;
	return 0;
}

static void
group_free(struct group *g)
{
	free(g->items);
	free(g->slots);
	free(g);
}

static void
inflight_clear(struct inflight *f)
{
	for (size_t i = 0; i < f->n; i++)
		free(f->keys[i]);
	memset(f, 0, sizeof(*f));
}

void
tasks_free(struct tasks *t)
{
	if (t == NULL)
		return;
	for (struct group *g = t->head, *n; g != NULL; g = n) {
		n = g->next;
		group_free(g);
	}
	inflight_clear(&t->cur);
	pthread_mutex_destroy(&t->mtx);
	free(t);
}

/* Rebuild the hash over the pending items (after growth or compaction). */
static int
group_rehash(struct group *g, size_t want)
{
	size_t ns = 64;
	int32_t *s;

	while (ns < want * 2)
		ns *= 2;
	if ((s = malloc(ns * sizeof(*s))) == NULL)
		return CS_ENOMEM;
	for (size_t i = 0; i < ns; i++)
		s[i] = -1;
	for (size_t i = g->head; i < g->n; i++) {
		size_t h = hash_key(g->items[i].key) & (ns - 1);
		while (s[h] >= 0)
			h = (h + 1) & (ns - 1);
		s[h] = (int32_t)i;
	}
	free(g->slots);
	g->slots = s;
	g->nslots = ns;
	return 0;
}

/* Add key to g unless it is already pending there. Returns 1 when added. */
static int
group_add(struct group *g, const char *key, uint64_t seq, int64_t ver_us, int64_t now)
{
	size_t h;

	if (g->nslots != 0) {
		for (h = hash_key(key) & (g->nslots - 1); g->slots[h] >= 0; h = (h + 1) & (g->nslots - 1)) {
			struct item *it = &g->items[g->slots[h]];
			if ((size_t)g->slots[h] >= g->head && strcmp(it->key, key) == 0) {
				if (ver_us > it->ver_us)
					it->ver_us = ver_us;
				return 0;
			}
		}
	}
	if (g->head > 0 && g->head >= g->n / 2) {
		/* Compact: executed items leave the front. */
		memmove(g->items, g->items + g->head, (g->n - g->head) * sizeof(*g->items));
		g->n -= g->head;
		g->head = 0;
		if (group_rehash(g, g->n + 1) != 0)
			return -1;
	}
	if (g->n == g->cap) {
		size_t nc = g->cap ? g->cap * 2 : 64;
		struct item *ni = realloc(g->items, nc * sizeof(*ni));
		if (ni == NULL)
			return -1;
		g->items = ni;
		g->cap = nc;
	}
	if ((g->n + 1) * 2 > g->nslots && group_rehash(g, g->n + 1) != 0)
		return -1;
	struct item *it = &g->items[g->n];
	snprintf(it->key, sizeof(it->key), "%s", key);
	it->seq = seq;
	it->queued_us = now;
	it->ver_us = ver_us;
	for (h = hash_key(key) & (g->nslots - 1); g->slots[h] >= 0; h = (h + 1) & (g->nslots - 1))
		;
	g->slots[h] = (int32_t)g->n;
	g->n++;
	return 1;
}

static struct group *
group_get(struct tasks *t, const struct cat_entity *e, const char *param, int del)
{
	struct group *g;

	for (g = t->head; g != NULL; g = g->next)
		if (g->e == e && g->del == del && strcmp(g->param, param) == 0)
			return g;
	if ((g = calloc(1, sizeof(*g))) == NULL)
		return NULL;
	g->e = e;
	g->del = del;
	snprintf(g->param, sizeof(g->param), "%s", param);
	if (t->tail != NULL)
		t->tail->next = g;
	else
		t->head = g;
	t->tail = g;
	return g;
}

static void
group_unlink(struct tasks *t, struct group *g)
{
	struct group **pp = &t->head, *prev = NULL;

	while (*pp != g) {
		prev = *pp;
		pp = &(*pp)->next;
	}
	*pp = g->next;
	if (t->tail == g)
		t->tail = prev;
	group_free(g);
}

/* Caller holds the lock. */
static uint64_t
done_seq_locked(struct tasks *t)
{
	uint64_t low = 0;

	if (t->cur.active)
		low = t->cur.min_seq;
	for (struct group *g = t->head; g != NULL; g = g->next)
		if (g->n > g->head && g->items[g->head].seq != 0 &&
		    (low == 0 || g->items[g->head].seq < low))
			low = g->items[g->head].seq;
	if (low == 0)
		return t->max_seq;
	return low - 1 < t->max_seq ? low - 1 : t->max_seq;
}

static void
publish(struct tasks *t)
{
	stat_set(&t->stats[AS_QUEUE_DEPTH], (int64_t)(t->depth + t->cur.n));
	stat_set(&t->stats[AS_DONE_SEQ], (int64_t)done_seq_locked(t));
}

uint64_t
tasks_done_seq(struct tasks *t)
{
	uint64_t d;

	pthread_mutex_lock(&t->mtx);
	d = done_seq_locked(t);
	pthread_mutex_unlock(&t->mtx);
	return d;
}

size_t
tasks_depth(struct tasks *t)
{
	size_t d;

	pthread_mutex_lock(&t->mtx);
	d = t->depth + t->cur.n;
	pthread_mutex_unlock(&t->mtx);
	return d;
}

int
tasks_route(const Crmsync__HookEvent *ev, const struct cat_entity **te, const char **param,
    char *key, size_t cap, int *del, const char **why)
{
	const struct cat_entity *e, *sub, *typed;
	const char *action = ev->action != NULL ? ev->action : "";

	*why = "not a catalogue entity (chat messages: their talks are synced)";
	if (ev->entity == NULL || (e = catalog_find_alias(CAT_AMO, ev->entity, strlen(ev->entity))) == NULL)
		return CS_EUNKNOWN_ENTITY;
	/* contacts[...][type]=company: amoCRM sends companies (and their notes) as contacts;
	 * a [type] that names a hooked entity ("company", "contact") is the entity. */
	if (ev->type != NULL && ev->type[0] != '\0' &&
	    (typed = catalog_find_alias(CAT_AMO, ev->type, strlen(ev->type))) != NULL &&
	    (typed->flags & CE_HOOKS) && typed->parent == NULL)
		e = typed;
	*param = NULL;
	*del = 0;
	/* "leads[note]": the action names a sub-entity fetched per parent type. */
	sub = catalog_find_alias(CAT_AMO, action, strlen(action));
	if (sub != NULL && sub != e && sub->parent != NULL) {
		/* A literal parent list says which types have them (tasks have no notes). */
		*why = "its parent type has no such sub-entity";
		if (catalog_find(CAT_AMO, sub->parent) == NULL &&
		    !strlist_has_str(sub->parent, e->name))
			return CS_EUNKNOWN_ENTITY;
		*param = e->name;
		e = sub;
	} else if (strcmp(action, "delete") == 0) {
		*del = 1;
	}
	*why = "the entity is not fetched for hooks";
	if (!(e->flags & CE_HOOKS) || (e->parent != NULL && *param == NULL))
		return CS_EUNKNOWN_ENTITY;
	if (ev->id > 0)
		snprintf(key, cap, "%lld", (long long)ev->id);
	else if (ev->uid != NULL && ev->uid[0] != '\0' && strlen(ev->uid) < cap)
		snprintf(key, cap, "%s", ev->uid);
	else {
		/* 2017 note hooks carry no [note][id]: the next incremental sync reads the note. */
		*why = e->parent != NULL ? "no id (old note hooks have none): the incremental sync "
		    "reads it" : "no id";
		return CS_EINVAL;
	}
	*te = e;
	*why = NULL;
	return 0;
}

/*
 * Caller holds the lock. Deliveries now come from another gateway journal: its seqs are
 * unrelated to max_seq, so start counting again. Keys still pending from the old journal
 * take seq 1 (the first the new journal can have; they stay first in their groups), so
 * done_seq cannot pass anything of the new journal until they are done.
 */
static void
journal_changed_locked(struct tasks *t, uint64_t id)
{
	log_warnx("hook.journal_changed", "old=%016llx new=%016llx max_seq=%llu pending=%zu",
	    (unsigned long long)t->journal_id, (unsigned long long)id,
	    (unsigned long long)t->max_seq, t->depth + t->cur.n);
	for (struct group *g = t->head; g != NULL; g = g->next)
		for (size_t i = g->head; i < g->n; i++)
			if (g->items[i].seq != 0)
				g->items[i].seq = 1;
	if (t->cur.active && t->cur.min_seq != 0)
		t->cur.min_seq = 1;
	t->journal_id = id;
	t->max_seq = 0;
}

Crmsync__AckStatus
tasks_receive(struct tasks *t, const Crmsync__HookDelivery *d, uint64_t *done_seq, char *err,
    size_t errlen)
{
	Crmsync__AckStatus st = CRMSYNC__ACK_STATUS__ACK_OK;
	int64_t now = clock_mono_us();
	size_t added = 0, ignored = 0;

	err[0] = '\0';
	pthread_mutex_lock(&t->mtx);
	if (d->n_events > TASK_EVENTS_MAX) {
		snprintf(err, errlen, "delivery %llu has %zu events (limit %d)",
		    (unsigned long long)d->seq, d->n_events, TASK_EVENTS_MAX);
		st = CRMSYNC__ACK_STATUS__ACK_REJECTED;
		goto out;
	}
	if (d->journal_id != t->journal_id)
		journal_changed_locked(t, d->journal_id);
	if (d->seq != 0 && d->seq <= t->max_seq)
		goto out;	/* a re-send of something already queued (our ack got lost) */
	if (t->depth + d->n_events > t->max_items) {
		snprintf(err, errlen, "hook queue full (%zu keys pending)", t->depth);
		st = CRMSYNC__ACK_STATUS__ACK_RETRY;
		goto out;
	}
	for (size_t i = 0; i < d->n_events; i++) {
		const Crmsync__HookEvent *ev = d->events[i];
		const struct cat_entity *e;
		const char *param, *why;
		char key[TASK_KEY_MAX];
		int del, rv;

		if ((rv = tasks_route(ev, &e, &param, key, sizeof(key), &del, &why)) != 0) {
			ignored++;
			log_info("hook.ignored", "seq=%llu entity=%s action=%s type=%s id=%lld reason=%s",
			    (unsigned long long)d->seq, lq(ev->entity), lq(ev->action), lq(ev->type),
			    (long long)ev->id, lq(why));
			continue;
		}
		struct group *g = group_get(t, e, param != NULL ? param : "", del);
		int64_t ver = ev->updated_at > 0 ? ev->updated_at * 1000000 : d->received_at_us;
		if (g == NULL || (rv = group_add(g, key, d->seq, ver, now)) < 0) {
			snprintf(err, errlen, "out of memory");
			st = CRMSYNC__ACK_STATUS__ACK_RETRY;
			break;
		}
		g->last_us = now;
		t->depth += (size_t)rv;
		added += (size_t)rv;
	}
	if (st == CRMSYNC__ACK_STATUS__ACK_OK && d->seq > t->max_seq)
		t->max_seq = d->seq;
	stat_add(&t->stats[AS_HOOK_DELIVERIES], 1);
	stat_add(&t->stats[AS_HOOK_EVENTS], (int64_t)d->n_events);
	if (d->n_events > 0)
		log_debug("hook.queued", "seq=%llu events=%zu new_keys=%zu ignored=%zu depth=%zu",
		    (unsigned long long)d->seq, d->n_events, added, ignored, t->depth);
out:
	*done_seq = done_seq_locked(t);
	publish(t);
	pthread_mutex_unlock(&t->mtx);
	return st;
}

/*
 * When a pending fetch group is due (monotonic us): once no hook for it came for quiet_us,
 * so a burst still arriving coalesces, but at the latest delay_us after its oldest key.
 */
static int64_t
group_due_at(const struct tasks *t, const struct group *g)
{
	int64_t quiet = g->last_us + t->quiet_us, bound = g->items[g->head].queued_us + t->delay_us;

	return quiet < bound ? quiet : bound;
}

/* Due for execution now? */
static int
group_due(const struct tasks *t, const struct group *g, int64_t now, int fetch_ok)
{
	if (g->n == g->head)
		return 0;
	if (g->del)
		return 1;
	return fetch_ok && now >= group_due_at(t, g);
}

int64_t
tasks_due_in_ms(struct tasks *t)
{
	int64_t now = clock_mono_us(), best = -1;

	pthread_mutex_lock(&t->mtx);
	if (t->cur.active)
		best = 0;
	for (struct group *g = t->head; g != NULL && best != 0; g = g->next) {
		if (g->n == g->head)
			continue;
		int64_t in = g->del ? 0 : (group_due_at(t, g) - now + 999) / 1000;
		if (in < 0)
			in = 0;
		if (best < 0 || in < best)
			best = in;
	}
	pthread_mutex_unlock(&t->mtx);
	return best;
}

/* Move the first due group's next batch into t->cur. 0 when nothing is due. */
static int
take_batch(struct tasks *t, int fetch_ok)
{
	int64_t now = clock_mono_us();
	struct group *g;

	for (g = t->head; g != NULL && !group_due(t, g, now, fetch_ok); g = g->next)
		;
	if (g == NULL)
		return 0;
	struct inflight *f = &t->cur;
	memset(f, 0, sizeof(*f));
	f->e = g->e;
	f->del = g->del;
	snprintf(f->param, sizeof(f->param), "%s", g->param);
	f->min_seq = g->items[g->head].seq;
	while (g->head < g->n && f->n < TASK_BATCH) {
		struct item *it = &g->items[g->head];
		if ((f->keys[f->n] = strdup(it->key)) == NULL)
			break;
		if (it->seq != 0 && (f->min_seq == 0 || it->seq < f->min_seq))
			f->min_seq = it->seq;
		f->ver[f->n++] = it->ver_us;
		g->head++;
		t->depth--;
	}
	if (f->n == 0)
		return 0;
	f->active = 1;
	if (g->head == g->n)
		group_unlink(t, g);
	return 1;
}

/* Execute the batch in t->cur: 0 or the error of its fetch or delete. */
static int
run_batch(struct tasks *t, const struct tasks_exec *x)
{
	struct inflight *f = &t->cur;
	const char *param = f->param[0] ? f->param : NULL;
	int64_t rows = 0;
	int rv;

	if (f->del)
		return x->deletes(x->arg, f->e, param, f->keys, f->ver, f->n);
	stat_add(&t->stats[AS_HOOK_FETCHES], 1);
	rv = x->fetch(x->arg, f->e, param, f->keys, f->n, &rows);
	if (rv == 0)
		log_info("hook.fetched", "entity=%s%s%s ids=%zu rows=%lld", f->e->name,
		    param ? " param=" : "", f->param, f->n, (long long)rows);
	return rv;
}

int
tasks_run_ready(struct tasks *t, int max, const struct tasks_exec *x)
{
	int done = 0, fetches = 0;

	while (!*x->stop) {
		struct inflight *f = &t->cur;
		int fetch_ok = x->api_ok(x->arg);
		int rv;

		pthread_mutex_lock(&t->mtx);
		if (!f->active && !take_batch(t, fetch_ok && fetches < max)) {
			pthread_mutex_unlock(&t->mtx);
			break;
		}
		publish(t);
		pthread_mutex_unlock(&t->mtx);
		/* Only this thread touches t->cur once it is active. */
		if (!f->del && (!fetch_ok || fetches >= max))
			break;
		if (!f->del)
			fetches++;
		rv = run_batch(t, x);
		if (rv == CS_ECANCELED || rv == CS_EREVOKED || rv == CS_EBANNED || rv == CS_ENET ||
		    rv == CS_ERATELIMIT || (rv == CS_EREMOTE && ++f->attempts < 3)) {
			/* Temporary: keep it in flight, done_seq waits for it. */
			log_warnx("hook.retry_later", "entity=%s n=%zu err=%s", f->e->name, f->n,
			    lq(cs_strerror(rv)));
			break;
		}
		if (rv != 0)
			log_warnx("hook.dropped", "entity=%s n=%zu err=%s: the next incremental pass "
			    "covers these", f->e->name, f->n, lq(cs_strerror(rv)));
		pthread_mutex_lock(&t->mtx);
		inflight_clear(f);
		publish(t);
		pthread_mutex_unlock(&t->mtx);
		done++;
	}
	return done;
}
