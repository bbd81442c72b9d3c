#!/bin/bash
# Guest state through the real virsh: save (with --verbose progress),
# restore (running and --paused), save-image-dumpxml/-define, managedsave
# and the restore a start does from it, dominfo's "Managed save", list
# --with-managed-save and the "saved" state, undefine refused while an
# image exists; the test guest's ticks carry on and the memory region it
# keeps rewriting still adds up after each restore; domjobabort stops a
# save, the guest running on. Bad images and bad
# calls get libvirt's errors and change nothing. Called by run.sh.
#
# The same through oxvirsh (D-Bus), whose output must be virsh's, and
# libvirt-dbus's methods called directly.
#
# usage: save.sh OXVIRTD TMPDIR   (oxvirsh is taken from OXVIRTD's directory)
set -u
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
. "$top/compat-tests/lib/private-run.sh"
OXVIRTD=$1
tmp=$2
KERNEL=$top/compat-tests/guest/out/testos.elf
OXVIRSH=$(cd "$(dirname "$OXVIRTD")" && pwd)/oxvirsh
mkdir -p "$tmp"
sock=$tmp/sock
U="qemu+unix:///system?socket=$sock"
fails=0
pids=()
trap 'kill_pids_reverse; stop_pids_and_remove "$tmp"' EXIT
. "$here/lib.sh"

start_private_bus "$tmp"
start_oxvirtd

serial=$tmp/s1.serial
dd if=/dev/urandom of="$tmp/s1.img" bs=1M count=2 status=none
cat >"$tmp/s1.xml" <<XML
<domain type='kvm'>
  <name>s1</name>
  <memory unit='MiB'>128</memory>
  <vcpu>2</vcpu>
  <os><type arch='x86_64'>hvm</type><kernel>$KERNEL</kernel>
    <cmdline>oxtest.checks=e820 oxtest.cpus=2 oxtest.then=ticker oxtest.tickmem=16 oxtest.tickdev=1</cmdline></os>
  <devices>
    <disk type='file' device='disk'><driver name='qemu' type='raw'/><source file='$tmp/s1.img'/><target dev='vda' bus='virtio'/></disk>
    <rng model='virtio'><backend model='random'>/dev/urandom</backend></rng>
    <serial type='file'><source path='$serial' append='on'/></serial>
  </devices>
</domain>
XML

ticks_carry_on() { # NAME: the guest ticks again, from where it stopped, memory intact
    local before=$1 name=$2
    if wait_ticks 3; then
        # The first tick after the restore follows the last one before.
        if grep -q "^TICK $((before + 1)) " "$serial" && ! grep -q '^FAIL' "$serial"; then
            pass "$name"
        else
            fail "$name (after tick $before: $(grep -E '^(TICK|FAIL)' "$serial" | tail -4 | tr '\n' ' '))"
        fi
    else
        fail "$name (no ticks)"
    fi
}

expect save-define 0 "Domain 's1' defined" -- define "$tmp/s1.xml"
expect save-start 0 "Domain 's1' started" -- start s1
wait_ticks 5 && pass save-guest-ticks || fail save-guest-ticks

# virsh save, with its progress, then restore.
img=$tmp/s1.save
expect save-verbose 0 "Domain 's1' saved to $img" -- save s1 "$img" --verbose
out=$(timeout 30 virsh -c "$U" save s1 "$tmp/x.save" 2>&1)
if grep -q "domain is not running" <<<"$out"; then pass save-inactive-refused; else fail "save-inactive-refused ($out)"; fi
[ -e "$tmp/x.save" ] && fail save-inactive-no-file || pass save-inactive-no-file
expect save-state 0 'shut off \(saved\)' -- domstate s1 --reason
before=$(last_tick)
sleep 0.5
[ "$(last_tick)" = "$before" ] && pass save-guest-stopped || fail save-guest-stopped
expect save-image-dumpxml 0 "<name>s1</name>" -- save-image-dumpxml "$img"
expect save-restore 0 "Domain restored from $img" -- restore "$img"
expect save-restored-running 0 'running \(restored\)' -- domstate s1 --reason
ticks_carry_on "$before" save-restored-ticks-carry-on
expect save-restore-active 1 "domain 's1' is already active" -- restore "$img"

