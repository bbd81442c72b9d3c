#!/bin/bash
# Every domain in libvirt 9.0's own test corpus (qemuxml2argvdata,
# qemuxml2xmloutdata, genericxml2xmlindata) that libvirt's schema accepts
# and oxvirt-xml formats must still validate against libvirt's schema
# after formatting: oxvirt keeps or refuses what it does not model, it
# never drops part of an element and leaves invalid XML.
#
# The corpus comes from Debian's libvirt source package, fetched once
# into $OXVIRT_SRC_CACHE (default /var/cache/oxvirt-src).
#
# usage: compat-tests/xml/libvirt-test-corpus.sh [path/to/oxvirt-xml]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
XMLTOOL=${1:-${CARGO_TARGET_DIR:-$top/target}/debug/oxvirt-xml}
cache=${OXVIRT_SRC_CACHE:-/var/cache/oxvirt-src}
rng=/usr/share/libvirt/schemas/domain.rng
src=$cache/libvirt-9.0.0

if [ ! -d "$src/tests/qemuxml2argvdata" ]; then
    mkdir -p "$cache"
    lists=$(mktemp -d)
    mkdir -p "$lists/lists/partial" "$lists/parts"
    for f in /etc/apt/sources.list.d/*.sources; do
        [ -e "$f" ] && sed 's/^Types: deb$/Types: deb-src/' "$f" >"$lists/parts/${f##*/}"
    done
    if [ -e /etc/apt/sources.list ]; then
        sed -n 's/^deb /deb-src /p' /etc/apt/sources.list >"$lists/parts/main.list"
    fi
    o=(-oDir::Etc::SourceList=/dev/null "-oDir::Etc::SourceParts=$lists/parts" "-oDir::State::Lists=$lists/lists")
    apt-get "${o[@]}" update -qq
    (cd "$cache" && apt-get "${o[@]}" source --download-only -qq libvirt=9.0.0-4+deb12u2 2>/dev/null ||
        apt-get "${o[@]}" source --download-only -qq libvirt)
    tar -C "$cache" -xJf "$cache"/libvirt_9.0.0.orig.tar.xz libvirt-9.0.0/tests
    rm -rf "$lists"
fi

checked=0
bad=0
out=$(mktemp)
trap 'rm -f "$out"' EXIT
for f in "$src"/tests/qemuxml2argvdata/*.xml "$src"/tests/qemuxml2xmloutdata/*.xml \
    "$src"/tests/genericxml2xmlindata/*.xml; do
    xmllint --noout --relaxng "$rng" "$f" 2>/dev/null || continue
    "$XMLTOOL" format "$f" >"$out" 2>/dev/null || continue
    checked=$((checked + 1))
    if ! xmllint --noout --relaxng "$rng" "$out" 2>/dev/null; then
        bad=$((bad + 1))
        echo "FAIL - ${f#"$src"/}: formatted XML fails libvirt's schema"
    fi
done
echo "libvirt test corpus: $((checked - bad)) passed, $bad failed"
[ "$checked" -gt 500 ] || { echo "too few documents checked ($checked)"; exit 1; }
[ "$bad" = 0 ]
