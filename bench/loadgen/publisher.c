/* publisher.c - the event bodies (gateway: Forge events; nchan: publishes)
 * and the publisher thread (publisher.h).
 *
 * Ownership: see publisher.h.
 * Threads: the publisher thread only.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "publisher.h"
#include "shared.h"
#include "tokens.h"

char *g_watchers; /* gateway broadcast: ["u0",...] */
char *g_pad;

static int build_request(char *buf, size_t cap, long seq, int port)
{
	char body[16384], path[128];
	int bl = 0;
	int user = (int)(seq % O.users);
	if (O.tg == TG_GATEWAY) {
		switch (O.sc) {
		case SC_INTAKE:
			bl = snprintf(
				body, sizeof(body),
				"{\"payload\":{\"eventType\":\"avi:jira:deleted:issue\",\"issue\":{\"key\":\"B-%ld\","
				"\"fields\":{\"summary\":\"bench\",\"assignee\":{\"accountId\":\"u%d\"}}}}}",
				seq, user);
			break;
		case SC_TARGETED:
			bl = snprintf(
				body, sizeof(body),
				"{\"payload\":{\"eventType\":\"avi:jira:created:issue\",\"issue\":{\"key\":\"B-%ld\","
				"\"fields\":{\"summary\":\"bench\",\"assignee\":{\"accountId\":\"u%d\"}}}}}",
				seq, user);
			break;
		default:
			bl = snprintf(
				body, sizeof(body),
				"{\"payload\":{\"eventType\":\"avi:jira:updated:issue\",\"issue\":{\"key\":\"B-%ld\","
				"\"fields\":{\"summary\":\"bench\"}},\"ctx\":\"bcast\",\"watchers\":%s}}",
				seq, g_watchers);
			break;
		}
		if (bl < 0 || (size_t)bl >= sizeof(body))
			die("event body too large");
		return snprintf(buf, cap,
				"POST /forge/events HTTP/1.1\r\nHost: %s:%d\r\nAuthorization: Bearer %s\r\n"
				"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s",
				O.host, port, g_fits[seq % NFITS], bl, body);
	}
	if (O.sc == SC_BROADCAST)
		snprintf(path, sizeof(path), "/pub?id=%s-bcast", O.run_id);
	else if (O.sc == SC_INTAKE)
		snprintf(path, sizeof(path), "/pub?id=%s-i%d", O.run_id, user);
	else
		snprintf(path, sizeof(path), "/pub?id=%s-u%d", O.run_id, user);
	bl = snprintf(body, sizeof(body), "{\"seq\":%ld,\"pad\":\"%s\"}", seq, g_pad);
	return snprintf(buf, cap,
			"POST %s HTTP/1.1\r\nHost: %s:%d\r\nContent-Type: application/json\r\n"
			"Accept: text/plain\r\nContent-Length: %d\r\n\r\n%s",
			path, O.host, port, bl, body);
}

/* ---- publisher ------------------------------------------------------------ */

struct hconn {
	int fd;
	int port; /* its server: connections are spread over --port's list */
	int busy;
	char *out;
	size_t out_len, out_off;
	char in[8192];
	size_t in_len;
	long seq;
};

static int tcp_connect(int port)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	int one = 1;
	inet_pton(AF_INET, O.host, &sa.sin_addr);
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 && errno != EINPROGRESS) {
		close(fd);
		return -1;
	}
	return fd;
}

