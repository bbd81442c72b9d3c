#!/bin/bash
# The storage driver with the real clients: virsh pool-*/vol-*, virt-install
# (disk paths, --disk size=, --disk pool=default,size=, --boot kernel=),
# virt-clone and python3-libvirt streams, against a private oxvirtd.
#
# Runs in a private mount namespace with a private /var/lib/libvirt/images,
# where virt-install makes libvirt's `default` pool, so the host is left
# as it was. Expected texts are what libvirt 9.0 prints for the same
# commands on this kind of host.
#
# usage: compat-tests/storage/run.sh     (OXVIRTD=path to override the daemon)
# needs: root, /dev/kvm, virsh, virt-install, virt-clone, python3-libvirt,
#        qemu-img, xmllint, libvirt's schemas, dbus-daemon, the test guest
set -u
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
target=${CARGO_TARGET_DIR:-$top/target}
OXVIRTD=${OXVIRTD:-$target/debug/oxvirtd}
KERNEL=$top/compat-tests/guest/out/testos.elf
SCHEMAS=/usr/share/libvirt/schemas

if [ -z "${OX_STORAGE_NS:-}" ]; then
    exec env OX_STORAGE_NS=1 unshare -m --propagation private "$0" "$@"
fi

. "$top/compat-tests/lib/private-run.sh"
skip_unless_present virsh virt-install virt-clone qemu-img xmllint dbus-daemon \
    "$OXVIRTD" "$KERNEL" /dev/kvm "$SCHEMAS/storagepool.rng"

tmp=$(mktemp -d /tmp/oxvirt-storage-XXXXXX)
sock=$tmp/libvirt-sock
U="qemu+unix:///system?socket=$sock"
fails=0
pids=()
trap 'stop_pids_and_remove "$tmp"' EXIT

# virt-install's default pool lives here; keep it private to this run.
mkdir -p /var/lib/libvirt/images "$tmp/images"
mount --bind "$tmp/images" /var/lib/libvirt/images

start_private_bus "$tmp"
start_oxvirtd

. "$top/compat-tests/rpc/lib.sh"

vxml() { virsh -c "$U" "$@"; }

# Every pool event of the run, as `virsh pool-event` prints them.
timeout 600 virsh -c "$U" pool-event --event lifecycle --loop >"$tmp/pool-events" 2>&1 &
evpid=$!
pids+=($evpid)
timeout 600 virsh -c "$U" pool-event --event refresh --loop >"$tmp/pool-refresh-events" 2>&1 &
refpid=$!
pids+=($refpid)
sleep 0.3

P=$tmp/p1
echo "# pools"
expect pool-define-as 0 '^Pool p1 defined$' -- pool-define-as p1 dir --target "$P"
uuid=$(vxml pool-uuid p1 | head -1)
printf 'Name:           p1\nUUID:           %s\nState:          inactive\nPersistent:     yes\nAutostart:      no\n' "$uuid" >"$tmp/want"
exact pool-info-inactive 0 -- pool-info p1
vxml pool-dumpxml p1 >"$tmp/pool-inactive.xml"
check pool-inactive-xml-valid xmllint --noout --relaxng "$SCHEMAS/storagepool.rng" "$tmp/pool-inactive.xml"
expect pool-start-unbuilt 1 "cannot open directory '$P': No such file or directory" -- pool-start p1
expect pool-build 0 '^Pool p1 built$' -- pool-build p1
check pool-build-mode test "$(stat -c %a "$P")" = 711
expect pool-start 0 '^Pool p1 started$' -- pool-start p1
expect pool-info-running 0 '^State: +running$' -- pool-info p1
expect pool-info-capacity 0 '^Capacity: +[0-9.]+ [KMGT]iB$' -- pool-info p1
vxml pool-dumpxml p1 >"$tmp/pool.xml"
check pool-xml-valid xmllint --noout --relaxng "$SCHEMAS/storagepool.rng" "$tmp/pool.xml"
expect pool-xml-perms 0 '<mode>0711</mode>' -- pool-dumpxml p1
printf ' Name   State    Autostart\n----------------------------\n p1     active   no\n' >"$tmp/want"
exact pool-list 0 -- pool-list
expect pool-list-details 0 '^ p1     running   no          yes          [0-9.]+ [KMGT]iB' -- pool-list --all --details
expect pool-start-active 1 "Requested operation is not valid: storage pool 'p1' is already active" -- pool-start p1
expect pool-undefine-active 1 "Requested operation is not valid: storage pool 'p1' is still active" -- pool-undefine p1
expect pool-delete-active 1 "Requested operation is not valid: storage pool 'p1' is still active" -- pool-delete p1
expect pool-define-dup 1 "operation failed: pool 'p1' already exists with uuid $uuid" -- pool-define-as p1 dir --target "$tmp/elsewhere"
expect pool-define-conflict 1 "operation failed: Storage source conflict with pool: 'p1'" -- pool-define-as p2 dir --target "$P"
expect pool-info-missing 1 "Storage pool not found: no storage pool with matching name 'nosuch'" -- pool-info nosuch
expect pool-build-overwrite 1 "No source device specified when formatting pool 'p1'|already active" -- pool-build p1 --overwrite

