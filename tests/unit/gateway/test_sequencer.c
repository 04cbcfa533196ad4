/* Tests sequencer.c: several threads run events whose intake numbers they
 * pop in order but reach the sequencer in any order (each sleeps a random
 * while first, as rule evaluation would take); the seqs of every
 * (installation, user) must still follow intake order: 1, 2, 3... exactly in
 * the order of the events that named that user. Also: installations are
 * separate, over-long keys get no seq. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../check.h"
#include "sequencer.h"

#define THREADS 6
#define EVENTS 600
#define USERS 7

static struct gw_sequencer seq;
static _Atomic uint64_t next_pop = 1; /* like workq: intake numbers popped in order */
/* seqs[e][u]: the seq event e (intake number e + 1) got for user u, 0 if not a recipient */
static uint64_t seqs[EVENTS][USERS];
static const char *users[USERS] = {"u0", "u1", "u2", "u3", "u4", "u5", "u6"};

/* Which users event e notifies: a fixed pseudo-random subset. */
static int notifies(size_t e, size_t u)
{
	return ((e * 2654435761u) >> (u + 3)) & 1;
}

static void *worker(void *arg)
{
	unsigned rnd = (unsigned)(uintptr_t)arg;
	for (;;) {
		uint64_t no = atomic_fetch_add(&next_pop, 1);
		if (no > EVENTS)
			return NULL;
		usleep(rand_r(&rnd) % 200); /* "evaluating rules": arrive out of order */
		gw_sequencer_wait_turn(&seq, no);
		for (size_t u = 0; u < USERS; u++)
			if (notifies(no - 1, u))
				seqs[no - 1][u] = gw_sequencer_next_seq_locked(&seq, "inst-a", users[u]);
		gw_sequencer_pass_turn(&seq);
	}
}

int main(void)
{
	CHECK_INT_EQ(gw_sequencer_init(&seq, 1 << 20), 0);
	pthread_t t[THREADS];
	for (uintptr_t i = 0; i < THREADS; i++)
		CHECK_INT_EQ(pthread_create(&t[i], NULL, worker, (void *)(i + 1)), 0);
	for (int i = 0; i < THREADS; i++)
		pthread_join(t[i], NULL);
	CHECK_INT_EQ(seq.next_intake_no, EVENTS + 1);

	for (size_t u = 0; u < USERS; u++) {
		uint64_t expect = 0;
		int in_order = 1;
		for (size_t e = 0; e < EVENTS; e++) {
			if (!notifies(e, u)) {
				in_order &= seqs[e][u] == 0;
				continue;
			}
			in_order &= seqs[e][u] == ++expect;
		}
		CHECK(in_order);
		CHECK(expect > EVENTS / 8); /* every user was notified often */
	}

	/* another installation's user of the same name starts at 1 */
	gw_sequencer_wait_turn(&seq, EVENTS + 1);
	CHECK_INT_EQ(gw_sequencer_next_seq_locked(&seq, "inst-b", "u0"), 1);
	CHECK_INT_EQ(gw_sequencer_next_seq_locked(&seq, "inst-b", "u0"), 2);
	/* "<len>:<inst><user>" keeps ("inst-a","bc") and ("inst-ab","c") apart */
	CHECK_INT_EQ(gw_sequencer_next_seq_locked(&seq, "inst-a", "bc"), 1);
	CHECK_INT_EQ(gw_sequencer_next_seq_locked(&seq, "inst-ab", "c"), 1);
	/* no seq: too long to key, or no user */
	char longuser[600];
	memset(longuser, 'x', sizeof(longuser) - 1);
	longuser[sizeof(longuser) - 1] = '\0';
	CHECK_INT_EQ(gw_sequencer_next_seq_locked(&seq, "inst-a", longuser), 0);
	CHECK_INT_EQ(gw_sequencer_next_seq_locked(&seq, "inst-a", NULL), 0);
	/* keeping the turn across an unlock (scheduled triggers do) */
	gw_sequencer_unlock(&seq);
	gw_sequencer_wait_turn(&seq, EVENTS + 1);
	gw_sequencer_pass_turn(&seq);
	CHECK_INT_EQ(seq.next_intake_no, EVENTS + 2);
	gw_sequencer_destroy(&seq);
	return CHECK_DONE();
}
