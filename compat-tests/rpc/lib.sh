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
