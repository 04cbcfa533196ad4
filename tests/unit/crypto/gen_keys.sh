#!/bin/sh
# gen_keys.sh DIR - ctest FIXTURES_SETUP step for the gwcrypto tests.
# Generates every key the tests use with the openssl CLI (nothing is
# committed), plus values computed independently of gwcrypto:
#   jwks.json        RSA JWKS built from `openssl rsa -modulus` (kid "k1", and
#                    an EC key that must be skipped)
#   ec.thumb         RFC 7638 thumbprint of ec.pem, from the SPKI DER bytes
set -eu
dir=$1
rm -rf "$dir"
mkdir -p "$dir"
cd "$dir"
umask 077

b64url() { base64 -w0 | tr '+/' '-_' | tr -d '='; }

openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out rsa.pem 2>/dev/null
openssl pkey -in rsa.pem -pubout -out rsa_pub.pem
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out rsa2.pem 2>/dev/null
openssl pkey -in rsa2.pem -pubout -out rsa2_pub.pem
openssl rsa -in rsa.pem -traditional -out rsa_trad.pem 2>/dev/null
openssl rsa -in rsa.pem -pubout -RSAPublicKey_out -out rsa_pub_pkcs1.pem 2>/dev/null
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:1024 -out rsa1024.pem 2>/dev/null
openssl pkey -in rsa1024.pem -pubout -out rsa1024_pub.pem

openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out ec.pem
openssl pkey -in ec.pem -pubout -out ec_pub.pem
openssl ecparam -name prime256v1 -genkey -out ec_sec1.pem          # EC PARAMETERS + EC PRIVATE KEY
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-384 -out p384.pem
openssl pkey -in p384.pem -pubout -out p384_pub.pem
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -aes256 -pass pass:x -out ec_enc.pem
openssl ec -in ec.pem -aes256 -passout pass:x -out ec_enc_trad.pem 2>/dev/null
openssl genpkey -algorithm ED25519 -out ed25519.pem
openssl pkey -in ed25519.pem -pubout -out ed25519_pub.pem
printf 'this is not a key\n' > garbage.pem
printf -- '-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n' > bad_pub.pem

# HS256 secrets: 40 bytes with surrounding whitespace, and one too short.
printf '  0123456789abcdefghij0123456789ABCDEFGHIJ \n' > secret.txt
printf 'short-secret\n' > short_secret.txt

# JWKS: n and e from the CLI, not from gwcrypto.
n=$(openssl rsa -in rsa.pem -noout -modulus | sed 's/^Modulus=//' | xxd -r -p | b64url)
e=$(printf '%06x' 65537 | xxd -r -p | b64url)
cat > jwks.json <<JSON
{"keys":[
 {"kty":"EC","kid":"ec1","crv":"P-256","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tvf5BQM6h8P5zCL5-4JmZ5FP5QsU"},
 {"kty":"RSA","kid":"k1","use":"sig","alg":"RS256","n":"$n","e":"$e"}
]}
JSON
cat > jwks_ec_only.json <<JSON
{"keys":[{"kty":"EC","kid":"ec1","crv":"P-256","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tvf5BQM6h8P5zCL5-4JmZ5FP5QsU"}]}
JSON
printf '{"keys":[{"kty":"RSA","kid":"k1",' > jwks_bad.json
n_small=$(openssl rsa -in rsa1024.pem -noout -modulus | sed 's/^Modulus=//' | xxd -r -p | b64url)
printf '{"keys":[{"kty":"RSA","kid":"small","n":"%s","e":"%s"}]}\n' "$n_small" "$e" > jwks_small.json

# RFC 7638 thumbprint of ec.pem: the SPKI DER ends with 04||X||Y.
openssl pkey -in ec.pem -pubout -outform DER -out ec_pub.der
x=$(tail -c 64 ec_pub.der | head -c 32 | b64url)
y=$(tail -c 32 ec_pub.der | b64url)
printf '{"crv":"P-256","kty":"EC","x":"%s","y":"%s"}' "$x" "$y" |
	openssl dgst -sha256 -binary | b64url > ec.thumb
