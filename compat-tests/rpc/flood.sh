#!/bin/bash
# An unprivileged local user floods oxvirtd's read-only socket: hundreds
# of connections held open, some sending a message that never ends. root's
# virsh on the read-write socket must still answer, the daemon's memory
# must stay bounded by max_clients, and the user's connections beyond it
# wait in the socket's queue (max_queued_clients), beyond which the kernel
# refuses them. Prints the daemon's memory before and during the
# flood and how long root's call took (figures, not checks).
#
# usage: compat-tests/rpc/flood.sh     (OXVIRTD=path to override the daemon)
# needs: root, setpriv, python3, virsh, dbus-daemon
set -u
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
OXVIRTD=${OXVIRTD:-${CARGO_TARGET_DIR:-$top/target}/debug/oxvirtd}
. "$top/compat-tests/lib/private-run.sh"
skip_unless_present setpriv /usr/bin/python3 virsh dbus-daemon "$OXVIRTD"
[ "$(id -u)" = 0 ] || { echo "SKIP: needs root"; exit 77; }

tmp=$(mktemp -d /tmp/oxvirt-flood-XXXXXX)
# The user must reach the read-only socket, as on a host.
chmod 755 "$tmp"
sock=$tmp/libvirt-sock
U="qemu+unix:///system?socket=$sock"
fails=0
pids=()
trap 'kill_pids_reverse; stop_pids_and_remove "$tmp"' EXIT
. "$here/lib.sh"

max=50
queue=20
printf 'max_clients = %d\nmax_queued_clients = %d\n' $max $queue >"$tmp/oxvirtd.conf"
start_private_bus "$tmp"
start_oxvirtd --config "$tmp/oxvirtd.conf"
chmod 666 "$sock-ro"
rss() { awk '/^VmRSS/ {print $2}' "/proc/$daemon/status"; }
before=$(rss)

: >"$tmp/flood.out"
chown nobody "$tmp/flood.out"
# The user: 400 connection attempts that do not wait, each fourth sending
# half a message, held until told to go; writes how many the socket took
# and how many of those the daemon answers (one call each, the others
# wait in the queue).
setpriv --reuid=nobody --regid=nogroup --clear-groups /usr/bin/python3 - "$sock-ro" "$tmp/flood.out" <<'PY' &
import os, socket, struct, sys, time
path, out = sys.argv[1], sys.argv[2]
held, refused = [], 0
for i in range(400):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.setblocking(False)
    try:
        s.connect(path)
    except BlockingIOError:
        refused += 1                     # the queue is full
        s.close()
        continue
    if i % 4 == 0:
        s.send(b"\x00\x00\x10")        # the start of a length word, no more
    else:
        # AUTH_LIST, answered only once the daemon accepted the connection
        s.send(struct.pack(">7I", 28, 0x20008086, 1, 66, 0, 0, 0))
    held.append(s)
time.sleep(1)
answered = 0
for s in held:
    try:
        answered += len(s.recv(4)) > 0
    except BlockingIOError:
        pass
with open(out, "w") as f:
    f.write("%d %d %d\n" % (len(held), refused, answered))
time.sleep(30)
PY
flood=$!
pids+=($flood)
for _ in $(seq 100); do [ -s "$tmp/flood.out" ] && break; sleep 0.1; done
read -r opened refused answered <"$tmp/flood.out" || { opened=0; refused=0; answered=0; }
during=$(rss)
t0=$(date +%s%N)
expect root-not-locked-out 0 '^ Id   Name   State$' -- list --all
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
echo "# the user tried 400 connections: the sockets took $opened ($answered answered), refused $refused (max_clients $max, max_queued_clients $queue)"
echo "# daemon RSS: ${before} KiB before, ${during} KiB during the flood; root's virsh list: ${ms} ms"
# Served: at most max_clients; waiting: at most the queue (Linux admits
# one more); the rest refused by the kernel, none left to the daemon.
if [ "$answered" -ge 1 ] && [ "$answered" -le $max ] && [ "$opened" -le $((max + queue + 1)) ] \
    && [ $((opened + refused)) = 400 ]; then
    pass flood-beyond-max-queued-then-refused
else
    fail "flood-beyond-max-queued-then-refused ($opened taken, $answered answered, $refused refused)"
fi
# Memory stays within what max_clients clients may take (well under
# 64 KiB each here).
if [ "$during" -lt $((before + max * 64)) ]; then pass flood-memory-bounded; else fail "flood-memory-bounded ($before -> $during KiB)"; fi
kill "$flood" 2>/dev/null
wait "$flood" 2>/dev/null
sleep 0.5
if U="qemu+unix:///system?socket=$sock-ro" setpriv --reuid=nobody --regid=nogroup --clear-groups \
    virsh -c "qemu+unix:///system?socket=$sock-ro" -r list --all >"$tmp/ro.out" 2>&1; then
    pass user-served-again
else
    fail user-served-again; sed 's/^/       | /' "$tmp/ro.out"
fi
check_alive() { kill -0 "$daemon" 2>/dev/null; }
if check_alive; then pass daemon-alive; else fail daemon-alive; fi

echo "flood: $passes passed, $fails failed"
[ "$fails" = 0 ]