# Saved paused: restored paused until resumed.
expect save-paused-flag 0 "saved to" -- save s1 "$img" --paused
before=$(last_tick)
expect save-restore-paused 0 "Domain restored from" -- restore "$img"
expect save-restore-paused-state 0 'paused' -- domstate s1
sleep 0.5
[ "$(last_tick)" = "$before" ] && pass save-paused-no-ticks || fail save-paused-no-ticks
expect save-resume 0 "Domain 's1' resumed" -- resume s1
ticks_carry_on "$before" save-paused-then-resumed

# save-image-define: --running flips what the restore does.
expect save-again 0 "saved to" -- save s1 "$img" --paused
expect save-image-define 0 "State file $img updated" -- save-image-define "$img" <(virsh -c "$U" save-image-dumpxml "$img") --running
before=$(last_tick)
expect save-restore-defined 0 "Domain restored from" -- restore "$img"
expect save-restore-defined-running 0 'running' -- domstate s1
ticks_carry_on "$before" save-defined-running-ticks
sed 's|<memory unit=.KiB.>[0-9]*</memory>|<memory unit="KiB">262144</memory>|' <(virsh -c "$U" dumpxml --inactive s1) >"$tmp/other.xml"
expect save-xml-other-machine 1 "Target domain max memory 262144 does not match source 131072" -- save s1 "$tmp/y.save" --xml "$tmp/other.xml"
[ -e "$tmp/y.save" ] && fail save-xml-other-no-file || pass save-xml-other-no-file
expect save-xml-other-still-running 0 '^running' -- domstate s1

# A save that cannot be written (a full file system): the guest runs on,
# no file is left behind.
if [ "$(id -u)" = 0 ]; then
    mkdir -p "$tmp/full"
    mount -t tmpfs -o size=4m tmpfs "$tmp/full"
    before=$(last_tick)
    expect save-full-disk 1 "No space left on device" -- save s1 "$tmp/full/s1.save"
    ls "$tmp/full" | grep -q . && fail save-full-disk-no-file || pass save-full-disk-no-file
    expect save-full-disk-running 0 '^running' -- domstate s1
    wait_ticks 3 && pass save-full-disk-guest-ticks || fail save-full-disk-guest-ticks
    umount "$tmp/full"
elif [ "${CI:-}" = true ]; then
    fail "save-full-disk (needs root to mount a small tmpfs)"
fi

# Bad images: libvirt's errors, nothing started.
echo "not a save image at all, just some text of sufficient length for a header....." >"$tmp/bad.save"
expect save-bad-magic 1 "image magic is incorrect" -- restore "$tmp/bad.save"
expect save-missing 1 "Failed to open file '$tmp/none.save'" -- restore "$tmp/none.save"

# managedsave, then start resumes it.
expect managedsave 0 "Domain 's1' state saved by libvirt" -- managedsave s1
expect managedsave-dominfo 0 'Managed save: +yes' -- dominfo s1
expect managedsave-list 0 's1 +saved' -- list --all --managed-save
expect managedsave-list-with 0 ' s1 ' -- list --all --with-managed-save
out=$(virsh -c "$U" list --all --without-managed-save --name 2>&1)
if grep -qx s1 <<<"$out"; then fail "managedsave-list-without ($out)"; else pass managedsave-list-without; fi
expect managedsave-dumpxml 0 "<name>s1</name>" -- managedsave-dumpxml s1
expect managedsave-undefine-refused 1 "Refusing to undefine while domain managed save image exists" -- undefine s1
# The image outlives a daemon restart.
kill "$daemon"; wait "$daemon" 2>/dev/null
start_oxvirtd
expect managedsave-after-restart 0 'Managed save: +yes' -- dominfo s1
before=$(last_tick)
expect managedsave-start 0 "Domain 's1' started" -- start s1
expect managedsave-started-restored 0 'running \(restored\)' -- domstate s1 --reason
ticks_carry_on "$before" managedsave-start-carries-on
expect managedsave-image-gone 0 'Managed save: +no' -- dominfo s1

