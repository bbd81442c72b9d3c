#!/bin/bash
# Ansible's community.libvirt modules (virt, virt_pool, virt_net), the real
# ones from Debian's `ansible` package, against a private oxvirtd.
#
# What it starts, all in a temp dir ($tmp) and all ended on exit:
#   - a private dbus-daemon (session bus) and oxvirtd on it, with its
#     config/run/state dirs in $tmp and its RPC socket at $tmp/libvirt-sock;
#   - ansible-playbook on a local inventory (connection: local), the modules
#     given uri=qemu+unix:///system?socket=$tmp/libvirt-sock, running
#     virt.yml (the freestanding test guest from define to undefine),
#     virt_pool.yml (a dir pool in $tmp) and virt_net.yml (a NAT network:
#     the whole run is in a network namespace of its own).
# Each check prints "PASS name" or "FAIL name: why" (the module's error
# follows, indented); the oxcheck callback in callback_plugins/ makes the
# lines. The last line is "N passed, M failed"; it exits 1 when a check
# failed.
#
# usage: compat-tests/ansible/run.sh
# environment:
#   OXVIRTD            the daemon (default target/debug/oxvirtd; oxvirt-vmm
#                      is taken from beside it)
#   CI=true            a missing prerequisite fails the test instead of
#                      skipping it (exit 77)
#   ANSIBLE_NO_INSTALL=1  do not apt-get install missing packages
#   KEEP=1             keep $tmp (logs, the XML given to the modules)
# needs: /dev/kvm, dbus-daemon, the Debian packages ansible (which carries
#   community.libvirt), python3-libvirt and python3-lxml (installed with apt
#   when missing), gcc and make for the test guest.
set -u
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
. "$top/compat-tests/lib/private-run.sh"
target=${CARGO_TARGET_DIR:-$top/target}
OXVIRTD=${OXVIRTD:-$target/debug/oxvirtd}
KERNEL=$top/compat-tests/guest/out/testos.elf
EXAMPLE=$top/compat-tests/examples/testos-domain.xml
PY=/usr/bin/python3
COLL=/usr/lib/python3/dist-packages/ansible_collections/community/libvirt

missing() { # a prerequisite is not there: skip, or fail under CI
    if [ "${CI:-}" = true ]; then
        echo "FAIL prerequisites: $1"
        echo "0 passed, 1 failed"
        exit 1
    fi
    echo "SKIP: $1"
    exit 77
}