echo "# bad pool definitions change nothing"
printf "<pool type='dir'><name>bad</name><target><path>/tmp/x</path></target>" >"$tmp/bad1.xml"
expect pool-xml-syntax 1 '^error: \(storage_pool_definition\):1: ' -- pool-define "$tmp/bad1.xml"
printf "<pool type='dir'><name>bad</name></pool>" >"$tmp/bad2.xml"
expect pool-xml-no-target 1 '^error: XML error: missing storage pool target path$' -- pool-define "$tmp/bad2.xml"
printf "<pool type='nosuchtype'><name>bad</name></pool>" >"$tmp/bad3.xml"
expect pool-xml-bad-type 1 "^error: XML error: Invalid value for attribute 'type' in element 'pool': 'nosuchtype'.\$" -- pool-define "$tmp/bad3.xml"
printf "<pool type='logical'><name>bad</name><target><path>/dev/x</path></target></pool>" >"$tmp/bad4.xml"
expect pool-type-unserved 1 '^error: internal error: missing backend for pool type 3 \(logical\)$' -- pool-define "$tmp/bad4.xml"
expect pool-bad-left-nothing 0 '^ p1     active   no$' -- pool-list --all
echo data >"$tmp/afile"
expect pool-file-define 0 '^Pool pf defined$' -- pool-define-as pf dir --target "$tmp/afile"
expect pool-file-build 0 '^Pool pf built$' -- pool-build pf
expect pool-file-start 1 "cannot open directory '$tmp/afile': Not a directory" -- pool-start pf
expect pool-file-undefine 0 '^Pool pf has been undefined$' -- pool-undefine pf

echo "# a filesystem pool: a device (here an image file) mounted on the target"
F=$tmp/fsimg
truncate -s 64M "$F"
expect fs-define 0 '^Pool fp defined$' -- pool-define-as fp fs --source-dev "$F" --source-format ext4 --target "$tmp/fsmnt"
vxml pool-dumpxml fp >"$tmp/fp.xml"
check fs-xml-valid xmllint --noout --relaxng "$SCHEMAS/storagepool.rng" "$tmp/fp.xml"
check fs-xml-source grep -q "<device path='$F'/>" "$tmp/fp.xml"
expect fs-build-overwrite 0 '^Pool fp built$' -- pool-build fp --overwrite
check fs-is-ext4 grep -q '^ext4$' <(blkid -o value -s TYPE "$F")
expect fs-build-no-overwrite 1 "Storage pool already built: Device '$F' already formatted using 'ext4'" -- pool-build fp --no-overwrite
expect fs-start 0 '^Pool fp started$' -- pool-start fp
check fs-mounted grep -q " $tmp/fsmnt ext4 " /proc/self/mounts
expect fs-vol-create 0 '^Vol fv created$' -- vol-create-as fp fv 8M --format qcow2
expect fs-destroy 0 '^Pool fp destroyed$' -- pool-destroy fp
check fs-unmounted test "$(grep -c " $tmp/fsmnt " /proc/self/mounts)" = 0
expect fs-restart 0 '^Pool fp started$' -- pool-start fp
expect fs-vol-kept 0 "^ fv +$tmp/fsmnt/fv\$" -- vol-list fp
expect fs-destroy-again 0 '^Pool fp destroyed$' -- pool-destroy fp
expect fs-device-conflict 1 "operation failed: Storage source conflict with pool: 'fp'" -- pool-define-as fq fs --source-dev "$F" --target "$tmp/other"
expect fs-undefine 0 '^Pool fp has been undefined$' -- pool-undefine fp

