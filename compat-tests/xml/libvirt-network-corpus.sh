#!/bin/bash
# libvirt 9.0's own network test corpus, against oxvirt:
#  - networkxml2xml: every input formatted by oxvirt-xml must equal
#    libvirt's expected output byte for byte, and validate against
#    libvirt's network.rng;
#  - networkxml2conf: the dnsmasq configuration (and DHCP hosts file)
#    oxvirt writes for each network must equal libvirt's.
#
# The corpus comes from Debian's libvirt source package (fetched by
# libvirt-test-corpus.sh into $OXVIRT_SRC_CACHE).
#
# usage: compat-tests/xml/libvirt-network-corpus.sh [path/to/oxvirt-xml]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
XMLTOOL=${1:-${CARGO_TARGET_DIR:-$top/target}/debug/oxvirt-xml}
src=${OXVIRT_SRC_CACHE:-/var/cache/oxvirt-src}/libvirt-9.0.0/tests
rng=/usr/share/libvirt/schemas/network.rng
[ -d "$src/networkxml2xmlin" ] || "$here/libvirt-test-corpus.sh" "$XMLTOOL" >/dev/null

out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
pass=0
fail=0
for f in "$src"/networkxml2xmlin/*.xml; do
    b=${f##*/}
    want=$src/networkxml2xmlout/$b
    [ -f "$want" ] || continue
    if ! "$XMLTOOL" format-network "$f" >"$out/got.xml" 2>"$out/err"; then
        fail=$((fail + 1))
        echo "FAIL - networkxml2xml/$b: $(cat "$out/err")"
    elif ! cmp -s "$out/got.xml" "$want"; then
        fail=$((fail + 1))
        echo "FAIL - networkxml2xml/$b differs from libvirt's:"
        diff "$out/got.xml" "$want" | head -10
    elif ! xmllint --noout --relaxng "$rng" "$out/got.xml" 2>/dev/null; then
        fail=$((fail + 1))
        echo "FAIL - networkxml2xml/$b: fails network.rng"
    else
        pass=$((pass + 1))
    fi
done
for f in "$src"/networkxml2confdata/*.xml; do
    b=${f##*/}
    b=${b%.xml}
    if ! "$XMLTOOL" dnsmasq-conf --hostsfile "$f" >"$out/got" 2>"$out/err"; then
        fail=$((fail + 1))
        echo "FAIL - networkxml2conf/$b: $(cat "$out/err")"
        continue
    fi
    sed '/^--- hostsfile$/,$d' "$out/got" >"$out/got.conf"
    sed '1,/^--- hostsfile$/d' "$out/got" >"$out/got.hosts"
    wanthosts=$src/networkxml2confdata/$b.hostsfile
    if ! cmp -s "$out/got.conf" "$src/networkxml2confdata/$b.conf"; then
        fail=$((fail + 1))
        echo "FAIL - networkxml2conf/$b.conf differs from libvirt's:"
        diff "$out/got.conf" "$src/networkxml2confdata/$b.conf" | head -10
    elif [ -f "$wanthosts" ] && ! cmp -s "$out/got.hosts" "$wanthosts"; then
        fail=$((fail + 1))
        echo "FAIL - networkxml2conf/$b.hostsfile differs from libvirt's:"
        diff "$out/got.hosts" "$wanthosts" | head -10
    else
        pass=$((pass + 1))
    fi
done
echo "libvirt network corpus: $pass passed, $fail failed"
[ "$pass" -gt 60 ] || { echo "too few documents checked ($pass)"; exit 1; }
[ "$fail" = 0 ]
