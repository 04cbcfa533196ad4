/* ifaddrs_cache.c - the generator's getifaddrs(3), kept after the first call.
 *
 * lws 4.1.6 binds a client socket to its iface (the subscriber's source
 * address, --src-addrs) through lws_interface_to_sa, which calls
 * getifaddrs(3) on every connect: a netlink dump of every link and address,
 * about ten system calls, more than the websocket handshake itself. The
 * interfaces do not change during a run, so the first list is kept and
 * handed out again; freeifaddrs leaves that list alone. Both symbols are
 * defined in the executable, so libwebsockets' calls resolve here.
 *
 * Ownership: the kept list lives until exit.
 * Threads: the main thread only (the lws context); nothing else calls these.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dlfcn.h>
#include <ifaddrs.h>
#include <stddef.h>

static struct ifaddrs *kept;

int getifaddrs(struct ifaddrs **ifap)
{
	if (!kept) {
		int (*real)(struct ifaddrs **) = (int (*)(struct ifaddrs **))dlsym(RTLD_NEXT, "getifaddrs");
		if (!real || real(&kept) != 0) {
			kept = NULL;
			return -1;
		}
	}
	*ifap = kept;
	return 0;
}

void freeifaddrs(struct ifaddrs *ifa)
{
	if (!ifa || ifa == kept)
		return;
	void (*real)(struct ifaddrs *) = (void (*)(struct ifaddrs *))dlsym(RTLD_NEXT, "freeifaddrs");
	if (real)
		real(ifa);
}
