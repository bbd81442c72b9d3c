#!/bin/bash
# Snapshots through the real virsh: a running guest's disk-only snapshot
# (its disk goes on in a qcow2 overlay while it keeps reading it), a full
# system snapshot with --memspec, the tree (snapshot-list with its
# filters, --tree, --parent, snapshot-info, snapshot-parent,
# snapshot-current), snapshot-dumpxml valid against libvirt's own
# domainsnapshot.rng, revert to the memory snapshot (the guest's ticks
# carry on from the snapshot) and to the disk-only one (shut off, boots
# from the frozen image), delete with the overlay committed back into the
# image below it, metadata that outlives a daemon restart; internal
# snapshots of a qcow2 volume (the default), which qemu-img lists and
# checks, taken, reverted to and deleted running and shut off; and
# libvirt's errors for what cannot be done (internal snapshots of raw
# images, --quiesce without an agent, duplicate names, undefine with
# snapshots). Then the same through libvirt-dbus's DomainSnapshot
# interface, oxvirsh (whose output must be virsh's) and python-libvirt.
# Called by run.sh.
#
# usage: snapshot.sh OXVIRTD TMPDIR
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
RNG=/usr/share/libvirt/schemas/domainsnapshot.rng
fails=0
pids=()
trap 'kill_pids_reverse; stop_pids_and_remove "$tmp"' EXIT
. "$here/lib.sh"

start_private_bus "$tmp"
start_oxvirtd

serial=$tmp/n1.serial
dd if=/dev/urandom of="$tmp/n1.img" bs=1M count=2 status=none
cat >"$tmp/n1.xml" <<XML
<domain type='kvm'>
  <name>n1</name>
  <memory unit='MiB'>128</memory>
  <vcpu>1</vcpu>
  <os><type arch='x86_64'>hvm</type><kernel>$KERNEL</kernel>
    <cmdline>oxtest.checks=e820 oxtest.then=ticker oxtest.tickmem=16 oxtest.tickdev=1</cmdline></os>
  <devices>
    <disk type='file' device='disk'><driver name='qemu' type='raw'/><source file='$tmp/n1.img'/><target dev='vda' bus='virtio'/></disk>
    <rng model='virtio'><backend model='random'>/dev/urandom</backend></rng>
    <serial type='file'><source path='$serial' append='on'/></serial>
  </devices>
</domain>
XML

no_fail() { ! grep -q '^FAIL' "$serial"; }
valid() { # NAME SNAPSHOT: snapshot-dumpxml validates against libvirt's schema
    virsh -c "$U" snapshot-dumpxml n1 "$2" >"$tmp/$2.snap.xml" 2>&1
    check "$1" xmllint --noout --relaxng "$RNG" "$tmp/$2.snap.xml"
}
md5() { md5sum "$1" | cut -d' ' -f1; }

expect snap-define 0 "Domain 'n1' defined" -- define "$tmp/n1.xml"
expect snap-start 0 "Domain 'n1' started" -- start n1
wait_ticks 3 && pass snap-guest-ticks || fail snap-guest-ticks
base_sum=$(md5 "$tmp/n1.img")

# What cannot be done: libvirt's errors, nothing made.
expect snap-internal-raw 1 "unsupported configuration: internal snapshot for disk vda unsupported for storage type raw" -- snapshot-create-as n1 s0
expect snap-quiesce-no-agent 1 "argument unsupported: QEMU guest agent is not configured" -- snapshot-create-as n1 q --disk-only --quiesce
expect snap-memory-disk-only 1 "memory state cannot be saved with offline or disk-only snapshot" -- snapshot-create-as n1 m --disk-only --memspec file=$tmp/m.mem
expect snap-bad-name 1 "name can't contain '/'" -- snapshot-create-as n1 a/b --disk-only
expect snap-no-current 1 "domain 'n1' has no current snapshot" -- snapshot-current n1
ls "$tmp" | grep -Eq '^n1\.(s0|q|m)' && fail snap-errors-made-nothing || pass snap-errors-made-nothing
expect snap-none-listed 0 '^$' -- snapshot-list n1 --name