# managedsave-remove, then start boots afresh; start --force-boot discards.
expect managedsave-2 0 "state saved by libvirt" -- managedsave s1
expect managedsave-remove 0 "Removed managedsave image for domain 's1'" -- managedsave-remove s1
expect managedsave-remove-none 0 "has no manage save image; removal skipped" -- managedsave-remove s1
: >"$serial"
expect managedsave-boot 0 "Domain 's1' started" -- start s1
for _ in $(seq 100); do grep -q '^INFO testos' "$serial" && break; sleep 0.1; done
grep -q '^INFO testos' "$serial" && pass managedsave-removed-boots-afresh || fail managedsave-removed-boots-afresh
expect managedsave-3 0 "state saved by libvirt" -- managedsave s1
: >"$serial"
expect managedsave-force-boot 0 "Domain 's1' started" -- start s1 --force-boot
for _ in $(seq 100); do grep -q '^INFO testos' "$serial" && break; sleep 0.1; done
grep -q '^INFO testos' "$serial" && pass managedsave-force-boot-boots || fail managedsave-force-boot-boots
expect managedsave-force-boot-discarded 0 'Managed save: +no' -- dominfo s1

# A transient guest cannot be managed-saved; a saved one disappears and
# comes back with restore.
virsh -c "$U" destroy s1 >/dev/null 2>&1
sed 's/<name>s1</<name>t1</; /<uuid>/d' "$tmp/s1.xml" >"$tmp/t1.xml"
expect transient-create 0 "Domain 't1' created" -- create "$tmp/t1.xml"
expect transient-managedsave 1 "cannot do managed save for transient domain" -- managedsave t1
expect transient-save 0 "saved to" -- save t1 "$tmp/t1.save"
expect transient-gone 1 "failed to get domain 't1'" -- dominfo t1
expect transient-restore 0 "Domain restored from" -- restore "$tmp/t1.save"
expect transient-back 0 'running' -- domstate t1
# A restore whose disk has gone: libvirt's error, nothing started, the
# image kept; with the disk back the same image restores.
expect transient-save-2 0 "saved to" -- save t1 "$tmp/t1.save"
mv "$tmp/s1.img" "$tmp/s1.img.away"
vmms_before=$(pgrep -c -x oxvirt-vmm || true)
expect restore-disk-gone 1 "Cannot access storage file '$tmp/s1.img'" -- restore "$tmp/t1.save"
expect restore-disk-gone-no-domain 1 "failed to get domain 't1'" -- dominfo t1
[ "$(pgrep -c -x oxvirt-vmm || true)" = "$vmms_before" ] && pass restore-disk-gone-no-vmm ||
    fail "restore-disk-gone-no-vmm ($(pgrep -a -x oxvirt-vmm))"
[ -s "$tmp/t1.save" ] && pass restore-disk-gone-image-kept || fail restore-disk-gone-image-kept
mv "$tmp/s1.img.away" "$tmp/s1.img"
expect restore-disk-back 0 "Domain restored from" -- restore "$tmp/t1.save"
expect restore-disk-back-running 0 'running' -- domstate t1
# A restore whose disk changed size since the save: the saved guest's
# driver knows the old size, so the VMM refuses it before the guest runs;
# nothing started, the image kept; at its old size the image restores.
expect transient-save-3 0 "saved to" -- save t1 "$tmp/t1.save"
size=$(stat -c %s "$tmp/s1.img")
truncate -s +1M "$tmp/s1.img"
expect restore-disk-resized 1 "changed since the state was saved" -- restore "$tmp/t1.save"
expect restore-disk-resized-no-domain 1 "failed to get domain 't1'" -- dominfo t1
[ "$(pgrep -c -x oxvirt-vmm || true)" = "$vmms_before" ] && pass restore-disk-resized-no-vmm ||
    fail "restore-disk-resized-no-vmm ($(pgrep -a -x oxvirt-vmm))"
[ -s "$tmp/t1.save" ] && pass restore-disk-resized-image-kept || fail restore-disk-resized-image-kept
truncate -s "$size" "$tmp/s1.img"
expect restore-disk-size-back 0 "Domain restored from" -- restore "$tmp/t1.save"
virsh -c "$U" destroy t1 >/dev/null 2>&1

# domjobabort during a save: the save stops with libvirt's error, the guest
# runs on, no image is left. The guest has 2.5 GiB of touched memory, so
# that the save lasts long enough to be caught.
sed -e 's|<name>s1</name>|<name>big</name>|; /<uuid>/d' \
    -e "s|<memory unit='MiB'>128</memory>|<memory unit='MiB'>3072</memory>|" \
    -e 's|<cmdline>.*</cmdline>|<cmdline>oxtest.checks=e820 oxtest.then=memfill oxtest.fillmib=2560</cmdline>|' \
    -e "s|$tmp/s1.serial|$tmp/big.serial|" "$tmp/s1.xml" >"$tmp/big.xml"
