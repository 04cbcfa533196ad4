/* sequencer.c - see sequencer.h. */
#include "sequencer.h"

#include <stdio.h>
#include <string.h>

#include "log.h"
#include "store.h"

int gw_sequencer_init(struct gw_sequencer *s, size_t seq_bytes)
{
	s->next_intake_no = 1;
	s->store = NULL;
	if (gw_seqmap_init(&s->user_seq, seq_bytes))
		return -1;
	if (pthread_mutex_init(&s->lock, NULL))
		return -1;
	return pthread_cond_init(&s->turn, NULL) ? -1 : 0;
}

void gw_sequencer_destroy(struct gw_sequencer *s)
{
	gw_seqmap_destroy(&s->user_seq);
	pthread_cond_destroy(&s->turn);
	pthread_mutex_destroy(&s->lock);
}

void gw_sequencer_wait_turn(struct gw_sequencer *s, uint64_t intake_no)
{
	pthread_mutex_lock(&s->lock);
	while (s->next_intake_no != intake_no)
		pthread_cond_wait(&s->turn, &s->lock);
}

void gw_sequencer_unlock(struct gw_sequencer *s)
{
	pthread_mutex_unlock(&s->lock);
}

uint64_t gw_sequencer_next_seq_locked(struct gw_sequencer *s, const char *inst, const char *user)
{
	if (!inst || !user)
		return 0;
	/* seq is per (installation, user): "<len(inst)>:<inst><user>" */
	char skey[512];
	int sk = snprintf(skey, sizeof(skey), "%zu:%s%s", strlen(inst), inst, user);
	if (sk <= 0 || (size_t)sk >= sizeof(skey))
		return 0;
	uint64_t base = 0;
	if (s->store && !gw_seqmap_has(&s->user_seq, skey, (size_t)sk)) {
		int rc = s->store->ops->max_seq(s->store, inst, user, &base);
		if (rc) {
			gw_log(GW_LOG_ERR, "sequencer: the store cannot read a user's seq: %s",
			       gw_store_strerror(rc));
			s->store_failures++;
			return 0;
		}
	}
	return gw_seqmap_next_from(&s->user_seq, skey, (size_t)sk, base);
}

void gw_sequencer_reseat(struct gw_sequencer *s, const char *inst, const char *user, uint64_t seq)
{
	char skey[512];
	int sk = snprintf(skey, sizeof(skey), "%zu:%s%s", strlen(inst), inst, user);
	if (sk <= 0 || (size_t)sk >= sizeof(skey))
		return;
	pthread_mutex_lock(&s->lock);
	gw_seqmap_set(&s->user_seq, skey, (size_t)sk, seq);
	pthread_mutex_unlock(&s->lock);
}

void gw_sequencer_pass_turn(struct gw_sequencer *s)
{
	s->next_intake_no++;
	pthread_mutex_unlock(&s->lock);
	/* after the unlock: a waiter woken under it would block on the lock at once */
	pthread_cond_broadcast(&s->turn);
}