echo "# volumes"
expect vol-create-qcow2 0 '^Vol v1 created$' -- vol-create-as p1 v1 10M --format qcow2
expect vol-create-raw 0 '^Vol v2 created$' -- vol-create-as p1 v2 10M
expect vol-create-backed 0 '^Vol v3 created$' -- vol-create-as p1 v3 10M --format qcow2 --backing-vol v1 --backing-vol-format qcow2
expect vol-create-sparse 0 '^Vol sp created$' -- vol-create-as p1 sp 1M --allocation 0
check vol-qcow2-checks qemu-img check -q "$P/v1"
check vol-backing-is-v1 grep -q "backing file: $P/v1" <(qemu-img info "$P/v3")
check vol-raw-fully-allocated test "$(du -k "$P/v2" | cut -f1)" -ge 10240
check vol-mode-0600 test "$(stat -c %a "$P/v2")" = 600
printf 'Name:           v1\nType:           file\nCapacity:       10.00 MiB\nAllocation:     196.00 KiB\n' >"$tmp/want"
exact vol-info-qcow2 0 -- vol-info v1 --pool p1
printf 'Name:           sp\nType:           file\nCapacity:       1.00 MiB\nAllocation:     0.00 B\n' >"$tmp/want"
exact vol-info-sparse 0 -- vol-info sp --pool p1
expect vol-list 0 "^ v3 +$P/v3\$" -- vol-list p1
expect vol-list-details 0 "^ v2 +$P/v2 +file +10.00 MiB +10.00 MiB\$" -- vol-list p1 --details
for v in v1 v2 v3; do
    vxml vol-dumpxml $v --pool p1 >"$tmp/$v.xml"
    check "vol-xml-valid-$v" xmllint --noout --relaxng "$SCHEMAS/storagevol.rng" "$tmp/$v.xml"
done
check vol-xml-backing grep -q "<path>$P/v1</path>" "$tmp/v3.xml"
check vol-xml-raw-format grep -q "<format type='raw'/>" "$tmp/v2.xml"
expect vol-path 0 "^$P/v1\$" -- vol-path v1 --pool p1
expect vol-key 0 "^$P/v1\$" -- vol-key v1 --pool p1
expect vol-name 0 '^v1$' -- vol-name "$P/v1"
expect vol-pool 0 '^p1$' -- vol-pool "$P/v1"
expect vol-dup 1 "^error: storage volume 'v1' exists already\$" -- vol-create-as p1 v1 1M
expect vol-missing 1 "Storage volume not found: no storage vol with matching path 'nosuch'" -- vol-info nosuch --pool p1
expect vol-slash 1 "volume name 'a/b' cannot contain '/'" -- vol-create-as p1 a/b 1M
printf "<volume><name>bv</name><capacity>1024</capacity>" >"$tmp/vbad1.xml"
expect vol-xml-syntax 1 '^error: \(storage_volume_definition\):1: ' -- vol-create p1 "$tmp/vbad1.xml"
printf "<volume><name>bv</name></volume>" >"$tmp/vbad2.xml"
expect vol-xml-no-capacity 1 '^error: XML error: missing capacity element$' -- vol-create p1 "$tmp/vbad2.xml"
printf "<volume><name>bv</name><capacity>1</capacity><target><format type='nosuch'/></target></volume>" >"$tmp/vbad3.xml"
expect vol-xml-bad-format 1 '^error: unsupported configuration: unknown volume format type nosuch$' -- vol-create p1 "$tmp/vbad3.xml"
# More than the free space, fully allocated: libvirt's error, no file left.
avail=$(vxml pool-info p1 --bytes | awk '/^Available:/{print $2}')
big=$((avail / 1024 / 1024 + 1024))M
expect vol-bigger-than-free 1 "cannot allocate [0-9]+ bytes in file '$P/big': No space left on device" -- vol-create-as p1 big "$big" --allocation "$big"
check vol-bigger-left-nothing test ! -e "$P/big"
expect vol-huge-sparse-qcow2 0 '^Vol hq created$' -- vol-create-as p1 hq 100T --format qcow2

