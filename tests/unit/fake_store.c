/* fake_store.c - an in-process stand-in for the store (see fake_store.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bus.h"
#include "errors.h"
#include "fake_store.h"

struct fake_store {
	nng_socket		 s;
	pthread_t		 thr;
	pthread_mutex_t		 mtx;
	pthread_cond_t		 cv;
	int			 closing;
	fake_decide_fn		 decide;
	void			*arg;
	struct fake_seen	 seen[FAKE_MAX_SEEN];
	size_t			 nseen;
};

static void
describe(const Crmsync__Envelope *env, struct fake_seen *s)
{
	s->body = env->body_case;
	switch (env->body_case) {
	case CRMSYNC__ENVELOPE__BODY_BATCH:
		s->batch_id = env->batch->batch_id;
		snprintf(s->entity, sizeof(s->entity), "%s", env->batch->entity);
		s->run_id = env->batch->run_id;
		s->n = env->batch->n_records;
		break;
	case CRMSYNC__ENVELOPE__BODY_RUN_BEGIN:
		s->n = env->run_begin->n_entities;
		break;
	case CRMSYNC__ENVELOPE__BODY_RUN_END:
		s->run_id = env->run_end->run_id;
		s->n = env->run_end->n_entities;
		break;
	case CRMSYNC__ENVELOPE__BODY_RUN_PROGRESS:
		s->run_id = env->run_progress->run_id;
		snprintf(s->entity, sizeof(s->entity), "%s", env->run_progress->entity);
		break;
	case CRMSYNC__ENVELOPE__BODY_CURSOR_GET:
		snprintf(s->entity, sizeof(s->entity), "%s", env->cursor_get->name);
		break;
	default:
		break;
	}
}

/* How often the same message (same body and batch id / entity) came before. */
static int
attempts_before(const struct fake_store *f, const struct fake_seen *s)
{
	int n = 0;

	for (size_t i = 0; i < f->nseen; i++)
		if (f->seen[i].body == s->body && f->seen[i].batch_id == s->batch_id &&
		    strcmp(f->seen[i].entity, s->entity) == 0 && f->seen[i].run_id == s->run_id)
			n++;
	return n;
}

static void
answer(nng_socket s, enum fake_answer a, const Crmsync__Envelope *req)
{
	Crmsync__Envelope env = CRMSYNC__ENVELOPE__INIT;
	Crmsync__Ack ack = CRMSYNC__ACK__INIT;
	Crmsync__CursorValue cv = CRMSYNC__CURSOR_VALUE__INIT;

	if (a == FAKE_SILENT)
		return;
	if (a == FAKE_CURSOR) {
		cv.found = 1;
		cv.value = "1700000000";
		env.body_case = CRMSYNC__ENVELOPE__BODY_CURSOR_VALUE;
		env.cursor_value = &cv;
	} else {
		ack.status = a == FAKE_OK ? CRMSYNC__ACK_STATUS__ACK_OK : a == FAKE_RETRY ?
		    CRMSYNC__ACK_STATUS__ACK_RETRY : CRMSYNC__ACK_STATUS__ACK_REJECTED;
		ack.error = a == FAKE_REJECT ? "fake: value out of range" : "";
		if (req->body_case == CRMSYNC__ENVELOPE__BODY_BATCH)
			ack.batch_id = req->batch->batch_id;
		if (req->body_case == CRMSYNC__ENVELOPE__BODY_RUN_BEGIN)
			ack.run_id = FAKE_RUN_ID;
		env.body_case = CRMSYNC__ENVELOPE__BODY_ACK;
		env.ack = &ack;
	}
	(void)bus_send(s, &env);
}

static void *
fake_main(void *arg)
{
	struct fake_store *f = arg;

	for (;;) {
		Crmsync__Envelope *env = NULL;
		struct fake_seen s;
		enum fake_answer a;
		int rv;

		pthread_mutex_lock(&f->mtx);
		int closing = f->closing;
		pthread_mutex_unlock(&f->mtx);
		if (closing)
			break;
		if ((rv = bus_recv(f->s, &env, 20)) != 0)
			continue;
		memset(&s, 0, sizeof(s));
		describe(env, &s);
		pthread_mutex_lock(&f->mtx);
		int before = attempts_before(f, &s);
		a = f->decide != NULL ? f->decide(f->arg, env, before) : FAKE_OK;
		s.answer = a;
		s.env = env;
		if (f->nseen < FAKE_MAX_SEEN) {
			f->seen[f->nseen++] = s;
			env = NULL;
		}
		pthread_cond_broadcast(&f->cv);
		pthread_mutex_unlock(&f->mtx);
		answer(f->s, a, s.env);
		bus_free(env);
	}
	return NULL;
}

struct fake_store *
fake_store_start(const char *url, fake_decide_fn decide, void *arg)
{
	struct fake_store *f = calloc(1, sizeof(*f));

	if (f == NULL)
		return NULL;
	if (bus_listen(&f->s, url, BUS_RECVMAX_DEFAULT) != 0) {
		free(f);
		return NULL;
	}
	f->decide = decide;
	f->arg = arg;
	pthread_mutex_init(&f->mtx, NULL);
	pthread_cond_init(&f->cv, NULL);
	if (pthread_create(&f->thr, NULL, fake_main, f) != 0) {
		bus_close(f->s);
		free(f);
		return NULL;
	}
	return f;
}

void
fake_store_stop(struct fake_store *f)
{
	if (f == NULL)
		return;
	pthread_mutex_lock(&f->mtx);
	f->closing = 1;
	pthread_mutex_unlock(&f->mtx);
	pthread_join(f->thr, NULL);
	bus_close(f->s);
	for (size_t i = 0; i < f->nseen; i++)
		bus_free(f->seen[i].env);
	pthread_cond_destroy(&f->cv);
	pthread_mutex_destroy(&f->mtx);
	free(f);
}

void
fake_store_set(struct fake_store *f, fake_decide_fn decide, void *arg)
{
	pthread_mutex_lock(&f->mtx);
	f->decide = decide;
	f->arg = arg;
	pthread_mutex_unlock(&f->mtx);
}

size_t
fake_store_wait(struct fake_store *f, size_t n, int ms)
{
	struct timespec ts;
	size_t got;

	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += ms / 1000;
	ts.tv_nsec += (long)(ms % 1000) * 1000000L;
	if (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&f->mtx);
	while (f->nseen < n && pthread_cond_timedwait(&f->cv, &f->mtx, &ts) == 0)
		;
	got = f->nseen;
	pthread_mutex_unlock(&f->mtx);
	return got;
}

struct fake_seen
fake_store_seen(struct fake_store *f, size_t i)
{
	struct fake_seen s;

	pthread_mutex_lock(&f->mtx);
	s = f->seen[i];
	pthread_mutex_unlock(&f->mtx);
	return s;
}

size_t
fake_store_count(struct fake_store *f)
{
	size_t n;

	pthread_mutex_lock(&f->mtx);
	n = f->nseen;
	pthread_mutex_unlock(&f->mtx);
	return n;
}