# A disk-only snapshot of the running guest: it goes on in the overlay.
expect snap-disk-only 0 "Domain snapshot s1 created" -- snapshot-create-as n1 s1 --disk-only --description "before the upgrade"
expect snap-overlay-in-use 0 "vda +$tmp/n1.s1" -- domblklist n1
expect snap-overlay-backing 0 "<backingStore|$tmp/n1.s1" -- dumpxml n1
wait_ticks 3 && no_fail && pass snap-guest-reads-through-overlay || fail "snap-guest-reads-through-overlay ($(grep -E '^FAIL' "$serial" | head -2))"
expect snap-running-after-disk-only 0 '^running' -- domstate n1
[ "$(md5 "$tmp/n1.img")" = "$base_sum" ] && pass snap-base-frozen || fail snap-base-frozen
expect snap-current 0 '^s1$' -- snapshot-current n1 --name
valid snap-dumpxml-valid-disk-only s1
expect snap-dumpxml-state 0 "<state>disk-snapshot</state>" -- snapshot-dumpxml n1 s1
expect snap-dumpxml-overlay 0 "<source file='$tmp/n1.s1'/>" -- snapshot-dumpxml n1 s1
expect snap-dumpxml-description 0 "<description>before the upgrade</description>" -- snapshot-dumpxml n1 s1
expect snap-overlay-exists 1 "external snapshot file for disk vda already exists and is not a block device: $tmp/n1.s1" -- snapshot-create-as n1 s1 --disk-only
expect snap-duplicate-name 1 "operation failed: domain moment s1 already exists" -- snapshot-create-as n1 s1 --disk-only --diskspec "vda,file=$tmp/other.qcow2"
[ -e "$tmp/other.qcow2" ] && fail snap-duplicate-made-nothing || pass snap-duplicate-made-nothing

# A full system snapshot: memory and disk at one instant.
b1=$(last_tick)
expect snap-memory 0 "Domain snapshot s2 created" -- snapshot-create-as n1 s2 --memspec "file=$tmp/n1.s2.mem" --diskspec vda,snapshot=external
b2=$(last_tick)
expect snap-running-after-memory 0 '^running' -- domstate n1
wait_ticks 3 && no_fail && pass snap-guest-ticks-after-memory || fail snap-guest-ticks-after-memory
valid snap-dumpxml-valid-memory s2
expect snap-dumpxml-memory 0 "<memory snapshot='external' file='$tmp/n1.s2.mem'/>" -- snapshot-dumpxml n1 s2
expect snap-parent 0 '^s1$' -- snapshot-parent n1 s2
expect snap-parent-root 1 "snapshot 's1' has no parent" -- snapshot-parent n1 s1
virsh -c "$U" snapshot-info n1 s2 | tr '\n' ' ' >"$tmp/info.out"
grep -Eq 'Name: +s2 +Domain: +n1 +Current: +yes +State: +running +Location: +external +Parent: +s1 +Children: +0 +Descendants: +0 +Metadata: +yes' "$tmp/info.out" && pass snap-info || fail "snap-info ($(cat "$tmp/info.out"))"
virsh -c "$U" snapshot-info n1 --current >"$tmp/info.out" 2>&1
tr '\n' ' ' <"$tmp/info.out" | grep -Eq 'Name: +s2 .*Current: +yes' && pass snap-info-current || fail "snap-info-current ($(cat "$tmp/info.out"))"
virsh -c "$U" snapshot-info n1 s1 | tr '\n' ' ' >"$tmp/info.out"
grep -Eq 'Current: +no .*State: +disk-snapshot .*Parent: +- .*Children: +1 .*Descendants: +1 ' "$tmp/info.out" && pass snap-info-root || fail "snap-info-root ($(cat "$tmp/info.out"))"
expect snap-list-table 0 ' Name +Creation Time +State' -- snapshot-list n1
expect snap-list-rows 0 ' s1 +[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9:]{8} [+-][0-9]{4} +disk-snapshot' -- snapshot-list n1
expect snap-list-parent 0 ' s2 .* running +s1' -- snapshot-list n1 --parent
exact_names() { # NAME WANT ARGS...: snapshot-list --name output
    local name=$1 want=$2 out
    shift 2
    out=$(virsh -c "$U" snapshot-list n1 --name "$@" 2>&1 | sed '/^$/d' | tr '\n' ' ')
    [ "$out" = "$want" ] && pass "$name" || fail "$name (got '$out', want '$want')"
}
exact_names snap-list-names "s1 s2 "
exact_names snap-list-roots "s1 " --roots
exact_names snap-list-leaves "s2 " --leaves
exact_names snap-list-disk-only "s1 " --disk-only
exact_names snap-list-active "s2 " --active
exact_names snap-list-external "s1 s2 " --external
exact_names snap-list-internal "" --internal
exact_names snap-list-from "s2 " --from s1
printf 's1\n  |\n  +- s2\n' >"$tmp/want-tree"
virsh -c "$U" snapshot-list n1 --tree 2>&1 | sed '/^ *$/d' >"$tmp/tree.out"
diff -q "$tmp/want-tree" "$tmp/tree.out" >/dev/null && pass snap-list-tree || fail "snap-list-tree ($(cat "$tmp/tree.out"))"
expect snap-list-has-snapshot 0 ' n1 ' -- list --all --with-snapshot
out=$(virsh -c "$U" list --all --without-snapshot --name 2>&1)
grep -qx n1 <<<"$out" && fail snap-list-without-snapshot || pass snap-list-without-snapshot

