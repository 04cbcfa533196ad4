#!/usr/bin/env bash
# deb.sh BUILD_DIR SOURCE_DIR - the Debian package as an admin gets it
# (issue 14, "Packaging"): cpack builds notify-gateway_<version>_amd64.deb
# with dependencies from dpkg-shlibdeps and the conffiles; it unpacks
# (dpkg -x) into a throwaway root whose binary runs --version and serves the
# packaged web demo; both man pages render without a warning; lintian reports
# no error. Prints lintian's whole output.
set -euo pipefail
build=$1 src=$2
tmp=$(mktemp -d /tmp/ngw-deb-XXXXXX)
pid=
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null; rm -rf "$tmp"; }
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

version=$(sed -n 's/^project(notify-gateway VERSION \([0-9.]*\).*/\1/p' "$src/CMakeLists.txt")
[ -n "$version" ] || fail "no version in CMakeLists.txt"
(cd "$build" && cpack -G DEB -B "$tmp/out" >"$tmp/cpack.log" 2>&1) || { cat "$tmp/cpack.log"; fail "cpack"; }
deb="$tmp/out/notify-gateway_${version}_amd64.deb"
[ -f "$deb" ] || { ls "$tmp/out"; fail "no $deb"; }
echo "built $(basename "$deb") ($(stat -c %s "$deb") bytes)"

depends=$(dpkg-deb -f "$deb" Depends)
echo "Depends: $depends"
for lib in libc6 libjansson4 libssl3 libwebsockets17 libyaml-0-2 libsystemd0; do
	grep -q "$lib" <<<"$depends" || fail "Depends lacks $lib (dpkg-shlibdeps)"
done
dpkg-deb --ctrl-tarfile "$deb" | tar -xO ./conffiles >"$tmp/conffiles"
grep -qx /etc/notify-gateway/config.yml "$tmp/conffiles" || fail "config.yml is not a conffile"
grep -qx /etc/notify-gateway/rules.yml "$tmp/conffiles" || fail "rules.yml is not a conffile"

root=$tmp/root
dpkg -x "$deb" "$root"
for f in usr/bin/notify-gateway etc/notify-gateway/config.yml etc/notify-gateway/rules.yml \
	lib/systemd/system/notify-gateway.service usr/lib/sysusers.d/notify-gateway.conf \
	usr/share/man/man1/notify-gateway.1.gz usr/share/man/man5/notify-gateway-rules.5.gz \
	usr/share/notify-gateway/web-demo/index.html usr/share/doc/notify-gateway/copyright; do
	[ -e "$root/$f" ] || fail "the package lacks /$f"
done
out=$("$root/usr/bin/notify-gateway" --version)
[ "$out" = "notify-gateway $version" ] || fail "--version said '$out'"
echo "$out"

# The unpacked binary finds its web demo relative to itself (no web_root).
"$root/usr/bin/notify-gateway" --listen 127.0.0.1:0 --state-dir "$tmp/state" >"$tmp/gw.out" 2>"$tmp/gw.err" &
pid=$!
for _ in $(seq 100); do grep -q 'listening on' "$tmp/gw.out" && break; sleep 0.05; done
port=$(sed -n 's#.*listening on http://127.0.0.1:\([0-9]*\).*#\1#p' "$tmp/gw.out")
[ -n "$port" ] || { cat "$tmp/gw.err"; fail "the unpacked binary did not start"; }
curl -fsS "http://127.0.0.1:$port/" -o "$tmp/index.html" || fail "GET / from the unpacked binary"
cmp -s "$tmp/index.html" "$root/usr/share/notify-gateway/web-demo/index.html" || fail "/ is not the packaged index.html"
kill "$pid"; wait "$pid" || true; pid=

for page in man1/notify-gateway.1.gz man5/notify-gateway-rules.5.gz; do
	text=$(MANWIDTH=80 man --warnings -l "$root/usr/share/man/$page" 2>"$tmp/man.err")
	[ ! -s "$tmp/man.err" ] || { cat "$tmp/man.err"; fail "man -l $page warns"; }
	grep -q "^NAME" <<<"$text" || fail "man -l $page rendered no NAME section"
	echo "man -l $page: $(wc -l <<<"$text") lines"
done

lintian --tag-display-limit 0 "$deb" >"$tmp/lintian" 2>&1 || true
grep -v 'running with root privileges' "$tmp/lintian" || true
echo "lintian: $(grep -c '^E:' "$tmp/lintian" || true) errors, $(grep -c '^W:' "$tmp/lintian" || true) warnings"
grep -q '^E:' "$tmp/lintian" && fail "lintian reports errors"
echo "ok"
