# Sourced by the benchmark scripts: installs what they compare against
# and starts it.
#
#   install_qemu       Debian 12's QEMU 7.2 (qemu-system-x86, qemu-utils).
#                      A machine that carries qemu-utils 10 from backports
#                      blocks it, so the packages are pinned to the version
#                      of qemu-system-common that apt offers.
#   start_libvirtd DIR libvirtd 9.0 with QEMU, in its own mount namespace
#                      whose /etc/libvirt, /run/libvirt, /var/lib/libvirt,
#                      /var/cache/libvirt and /var/log/libvirt are
#                      directories under DIR; no polkit, cgroups, security
#                      driver or autostarted networks, QEMU run as root.
#                      Sets LIBVIRTD_URI and LIBVIRTD_PID.
#   stop_libvirtd      Destroys its guests and stops it.
#   find_vmm           Sets `vmm`: $OXVIRT_VMM, else the release build,
#                      built or refreshed first when cargo is there (a stale
#                      one would be measured as it is), else the debug build
#                      (under $CARGO_TARGET_DIR or target/).
#   median             The median of the numbers on stdin, one a line.

install_qemu() {
    command -v qemu-system-x86_64 >/dev/null && command -v qemu-img >/dev/null &&
        qemu-system-x86_64 --version >/dev/null 2>&1 && return 0
    . "$(dirname "${BASH_SOURCE[0]}")/../lib/apt.sh"
    apt_install_pinned_qemu qemu-system-x86 >/dev/null
}

install_libvirtd() {
    install_qemu
    command -v libvirtd >/dev/null && [ -e /usr/lib/x86_64-linux-gnu/libvirt/connection-driver/libvirt_driver_qemu.so ] &&
        return 0
    # No daemon may start from the package scripts on a machine without
    # systemd, and the real libvirt must not take /run/libvirt.
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
    chmod 755 /usr/sbin/policy-rc.d
    . "$(dirname "${BASH_SOURCE[0]}")/../lib/apt.sh"
    apt_install_pinned_qemu libvirt-daemon libvirt-daemon-driver-qemu libvirt-clients >/dev/null
    rm -f /usr/sbin/policy-rc.d
}

start_libvirtd() {
    local dir=$1
    install_libvirtd
    mkdir -p "$dir"/{etc,run,lib,cache,log} "$dir"/lib/qemu "$dir"/cache/qemu "$dir"/log/qemu
    [ -d /etc/libvirt ] && cp -a /etc/libvirt/. "$dir/etc/" 2>/dev/null
    rm -f "$dir"/etc/qemu/networks/autostart/*.xml "$dir"/etc/storage/autostart/*.xml \
        "$dir"/etc/qemu/autostart/*.xml
    cat >>"$dir/etc/libvirtd.conf" <<'CONF'
unix_sock_group = "root"
unix_sock_ro_perms = "0777"
unix_sock_rw_perms = "0700"
auth_unix_ro = "none"
auth_unix_rw = "none"
log_outputs = "3:file:/var/log/libvirt/libvirtd.log"
CONF
    cat >>"$dir/etc/qemu.conf" <<'CONF'
user = "root"
group = "root"
dynamic_ownership = 0
remember_owner = 0
security_driver = "none"
namespaces = [ ]
cgroup_controllers = [ ]
stdio_handler = "file"
CONF
    mkdir -p /etc/libvirt /run/libvirt /var/lib/libvirt /var/cache/libvirt /var/log/libvirt
    # libvirtd double-forks QEMU; a subreaper reaps those orphans at once
    # (PID 1 here reaps only every couple of seconds, which would slow
    # every destroy).
    cat >"$dir/in-ns.sh" <<SH
#!/bin/sh
set -e
mount --make-rprivate /
for d in etc:/etc/libvirt run:/run/libvirt lib:/var/lib/libvirt cache:/var/cache/libvirt log:/var/log/libvirt; do
    mount --bind "$dir/\${d%%:*}" "\${d#*:}"
done
exec /usr/bin/python3 -c '
import ctypes, os, sys
ctypes.CDLL(None).prctl(36, 1, 0, 0, 0)
if os.fork() == 0:
    os.execv(sys.argv[1], sys.argv[1:])
while True:
    try:
        os.wait()
    except ChildProcessError:
        break
' "$(command -v libvirtd || echo /usr/sbin/libvirtd)" --pid-file /run/libvirt/libvirtd.pid
SH
    chmod 755 "$dir/in-ns.sh"
    setsid unshare --mount --propagation private "$dir/in-ns.sh" >"$dir/log/stdout" 2>&1 </dev/null &
    for _ in $(seq 200); do
        [ -S "$dir/run/libvirt-sock" ] && [ -s "$dir/run/libvirtd.pid" ] && break
        sleep 0.05
    done
    LIBVIRTD_PID=$(cat "$dir/run/libvirtd.pid" 2>/dev/null)
    LIBVIRTD_URI="qemu:///system?socket=$dir/run/libvirt-sock"
    LIBVIRTD_DIR=$dir
    virsh -c "$LIBVIRTD_URI" version >/dev/null
}

stop_libvirtd() {
    [ -n "${LIBVIRTD_PID:-}" ] || return 0
    local d
    for d in $(virsh -c "$LIBVIRTD_URI" list --name 2>/dev/null); do
        virsh -c "$LIBVIRTD_URI" destroy "$d" >/dev/null 2>&1
    done
    kill "$LIBVIRTD_PID" 2>/dev/null
    for _ in $(seq 100); do kill -0 "$LIBVIRTD_PID" 2>/dev/null || break; sleep 0.05; done
    LIBVIRTD_PID=
}

find_vmm() {
    vmm=${OXVIRT_VMM:-}
    [ -n "$vmm" ] && return 0
    local top c
    top=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
    if command -v cargo >/dev/null; then
        (cd "$top" && cargo build -q --release --bin oxvirt-vmm) || exit 1
    fi
    for c in "${CARGO_TARGET_DIR:-$top/target}/release/oxvirt-vmm" \
             "${CARGO_TARGET_DIR:-$top/target}/debug/oxvirt-vmm"; do
        [ -x "$c" ] && vmm=$c && return 0
    done
    echo "$(basename "$0"): build oxvirt-vmm first" >&2
    exit 1
}

median() { sort -g | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2}'; }