# Metadata outlives the daemon.
kill "$daemon"; wait "$daemon" 2>/dev/null
start_oxvirtd
exact_names snap-after-restart "s1 s2 "
expect snap-current-after-restart 0 '^s2$' -- snapshot-current n1 --name

# Revert to the memory snapshot: the guest goes on from that instant.
wait_ticks 3
lines=$(wc -l <"$serial")
expect snap-revert-memory 0 "Domain snapshot s2 reverted" -- snapshot-revert n1 s2
expect snap-reverted-running 0 'running \(from snapshot\)' -- domstate n1 --reason
wait_ticks 3
# The old guest may finish a line after the count, and its last, cut short
# by its end, may swallow the restored guest's first tick; the restored
# guest starts again below where the old one was.
first=$(tail -n +"$((lines + 1))" "$serial" | grep -o '^TICK [0-9]*' |
    awk -v top="$((b2 + 2))" '$2 <= top { print $2; exit }')
if [ -n "$first" ] && [ "$first" -ge "$((b1 + 1))" ] && no_fail; then
    pass snap-revert-memory-ticks-from-snapshot
else
    fail "snap-revert-memory-ticks-from-snapshot (first tick $first, snapshot between $b1 and $b2; $(wc -l <"$serial") lines, $lines before: $(tail -n +"$((lines - 1))" "$serial" | head -4 | tr '\n' '|'))"
fi
expect snap-revert-memory-overlay 0 "vda +$tmp/n1.s2" -- domblklist n1

# Revert to the disk-only snapshot: shut off, on a new overlay over the
# image s1 froze (s1's own overlay is s2's image now), boots from it.
expect snap-revert-disk 0 "Domain snapshot s1 reverted" -- snapshot-revert n1 s1
expect snap-reverted-off 0 'shut off \(from snapshot\)' -- domstate n1 --reason
expect snap-revert-disk-overlay 0 "vda +$tmp/n1.s1-1" -- domblklist n1
expect snap-revert-current 0 '^s1$' -- snapshot-current n1 --name
: >"$serial"
expect snap-revert-disk-boots 0 "Domain 'n1' started" -- start n1
wait_ticks 3 && no_fail && grep -q '^TICK 1 ' "$serial" && pass snap-revert-disk-boots-fresh || fail snap-revert-disk-boots-fresh

# Delete: s2's overlay is not in use, so only its metadata goes; s1's
# overlay is committed into the image below while the guest runs.
expect snap-delete-not-in-use 1 "VM disk source and snapshot disk source are not the same" -- snapshot-delete n1 s2
expect snap-delete-metadata 0 "Domain snapshot s2 deleted" -- snapshot-delete n1 s2 --metadata
[ -e "$tmp/n1.s2" ] && pass snap-delete-metadata-keeps-images || fail snap-delete-metadata-keeps-images
expect snap-delete-commit 0 "Domain snapshot s1 deleted" -- snapshot-delete n1 s1
expect snap-delete-back-on-image 0 "vda +$tmp/n1.img" -- domblklist n1
[ -e "$tmp/n1.s1-1" ] && fail snap-delete-overlay-removed || pass snap-delete-overlay-removed
wait_ticks 3 && no_fail && pass snap-guest-after-commit || fail snap-guest-after-commit
exact_names snap-all-deleted ""
expect snap-deleted-none 1 "no domain snapshot with matching name 's1'" -- snapshot-dumpxml n1 s1

