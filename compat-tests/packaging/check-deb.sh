#!/bin/bash
# Builds the oxvirt .deb with dpkg-buildpackage and checks it: the file
# list against expected-files.txt, lintian (no errors; every warning
# explained in packaging/LINTIAN.md) and systemd-analyze verify on the
# shipped units. The .deb is left in $OXVIRT_DEB_DIR (default
# /var/tmp/oxvirt-deb) for install-test.sh.
#
#   compat-tests/packaging/check-deb.sh [--no-build]
#
# Needs: debhelper, lintian, systemd (for systemd-analyze), a Rust
# toolchain (cargo on PATH).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
src=$(cd "$here/../.." && pwd)
out=${OXVIRT_DEB_DIR:-/var/tmp/oxvirt-deb}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$src/target}
build=1
[ "${1:-}" = --no-build ] && build=0

fail=0
bad() { echo "FAIL: $*"; fail=1; }
step() { echo "== $*"; }

version=$(dpkg-parsechangelog -l "$src/debian/changelog" -S Version)
arch=$(dpkg --print-architecture)
deb="$out/oxvirt_${version}_${arch}.deb"
mkdir -p "$out"

if [ $build = 1 ]; then
    step "dpkg-buildpackage -b -us -uc"
    t0=$(date +%s)
    (cd "$src" && dpkg-buildpackage -b -us -uc) >"$out/build.log" 2>&1 || {
        tail -40 "$out/build.log"; echo "FAIL: package build (log: $out/build.log)"; exit 1; }
    # dpkg-buildpackage writes next to the source tree.
    for f in "$src"/../oxvirt_"${version}"_"${arch}".{deb,buildinfo,changes}; do
        [ -e "$f" ] && mv -f "$f" "$out/"
    done
    (cd "$src" && debian/rules clean) >/dev/null 2>&1 || true
    echo "built $deb in $(( $(date +%s) - t0 ))s"
fi
[ -f "$deb" ] || { echo "FAIL: no $deb"; exit 1; }

step "file list"
dpkg-deb -c "$deb" | awk '{print $6}' | sed 's|^\.||' | grep -v '/$' | sort >"$out/files.txt"
# Directories we want are listed with a trailing slash.
dpkg-deb -c "$deb" | awk '{print $6}' | sed 's|^\.||' | grep '/$' | sort >"$out/dirs.txt"
while read -r want; do
    case "$want" in ''|'#'*) continue ;; esac
    opt=0
    [ "${want#\?}" != "$want" ] && { opt=1; want=${want#\?}; }
    if [ "${want%/}" != "$want" ]; then
        grep -qxF "$want" "$out/dirs.txt" || bad "missing directory $want"
    elif ! grep -qxF "$want" "$out/files.txt"; then
        [ $opt = 1 ] || bad "missing $want"
    fi
done <"$here/expected-files.txt"
while read -r have; do
    grep -qxF -e "$have" -e "?$have" "$here/expected-files.txt" || bad "unexpected file $have"
done <"$out/files.txt"
echo "$(wc -l <"$out/files.txt") files"

step "control fields"
dpkg-deb -f "$deb" Depends Conflicts Replaces Provides
dpkg-deb -I "$deb" | grep -E '^ +(postinst|prerm|postrm|preinst|conffiles)' || true

step "lintian"
lintian --tag-display-limit 0 --display-info "$deb" >"$out/lintian.txt" 2>&1 || true
cat "$out/lintian.txt"
if grep -q '^E: ' "$out/lintian.txt"; then bad "lintian errors"; fi
for tag in $(grep -E '^(W|I): ' "$out/lintian.txt" | awk '{print $3}' | sort -u); do
    grep -q -- "\`$tag\`" "$src/packaging/LINTIAN.md" || bad "lintian tag $tag is not explained in packaging/LINTIAN.md"
done

step "systemd-analyze verify"
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
dpkg-deb -x "$deb" "$root"
units=("$root"/lib/systemd/system/oxvirtd.service "$root"/lib/systemd/system/oxvirtd.socket "$root"/lib/systemd/system/oxvirtd-ro.socket)
# Verified in the host's unit tree (sysinit.target, /bin/kill, ...). The
# package's own programs are not installed on the build host: a "not
# executable" finding about a file the package ships is expected and
# dropped. Man pages are checked by the file list above.
systemd-analyze verify --man=no "${units[@]}" >"$out/verify.txt" 2>&1 || true
while read -r line; do
    prog=$(echo "$line" | sed -n 's/.*Command \(\/[^ ]*\) is not executable.*/\1/p')
    if [ -n "$prog" ] && [ -x "$root$prog" ]; then continue; fi
    echo "$line"
done <"$out/verify.txt" >"$out/verify-findings.txt"
if [ -s "$out/verify-findings.txt" ]; then
    cat "$out/verify-findings.txt"; bad "systemd-analyze verify findings above"
else
    echo "units verify clean ($(wc -l <"$out/verify.txt") expected line(s) about uninstalled programs)"
fi
systemd-analyze security --offline=true --root="$root" "$root"/lib/systemd/system/oxvirtd.service 2>/dev/null | tail -1 || true

step "D-Bus files"
grep -qx 'SystemdService=oxvirtd.service' "$root"/usr/share/dbus-1/system-services/org.libvirt.service || bad "no SystemdService= in the system activation file"
if command -v xmllint >/dev/null; then
    xmllint --noout "$root"/usr/share/dbus-1/system.d/org.libvirt.conf || bad "bus policy is not well-formed"
fi

if [ $fail = 0 ]; then echo "PASS: $deb"; else echo "FAILED"; exit 1; fi