echo "# clone, resize, wipe, upload, download, delete"
expect vol-clone-qcow2 0 '^Vol v1c cloned from v1$' -- vol-clone v1 v1c --pool p1
check vol-clone-qcow2-same qemu-img compare -q "$P/v1" "$P/v1c"
head -c 3000000 /dev/urandom >"$tmp/blob"
dd if="$tmp/blob" of="$P/v2" conv=notrunc status=none
expect vol-refresh 0 '^Pool p1 refreshed$' -- pool-refresh p1
expect vol-clone-raw 0 '^Vol v2c cloned from v2$' -- vol-clone v2 v2c --pool p1
check vol-clone-raw-same cmp "$P/v2" "$P/v2c"
expect vol-resize 0 "^Size of volume 'v2' successfully changed to 20M\$" -- vol-resize v2 20M --pool p1
expect vol-resize-qcow2 0 "^Size of volume 'v1' successfully changed to 20M\$" -- vol-resize v1 20M --pool p1
check vol-resize-qcow2-size grep -q 'virtual size: 20 MiB' <(qemu-img info "$P/v1")
expect vol-shrink-refused 1 "invalid argument: can't shrink capacity below existing allocation" -- vol-resize v2 5M --pool p1
expect vol-upload 0 '' -- vol-upload v2c "$tmp/blob" --pool p1
expect vol-download 0 '' -- vol-download v2c "$tmp/down" --pool p1
check vol-download-same cmp -n 3000000 "$tmp/blob" "$tmp/down"
check vol-download-whole test "$(stat -c %s "$tmp/down")" = 10485760
expect vol-download-range 0 '' -- vol-download v2c "$tmp/range" --pool p1 --offset 4096 --length 30
check vol-download-range-bytes cmp "$tmp/range" <(tail -c +4097 "$tmp/blob" | head -c 30)
# A sparse upload over old data: its holes read back as zeros.
truncate -s 4M "$tmp/sparse"
printf 'first' | dd of="$tmp/sparse" bs=1 seek=1048576 conv=notrunc status=none
printf 'second' | dd of="$tmp/sparse" bs=1 seek=3145728 conv=notrunc status=none
expect vol-upload-sparse 0 '' -- vol-upload v2c "$tmp/sparse" --pool p1 --sparse
check vol-upload-sparse-bytes cmp -n 4194304 "$tmp/sparse" "$P/v2c"
expect vol-download-sparse 0 '' -- vol-download v2c "$tmp/sparse-down" --pool p1 --sparse
check vol-download-sparse-bytes cmp -n 4194304 "$tmp/sparse" "$tmp/sparse-down"
expect vol-wipe 0 '^Vol v2c wiped$' -- vol-wipe v2c --pool p1
check vol-wiped-zero cmp -n 10485760 "$P/v2c" /dev/zero
echo extern >"$P/outside.img"
expect pool-refresh-finds 0 '^Pool p1 refreshed$' -- pool-refresh p1
expect vol-outside-listed 0 "^ outside.img +$P/outside.img\$" -- vol-list p1
# Two deletes of one volume at once: one succeeds, the other finds nothing.
virsh -c "$U" vol-delete v1c --pool p1 >"$tmp/del1" 2>&1 &
d1=$!
virsh -c "$U" vol-delete v1c --pool p1 >"$tmp/del2" 2>&1 &
d2=$!
wait "$d1" "$d2"
ok=$(cat "$tmp/del1" "$tmp/del2" | grep -c "^Vol v1c deleted")
check vol-concurrent-delete-one-wins test "$ok" = 1
check vol-concurrent-delete-gone test ! -e "$P/v1c"
expect vol-delete-path 0 "^Vol $P/v2c deleted\$" -- vol-delete "$P/v2c"