# Delete the older of two external snapshots while the guest runs on the
# newer one's overlay: the older overlay is committed into the image and
# the newer one now stands on that image.
expect snap-chain-1 0 "Domain snapshot c1 created" -- snapshot-create-as n1 c1 --disk-only
expect snap-chain-2 0 "Domain snapshot c2 created" -- snapshot-create-as n1 c2 --disk-only
expect snap-chain-delete-older 0 "Domain snapshot c1 deleted" -- snapshot-delete n1 c1
[ -e "$tmp/n1.c1" ] && fail snap-chain-older-overlay-removed || pass snap-chain-older-overlay-removed
expect snap-chain-still-on-newer 0 "vda +$tmp/n1.c2" -- domblklist n1
if command -v qemu-img >/dev/null; then
    out=$(qemu-img info -U --output=json "$tmp/n1.c2" 2>&1)
    grep -q "\"backing-filename\": \"$tmp/n1.img\"" <<<"$out" && pass snap-chain-rebased || fail "snap-chain-rebased ($out)"
elif [ "${CI:-}" = true ]; then
    fail "snap-chain-rebased (qemu-img is missing)"
fi
expect snap-chain-newer-xml 0 "<source file='$tmp/n1.img'/>" -- snapshot-dumpxml n1 c2
expect snap-chain-parent-gone 1 "snapshot 'c2' has no parent" -- snapshot-parent n1 c2
wait_ticks 3 && no_fail && pass snap-chain-guest-ticks || fail snap-chain-guest-ticks
expect snap-chain-delete-newer 0 "Domain snapshot c2 deleted" -- snapshot-delete n1 c2
expect snap-chain-back-on-image 0 "vda +$tmp/n1.img" -- domblklist n1
wait_ticks 3 && no_fail && pass snap-chain-guest-ticks-on-image || fail snap-chain-guest-ticks-on-image

# A shut off domain: the overlay is made offline; undefine needs
# --snapshots-metadata.
virsh -c "$U" destroy n1 >/dev/null 2>&1
expect snap-offline 0 "Domain snapshot off1 created" -- snapshot-create-as n1 off1 --disk-only
expect snap-offline-state 0 "<state>shutoff</state>" -- snapshot-dumpxml n1 off1
expect snap-offline-overlay 0 "vda +$tmp/n1.off1" -- domblklist n1
expect snap-undefine-refused 1 "cannot delete inactive domain with 1 snapshots" -- undefine n1
expect snap-rename-refused 1 "cannot rename domain with snapshots" -- domrename n1 n2
: >"$serial"
expect snap-offline-boots 0 "Domain 'n1' started" -- start n1
wait_ticks 3 && no_fail && pass snap-offline-overlay-boots || fail snap-offline-overlay-boots
virsh -c "$U" destroy n1 >/dev/null 2>&1
expect snap-offline-delete 0 "Domain snapshot off1 deleted" -- snapshot-delete n1 off1
expect snap-offline-back 0 "vda +$tmp/n1.img" -- domblklist n1

# Internal snapshots of a qcow2 volume (the default of snapshot-create-as):
# inside the image, as qemu-img reads them; the guest state beside the
# metadata.
virsh -c "$U" pool-define-as p dir --target "$tmp/pool" >/dev/null 2>&1
virsh -c "$U" pool-build p >/dev/null 2>&1
virsh -c "$U" pool-start p >/dev/null 2>&1
expect int-vol 0 "Vol q1.qcow2 created" -- vol-create-as p q1.qcow2 8M --format qcow2
qimg=$tmp/pool/q1.qcow2
sed "s|<name>n1</name>|<name>q1</name>|; s|n1.serial|q1.serial|; s|<driver name='qemu' type='raw'/><source file='[^']*'/>|<driver name='qemu' type='qcow2'/><source file='$qimg'/>|" "$tmp/n1.xml" >"$tmp/q1.xml"
serial=$tmp/q1.serial
expect int-define 0 "Domain 'q1' defined" -- define "$tmp/q1.xml"
expect int-start 0 "Domain 'q1' started" -- start q1
wait_ticks 3
b1=$(last_tick)
expect int-create 0 "Domain snapshot i1 created" -- snapshot-create-as q1 i1
b2=$(last_tick)
expect int-running 0 '^running' -- domstate q1
wait_ticks 3 && no_fail && pass int-guest-ticks-on || fail int-guest-ticks-on
expect int-same-image 0 "vda +$qimg" -- domblklist q1
virsh -c "$U" snapshot-dumpxml q1 i1 >"$tmp/i1.snap.xml" 2>&1
check int-dumpxml-valid xmllint --noout --relaxng "$RNG" "$tmp/i1.snap.xml"
grep -q "<memory snapshot='internal'/>" "$tmp/i1.snap.xml" && grep -q "<disk name='vda' snapshot='internal'/>" "$tmp/i1.snap.xml" &&
    pass int-dumpxml-internal || fail int-dumpxml-internal
