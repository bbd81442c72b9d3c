# Shared by run.sh and devices.sh: TAP-like result lines and the virsh
# check. Callers set U (the connection URI) and fails (a counter).

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
