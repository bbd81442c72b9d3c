#!/usr/bin/env bash
# Validates every domain of valid/ against libvirt's own schema and against
# oxvirt's schema (xml-schemas/domain.rng), libvirt's canonical form of them
# (libvirt-canonical/) against oxvirt's, and the documents libvirt accepts but
# oxvirt may refuse (virt-install-defaults/, invalid/ox-*) against libvirt's,
# with xmllint. Exits non-zero if any document fails.
#
# Also reports, without failing, which invalid/ documents oxvirt's schema
# already rejects (the others are refused by checks a schema cannot express:
# duplicates, counts that must agree, ...).
#
# LIBVIRT_SCHEMA overrides the path of libvirt's domain.rng.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
libvirt_rng=${LIBVIRT_SCHEMA:-/usr/share/libvirt/schemas/domain.rng}
oxvirt_rng=$root/xml-schemas/domain.rng

command -v xmllint >/dev/null || { echo "xmllint not found (Debian: apt-get install libxml2-utils)" >&2; exit 2; }
[ -r "$libvirt_rng" ] || { echo "$libvirt_rng not found (Debian: apt-get install libvirt0)" >&2; exit 2; }

failed=0
checked=0
validate() { # validate SCHEMA-LABEL SCHEMA FILE
    local out
    if ! out=$(xmllint --noout --relaxng "$2" "$3" 2>&1); then
        echo "FAIL [$1] ${3#"$root"/}"
        printf '%s\n' "$out" | grep -v 'fails to validate$' | head -5 | sed 's/^/    /'
        failed=$((failed + 1))
    fi
}

shopt -s nullglob
for f in "$here"/valid/*.xml; do
    validate libvirt "$libvirt_rng" "$f"
    validate oxvirt "$oxvirt_rng" "$f"
    checked=$((checked + 1))
done
for f in "$here"/libvirt-canonical/*.xml; do
    validate oxvirt "$oxvirt_rng" "$f"
    checked=$((checked + 1))
done
# Valid for libvirt, whatever oxvirt decides about them.
for f in "$here"/virt-install-defaults/*.xml "$here"/invalid/ox-*.xml; do
    validate libvirt "$libvirt_rng" "$f"
    checked=$((checked + 1))
done

rejected=0
total=0
for f in "$here"/invalid/*.xml; do
    total=$((total + 1))
    xmllint --noout --relaxng "$oxvirt_rng" "$f" >/dev/null 2>&1 || rejected=$((rejected + 1))
done

echo "$checked documents checked, $failed schema failures"
echo "oxvirt's schema rejects $rejected of $total invalid/ documents"
[ "$failed" -eq 0 ]