virsh -c "$U" snapshot-info q1 i1 | tr '\n' ' ' >"$tmp/info.out"
grep -Eq 'State: +running +Location: +internal' "$tmp/info.out" && pass int-info || fail "int-info ($(cat "$tmp/info.out"))"
qemu_img_has() { # NAME SNAPSHOTS...: qemu-img lists exactly these and finds no error
    local name=$1 out
    shift
    if ! command -v qemu-img >/dev/null; then
        [ "${CI:-}" = true ] && fail "$name (qemu-img is missing)"
        return
    fi
    out=$(qemu-img snapshot -U -l "$qimg" 2>&1 | awk 'NR > 2 { print $2 }' | tr '\n' ' ')
    if [ "$out" = "$*${*:+ }" ] && qemu-img check -U "$qimg" 2>&1 | grep -q "No errors were found"; then
        pass "$name"
    else
        fail "$name (qemu-img lists '$out'; $(qemu-img check -U "$qimg" 2>&1 | head -3 | tr '\n' ' '))"
    fi
}
qemu_img_has int-qemu-img-sees-i1 i1
wait_ticks 3
lines=$(wc -l <"$serial")
expect int-revert 0 "Domain snapshot i1 reverted" -- snapshot-revert q1 i1
wait_ticks 2
first=$(tail -n +"$((lines + 1))" "$serial" | grep -o '^TICK [0-9]*' |
    awk -v top="$((b2 + 2))" '$2 <= top { print $2; exit }')
if [ -n "$first" ] && [ "$first" -ge "$((b1 + 1))" ] && no_fail; then
    pass int-revert-ticks-from-snapshot
else
    fail "int-revert-ticks-from-snapshot (first tick $first, snapshot between $b1 and $b2; after line $lines: $(tail -n +"$((lines - 1))" "$serial" | head -5 | tr '\n' '|'))"
fi
virsh -c "$U" destroy q1 >/dev/null 2>&1
expect int-offline 0 "Domain snapshot i2 created" -- snapshot-create-as q1 i2
expect int-offline-state 0 "<state>shutoff</state>" -- snapshot-dumpxml q1 i2
qemu_img_has int-qemu-img-sees-both i1 i2
expect int-revert-offline-to-memory 0 "Domain snapshot i1 reverted" -- snapshot-revert q1 i1
expect int-revert-offline-running 0 'running \(from snapshot\)' -- domstate q1 --reason
expect int-delete-live 0 "Domain snapshot i2 deleted" -- snapshot-delete q1 i2
wait_ticks 2 && no_fail && pass int-guest-after-live-delete || fail int-guest-after-live-delete
qemu_img_has int-qemu-img-after-delete i1
expect int-revert-to-shutoff 0 "Domain snapshot i1 reverted" -- snapshot-revert q1 i1 --paused
expect int-reverted-paused 0 'paused \(from snapshot\)' -- domstate q1 --reason
virsh -c "$U" destroy q1 >/dev/null 2>&1
expect int-delete-offline 0 "Domain snapshot i1 deleted" -- snapshot-delete q1 i1
qemu_img_has int-qemu-img-none
ls "$tmp/state/snapshot/q1" 2>/dev/null | grep -q . && fail int-metadata-gone || pass int-metadata-gone
expect int-undefine 0 "Domain 'q1' has been undefined" -- undefine q1
serial=$tmp/n1.serial