echo "# python3-libvirt streams: checksums and an upload cut halfway"
if /usr/bin/python3 "$here/streams.py" "$U" p1 "$tmp" >"$tmp/py.out" 2>&1; then
    pass "python-streams"
else
    fail "python-streams"
fi
sed 's/^/       | /' "$tmp/py.out"

echo "# a domain disk from a pool volume"
cat >"$tmp/vd.xml" <<XML
<domain type='kvm'><name>vd</name><memory unit='MiB'>64</memory>
<os><type>hvm</type><kernel>$KERNEL</kernel></os>
<devices><disk type='volume' device='disk'><source pool='p1' volume='v2'/><target dev='vda' bus='virtio'/></disk>
<serial type='pty'/><console type='pty'/></devices></domain>
XML
expect volume-disk-define 0 "Domain 'vd' defined" -- define "$tmp/vd.xml"
expect volume-disk-blkinfo 0 '^Capacity: +20971520$' -- domblkinfo vd vda
expect volume-disk-start 0 "Domain 'vd' started" -- start vd
expect volume-disk-running 0 '^running$' -- domstate vd
expect volume-disk-blklist 0 "^ vda +v2\$|^ vda +$P/v2\$" -- domblklist vd
expect volume-disk-destroy 0 "Domain 'vd' destroyed" -- destroy vd
expect volume-disk-undefine 0 "Domain 'vd' has been undefined" -- undefine vd

echo "# pool events (virsh pool-event)"
kill "$evpid" "$refpid" 2>/dev/null
cat "$tmp/pool-refresh-events" >>"$tmp/pool-events"
for ev in "lifecycle' for storage pool p1: Defined" "lifecycle' for storage pool p1: Created" \
    "lifecycle' for storage pool p1: Started" "'refresh' for storage pool p1" \
    "lifecycle' for storage pool pf: Undefined"; do
    check "pool-event: $ev" grep -qF "$ev" "$tmp/pool-events"
done

echo "# pools survive a daemon restart; autostart"
expect pool-autostart 0 '^Pool p1 marked as autostarted$' -- pool-autostart p1
kill "$daemon"; wait "$daemon" 2>/dev/null
start_oxvirtd
expect pool-after-restart 0 '^ p1     active   yes$' -- pool-list --all
expect vol-after-restart 0 "^ v2 +$P/v2\$" -- vol-list p1

echo "# virt-install"
IMG=$tmp/disks
mkdir -p "$IMG"
truncate -s 64M "$IMG/raw.img"
qemu-img create -q -f qcow2 "$IMG/q.qcow2" 64M
VI=(timeout 120 virt-install --connect "$U" --memory 64 --noautoconsole)
if "${VI[@]}" --import --name pr1 --disk "path=$IMG/raw.img" --osinfo detect=on,require=off --print-xml >"$tmp/vi1.xml" 2>"$tmp/vi1.err"; then
    check vi-print-raw grep -q "<source file=\"$IMG/raw.img\"/>" "$tmp/vi1.xml"
    check vi-print-raw-type grep -q 'type="raw"' "$tmp/vi1.xml"
else fail "vi-print-raw"; sed 's/^/       | /' "$tmp/vi1.err"; fi
if "${VI[@]}" --import --name pr2 --disk "path=$IMG/q.qcow2" --osinfo detect=on,require=off --print-xml >"$tmp/vi2.xml" 2>"$tmp/vi2.err"; then
    check vi-print-qcow2-type grep -q 'type="qcow2"' "$tmp/vi2.xml"
