/* publisher.h - notify-loadgen's publisher thread: events POSTed over
 * --http-conns non-blocking keep-alive connections driven by ppoll, open
 * loop at --rate or closed loop within --window; each send stamped right
 * before its write(2), each answer counted.
 *
 * Ownership: the connections and buffers are the thread's; g_watchers and
 * g_pad are built by main before the thread starts and read by it.
 * Threads: the publisher thread; main sets g_stop_pub and joins it.
 */
#ifndef LOADGEN_PUBLISHER_H
#define LOADGEN_PUBLISHER_H

extern char *g_watchers; /* gateway broadcast: ["u0",...] */
extern char *g_pad; /* nchan: the message padding */

/* The thread's body (pthread_create); sets g_pub_done when it ends. */
void *publisher(void *arg);

#endif