# libvirt-dbus's DomainSnapshot interface.
BUS=$(head -1 "$tmp/bus")
uuid=$(virsh -c "$U" domuuid n1 | head -1)
obj=/org/libvirt/QEMU/domain/_${uuid//-/_}
dcall() { busctl --address="$BUS" call org.libvirt "$1" "$2" "${@:3}" 2>&1; }
virsh -c "$U" start n1 >/dev/null 2>&1
wait_ticks 2
out=$(dcall "$obj" org.libvirt.Domain SnapshotCreateXML su "<domainsnapshot><name>d-1</name></domainsnapshot>" 16)
want="o \"/org/libvirt/QEMU/domainsnapshot/_${uuid//-/_}_d_2d1\""
[ "$out" = "$want" ] && pass dbus-snapshot-create || fail "dbus-snapshot-create ($out, want $want)"
spath=/org/libvirt/QEMU/domainsnapshot/_${uuid//-/_}_d_2d1
out=$(dcall "$spath" org.libvirt.DomainSnapshot GetXMLDesc u 0)
grep -q '<name>d-1</name>' <<<"$out" && pass dbus-snapshot-xml || fail "dbus-snapshot-xml ($out)"
out=$(dcall "$spath" org.libvirt.DomainSnapshot IsCurrent u 0)
[ "$out" = "b true" ] && pass dbus-snapshot-is-current || fail "dbus-snapshot-is-current ($out)"
out=$(dcall "$spath" org.libvirt.DomainSnapshot GetParent u 0)
grep -q "does not have a parent" <<<"$out" && pass dbus-snapshot-no-parent || fail "dbus-snapshot-no-parent ($out)"
out=$(dcall "$obj" org.libvirt.Domain SnapshotCurrent u 0)
[ "$out" = "o \"$spath\"" ] && pass dbus-snapshot-current || fail "dbus-snapshot-current ($out)"
out=$(dcall "$obj" org.libvirt.Domain SnapshotLookupByName su d-1 0)
[ "$out" = "o \"$spath\"" ] && pass dbus-snapshot-lookup || fail "dbus-snapshot-lookup ($out)"
out=$(dcall "$obj" org.libvirt.Domain SnapshotLookupByName su nope 0)
grep -q "no domain snapshot with matching name 'nope'" <<<"$out" && pass dbus-snapshot-lookup-missing || fail "dbus-snapshot-lookup-missing ($out)"
dcall "$obj" org.libvirt.Domain SnapshotCreateXML su "<domainsnapshot><name>d2</name></domainsnapshot>" 16 >/dev/null
out=$(dcall "$obj" org.libvirt.Domain ListDomainSnapshots u 0)
[ "$out" = "ao 2 \"$spath\" \"/org/libvirt/QEMU/domainsnapshot/_${uuid//-/_}_d2\"" ] && pass dbus-list-snapshots || fail "dbus-list-snapshots ($out)"
out=$(dcall "$spath" org.libvirt.DomainSnapshot ListChildren u 0)
[ "$out" = "ao 1 \"/org/libvirt/QEMU/domainsnapshot/_${uuid//-/_}_d2\"" ] && pass dbus-snapshot-children || fail "dbus-snapshot-children ($out)"
out=$(dcall "/org/libvirt/QEMU/domainsnapshot/_${uuid//-/_}_d2" org.libvirt.DomainSnapshot Delete u 0)
[ -z "$out" ] && pass dbus-snapshot-delete || fail "dbus-snapshot-delete ($out)"
out=$(dcall "$spath" org.libvirt.DomainSnapshot Revert u 1)
[ -z "$out" ] && virsh -c "$U" domstate n1 | grep -q running && pass dbus-snapshot-revert-running || fail "dbus-snapshot-revert-running ($out)"
out=$(busctl --address="$BUS" introspect org.libvirt "$spath" org.libvirt.DomainSnapshot 2>&1)
grep -q '\.ListChildren' <<<"$out" && pass dbus-snapshot-introspect || fail "dbus-snapshot-introspect ($out)"
virsh -c "$U" destroy n1 >/dev/null 2>&1
virsh -c "$U" snapshot-delete n1 d-1 --metadata >/dev/null 2>&1

# oxvirsh prints what virsh prints.
OXVIRSH=$(cd "$(dirname "$OXVIRTD")" && pwd)/oxvirsh
ox() { timeout 60 "$OXVIRSH" --bus-address "$BUS" "$@" 2>&1; }
same() { # NAME ARGS...: both clients, the same output
    local name=$1 v o
    shift
    v=$(timeout 30 virsh -c "$U" "$@" 2>&1)
    o=$(ox "$@")
    if [ "$v" = "$o" ]; then pass "oxvirsh-$name"; else
        fail "oxvirsh-$name"
        diff <(echo "$v") <(echo "$o") | sed 's/^/       | /'
    fi
}
saw() { # NAME WANT ARGS...: oxvirsh's output is exactly WANT
    local name=$1 want=$2 out
    shift 2
    out=$(ox "$@")
    if [ "$out" = "$want" ]; then pass "oxvirsh-$name"; else fail "oxvirsh-$name (got '$out', want '$want')"; fi
}
virsh -c "$U" start n1 >/dev/null 2>&1
wait_ticks 2
saw snapshot-create-as "Domain snapshot o1 created" snapshot-create-as n1 o1 --disk-only
saw snapshot-create-as-memory "Domain snapshot o2 created" snapshot-create-as n1 o2 "second one" --memspec "$tmp/n1.o2.mem" --diskspec vda,snapshot=external
saw snapshot-create-dup "$(printf 'error: operation failed: domain moment o2 already exists')" snapshot-create-as n1 o2 --disk-only --diskspec "vda,file=$tmp/x.qcow2"
for args in "snapshot-list n1" "snapshot-list n1 --parent" "snapshot-list n1 --tree" "snapshot-list n1 --name" \
    "snapshot-list n1 --roots" "snapshot-list n1 --leaves --name" "snapshot-list n1 --from o1" \
    "snapshot-list n1 --current --descendants" "snapshot-info n1 o1" "snapshot-info n1 --current" \
    "snapshot-current n1 --name" "snapshot-parent n1 o2" "snapshot-parent n1 o1" "snapshot-dumpxml n1 o2" \
    "snapshot-info n1" "snapshot-dumpxml n1 nope" "snapshot-create-as n1 --print-xml x y --memspec /m --diskspec vda,snapshot=external"; do
    # shellcheck disable=SC2086
    same "${args// /-}" $args
done
saw snapshot-current-set "Snapshot o1 set as current" snapshot-current n1 o1
expect snapshot-current-set-seen 0 '^o1$' -- snapshot-current n1 --name
saw snapshot-revert "$(printf 'Domain snapshot o2 reverted')" snapshot-revert n1 o2
expect snapshot-revert-running 0 'running \(from snapshot\)' -- domstate n1 --reason
saw snapshot-delete-metadata "Domain snapshot o1 deleted" snapshot-delete n1 o1 --metadata
saw snapshot-delete "Domain snapshot o2 deleted" snapshot-delete n1 --current
# o1 went with --metadata: its overlay stays, now holding o2's data too.
expect snapshot-delete-back 0 "vda +$tmp/n1.o1" -- domblklist n1
virsh -c "$U" destroy n1 >/dev/null 2>&1

# python-libvirt.
if /usr/bin/python3 -c 'import libvirt' 2>/dev/null; then
    out=$(timeout 120 /usr/bin/python3 - "$U" <<'PY' 2>&1
import sys, libvirt
c = libvirt.open(sys.argv[1])
d = c.lookupByName("n1")
d.create()
s = d.snapshotCreateXML("<domainsnapshot><name>p1</name></domainsnapshot>",
                        libvirt.VIR_DOMAIN_SNAPSHOT_CREATE_DISK_ONLY)
assert s.getName() == "p1"
assert d.hasCurrentSnapshot() == 1
assert d.snapshotCurrent().getName() == "p1"
assert [x.getName() for x in d.listAllSnapshots()] == ["p1"]
assert d.snapshotNum() == 1 and d.snapshotListNames() == ["p1"]
assert s.isCurrent() == 1 and s.hasMetadata() == 1
assert "<name>p1</name>" in s.getXMLDesc()
try:
    s.getParent()
    print("FAIL parent of a root")
except libvirt.libvirtError as e:
    assert e.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN_SNAPSHOT, e
d.revertToSnapshot(s, libvirt.VIR_DOMAIN_SNAPSHOT_REVERT_RUNNING)
assert d.state()[0:2] == [libvirt.VIR_DOMAIN_RUNNING, 4], d.state()
s.delete(0)
assert d.snapshotNum() == 0
d.destroy()
print("python ok")
PY
)
    grep -qx 'python ok' <<<"$out" && pass snap-python-libvirt || fail "snap-python-libvirt ($out)"
elif [ "${CI:-}" = true ]; then
    fail "snap-python-libvirt (python3-libvirt is missing)"
fi

echo "snapshot: $passes passed, $fails failed"
[ "$fails" = 0 ]
