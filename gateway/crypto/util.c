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
	case CRYPTO__RS256: return "RS256";
	case CRYPTO__ES256: return "ES256";
	case CRYPTO__HS256: return "HS256";
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

static int read_file_checked(const char *path, size_t max, int check, enum crypto__key_file kind, char **out,
			     size_t *out_len, char *err, size_t errlen);

int crypto__read_file(const char *path, size_t max, char **out, size_t *out_len, char *err, size_t errlen)
{
	return read_file_checked(path, max, 0, CRYPTO__KEY_PUBLIC, out, out_len, err, errlen);
}

int crypto__read_key_file(const char *path, size_t max, enum crypto__key_file kind, char **out,
			  size_t *out_len, char *err, size_t errlen)
{
	return read_file_checked(path, max, 1, kind, out, out_len, err, errlen);
}

/* OpenSSH's rule (sshkey_perm_ok, secure_permissions), see crypto_internal.h. */
static int key_file_perm_ok(const char *path, const struct stat *st, enum crypto__key_file kind, char *err,
			    size_t errlen)
{
	unsigned mode = (unsigned)(st->st_mode & 07777);
	if (st->st_uid != geteuid() && st->st_uid != 0) {
		crypto__errf(err, errlen,
			     "%s: owned by uid %u, neither the gateway's user (uid %u) nor root; "
			     "refusing a key file someone else controls (chown it)",
			     path, (unsigned)st->st_uid, (unsigned)geteuid());
		return 0;
	}
	if (kind == CRYPTO__KEY_SECRET && (mode & 077)) {
		crypto__errf(err, errlen,
			     "%s: permissions %04o are too open for a private key or secret: it must "
			     "not be accessible by group or others (chmod 600 %s)",
			     path, mode, path);
		return 0;
	}
	if (kind == CRYPTO__KEY_PUBLIC && (mode & 022)) {
		crypto__errf(err, errlen,
			     "%s: permissions %04o let group or others write this key file, and so "
			     "choose whom the gateway trusts (chmod go-w %s)",
			     path, mode, path);
		return 0;
	}
	return 1;
}

static int read_file_checked(const char *path, size_t max, int check, enum crypto__key_file kind, char **out,
			     size_t *out_len, char *err, size_t errlen)
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
	if (check && !key_file_perm_ok(path, &st, kind, err, errlen))
		goto fail;
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

/* Whether buf is exactly one DER SEQUENCE (tag 0x30, definite length that
 * spans the whole buffer) holding at least one byte that is not printable
 * text: a hex or base64 secret that happens to start with '0' is not DER. */
static int looks_like_der(const unsigned char *b, size_t len)
{
	size_t hdr, body;
	int binary = 0;
	if (len < 2 || b[0] != 0x30)
		return 0;
	if (b[1] < 0x80) {
		hdr = 2;
		body = b[1];
	} else {
		size_t n = b[1] & 0x7f;
		if (n == 0 || n > 4 || len < 2 + n)
			return 0;
		body = 0;
		for (size_t i = 0; i < n; i++)
			body = (body << 8) | b[2 + i];
		hdr = 2 + n;
	}
	if (hdr + body != len)
		return 0;
	for (size_t i = 0; i < len && !binary; i++)
		binary = b[i] < 0x20 ? !(b[i] == '\n' || b[i] == '\r' || b[i] == '\t') : b[i] >= 0x7f;
	return binary;
}

const char *crypto__sniff_key_format(const char *buf, size_t len)
{
	size_t i = 0;
	if (looks_like_der((const unsigned char *)buf, len))
		return "DER (binary ASN.1)";
	while (i < len && (buf[i] == ' ' || buf[i] == '\t' || buf[i] == '\r' || buf[i] == '\n'))
		i++;
	const char *p = buf + i;
	size_t n = len - i;
#define STARTS(s) (n >= sizeof(s) - 1 && memcmp(p, s, sizeof(s) - 1) == 0)
	if (STARTS("-----BEGIN OPENSSH PRIVATE KEY-----") ||
	    STARTS("-----BEGIN SSH2 ENCRYPTED PRIVATE KEY-----"))
		return "OpenSSH private key";
	if (STARTS("ssh-rsa ") || STARTS("ssh-ed25519 ") || STARTS("ssh-dss ") || STARTS("ecdsa-sha2-") ||
	    STARTS("sk-ssh-") || STARTS("sk-ecdsa-") || STARTS("---- BEGIN SSH2 PUBLIC KEY ----"))
		return "OpenSSH public key";
	if (STARTS("PuTTY-User-Key-File-"))
		return "PuTTY key";
	if (STARTS("{") && (has(p, n, "\"kty\"") || has(p, n, "\"keys\"")))
		return "JWK/JWKS JSON";
	if (STARTS("{"))
		return "JSON";
	if (has(p, n, "-----BEGIN"))
		return "PEM";
#undef STARTS
	return NULL;
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
	if (!EVP_PKEY_get_utf8_string_param(pkey, OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof(group), &glen))
		return 0;
	return strcmp(group, "prime256v1") == 0 || strcmp(group, "P-256") == 0;
}

int crypto__write_atomic(const char *path, const void *data, size_t len, unsigned mode, char *err,
			 size_t errlen)
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
		crypto__errf(err, errlen, "%s: cannot create temporary file: %s", path, strerror(errno));
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