/* Returns 1 when a full response sits in c->in (and consumes it), 0 if more is needed, -1 on garbage. */
static int parse_response(struct hconn *c, int *status)
{
	c->in[c->in_len] = '\0';
	char *end = strstr(c->in, "\r\n\r\n");
	if (!end)
		return c->in_len >= sizeof(c->in) - 1 ? -1 : 0;
	size_t hlen = (size_t)(end - c->in) + 4;
	if (strncmp(c->in, "HTTP/1.", 7) != 0)
		return -1;
	*status = atoi(c->in + 9);
	long clen = -1;
	int chunked = 0;
	for (char *l = strstr(c->in, "\r\n"); l && l < end; l = strstr(l + 2, "\r\n")) {
		if (!strncasecmp(l + 2, "content-length:", 15))
			clen = atol(l + 17);
		else if (!strncasecmp(l + 2, "transfer-encoding:", 18) && strstr(l + 2, "chunked") &&
			 strstr(l + 2, "chunked") < strstr(l + 2, "\r\n"))
			chunked = 1;
	}
	size_t total;
	if (chunked) {
		char *z = strstr(end + 4, "0\r\n\r\n");
		if (!z)
			return 0;
		total = (size_t)(z - c->in) + 5;
	} else {
		if (clen < 0)
			clen = 0;
		total = hlen + (size_t)clen;
		if (c->in_len < total)
			return total >= sizeof(c->in) ? -1 : 0;
	}
	memmove(c->in, c->in + total, c->in_len - total);
	c->in_len -= total;
	return 1;
}

static long next_seq(void)
{
	static long seq;
	return seq < g_ev_cap ? seq++ : -1;
}

static void hconn_reset(struct hconn *c)
{
	if (c->fd >= 0)
		close(c->fd);
	if (c->busy) {
		/* never answered: like a 503 for the delivery check (Forge would
		 * retry), and complete so that the window moves on */
		atomic_fetch_add(&g_http_err, 1);
		atomic_store(&g_ev[c->seq].rejected, 1);
		atomic_fetch_add(&g_completed, 1);
	}
	c->busy = 0;
	c->in_len = 0;
	c->fd = tcp_connect(c->port);
}

