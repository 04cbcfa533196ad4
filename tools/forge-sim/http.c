/* http.c - one bounded POST (http.h): resolve, non-blocking connect, send,
 * read the status line, headers and up to MAX_ANSWER bytes of body.
 *
 * Ownership: the socket and buffers are released before returning.
 * Threads: single-threaded tool.
 */
#include <errno.h>
#include <limits.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "http.h"

static int wait_fd(int fd, short events, int64_t deadline)
{
	for (;;) {
		int64_t left = deadline - mono_ms();
		if (left <= 0)
			return 0;
		struct pollfd p = {fd, events, 0};
		int r = poll(&p, 1, (int)(left > INT_MAX ? INT_MAX : left));
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -1;
		if (r == 0)
			return 0;
		return 1;
	}
}

static const char *find_header(const char *head, const char *name)
{
	size_t nl = strlen(name);
	const char *p = strstr(head, "\r\n");
	while (p) {
		p += 2;
		if (!strncasecmp(p, name, nl) && p[nl] == ':') {
			const char *v = p + nl + 1;
			while (*v == ' ' || *v == '\t')
				v++;
			return v;
		}
		p = strstr(p, "\r\n");
	}
	return NULL;
}

/* One POST with the whole exchange bounded by timeout_ms (from before the
 * connect to the end of the response headers; the body is read with the same
 * deadline and may be cut short). */
void http_post(const struct opts *o, const char *path, const char *extra_headers, const char *body,
	       int64_t timeout_ms, struct answer *ans)
{
	memset(ans, 0, sizeof(*ans));
	int64_t deadline = mono_ms() + timeout_ms;
	struct addrinfo hints = {0}, *res = NULL;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_family = AF_UNSPEC;
	int gai = getaddrinfo(o->host, o->port, &hints, &res);
	if (gai) {
		snprintf(ans->error, sizeof(ans->error), "resolve %s: %s", o->host, gai_strerror(gai));
		return;
	}
	int fd = -1;
	for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
		fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol);
		if (fd < 0)
			continue;
		if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
			break;
		if (errno == EINPROGRESS) {
			int w = wait_fd(fd, POLLOUT, deadline);
			if (w == 0) {
				ans->timed_out = 1;
				close(fd);
				freeaddrinfo(res);
				return;
			}
			int soerr = 0;
			socklen_t sl = sizeof(soerr);
			getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl);
			if (w > 0 && soerr == 0)
				break;
			snprintf(ans->error, sizeof(ans->error), "connect: %s",
				 strerror(soerr ? soerr : errno));
		} else {
			snprintf(ans->error, sizeof(ans->error), "connect: %s", strerror(errno));
		}
		close(fd);
		fd = -1;
	}
	freeaddrinfo(res);
	if (fd < 0)
		return;

	size_t body_len = strlen(body);
	char *req = xasprintf("POST %s HTTP/1.1\r\n"
			      "Host: %s\r\n"
			      "User-Agent: forge-sim/" SIM_VERSION "\r\n"
			      "Content-Type: application/json\r\n"
			      "Accept: application/json\r\n"
			      "Content-Length: %zu\r\n"
			      "Connection: close\r\n"
			      "%s"
			      "\r\n",
			      path, o->host_header, body_len, extra_headers);
	size_t req_len = strlen(req);
	const char *parts[2] = {req, body};
	size_t lens[2] = {req_len, body_len};
	for (int pi = 0; pi < 2; pi++) {
		size_t off = 0;
		while (off < lens[pi]) {
			ssize_t n = send(fd, parts[pi] + off, lens[pi] - off, MSG_NOSIGNAL);
			if (n > 0) {
				off += (size_t)n;
				continue;
			}
			if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
				int w = wait_fd(fd, POLLOUT, deadline);
				if (w == 0) {
					ans->timed_out = 1;
					goto out;
				}
				if (w < 0)
					goto neterr;
				continue;
			}
			goto neterr;
		}
	}

	/* Read the answer. */
	size_t cap = 8192, len = 0;
	char *buf = xmalloc(cap + 1);
	size_t head_end = 0;
	long content_length = -1;
	int chunked = 0;
	for (;;) {
		if (head_end) {
			size_t have = len - head_end;
			if (content_length >= 0 && have >= (size_t)content_length)
				break;
			if (chunked && len >= 5 && !memcmp(buf + len - 5, "0\r\n\r\n", 5))
				break;
			if (have >= MAX_ANSWER)
				break;
		}
		int w = wait_fd(fd, POLLIN, deadline);
		if (w == 0) {
			if (!head_end)
				ans->timed_out = 1;
			break;
		}
		if (w < 0) {
			snprintf(ans->error, sizeof(ans->error), "poll: %s", strerror(errno));
			break;
		}
		if (len == cap) {
			cap *= 2;
			char *nb = realloc(buf, cap + 1);
			if (!nb)
				fatal("out of memory");
			buf = nb;
		}
		ssize_t n = recv(fd, buf + len, cap - len, 0);
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			continue;
		if (n < 0) {
			if (!head_end)
				snprintf(ans->error, sizeof(ans->error), "recv: %s", strerror(errno));
			break;
		}
		if (n == 0) {
			if (!head_end)
				snprintf(ans->error, sizeof(ans->error),
					 "connection closed without an answer");
			break;
		}
		len += (size_t)n;
		buf[len] = '\0';
		if (!head_end) {
			char *he = strstr(buf, "\r\n\r\n");
			if (!he) {
				if (len > 65536) {
					snprintf(ans->error, sizeof(ans->error), "answer headers too long");
					break;
				}
				continue;
			}
			head_end = (size_t)(he - buf) + 4;
			*he = '\0';
			int major = 0, minor = 0, status = 0;
			if (sscanf(buf, "HTTP/%d.%d %d", &major, &minor, &status) != 3 || status < 100 ||
			    status > 999) {
				snprintf(ans->error, sizeof(ans->error), "not an HTTP answer");
				head_end = 0;
				break;
			}
			ans->status = status;
			const char *cl = find_header(buf, "Content-Length");
			if (cl)
				content_length = strtol(cl, NULL, 10);
			const char *te = find_header(buf, "Transfer-Encoding");
			if (te && !strncasecmp(te, "chunked", 7))
				chunked = 1;
			*he = '\r';
		}
	}
	if (head_end && ans->status) {
		size_t have = len - head_end;
		if (have > MAX_ANSWER)
			have = MAX_ANSWER;
		memcpy(ans->body, buf + head_end, have);
		ans->body[have] = '\0';
		ans->body_len = have;
	} else {
		ans->status = 0;
	}
	free(buf);
	goto out;
neterr:
	snprintf(ans->error, sizeof(ans->error), "send: %s", strerror(errno));
out:
	free(req);
	close(fd);
}
