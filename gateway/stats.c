/* stats.c - storage for the counters declared in stats.h. */
#include "stats.h"

_Atomic uint64_t gw_stats[GW_STAT__COUNT];

const char *const gw_stat_names[GW_STAT__COUNT] = {
#define GW_STAT_NAME(name, help) #name,
	GW_STATS_COUNTERS(GW_STAT_NAME)
#undef GW_STAT_NAME
};