virsh -c "$U" create "$tmp/big.xml" >/dev/null 2>&1
for _ in $(seq 300); do grep -q '^INFO memfill 2560 MiB' "$tmp/big.serial" 2>/dev/null && break; sleep 0.1; done
(timeout 120 virsh -c "$U" save big "$tmp/big.save" >"$tmp/big.out" 2>&1; echo "rc=$?" >>"$tmp/big.out") &
saver=$!
for _ in $(seq 200); do
    virsh -c "$U" domjobinfo big 2>/dev/null | grep -q 'Unbounded' && break
    sleep 0.02
done
expect save-abort 0 '' -- domjobabort big
wait "$saver"
if grep -q "operation aborted: job 'domain save' canceled by client" "$tmp/big.out" && grep -q 'rc=1' "$tmp/big.out"; then
    pass save-aborted-with-libvirts-error
else
    fail "save-aborted-with-libvirts-error ($(tr '\n' ' ' <"$tmp/big.out"))"
fi
[ -e "$tmp/big.save" ] && fail save-aborted-no-image || pass save-aborted-no-image
expect save-aborted-still-running 0 '^running' -- domstate big
expect save-abort-no-job 1 'no job is active on the domain' -- domjobabort big

# The restore of that guest is its job while the image is read:
# domjobinfo shows libvirt's Restore operation and how much is read, and
# domjobabort gets libvirt's refusal (a start is not aborted).
expect save-big 0 "saved to" -- save big "$tmp/big.save"
(timeout 120 virsh -c "$U" restore "$tmp/big.save" >"$tmp/big.out" 2>&1; echo "rc=$?" >>"$tmp/big.out") &
restorer=$!
: >"$tmp/big.jobs"
for _ in $(seq 400); do
    virsh -c "$U" domjobinfo big >>"$tmp/big.jobs" 2>&1
    grep -q 'Operation: *Restore' "$tmp/big.jobs" && break
    sleep 0.01
done
if grep -q 'Operation: *Restore' "$tmp/big.jobs" && grep -q 'Job type: *Unbounded' "$tmp/big.jobs" &&
    grep -q 'Data total:' "$tmp/big.jobs"; then
    pass restore-job-info
else
    fail "restore-job-info ($(sort -u "$tmp/big.jobs" | tr '\n' ' '))"
fi
abort_out=$(virsh -c "$U" domjobabort big 2>&1)
case $abort_out in
*"cannot abort VM start; use virDomainDestroy instead"*) pass restore-abort-refused ;;
*"no job is active"*) pass restore-abort-refused ;; # the restore was already over
*) fail "restore-abort-refused ($abort_out)" ;;
esac
wait "$restorer"
grep -q 'rc=0' "$tmp/big.out" && pass restore-big || fail "restore-big ($(tr '\n' ' ' <"$tmp/big.out"))"
expect restore-big-running 0 '^running' -- domstate big
expect restore-big-no-job 0 'Job type: *None' -- domjobinfo big
virsh -c "$U" destroy big >/dev/null 2>&1