void *publisher(void *arg)
{
	(void)arg;
	int nc = O.http_conns;
	struct hconn *cs = calloc((size_t)nc, sizeof(*cs));
	struct pollfd *pf = calloc((size_t)nc, sizeof(*pf));
	size_t cap = 65536;
	for (int i = 0; i < nc; i++) {
		cs[i].port = port_of(i);
		cs[i].fd = tcp_connect(cs[i].port);
		cs[i].out = malloc(cap);
	}
	uint64_t t0 = now_ns();
	double interval = O.rate > 0 ? 1e9 / O.rate : 0;
	long scheduled = 0; /* open loop: events due so far */
	int closed_loop = O.rate <= 0;
	int window = O.window > 0 ? O.window : (O.sc == SC_INTAKE ? 1 << 30 : 256);
	/* With several servers the scan for an idle connection starts after the
	 * last one used, so that events spread over all of them (from 0 each
	 * time, a light load would go to connection 0's server only). */
	int rr = 0;

	while (!atomic_load(&g_stop_pub)) {
		uint64_t now = now_ns();
		long due = closed_loop ? 0 : (long)((double)(now - t0) / interval) + 1;
		/* start requests on idle connections */
		for (int k = 0; k < nc; k++) {
			int i = O.nports > 1 ? (rr + k) % nc : k;
			struct hconn *c = &cs[i];
			if (c->busy || c->fd < 0)
				continue;
			if (closed_loop) {
				if (O.sc != SC_INTAKE &&
				    atomic_load(&g_sent) - atomic_load(&g_completed) >= window)
					break;
			} else if (scheduled >= due) {
				break;
			}
			long seq = next_seq();
			if (seq < 0) {
				atomic_store(&g_stop_pub, 1);
				break;
			}
			c->seq = seq;
			rr = i + 1;
			c->out_len = (size_t)build_request(c->out, cap, seq, c->port);
			c->out_off = 0;
			c->busy = 1;
			scheduled++;
			uint64_t t = now_ns();
			atomic_store(&g_ev[seq].t_send, t);
			atomic_store(&g_ev[seq].measured, (uint8_t)in_window(t));
			ssize_t w = write(c->fd, c->out, c->out_len);
			if (w > 0)
				c->out_off = (size_t)w;
			else if (w < 0 && errno != EAGAIN) {
				hconn_reset(c);
				continue;
			}
			if (c->out_off == c->out_len)
				atomic_fetch_add(&g_sent, 1);
		}
		int timeout_ns = 20 * 1000 * 1000;
		if (!closed_loop) {
			uint64_t next = t0 + (uint64_t)((double)scheduled * interval);
			uint64_t n2 = now_ns();
			timeout_ns = next > n2 ? (int)(next - n2 < 20000000 ? next - n2 : 20000000) : 0;
		}
		for (int i = 0; i < nc; i++) {
			pf[i].fd = cs[i].fd;
			pf[i].events = POLLIN | (cs[i].busy && cs[i].out_off < cs[i].out_len ? POLLOUT : 0);
			pf[i].revents = 0;
		}
		struct timespec ts = {0, timeout_ns};
		if (closed_loop && O.sc != SC_INTAKE)
			ts.tv_nsec = 200000; /* re-check the window often */
		int r = ppoll(pf, (nfds_t)nc, &ts, NULL);
		if (r <= 0)
			continue;
		for (int i = 0; i < nc; i++) {
			struct hconn *c = &cs[i];
			if (!pf[i].revents)
				continue;
			if (pf[i].revents & POLLOUT) {
				ssize_t w = write(c->fd, c->out + c->out_off, c->out_len - c->out_off);
				if (w > 0) {
					c->out_off += (size_t)w;
					if (c->out_off == c->out_len)
						atomic_fetch_add(&g_sent, 1);
				}
			}
			if (pf[i].revents & (POLLIN | POLLHUP | POLLERR)) {
				ssize_t n = read(c->fd, c->in + c->in_len, sizeof(c->in) - 1 - c->in_len);
				if (n <= 0) {
					if (n < 0 && errno == EAGAIN)
						continue;
					hconn_reset(c);
					continue;
				}
				c->in_len += (size_t)n;
				int st, pr;
				while ((pr = parse_response(c, &st)) == 1) {
					if (!c->busy)
						continue;
					c->busy = 0;
					if (st >= 200 && st < 300) {
						atomic_fetch_add(&g_accepted, 1);
						if (in_window(now_ns()))
							atomic_fetch_add(&g_accepted_in_win, 1);
					} else {
						atomic_store(&g_ev[c->seq].rejected, 1);
						if (atomic_fetch_add(&g_rejected, 1) < 5)
							fprintf(stderr, "publisher: HTTP %d for event %ld\n",
								st, c->seq);
						/* never delivered: count as complete so the window moves */
						atomic_fetch_add(&g_completed, 1);
					}
				}
				if (pr < 0)
					hconn_reset(c);
			}
		}
	}
	/* Stop sending; collect the answers still outstanding (5 s at most). */
	uint64_t give_up = now_ns() + 5000000000ull;
	for (;;) {
		int busy = 0;
		for (int i = 0; i < nc; i++) {
			pf[i].fd = cs[i].busy ? cs[i].fd : -1;
			pf[i].events = POLLIN;
			pf[i].revents = 0;
			busy += cs[i].busy;
		}
		if (!busy || now_ns() > give_up)
			break;
		struct timespec ts = {0, 10000000};
		if (ppoll(pf, (nfds_t)nc, &ts, NULL) <= 0)
			continue;
		for (int i = 0; i < nc; i++) {
			struct hconn *c = &cs[i];
			if (!pf[i].revents)
				continue;
			ssize_t n = read(c->fd, c->in + c->in_len, sizeof(c->in) - 1 - c->in_len);
			if (n <= 0) {
				if (!(n < 0 && errno == EAGAIN))
					hconn_reset(c);
				continue;
			}
			c->in_len += (size_t)n;
			int st;
			while (c->busy && parse_response(c, &st) == 1) {
				c->busy = 0;
				if (st >= 200 && st < 300)
					atomic_fetch_add(&g_accepted, 1);
				else {
					atomic_store(&g_ev[c->seq].rejected, 1);
					atomic_fetch_add(&g_rejected, 1);
					atomic_fetch_add(&g_completed, 1);
				}
			}
		}
	}
	for (int i = 0; i < nc; i++) {
		if (cs[i].fd >= 0)
			close(cs[i].fd);
		free(cs[i].out);
	}
	free(cs);
	free(pf);
	atomic_store(&g_pub_done, 1);
	return NULL;
}
