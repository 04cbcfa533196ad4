/* keys.h - the simulator's RSA signing key: `forge-sim keys` writes it and
 * the JWKS a gateway pins (forge.jwks_file); load_rsa_key reads it back.
 *
 * Ownership: load_rsa_key's EVP_PKEY is the caller's (EVP_PKEY_free).
 * Threads: single-threaded tool.
 */
#ifndef FORGE_SIM_KEYS_H
#define FORGE_SIM_KEYS_H

#include <openssl/evp.h>

/* NULL when the file cannot be read or is not a PEM RSA private key. */
EVP_PKEY *load_rsa_key(const char *path);
/* forge-sim keys --dir DIR [--kid KID] [--force] */
int cmd_keys(int argc, char **argv);

#endif
