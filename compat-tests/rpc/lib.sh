# Shared by the RPC, storage and network compat scripts: TAP-like result
# lines, the virsh checks (expect, exact) and check. Callers set U (the
# connection URI), tmp (a scratch directory) and fails (a counter).

passes=0
pass() {
    echo "ok   - $1"
    passes=$((passes + 1))
}
fail() {
    echo "FAIL - $1"
    fails=$((fails + 1))
}

# expect NAME RC PATTERN -- virsh args...: exit code RC and output
# (stdout+stderr) matching the extended regex PATTERN.
expect() {
    local name=$1 rc=$2 pat=$3
    shift 4
    local out got
    out=$(timeout 30 virsh -c "$U" "$@" 2>&1)
    got=$?
    if [ "$got" = "$rc" ] && grep -Eq -- "$pat" <<<"$out"; then
        pass "$name"
    else
        fail "$name (rc $got, want $rc)"
        sed 's/^/       | /' <<<"$out"
    fi
}

check() { # NAME COMMAND...: passes when the command succeeds
    local name=$1
    shift
    if "$@" >"$tmp/check.out" 2>&1; then pass "$name"; else
        fail "$name"
        sed 's/^/       | /' "$tmp/check.out" | head -20
    fi
}
# exact NAME RC -- virsh args: stdout+stderr must equal the file $tmp/want.
exact() {
    local name=$1 rc=$2
    shift 3
    local out got
    out=$(timeout 60 virsh -c "$U" "$@" 2>&1)
    got=$?
    if [ "$got" = "$rc" ] && [ "$out" = "$(cat "$tmp/want")" ]; then
        pass "$name"
    else
        fail "$name (rc $got, want $rc)"
        diff <(cat "$tmp/want") <(echo "$out") | sed 's/^/       | /'
    fi
}

# The test guest's ticker (oxtest.then=ticker) on its serial log, $serial:
# the last tick printed, and waiting for N more.
last_tick() { grep -o '^TICK [0-9]*' "$serial" | tail -1 | cut -d' ' -f2; }
wait_ticks() {
    local from to
    from=$(last_tick)
    to=$(( ${from:-0} + $1 ))
    for _ in $(seq 300); do
        [ "$(last_tick)" -ge "$to" ] 2>/dev/null && return 0
        sleep 0.1
    done
    return 1
}

# wait_for WHAT COMMAND...: until COMMAND succeeds (60 s at most), else a
# failure named WHAT.
wait_for() {
    local what=$1
    shift
    for _ in $(seq 600); do
        "$@" >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    fail "$what"
    return 1
}

# For the scripts whose guests have NICs on a bridge: the private network
# namespace $ns with br0 (10.0.2.2/24), oxvirtd started inside it on the
# RPC socket $sock (its pid in $daemon and pids), and the taps in it;
# stop_netns (the callers' EXIT trap) stops what pids holds and removes it.
stop_netns() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
    wait 2>/dev/null
    ip netns del "$ns" 2>/dev/null
}
bridge_netns() {
    ip netns add "$ns" || { echo "skip - cannot create a network namespace"; exit 0; }
    ip -n "$ns" link set lo up
    ip netns exec "$ns" sysctl -q -w net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
    ip -n "$ns" link add br0 type bridge
    ip -n "$ns" addr add 10.0.2.2/24 dev br0
    ip -n "$ns" link set br0 up
}
start_oxvirtd_in_netns() {
    ip netns exec "$ns" "$OXVIRTD" --bus-address "$(head -1 "$tmp/bus")" \
        --config-dir "$tmp/config" --run-dir "$tmp/run" --state-dir "$tmp/state" \
        --rpc-socket "$sock" 2>"$tmp/oxvirtd.log" &
    daemon=$!
    pids+=("$daemon")
    # The socket's file appears before it accepts: wait for an answer.
    for _ in $(seq 100); do [ -S "$sock" ] && virsh -c "$U" uri >/dev/null 2>&1 && break; sleep 0.1; done
}
taps() { ip -n "$ns" -o link show | awk -F': ' '{print $2}' | sed 's/@.*//' | grep -v -x -e lo -e br0; }
