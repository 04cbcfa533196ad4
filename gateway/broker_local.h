/* broker_local.h - the in-process broker (broker.h's operations over a hash
 * map from (installation, user, context) to the subscribed connections), the
 * only broker today. Ownership: the broker owns its table, never the
 * connections; destroy through ops->destroy. Threads: service thread only,
 * so no locks. */
#ifndef GW_BROKER_LOCAL_H
#define GW_BROKER_LOCAL_H

#include "broker.h"

/* NULL when out of memory. */
struct gw_broker *gw_broker_local_new(void);

#endif
