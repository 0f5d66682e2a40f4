/* sendq.c - ordered, bounded, threaded sender of Envelopes (see sendq.h). */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bus.h"
#include "errors.h"
#include "sendq.h"

struct sendq_job {
	nng_msg			*msg;
	struct sendq_meta	 m;
	char			 label[64];
	int			 waited;	/* sendq_call: the caller takes rv and the reply */
	int			 done;
	int			 rv;
	Crmsync__Envelope	*reply;
	struct sendq_job	*next;
};

struct sendq {
	nng_socket		 s;
	struct sendq_opts	 o;
	pthread_t		 thr;
	pthread_mutex_t		 mtx;
	pthread_cond_t		 cv;
	struct sendq_job	*head, *tail;	/* waiting; head is in flight when busy */
	size_t			 count;		/* queued + in flight */
	int			 busy;
	int			 closing;
	int			 err;		/* sticky */
	uint64_t		 queued;	/* messages ever queued (sendq_mark) */
	uint64_t		 answered;	/* of them, answered or failed (in queue order) */
	int64_t			 stop_seen;	/* sender thread: when it first saw *stop (grace) */
};

static void
job_free(struct sendq_job *j)
{
	if (j == NULL)
		return;
	if (j->msg != NULL)
		nng_msg_free(j->msg);
	bus_free(j->reply);
	free(j);
}

static void *
sendq_main(void *arg)
{
	struct sendq *q = arg;

	pthread_mutex_lock(&q->mtx);
	for (;;) {
		while (q->head == NULL && !q->closing)
			pthread_cond_wait(&q->cv, &q->mtx);
		if (q->head == NULL)
			break;
		struct sendq_job *j = q->head;
		q->busy = 1;
		pthread_mutex_unlock(&q->mtx);

		int64_t t0 = bus_now_ms();
		const struct bus_retry r = {
			.timeout_ms = q->o.timeout_ms,
			.deadline_ms = j->m.deadline_ms > 0 ? j->m.deadline_ms : q->o.deadline_ms,
			.stop = j->m.unstoppable ? NULL : q->o.stop,
			.grace_ms = q->o.grace_ms,
			.stop_seen_ms = &q->stop_seen,
			.data_reply = j->m.data_reply,
		};
		int rv = bus_call_retry(q->s, j->msg, &j->reply, &r);
		if (q->o.done != NULL)
			q->o.done(q->o.arg, &j->m, rv, j->reply, bus_now_ms() - t0);

		pthread_mutex_lock(&q->mtx);
		q->head = j->next;
		if (q->head == NULL)
			q->tail = NULL;
		q->busy = 0;
		q->count--;
		q->answered++;
		if (rv != 0 && rv != CS_EREJECTED && !j->m.best_effort && q->err == 0)
			q->err = rv;
		if (j->waited) {
			j->rv = rv;
			j->done = 1;	/* the caller frees it */
		} else {
			job_free(j);
		}
		pthread_cond_broadcast(&q->cv);
		if (q->o.answered != NULL) {
			/* After the count moved: whoever it wakes sees this answer in sendq_reached. */
			pthread_mutex_unlock(&q->mtx);
			q->o.answered(q->o.arg);
			pthread_mutex_lock(&q->mtx);
		}
	}
	pthread_mutex_unlock(&q->mtx);
	return NULL;
}

int
sendq_open(struct sendq **out, nng_socket s, const struct sendq_opts *o)
{
	struct sendq *q;

	*out = NULL;
	if ((q = calloc(1, sizeof(*q))) == NULL)
		return CS_ENOMEM;
	q->s = s;
	q->o = *o;
	if (q->o.depth < 1)
		q->o.depth = 1;
	pthread_mutex_init(&q->mtx, NULL);
	pthread_cond_init(&q->cv, NULL);
	if (pthread_create(&q->thr, NULL, sendq_main, q) != 0) {
		pthread_mutex_destroy(&q->mtx);
		pthread_cond_destroy(&q->cv);
		free(q);
		return CS_ENOMEM;
	}
	*out = q;
	return 0;
}

