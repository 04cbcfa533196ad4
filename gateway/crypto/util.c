/* util.c - small helpers shared inside gwcrypto: error formatting, bounded
 * file reading, PEM sniffing, atomic file writes.
 *
 * Ownership: crypto__read_file returns a malloc'd buffer (caller frees).
 * Threads: reentrant; no global state.
 */
#include <errno.h>
#include <pthread.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>

#include "crypto_internal.h"
#include "gw/atomic_file.h"
#include "gw/sha256.h"

const char *crypto__alg_name(enum crypto__alg alg)
{
	switch (alg) {
	case CRYPTO__RS256:
		return "RS256";
	case CRYPTO__ES256:
		return "ES256";
	case CRYPTO__HS256:
		return "HS256";
	}
	return "?";
}

void crypto__errf(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (!err || !errlen)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

void crypto__printable(const char *s, size_t max, char *out, size_t outlen)
{
	size_t i;

	if (!outlen)
		return;
	for (i = 0; s && s[i] && i < max && i + 1 < outlen; i++)
		out[i] = (s[i] >= 0x20 && s[i] < 0x7f && s[i] != '"') ? s[i] : '?';
	out[i] = '\0';
}

void crypto__free_secret(void *p, size_t len)
{
	if (p)
		OPENSSL_cleanse(p, len);
	free(p);
}

int crypto__no_passphrase(char *buf, int size, int rwflag, void *u)
{
	(void)buf;
	(void)size;
	(void)rwflag;
	(void)u;
	return -1;
}

int crypto__read_file(const char *path, size_t max, char **out, size_t *out_len, char *err,
		      size_t errlen)
{
	struct stat st;
	char *buf = NULL;
	size_t got = 0;
	int fd = -1;

	if (!path || !*path) {
		crypto__errf(err, errlen, "no file name given");
		return -1;
	}
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0) {
		crypto__errf(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	if (fstat(fd, &st) != 0) {
		crypto__errf(err, errlen, "%s: %s", path, strerror(errno));
		goto fail;
	}
	if (!S_ISREG(st.st_mode)) {
		crypto__errf(err, errlen, "%s: not a regular file", path);
		goto fail;
	}
	if ((unsigned long long)st.st_size > max) {
		crypto__errf(err, errlen, "%s: file too large (%lld bytes, limit %zu)", path,
			     (long long)st.st_size, max);
		goto fail;
	}
	buf = malloc((size_t)st.st_size + 1);
	if (!buf) {
		crypto__errf(err, errlen, "%s: out of memory", path);
		goto fail;
	}
	while (got < (size_t)st.st_size) {
		ssize_t n = read(fd, buf + got, (size_t)st.st_size - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			crypto__errf(err, errlen, "%s: %s", path, strerror(errno));
			goto fail;
		}
		if (n == 0)
			break; /* file shrank; use what we have */
		got += (size_t)n;
	}
	buf[got] = '\0';
	close(fd);
	*out = buf;
	*out_len = got;
	return 0;
fail:
	crypto__free_secret(buf, buf ? (size_t)st.st_size + 1 : 0);
	close(fd);
	return -1;
}

/* memmem is a GNU extension; gw_warnings defines _GNU_SOURCE. */
static int has(const char *hay, size_t len, const char *needle)
{
	return memmem(hay, len, needle, strlen(needle)) != NULL;
}

int crypto__pem_has_private(const char *pem, size_t len)
{
	/* Covers "PRIVATE KEY", "ENCRYPTED PRIVATE KEY", "RSA/EC/DSA PRIVATE
	 * KEY" and "OPENSSH PRIVATE KEY". */
	return has(pem, len, "-----BEGIN") && has(pem, len, "PRIVATE KEY-----");
}

int crypto__pem_is_encrypted(const char *pem, size_t len)
{
	return has(pem, len, "-----BEGIN ENCRYPTED PRIVATE KEY-----") ||
	       has(pem, len, "Proc-Type: 4,ENCRYPTED");
}

int crypto__is_p256(EVP_PKEY *pkey)
{
	char group[64];
	size_t glen = 0;

	if (!EVP_PKEY_is_a(pkey, "EC"))
		return 0;
	if (!EVP_PKEY_get_utf8_string_param(pkey, OSSL_PKEY_PARAM_GROUP_NAME, group,
					    sizeof(group), &glen))
		return 0;
	return strcmp(group, "prime256v1") == 0 || strcmp(group, "P-256") == 0;
}

int crypto__write_atomic(const char *path, const void *data, size_t len, unsigned mode,
			 char *err, size_t errlen)
{
	char *tmp = NULL, *dircopy = NULL;
	const char *p = data;
	size_t off = 0, plen;
	int fd = -1, dfd = -1;

	if (!path || !*path) {
		crypto__errf(err, errlen, "no file name given");
		return -1;
	}
	plen = strlen(path);
	tmp = malloc(plen + sizeof(".tmp.XXXXXX"));
	dircopy = strdup(path);
	if (!tmp || !dircopy) {
		crypto__errf(err, errlen, "%s: out of memory", path);
		goto fail;
	}
	memcpy(tmp, path, plen);
	memcpy(tmp + plen, ".tmp.XXXXXX", sizeof(".tmp.XXXXXX"));
	/* mkstemp creates the file 0600 and O_EXCL, so private material is
	 * never readable by others, not even between open and fchmod. */
	fd = mkostemp(tmp, O_CLOEXEC);
	if (fd < 0) {
		crypto__errf(err, errlen, "%s: cannot create temporary file: %s", path,
			     strerror(errno));
		tmp[0] = '\0';
		goto fail;
	}
	if (fchmod(fd, (mode_t)mode) != 0) {
		crypto__errf(err, errlen, "%s: fchmod: %s", path, strerror(errno));
		goto fail;
	}
	while (off < len) {
		ssize_t n = write(fd, p + off, len - off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			crypto__errf(err, errlen, "%s: write: %s", path, strerror(errno));
			goto fail;
		}
		off += (size_t)n;
	}
	if (fsync(fd) != 0) {
		crypto__errf(err, errlen, "%s: fsync: %s", path, strerror(errno));
		goto fail;
	}
	if (close(fd) != 0) {
		fd = -1;
		crypto__errf(err, errlen, "%s: close: %s", path, strerror(errno));
		goto fail;
	}
	fd = -1;
	if (rename(tmp, path) != 0) {
		crypto__errf(err, errlen, "%s: rename: %s", path, strerror(errno));
		goto fail;
	}
	tmp[0] = '\0'; /* renamed: nothing to unlink any more */
	dfd = open(dirname(dircopy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0 || fsync(dfd) != 0) {
		crypto__errf(err, errlen, "%s: fsync of directory: %s", path, strerror(errno));
		goto fail;
	}
	close(dfd);
	free(tmp);
	free(dircopy);
	return 0;
fail:
	if (fd >= 0)
		close(fd);
	if (dfd >= 0)
		close(dfd);
	if (tmp && tmp[0])
		unlink(tmp);
	free(tmp);
	free(dircopy);
	return -1;
}

static EVP_MD *sha256_md;
static pthread_once_t sha256_once = PTHREAD_ONCE_INIT;

static void fetch_sha256(void)
{
	sha256_md = EVP_MD_fetch(NULL, "SHA256", NULL);
}

const EVP_MD *gw_sha256(void)
{
	pthread_once(&sha256_once, fetch_sha256);
	return sha256_md;
}

int gw_write_file_atomic(const char *path, const void *data, size_t len, unsigned mode, char *err,
			 size_t errlen)
{
	return crypto__write_atomic(path, data, len, mode, err, errlen);
}
