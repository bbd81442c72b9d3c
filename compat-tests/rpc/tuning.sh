#!/bin/bash
# cgroups and tuning through the real virsh: a guest whose <cputune> and
# <memtune> land in its cgroup files (shares, the whole guest's, each
# vCPU's and the emulator threads' bandwidth, memory limits), its threads
# in vcpuN/emulator groups, live changes with schedinfo and memtune seen in
# the files and in the live XML, --config changes only in the definition,
# bad values refused with libvirt's errors and nothing changed, CPU time
# from the cgroup (cpu-stats, domstats), vcpupin/emulatorpin (live,
# --config, D-Bus) in the cpuset groups and the threads' affinity and pins
# from the XML at start, the group gone after the guest stops; and a guest
# whose hard limit is below what it touches: killed by the kernel and
# reported crashed. Called by run.sh (as root).
#
# usage: tuning.sh OXVIRTD TMPDIR
set -u
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
. "$top/compat-tests/lib/private-run.sh"
OXVIRTD=$1
tmp=$2
KERNEL=$top/compat-tests/guest/out/testos.elf
mkdir -p "$tmp"
sock=$tmp/sock
U="qemu+unix:///system?socket=$sock"
fails=0
pids=()
trap 'kill_pids_reverse; stop_pids_and_remove "$tmp"' EXIT
. "$here/lib.sh"

