# Shared by the compat tests and benchmarks that run oxvirtd privately:
# the tool check, the private session bus and the tear-down. Callers keep
# the pids of what they start, in start order, in the array `pids`.

# skip_unless_present TOOL-OR-PATH...: exits 77 (skipped) naming the first
# one that is neither a command nor a file.
skip_unless_present() {
    local need
    for need in "$@"; do
        if ! command -v "$need" >/dev/null 2>&1 && [ ! -e "$need" ]; then
            echo "SKIP: $need is missing"
            exit 77
        fi
    done
}

# start_private_bus DIR [LOG]: a session dbus-daemon that writes its
# address to DIR/bus (empty if it did not come up within 5 s).
start_private_bus() {
    local dir=$1 log=${2:-/dev/null}
    dbus-daemon --session --print-address=3 --nofork --nopidfile 3>"$dir/bus" >"$log" 2>&1 &
    pids+=($!)
    for _ in $(seq 50); do [ -s "$dir/bus" ] && break; sleep 0.1; done
}

# stop_pids_and_remove DIR: kills everything in `pids`, waits, removes DIR.
stop_pids_and_remove() {
    local p
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
    wait 2>/dev/null
    rm -rf "$1"
}

# destroy_running_guests SOCK URI: guests outlive their daemon by design,
# so they are stopped while it still runs.
destroy_running_guests() {
    local d
    if [ -S "$1" ]; then
        for d in $(timeout 10 virsh -c "$2" list --name 2>/dev/null); do
            timeout 10 virsh -c "$2" destroy "$d" >/dev/null 2>&1
        done
    fi
}

# kill_pids_reverse: kills everything in `pids`, the last started first.
kill_pids_reverse() {
    local i
    for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
        kill "${pids[i]}" 2>/dev/null
    done
}

# kill_run_leftovers DIR: kills whatever names DIR on its command line or
# in its environment (a VMM whose daemon is gone, a browser with its
# profile in DIR, a bus a client launched outside the process tree).
kill_run_leftovers() {
    local p
    for p in /proc/[0-9]*; do
        p=${p#/proc/}
        [ "$p" = $$ ] && continue
        if cat "/proc/$p/cmdline" "/proc/$p/environ" 2>/dev/null | tr '\0' '\n' |
            grep -qF -- "$1"; then
            kill -9 "$p" 2>/dev/null
        fi
    done
}

# start_oxvirtd [ARG...]: oxvirtd ($OXVIRTD) on the private bus of $tmp,
# its directories in $tmp and its RPC sockets at $sock and $sock-ro, with
# ARGs added; sets `daemon`, adds it to `pids` and waits until it answers
# virsh at $U. Its log goes to $tmp/oxvirtd.log.
start_oxvirtd() {
    "$OXVIRTD" --bus-address "$(head -1 "$tmp/bus")" \
        --config-dir "$tmp/config/qemu" --run-dir "$tmp/run/qemu" --state-dir "$tmp/state" \
        --rpc-socket "$sock" --rpc-socket-ro "$sock-ro" "$@" 2>>"$tmp/oxvirtd.log" &
    daemon=$!
    pids+=($daemon)
    for _ in $(seq 100); do [ -S "$sock" ] && virsh -c "$U" uri >/dev/null 2>&1 && break; sleep 0.1; done
}
