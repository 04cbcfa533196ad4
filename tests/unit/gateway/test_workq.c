/* Tests workq.c: lanes, bounds, intake numbering, close semantics, and that
 * concurrent producers and consumers lose and duplicate nothing. */
#include <pthread.h>
#include <stdlib.h>

#include "../check.h"
#include "workq.h"

static struct gw_workq q;

static void *consumer(void *arg)
{
	long *count = arg;
	struct gw_job *j;
	while ((j = gw_workq_pop(&q))) {
		(*count)++;
		gw_job_free(j);
	}
	return NULL;
}

static void *producer(void *arg)
{
	(void)arg;
	for (int i = 0; i < 5000; i++) {
		struct gw_job *j = gw_job_new(GW_JOB_EVENT);
		while (gw_workq_push_event(&q, j))
			sched_yield();
	}
	return NULL;
}

int main(void)
{
	CHECK_INT_EQ(gw_workq_init(&q, 2, 3), 0);
	struct gw_job *v1 = gw_job_new(GW_JOB_INTAKE), *v2 = gw_job_new(GW_JOB_INTAKE),
		      *v3 = gw_job_new(GW_JOB_INTAKE);
	CHECK_INT_EQ(gw_workq_push_verify(&q, v1), 0);
	CHECK_INT_EQ(gw_workq_push_verify(&q, v2), 0);
	CHECK_INT_EQ(gw_workq_push_verify(&q, v3), -1); /* verify lane bound */
	gw_job_free(v3);

	struct gw_job *e[4];
	for (int i = 0; i < 4; i++)
		e[i] = gw_job_new(GW_JOB_EVENT);
	CHECK_INT_EQ(gw_workq_push_event(&q, e[0]), 0);
	CHECK_INT_EQ(gw_workq_push_event(&q, e[1]), 0);
	CHECK_INT_EQ(gw_workq_push_event(&q, e[2]), 0);
	CHECK_INT_EQ(gw_workq_push_event(&q, e[3]), -1); /* events lane bound */
	CHECK_INT_EQ(e[3]->intake_no, 0);                /* a refused event gets no number */
	gw_job_free(e[3]);
	CHECK_INT_EQ(e[0]->intake_no, 1);
	CHECK_INT_EQ(e[2]->intake_no, 3);
	CHECK_INT_EQ(gw_workq_event_depth(&q), 3);
	CHECK_INT_EQ(gw_workq_next_intake_no(&q), 4);

	/* verify jobs come first, then events in intake order */
	struct gw_job *j = gw_workq_pop(&q);
	CHECK(j == v1);
	gw_job_free(j);
	j = gw_workq_pop(&q);
	CHECK(j == v2);
	gw_job_free(j);
	j = gw_workq_pop(&q);
	CHECK(j == e[0]);
	gw_job_free(j);

	gw_workq_close(&q);
	struct gw_job *late = gw_job_new(GW_JOB_INTAKE);
	CHECK_INT_EQ(gw_workq_push_verify(&q, late), -2); /* closed for new requests */
	gw_job_free(late);
	struct gw_job *ev = gw_job_new(GW_JOB_EVENT);
	CHECK_INT_EQ(gw_workq_push_event(&q, ev), 0); /* but verified events still enter */
	int left = 0;
	while ((j = gw_workq_pop(&q))) {
		left++;
		gw_job_free(j);
	}
	CHECK_INT_EQ(left, 3);
	CHECK(gw_workq_pop(&q) == NULL);
	gw_workq_destroy(&q);

	/* 4 producers x 5000, 3 consumers, tiny lane: every job popped once. */
	CHECK_INT_EQ(gw_workq_init(&q, 4, 8), 0);
	pthread_t prod[4], cons[3];
	long counts[3] = {0, 0, 0};
	for (int i = 0; i < 3; i++)
		pthread_create(&cons[i], NULL, consumer, &counts[i]);
	for (int i = 0; i < 4; i++)
		pthread_create(&prod[i], NULL, producer, NULL);
	for (int i = 0; i < 4; i++)
		pthread_join(prod[i], NULL);
	gw_workq_close(&q);
	for (int i = 0; i < 3; i++)
		pthread_join(cons[i], NULL);
	CHECK_INT_EQ(counts[0] + counts[1] + counts[2], 20000);
	CHECK_INT_EQ(gw_workq_next_intake_no(&q), 20001);
	gw_workq_destroy(&q);
	return CHECK_DONE();
}