/* Queue a job; waits for room. Returns 0 or the sticky error (the job is then freed). */
static int
enqueue(struct sendq *q, const Crmsync__Envelope *env, const struct sendq_meta *m, int waited,
    struct sendq_job **jp)
{
	struct sendq_job *j;
	int rv;

	if ((j = calloc(1, sizeof(*j))) == NULL)
		return CS_ENOMEM;
	if ((rv = bus_pack(env, &j->msg)) != 0) {
		free(j);
		return rv;
	}
	if (m != NULL)
		j->m = *m;
	if (j->m.label != NULL)
		snprintf(j->label, sizeof(j->label), "%s", j->m.label);
	j->m.label = j->label;
	j->waited = waited;
	pthread_mutex_lock(&q->mtx);
	while (q->count >= q->o.depth && q->err == 0)
		pthread_cond_wait(&q->cv, &q->mtx);
	if ((rv = q->err) != 0) {
		pthread_mutex_unlock(&q->mtx);
		job_free(j);
		return rv;
	}
	if (q->tail != NULL)
		q->tail->next = j;
	else
		q->head = j;
	q->tail = j;
	q->count++;
	q->queued++;
	pthread_cond_broadcast(&q->cv);
	pthread_mutex_unlock(&q->mtx);
	if (jp != NULL)
		*jp = j;
	return 0;
}

int
sendq_submit(struct sendq *q, const Crmsync__Envelope *env, const struct sendq_meta *m)
{
	return enqueue(q, env, m, 0, NULL);
}

int
sendq_call(struct sendq *q, const Crmsync__Envelope *env, const struct sendq_meta *m,
    Crmsync__Envelope **reply)
{
	struct sendq_job *j;
	int rv;

	if (reply != NULL)
		*reply = NULL;
	if ((rv = enqueue(q, env, m, 1, &j)) != 0)
		return rv;
	pthread_mutex_lock(&q->mtx);
	while (!j->done)
		pthread_cond_wait(&q->cv, &q->mtx);
	pthread_mutex_unlock(&q->mtx);
	rv = j->rv;
	if (reply != NULL) {
		*reply = j->reply;
		j->reply = NULL;
	}
	job_free(j);
	return rv;
}

int
sendq_drain(struct sendq *q)
{
	int rv;

	pthread_mutex_lock(&q->mtx);
	while (q->count > 0)
		pthread_cond_wait(&q->cv, &q->mtx);
	rv = q->err;
	pthread_mutex_unlock(&q->mtx);
	return rv;
}

uint64_t
sendq_mark(struct sendq *q)
{
	pthread_mutex_lock(&q->mtx);
	uint64_t mark = q->queued;
	pthread_mutex_unlock(&q->mtx);
	return mark;
}

int
sendq_reached(struct sendq *q, uint64_t mark, int *err)
{
	pthread_mutex_lock(&q->mtx);
	/* Answers come in queue order: the first `answered` messages are all done. */
	int reached = q->answered >= mark;
	if (err != NULL)
		*err = reached ? q->err : 0;
	pthread_mutex_unlock(&q->mtx);
	return reached;
}

void
sendq_clear_error(struct sendq *q)
{
	pthread_mutex_lock(&q->mtx);
	q->err = 0;
	pthread_mutex_unlock(&q->mtx);
}

void
sendq_close(struct sendq *q)
{
	if (q == NULL)
		return;
	pthread_mutex_lock(&q->mtx);
	q->closing = 1;
	pthread_cond_broadcast(&q->cv);
	pthread_mutex_unlock(&q->mtx);
	pthread_join(q->thr, NULL);
	pthread_mutex_destroy(&q->mtx);
	pthread_cond_destroy(&q->cv);
	free(q);
}