else fail "vi-print-qcow2"; sed 's/^/       | /' "$tmp/vi2.err"; fi
expect vi-made-pool 0 "^ disks +active +yes\$" -- pool-list --all
# The guest must boot: the test guest as kernel, no graphics or network yet.
REAL=(--osinfo linux2022 --graphics none --network none --boot "kernel=$KERNEL")
check vi-import-raw "${VI[@]}" --import --name vr1 --disk "path=$IMG/raw.img" "${REAL[@]}"
expect vi-import-raw-running 0 '^running$' -- domstate vr1
check vi-import-qcow2 "${VI[@]}" --import --name vr2 --disk "path=$IMG/q.qcow2" "${REAL[@]}"
expect vi-import-qcow2-running 0 '^running$' -- domstate vr2
expect vi-import-qcow2-driver 0 "type='qcow2'" -- dumpxml vr2
if "${VI[@]}" --import --name ps1 --disk size=1 --osinfo detect=on,require=off --print-xml >"$tmp/vi3.xml" 2>"$tmp/vi3.err"; then
    check vi-print-size grep -q '<source file="/var/lib/libvirt/images/ps1.qcow2"/>' "$tmp/vi3.xml"
else fail "vi-print-size"; sed 's/^/       | /' "$tmp/vi3.err"; fi
expect vi-default-pool 0 '^ default +active +yes$' -- pool-list --all
expect vi-default-pool-path 0 '<path>/var/lib/libvirt/images</path>' -- pool-dumpxml default
check vi-size-volume-qcow2 grep -q 'lazy refcounts: true' <(qemu-img info /var/lib/libvirt/images/ps1.qcow2)
check vi-size-real "${VI[@]}" --import --name vs1 --disk size=1 "${REAL[@]}"
expect vi-size-real-running 0 '^running$' -- domstate vs1
check vi-pool-size-real "${VI[@]}" --import --name vs2 --disk pool=default,size=1 "${REAL[@]}"
expect vi-pool-size-real-running 0 '^running$' -- domstate vs2
expect vi-pool-size-volume 0 '^ vs2.qcow2 ' -- vol-list default
for d in vr1 vr2 vs1 vs2; do vxml destroy $d >/dev/null 2>&1; done

echo "# virt-clone"
check clone-auto timeout 120 virt-clone --connect "$U" --original vr2 --auto-clone
expect clone-auto-defined 0 '^ -    vr2-clone +shut off$' -- list --all
check clone-auto-same qemu-img compare -q "$IMG/q.qcow2" "$IMG/q-clone.qcow2"
check clone-file timeout 120 virt-clone --connect "$U" --original vr1 --name vr1b --file "$IMG/vr1b.img"
check clone-file-same cmp "$IMG/raw.img" "$IMG/vr1b.img"
expect clone-file-disk 0 "$IMG/vr1b.img" -- domblklist vr1b

echo "# tear down"
for d in vr1 vr2 vs1 vs2 vr2-clone vr1b; do vxml undefine $d >/dev/null 2>&1; done
expect pool-destroy 0 '^Pool p1 destroyed$' -- pool-destroy p1
expect pool-destroy-inactive 1 "Requested operation is not valid: storage pool 'p1' is not active" -- pool-destroy p1
expect pool-delete-nonempty 1 "failed to remove pool '$P': Directory not empty" -- pool-delete p1
rm -f "$P"/*
expect pool-delete 0 '^Pool p1 deleted$' -- pool-delete p1
check pool-delete-removed test ! -e "$P"
expect pool-undefine 0 '^Pool p1 has been undefined$' -- pool-undefine p1
expect pool-undefined-gone 1 "Storage pool not found: no storage pool with matching name 'p1'" -- pool-info p1
check daemon-alive kill -0 "$daemon"

echo "storage: $passes passed, $fails failed"
[ "$fails" = 0 ]