# --- packages
need_pkgs=()
for p in ansible:$COLL/plugins/modules/virt_pool.py ansible-core:/usr/bin/ansible-playbook \
    python3-libvirt:/usr/lib/python3/dist-packages/libvirt.py \
    python3-lxml:/usr/lib/python3/dist-packages/lxml/etree.py dbus-daemon:/usr/bin/dbus-daemon; do
    ls ${p#*:}* >/dev/null 2>&1 || need_pkgs+=("${p%%:*}")
done
if [ ${#need_pkgs[@]} -gt 0 ] && [ "${ANSIBLE_NO_INSTALL:-}" != 1 ] && [ "$(id -u)" = 0 ]; then
    echo "# installing ${need_pkgs[*]}"
    export DEBIAN_FRONTEND=noninteractive
    . "$top/compat-tests/lib/apt.sh"
    apt_install "${need_pkgs[@]}" >/tmp/oxvirt-ansible-apt.log 2>&1 ||
        { tail -20 /tmp/oxvirt-ansible-apt.log; missing "apt-get install ${need_pkgs[*]} failed"; }
fi
# The daemon makes virt_net's bridge, dnsmasq and firewall table: all of
# it stays in a network namespace of this run, entered once the packages
# are in (apt needs the host's network).
if [ -z "${OX_ANSIBLE_NS:-}" ] && [ "$(id -u)" = 0 ]; then
    exec env OX_ANSIBLE_NS=1 unshare --net --mount --propagation private "$0" "$@"
fi
[ -n "${OX_ANSIBLE_NS:-}" ] && ip link set lo up
for need in ansible-playbook dbus-daemon "$COLL/plugins/modules/virt.py" "$OXVIRTD" /dev/kvm; do
    command -v "$need" >/dev/null 2>&1 || [ -e "$need" ] || missing "$need is missing"
done
$PY -c 'import libvirt, lxml.etree' 2>/dev/null || missing "python3-libvirt or python3-lxml is missing"
[ -x "$(dirname "$OXVIRTD")/oxvirt-vmm" ] || missing "oxvirt-vmm is not beside $OXVIRTD"
if [ ! -f "$KERNEL" ]; then
    make -s -C "$top/compat-tests/guest/testos" >/dev/null 2>&1 || missing "cannot build $KERNEL"
fi

# --- temp dir, cleanup
tmp=$(mktemp -d /tmp/oxvirt-ansible-XXXXXX)
sock=$tmp/libvirt-sock
U="qemu+unix:///system?socket=$sock"
pids=() # started here, killed in reverse order
fails=0
passes=0
cleanup() {
    trap - EXIT INT TERM
    # Guests outlive their daemon by design: stop them while it runs.
    if [ -S "$sock" ]; then
        timeout 20 $PY - "$U" <<'PYEOF' >/dev/null 2>&1
import sys, libvirt
c = libvirt.open(sys.argv[1])
for d in c.listAllDomains(libvirt.VIR_CONNECT_LIST_DOMAINS_ACTIVE):
    d.destroy()
PYEOF
    fi
    local i
    for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
        kill "${pids[i]}" 2>/dev/null
    done
    wait 2>/dev/null
    # Anything left that this run started names $tmp on its command line
    # (a VMM whose daemon is gone).
    local p
    for p in /proc/[0-9]*; do
        p=${p#/proc/}
        [ "$p" = $$ ] && continue
        if tr '\0' '\n' <"/proc/$p/cmdline" 2>/dev/null | grep -qF -- "$tmp"; then
            kill -9 "$p" 2>/dev/null
        fi
    done
    if [ "${KEEP:-}" = 1 ]; then echo "# kept $tmp"; else rm -rf "$tmp"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

setup_fail() {
    echo "FAIL setup: $1"
    echo "0 passed, 1 failed"
    exit 1
}

# --- private bus and oxvirtd
start_private_bus "$tmp"
[ -s "$tmp/bus" ] || setup_fail "dbus-daemon did not start"
"$OXVIRTD" --bus-address "$(head -1 "$tmp/bus")" \
    --config-dir "$tmp/config" --run-dir "$tmp/run" --state-dir "$tmp/state" \
    --rpc-socket "$sock" --rpc-socket-ro "$sock-ro" >"$tmp/oxvirtd.log" 2>&1 &
daemon=$!
pids+=($daemon)
for _ in $(seq 100); do [ -S "$sock" ] && break; sleep 0.1; done
[ -S "$sock" ] || setup_fail "oxvirtd did not start: $(tail -3 "$tmp/oxvirtd.log")"

# The domain: testos-domain.xml with this run's guest, name and console log.
# The guest waits for the power button (oxtest.then=powerbutton), so
# state=shutdown has something to do.
sed -e "s|<name>testos</name>|<name>testos-ansible</name>|" \
    -e "s|/usr/share/oxvirt/testos.elf|$KERNEL|" \
    -e "s|CONSOLE_LOG|$tmp/console.log|" "$EXAMPLE" >"$tmp/domain.xml"

# --- ansible, kept to this run's files
export ANSIBLE_CONFIG=$tmp/ansible.cfg ANSIBLE_HOME=$tmp/ansible-home
export ANSIBLE_LOCAL_TEMP=$tmp/ansible-local ANSIBLE_REMOTE_TEMP=$tmp/ansible-remote
export ANSIBLE_STDOUT_CALLBACK=oxcheck ANSIBLE_CALLBACK_PLUGINS=$here/callback_plugins
export ANSIBLE_NOCOLOR=1 ANSIBLE_RETRY_FILES_ENABLED=0 ANSIBLE_DEPRECATION_WARNINGS=0
export ANSIBLE_LOCALHOST_WARNING=0 ANSIBLE_SYSTEM_WARNINGS=0
printf '[defaults]\n' >"$ANSIBLE_CONFIG"

timeout 900 ansible-playbook -i "$here/inventory" \
    -e "uri=$U" -e "domain_xml=$tmp/domain.xml" -e "console_log=$tmp/console.log" \
    -e "kernel=$KERNEL" -e "pool_dir=$tmp/pool" \
    "$here/virt.yml" "$here/virt_pool.yml" "$here/virt_net.yml" 2>&1 | tee "$tmp/ansible.out"
rc=${PIPESTATUS[0]}
passes=$(grep -c '^PASS ' "$tmp/ansible.out")
fails=$(grep -c '^FAIL ' "$tmp/ansible.out")
if [ "$rc" != 0 ]; then
    echo "FAIL ansible-playbook: exit $rc"
    fails=$((fails + 1))
fi
# Setup lines the callback does not own (warnings, errors) are shown as is
# by tee above; the daemon must have lived through it all.
if kill -0 "$daemon" 2>/dev/null; then
    echo "PASS oxvirtd: still running"
    passes=$((passes + 1))
else
    echo "FAIL oxvirtd: exited; last log lines:"
    tail -5 "$tmp/oxvirtd.log" | sed 's/^/       | /'
    fails=$((fails + 1))
fi
echo "$passes passed, $fails failed"
[ "$fails" = 0 ]
