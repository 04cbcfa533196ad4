/* redis_fixture.h - a real redis-server for the unit tests: started on a
 * free port in a temporary directory, stopped, frozen (SIGSTOP) and thawed,
 * restarted on the same port and directory (AOF kept). GW_REDIS_SERVER is
 * the binary's path (CMake's find_program). Included once per test. */
#ifndef GW_TEST_REDIS_FIXTURE_H
#define GW_TEST_REDIS_FIXTURE_H

#include <arpa/inet.h>
#include <fcntl.h>
#include <hiredis/hiredis.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

struct redis_fixture {
	pid_t pid;
	int port;
	char dir[512];
	char url[128];
	int aof;
	const char *password; /* NULL: none */
};

static int fixture_free_port(void)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = {0};
	a.sin_family = AF_INET;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	socklen_t len = sizeof(a);
	if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) ||
	    getsockname(fd, (struct sockaddr *)&a, &len)) {
		if (fd >= 0)
			close(fd);
		return -1;
	}
	close(fd);
	return ntohs(a.sin_port);
}

static void fixture_sleep_ms(int ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
	nanosleep(&ts, NULL);
}

/* A direct hiredis connection for the test's own commands. */
static redisContext *fixture_connect(struct redis_fixture *f)
{
	struct timeval tv = {2, 0};
	redisContext *c = redisConnectWithTimeout("127.0.0.1", f->port, tv);
	if (!c || c->err) {
		if (c)
			redisFree(c);
		return NULL;
	}
	redisSetTimeout(c, tv);
	if (f->password) {
		redisReply *r = redisCommand(c, "AUTH %s", f->password);
		if (r)
			freeReplyObject(r);
	}
	return c;
}

static int fixture_cmd(struct redis_fixture *f, const char *cmd)
{
	redisContext *c = fixture_connect(f);
	if (!c)
		return -1;
	redisReply *r = redisCommand(c, cmd);
	int ok = r && r->type != REDIS_REPLY_ERROR;
	if (r)
		freeReplyObject(r);
	redisFree(c);
	return ok ? 0 : -1;
}

/* (Re)starts the server on f->port in f->dir; 0 once it answers PING. */
static int fixture_spawn(struct redis_fixture *f)
{
	char port[16];
	snprintf(port, sizeof(port), "%d", f->port);
	f->pid = fork();
	if (f->pid == 0) {
		int devnull = open("/dev/null", 1);
		if (devnull >= 0) {
			dup2(devnull, 1);
			dup2(devnull, 2);
		}
		const char *argv[24] = {GW_REDIS_SERVER,
					"--port",
					port,
					"--bind",
					"127.0.0.1",
					"--dir",
					f->dir,
					"--save",
					"",
					"--appendonly",
					f->aof ? "yes" : "no",
					"--appendfsync",
					"always",
					"--daemonize",
					"no"};
		int n = 15;
		if (f->password) {
			argv[n++] = "--requirepass";
			argv[n++] = f->password;
		}
		argv[n] = NULL;
		execv(GW_REDIS_SERVER, (char *const *)argv);
		_exit(127);
	}
	for (int i = 0; i < 200; i++) {
		if (fixture_cmd(f, "PING") == 0)
			return 0;
		fixture_sleep_ms(50);
	}
	return -1;
}

static int fixture_start(struct redis_fixture *f, int aof, const char *password)
{
	memset(f, 0, sizeof(*f));
	f->aof = aof;
	f->password = password;
	snprintf(f->dir, sizeof(f->dir), "%s/redis-XXXXXX",
		 getenv("GW_TEST_TMP") ? getenv("GW_TEST_TMP") : "/tmp");
	if (!mkdtemp(f->dir) || (f->port = fixture_free_port()) < 0)
		return -1;
	if (password)
		snprintf(f->url, sizeof(f->url), "redis://:%s@127.0.0.1:%d/0", password, f->port);
	else
		snprintf(f->url, sizeof(f->url), "redis://127.0.0.1:%d/0", f->port);
	return fixture_spawn(f);
}

/* SIGKILL: nothing flushed beyond what the AOF policy already wrote. */
__attribute__((unused)) static void fixture_kill(struct redis_fixture *f)
{
	if (f->pid > 0) {
		kill(f->pid, SIGKILL);
		waitpid(f->pid, NULL, 0);
		f->pid = 0;
	}
}

__attribute__((unused)) static void fixture_freeze(struct redis_fixture *f, int frozen)
{
	if (f->pid > 0)
		kill(f->pid, frozen ? SIGSTOP : SIGCONT);
}

static void fixture_stop(struct redis_fixture *f)
{
	if (f->pid > 0) {
		kill(f->pid, SIGCONT);
		kill(f->pid, SIGTERM);
		waitpid(f->pid, NULL, 0);
		f->pid = 0;
	}
	if (f->dir[0]) {
		char cmd[600];
		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
		if (system(cmd) != 0)
			fprintf(stderr, "could not remove %s\n", f->dir);
		f->dir[0] = '\0';
	}
}

#endif
