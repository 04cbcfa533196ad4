/* atomic_file.h - writing a file so that readers see the old or the new
 * content, never a torn one, and it survives a crash once the call returns.
 *
 * Library "gwcrypto" (the key files were its first user). Threads: any. */
#ifndef GW_ATOMIC_FILE_H
#define GW_ATOMIC_FILE_H

#include <stddef.h>

/* Writes len bytes to path atomically: a temporary file in the same
 * directory with the given mode, write, fsync, rename, fsync of the directory.
 * The shared writer behind the key files; the gateway uses it for its state
 * files too. Returns 0 or -1 with err filled. */
int gw_write_file_atomic(const char *path, const void *data, size_t len, unsigned mode, char *err,
			 size_t errlen);

#endif