# The v1 or v2 directory of a controller's group for guest $1 (part $2).
mounts=$(awk '$9 == "cgroup" || $9 == "cgroup2" {print $5, $9, $NF}' /proc/self/mountinfo)
group() { # CONTROLLER GUEST [PART]
    local c=$1 base
    base=$(awk -v c="$c" '$2 == "cgroup" { n = split($3, o, ","); for (i = 1; i <= n; i++) if (o[i] == c) print $1 }' <<<"$mounts" | head -1)
    [ -n "$base" ] || base=$(awk '$2 == "cgroup2" {print $1}' <<<"$mounts" | head -1)
    local run=${tmp#/}/run/qemu
    echo "$base/machine/oxvirt-${run//[^A-Za-z0-9_-]/-}/$2.libvirt-qemu${3:+/$3}"
}
v2=0
[ -z "$(awk '$2 == "cgroup" && $3 ~ /(^|,)cpu(,|$)/' <<<"$mounts")" ] && v2=1
quota_of() { # GUEST PART → the quota the cgroup holds
    if [ $v2 = 1 ]; then cut -d' ' -f1 "$(group cpu "$1" "$2")/cpu.max"; else cat "$(group cpu "$1" "$2")/cpu.cfs_quota_us"; fi
}
shares_of() {
    if [ $v2 = 1 ]; then cat "$(group cpu "$1")/cpu.weight"; else cat "$(group cpu "$1")/cpu.shares"; fi
}
hard_of() {
    if [ $v2 = 1 ]; then cat "$(group memory "$1")/memory.max"; else cat "$(group memory "$1")/memory.limit_in_bytes"; fi
}
same() { # NAME GOT WANT
    if [ "$2" = "$3" ]; then pass "$1"; else fail "$1 (got '$2', want '$3')"; fi
}

start_private_bus "$tmp"
start_oxvirtd

cat >"$tmp/t1.xml" <<XML
<domain type='kvm'>
  <name>t1</name>
  <memory unit='MiB'>64</memory>
  <memtune><hard_limit unit='MiB'>512</hard_limit><soft_limit unit='MiB'>256</soft_limit></memtune>
  <vcpu>2</vcpu>
  <cputune>
    <shares>2048</shares><period>100000</period><quota>50000</quota>
    <global_period>100000</global_period><global_quota>150000</global_quota>
    <emulator_period>100000</emulator_period><emulator_quota>20000</emulator_quota>
  </cputune>
  <os><type arch='x86_64'>hvm</type><kernel>$KERNEL</kernel><cmdline>oxtest.then=halt</cmdline></os>
</domain>
XML
expect tune-define 0 "Domain 't1' defined" -- define "$tmp/t1.xml"
expect tune-start 0 "Domain 't1' started" -- start t1
same tune-shares-file "$(shares_of t1)" 2048
same tune-global-quota-file "$(quota_of t1 '')" 150000
same tune-vcpu0-quota-file "$(quota_of t1 vcpu0)" 50000
same tune-vcpu1-quota-file "$(quota_of t1 vcpu1)" 50000
same tune-emulator-quota-file "$(quota_of t1 emulator)" 20000
same tune-hard-limit-file "$(hard_of t1)" $((512 << 20))
threads_file=tasks; [ $v2 = 1 ] && threads_file=cgroup.threads
same tune-vcpu0-holds-one-thread "$(wc -l <"$(group cpu t1 vcpu0)/$threads_file")" 1
if [ "$(wc -l <"$(group cpu t1 emulator)/$threads_file")" -ge 2 ]; then pass tune-emulator-threads; else fail tune-emulator-threads; fi
expect tune-schedinfo 0 'cpu_shares +: 2048' -- schedinfo t1
expect tune-schedinfo-vcpu 0 'vcpu_quota +: 50000' -- schedinfo t1
expect tune-memtune 0 'hard_limit +: 524288' -- memtune t1
expect tune-memtune-swap 0 'swap_hard_limit: unlimited' -- memtune t1

# Live changes: the files and the live XML follow, the definition not.
expect tune-set-live 0 'cpu_shares +: 512' -- schedinfo t1 --live --set cpu_shares=512 vcpu_quota=30000
same tune-shares-live "$(shares_of t1)" 512
same tune-vcpu1-quota-live "$(quota_of t1 vcpu1)" 30000
expect tune-live-xml 0 '<shares>512</shares>' -- dumpxml t1
expect tune-config-untouched 0 '<shares>2048</shares>' -- dumpxml t1 --inactive
expect tune-set-config 0 'cpu_shares +: 4096' -- schedinfo t1 --config --set cpu_shares=4096
same tune-config-only "$(shares_of t1)" 512
expect tune-memtune-live 0 '' -- memtune t1 --hard-limit 300000 --live
same tune-hard-limit-live "$(hard_of t1)" $((300000 << 10))
expect tune-memtune-xml 0 "<hard_limit unit='KiB'>300000</hard_limit>" -- dumpxml t1

# Bad values: libvirt's errors, nothing changed.
expect tune-bad-quota 1 "cfs_quota '5' must be in range" -- schedinfo t1 --set vcpu_quota=5
expect tune-bad-param 1 "[Ii]nvalid scheduler option: nosuch" -- schedinfo t1 --set nosuch=5
expect tune-bad-memtune 1 'must be lower than or equal to swap_hard_limit' -- memtune t1 --hard-limit 400000 --swap-hard-limit 300000
same tune-unchanged-quota "$(quota_of t1 vcpu1)" 30000
same tune-unchanged-hard "$(hard_of t1)" $((300000 << 10))
expect tune-blkiotune 0 'weight +: ' -- blkiotune t1

# The same through libvirt-dbus's methods (a{sv} typed by each variant).
uuid=$(virsh -c "$U" domuuid t1 | head -1)
obj=/org/libvirt/QEMU/domain/_${uuid//-/_}
dbus() { busctl --address="$(head -1 "$tmp/bus")" call org.libvirt "$obj" org.libvirt.Domain "$@" 2>&1; }
out=$(dbus SetSchedulerParameters 'a{sv}u' 1 cpu_shares t 1000 1)
if [ -z "$out" ] && [ "$(shares_of t1)" = 1000 ]; then pass tune-dbus-set; else fail "tune-dbus-set ($out)"; fi
out=$(dbus SetSchedulerParameters 'a{sv}u' 1 cpu_shares i 1000 1)
if grep -q "invalid type 'int' for parameter 'cpu_shares', expected 'ullong'" <<<"$out"; then pass tune-dbus-type-checked; else fail "tune-dbus-type-checked ($out)"; fi
out=$(dbus GetMemoryParameters u 1)
if grep -q '"hard_limit" v t 300000' <<<"$out"; then pass tune-dbus-get-memory; else fail "tune-dbus-get-memory ($out)"; fi
out=$(dbus SetMemoryParameters 'a{sv}u' 1 soft_limit t 200000 1)
mem=$(virsh -c "$U" memtune t1)
if [ -z "$out" ] && grep -Eq "soft_limit +: 200000" <<<"$mem"; then pass tune-dbus-set-memory; else fail "tune-dbus-set-memory ($out $mem)"; fi
out=$(dbus GetBlockIOParameters u 1)
if grep -q '"weight" v u' <<<"$out"; then pass tune-dbus-get-blkio; else fail "tune-dbus-get-blkio ($out)"; fi

# Pinning: vcpupin/emulatorpin live in the cpuset groups and the
# threads' affinity, --config only in the definition.
cpus_of() { # GUEST PART → the cpuset group's CPUs
    cat "$(group cpuset "$1" "$2")/cpuset.cpus"
}
affinity_of() { # TID → the kernel's allowed list
    awk '/^Cpus_allowed_list/ {print $2}' "/proc/$1/status"
}
vcpu0_tid=$(head -1 "$(group cpu t1 vcpu0)/$threads_file")
expect pin-vcpu-live 0 '' -- vcpupin t1 0 1 --live
same pin-vcpu0-cpuset "$(cpus_of t1 vcpu0)" 1
same pin-vcpu0-affinity "$(affinity_of "$vcpu0_tid")" 1
expect pin-vcpupin-list 0 '^ 0 +1$' -- vcpupin t1
expect pin-vcpupin-list-unpinned 0 '^ 1 +0-1$' -- vcpupin t1
expect pin-vcpuinfo 0 'CPU Affinity: +-y' -- vcpuinfo t1
expect pin-live-xml 0 "<vcpupin vcpu='0' cpuset='1'/>" -- dumpxml t1
expect pin-config 0 '' -- vcpupin t1 1 0 --config
expect pin-config-xml 0 "<vcpupin vcpu='1' cpuset='0'/>" -- dumpxml t1 --inactive
same pin-config-not-live "$(cpus_of t1 vcpu1)" 0-1
expect pin-emulator 0 '' -- emulatorpin t1 0 --live
same pin-emulator-cpuset "$(cpus_of t1 emulator)" 0
expect pin-emulator-show 0 '\*: +0' -- emulatorpin t1
out=$(dbus PinVcpu uabu 1 2 false true 1)
if [ -z "$out" ] && [ "$(cpus_of t1 vcpu1)" = 1 ]; then pass pin-dbus-vcpu; else fail "pin-dbus-vcpu ($out)"; fi
out=$(dbus GetVcpuPinInfo u 1)
same pin-dbus-info "$out" "aab 2 2 false true 2 false true"
out=$(dbus GetEmulatorPinInfo u 1)
same pin-dbus-emulator-info "$out" "ab 2 true false"
expect pin-out-of-range 1 'vcpu 5 is out of range of live cpu count 2' -- vcpupin t1 5 0 --live
same pin-unchanged "$(cpus_of t1 vcpu0)" 1

# CPU time from the cgroup.
expect tune-cpu-stats 0 'cpu_time +[0-9.]+ seconds' -- cpu-stats t1 --total
expect tune-domstats-cpu 0 'cpu\.time=[1-9]' -- domstats t1 --cpu-total

expect tune-destroy 0 "Domain 't1' destroyed" -- destroy t1
if [ -e "$(group cpu t1)" ] || [ -e "$(group memory t1)" ]; then fail tune-group-removed; else pass tune-group-removed; fi

# The definition's pins (vcpu 1 on CPU 0, from --config above) hold from the start.
expect pin-xml-start 0 "Domain 't1' started" -- start t1
same pin-xml-vcpu1 "$(cpus_of t1 vcpu1)" 0
same pin-xml-vcpu1-affinity "$(affinity_of "$(head -1 "$(group cpu t1 vcpu1)/$threads_file")")" 0
expect pin-xml-destroy 0 "Domain 't1' destroyed" -- destroy t1

# A guest that touches more than its hard limit: the kernel kills its
# VMM, and the guest is reported crashed.
cat >"$tmp/m1.xml" <<XML
<domain type='kvm'>
  <name>m1</name>
  <memory unit='MiB'>256</memory>
  <memtune><hard_limit unit='MiB'>64</hard_limit></memtune>
  <vcpu>1</vcpu>
  <os><type arch='x86_64'>hvm</type><kernel>$KERNEL</kernel><cmdline>oxtest.checks=e820 oxtest.then=memfill</cmdline></os>
  <devices><serial type='file'><source path='$tmp/m1.serial'/></serial></devices>
</domain>
XML
expect oom-define 0 "Domain 'm1' defined" -- define "$tmp/m1.xml"
expect oom-start 0 "Domain 'm1' started" -- start m1
for _ in $(seq 600); do
    virsh -c "$U" domstate m1 2>/dev/null | grep -q 'shut off' && break
    sleep 0.1
done
expect oom-crashed 0 'shut off \(crashed\)' -- domstate m1 --reason
if grep -q 'PASS memfill' "$tmp/m1.serial"; then fail "oom-killed-before-filling"; else pass oom-killed-before-filling; fi
if [ -e "$(group memory m1)" ]; then fail oom-group-removed; else pass oom-group-removed; fi

echo "tuning: $passes passed, $fails failed"
[ "$fails" = 0 ]
