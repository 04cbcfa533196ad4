/* sequencer.c - see sequencer.h. */
#include "sequencer.h"

#include <stdio.h>
#include <string.h>

int gw_sequencer_init(struct gw_sequencer *s)
{
	s->next_intake_no = 1;
	if (gw_strmap_init(&s->user_seq, 1024))
		return -1;
	if (pthread_mutex_init(&s->lock, NULL))
		return -1;
	return pthread_cond_init(&s->turn, NULL) ? -1 : 0;
}

void gw_sequencer_destroy(struct gw_sequencer *s)
{
	gw_strmap_free(&s->user_seq, NULL);
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
	struct gw_strmap_entry *e = sk > 0 && (size_t)sk < sizeof(skey)
					    ? gw_strmap_upsert(&s->user_seq, skey, (size_t)sk, NULL)
					    : NULL;
	if (!e)
		return 0;
	uint64_t seq = (uint64_t)(uintptr_t)e->value + 1;
	e->value = (void *)(uintptr_t)seq;
	return seq;
}

void gw_sequencer_pass_turn(struct gw_sequencer *s)
{
	s->next_intake_no++;
	pthread_cond_broadcast(&s->turn);
	pthread_mutex_unlock(&s->lock);
}