# oxvirsh prints what virsh prints; libvirt-dbus's methods directly.
BUS=$(head -1 "$tmp/bus")
ox() { timeout 60 "$OXVIRSH" --bus-address "$BUS" "$@" 2>&1; }
same() { # NAME ARGS...: a read-only command, both clients
    local name=$1 v o
    shift
    v=$(cd "$tmp" && timeout 30 virsh -c "$U" "$@" 2>&1)
    o=$(cd "$tmp" && ox "$@")
    if [ "$v" = "$o" ]; then pass "oxvirsh-$name"; else
        fail "oxvirsh-$name"
        diff <(echo "$v") <(echo "$o") | sed 's/^/       | /'
    fi
}
saw() { # NAME WANT ARGS...: oxvirsh's output is exactly WANT
    local name=$1 want=$2 out
    shift 2
    out=$(cd "$tmp" && ox "$@")
    if [ "$out" = "$want" ]; then pass "oxvirsh-$name"; else fail "oxvirsh-$name (got '$out', want '$want')"; fi
}
virsh -c "$U" start s1 >/dev/null 2>&1
before=$(last_tick)
saw save "$(printf '\nDomain %s saved to ox.save' "'s1'")" save s1 ox.save
same save-image-dumpxml save-image-dumpxml ox.save
saw restore "Domain restored from ox.save" restore ox.save
ticks_carry_on "$before" oxvirsh-restored-ticks
saw managedsave "$(printf '\nDomain %s state saved by libvirt' "'s1'")" managedsave s1
same dominfo-managed dominfo s1
same list-managed-save list --all --managed-save
same list-with-managed-save list --all --with-managed-save --name
same undefine-refused undefine s1
saw managedsave-remove "Removed managedsave image for domain 's1'" managedsave-remove s1
same managedsave-remove-none managedsave-remove s1
same restore-bad restore "$tmp/bad.save"
same save-both-flags save s1 x.save --running --paused
uuid=$(virsh -c "$U" domuuid s1 | head -1)
obj=/org/libvirt/QEMU/domain/_${uuid//-/_}
dbus() { busctl --address="$BUS" call org.libvirt "$obj" org.libvirt.Domain "$@" 2>&1; }
virsh -c "$U" start s1 >/dev/null 2>&1
out=$(dbus GetJobInfo)
if [ "$out" = "(ittttttttttt) 0 0 0 0 0 0 0 0 0 0 0 0" ]; then pass dbus-job-info-none; else fail "dbus-job-info-none ($out)"; fi
out=$(dbus ManagedSave u 0)
if [ -z "$out" ] && [ "$(dbus HasManagedSaveImage u 0)" = "b true" ]; then pass dbus-managed-save; else fail "dbus-managed-save ($out)"; fi
out=$(busctl --address="$BUS" call org.libvirt /org/libvirt/QEMU org.libvirt.Connect DomainSaveImageGetXMLDesc su "$tmp/state/save/s1.save" 0 2>&1)
if grep -q '<name>s1</name>' <<<"$out"; then pass dbus-save-image-xml; else fail "dbus-save-image-xml ($out)"; fi
out=$(dbus Create u 0)
if [ -z "$out" ] && virsh -c "$U" domstate s1 --reason | grep -q 'running (restored)'; then pass dbus-create-restores; else fail "dbus-create-restores ($out)"; fi
out=$(dbus Save ssu "$tmp/dbus.save" "" 0)
out2=$(busctl --address="$BUS" call org.libvirt /org/libvirt/QEMU org.libvirt.Connect DomainRestore ssu "$tmp/dbus.save" "" 4 2>&1)
if [ -z "$out$out2" ] && virsh -c "$U" domstate s1 | grep -q paused; then pass dbus-save-restore-paused; else fail "dbus-save-restore-paused ($out $out2)"; fi
virsh -c "$U" destroy s1 >/dev/null 2>&1

# The same through python-libvirt's API.
if /usr/bin/python3 -c 'import libvirt' 2>/dev/null; then
    out=$(timeout 120 /usr/bin/python3 - "$U" "$tmp" <<'PY' 2>&1
import sys, libvirt
uri, tmp = sys.argv[1], sys.argv[2]
c = libvirt.open(uri)
d = c.lookupByName("s1")
d.create()
d.managedSave(0)
assert d.hasManagedSaveImage(0) == 1, "no managed image"
assert d.state()[0:2] == [libvirt.VIR_DOMAIN_SHUTOFF, libvirt.VIR_DOMAIN_SHUTOFF_SAVED], d.state()
d.create()
assert d.state()[0:2] == [libvirt.VIR_DOMAIN_RUNNING, libvirt.VIR_DOMAIN_RUNNING_RESTORED], d.state()
d.save(tmp + "/py.save")
c.restoreFlags(tmp + "/py.save", None, libvirt.VIR_DOMAIN_SAVE_PAUSED)
assert d.state()[0] == libvirt.VIR_DOMAIN_PAUSED, d.state()
d.resume()
try:
    c.restoreFlags(tmp + "/py.save", None, libvirt.VIR_DOMAIN_SAVE_PAUSED | libvirt.VIR_DOMAIN_SAVE_RUNNING)
    print("FAIL both flags accepted")
except libvirt.libvirtError as e:
    assert "mutually exclusive" in str(e), e
d.destroy()
print("python ok")
PY
)
    if grep -qx 'python ok' <<<"$out"; then pass save-python-libvirt; else fail "save-python-libvirt ($out)"; fi
elif [ "${CI:-}" = true ]; then
    fail "save-python-libvirt (python3-libvirt missing)"
fi

echo "save: $passes passed, $fails failed"
[ "$fails" = 0 ]
