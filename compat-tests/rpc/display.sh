#!/bin/bash
# The graphical console through the real virsh and through oxvirsh (D-Bus):
# domain capabilities list VNC and vga; a guest with <graphics type='vnc'/>
# and a vga adapter gets a port from 5900 on 127.0.0.1 (dumpxml,
# domdisplay, vncdisplay), screenshot writes a 640x480 PPM of the test
# guest's pattern, send-key reaches the guest's keyboard; virsh's and
# libvirt's errors for a shut-off guest, a wrong code set, too many keys,
# a second screen; SPICE refused; keymap (a known layout starts, another
# fails the start); a socket listener (vnc+unix://); two
# guests on different ports, a port free again after destroy; guests of
# virt-install with its default USB tablet, on an xHCI and (--osinfo
# generic) on ICH9's EHCI with its companions. oxvirsh's output must
# equal virsh's for the same commands.
#
# usage: display.sh OXVIRTD TMPDIR   (oxvirsh is taken from OXVIRTD's directory)
set -u
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
. "$top/compat-tests/lib/private-run.sh"
OXVIRTD=$1
tmp=$2
OXVIRSH=$(cd "$(dirname "$OXVIRTD")" && pwd)/oxvirsh
KERNEL=$top/compat-tests/guest/out/testos.elf
skip_unless_present virsh python3 "$KERNEL" "$OXVIRSH"
mkdir -p "$tmp"
sock=$tmp/sock
U="qemu+unix:///system?socket=$sock"
fails=0
pids=()
trap 'destroy_running_guests "$sock" "$U"; kill_pids_reverse; stop_pids_and_remove "$tmp"' EXIT
. "$here/lib.sh"

start_private_bus "$tmp"
start_oxvirtd
BUS=$(head -1 "$tmp/bus")

# guest NAME GRAPHICS [VIDEO]: a test guest booted directly, its serial
# log in $tmp/NAME.log, drawing its pattern and echoing key events.
guest() {
    cat <<XML
<domain type='kvm'>
  <name>$1</name>
  <memory unit='MiB'>128</memory>
  <vcpu>1</vcpu>
  <os><type arch='x86_64'>hvm</type><kernel>$KERNEL</kernel>
    <cmdline>oxtest.checks=display oxtest.then=input console=ttyS0</cmdline></os>
  <on_poweroff>destroy</on_poweroff>
  <devices>
    $2
    ${3-<video><model type='vga'/></video>}
    <serial type='file'><source path='$tmp/$1.log'/></serial>
  </devices>
</domain>
XML
}

# wait_log NAME FILE PATTERN: up to 60 s for PATTERN in the guest's log.
wait_log() {
    for _ in $(seq 300); do
        grep -q -- "$3" "$2" 2>/dev/null && { pass "$1"; return; }
        sleep 0.2
    done
    fail "$1"
    tr -d '\033' <"$2" 2>/dev/null | sed 's/^/       | /' | tail -20
}

# same NAME ARGS...: oxvirsh prints and exits as virsh does.
same() {
    local name=$1
    shift
    local v o vr or
    v=$(cd "$tmp" && timeout 30 virsh -c "$U" "$@" 2>&1)
    vr=$?
    o=$(cd "$tmp" && timeout 30 "$OXVIRSH" --bus-address "$BUS" "$@" 2>&1)
    or=$?
    if [ "$v" = "$o" ] && [ "$vr" = "$or" ]; then
        pass "oxvirsh-$name"
    else
        fail "oxvirsh-$name (virsh rc $vr, oxvirsh rc $or)"
        diff <(echo "$v") <(echo "$o") | sed 's/^/       | /'
    fi
}

# port_of NAME: the VNC port in the live XML.
port_of() {
    virsh -c "$U" dumpxml "$1" | sed -n "s/.*<graphics type='vnc' port='\([0-9]*\)'.*/\1/p" | head -1
}

# port_free PORT: nothing listens on 127.0.0.1:PORT.
port_free() {
    python3 -c 'import socket,sys
s=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1])))' "$1"
}

echo "# domain capabilities"
virsh -c "$U" domcapabilities >"$tmp/caps.xml" 2>&1
check caps-graphics-vnc python3 - "$tmp/caps.xml" <<'PY'
import sys, xml.etree.ElementTree as ET
d = ET.parse(sys.argv[1]).getroot().find('devices')
g, v = d.find('graphics'), d.find('video')
assert g.get('supported') == 'yes', g.attrib
assert [x.text for x in g.find("enum[@name='type']")] == ['vnc']
assert v.get('supported') == 'yes', v.attrib
assert [x.text for x in v.find("enum[@name='modelType']")] == ['vga', 'none']
assert [c.tag for c in d][:3] == ['disk', 'graphics', 'video'], [c.tag for c in d]
PY

echo "# a shut-off guest"
guest d1 "<graphics type='vnc'/>" >"$tmp/d1.xml"
expect define 0 "Domain 'd1' defined" -- define "$tmp/d1.xml"
expect inactive-autoport 0 "<graphics type='vnc' port='-1' autoport='yes'" -- dumpxml d1
expect off-domdisplay 1 "^error: Domain is not running" -- domdisplay d1
expect off-vncdisplay 1 "^error: Domain is not running" -- vncdisplay d1
expect off-screenshot 1 "^error: could not take a screenshot of d1" -- screenshot d1 "$tmp/off.ppm"
expect off-screenshot-reason 1 "^error: Requested operation is not valid: domain is not running" -- screenshot d1 "$tmp/off.ppm"
check off-screenshot-no-file test ! -e "$tmp/off.ppm"
expect off-send-key 1 "^error: Requested operation is not valid: domain is not running" -- send-key d1 KEY_A
same off-domdisplay domdisplay d1
same off-vncdisplay vncdisplay d1
same off-screenshot screenshot d1 "$tmp/off.ppm"
same off-send-key send-key d1 30

echo "# virsh's own checks of send-key and screenshot arguments"
expect bad-codeset 1 "^error: unknown codeset: 'ebcdic'" -- send-key d1 --codeset ebcdic 30
expect bad-keyname 1 "^error: invalid keycode: 'KEY_NOPE'" -- send-key d1 KEY_NOPE
expect too-many-keys 1 "^error: too many keycodes" -- send-key d1 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17
expect bad-holdtime 1 "^error: Numeric value 'x' for <holdtime> option is malformed or out of range" -- send-key d1 --holdtime x 30
expect bad-screen 1 "^error: Numeric value '-1' for <screen> option is malformed or out of range" -- screenshot d1 --screen -1
same bad-codeset send-key d1 --codeset ebcdic 30
same bad-keyname send-key d1 KEY_NOPE
same too-many-keys send-key d1 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17
same bad-screen screenshot d1 --screen -1

echo "# running: port, listen address, display URIs"
expect start 0 "Domain 'd1' started" -- start d1
p1=$(port_of d1)
if [ -n "$p1" ] && [ "$p1" -ge 5900 ]; then pass "live-port ($p1)"; else fail "live-port '$p1'"; fi
expect live-listen 0 "<graphics type='vnc' port='$p1' autoport='yes' listen='127.0.0.1'>" -- dumpxml d1
expect live-listen-element 0 "<listen type='address' address='127.0.0.1'/>" -- dumpxml d1
n1=$((p1 - 5900))
echo "vnc://127.0.0.1:$n1" >"$tmp/want"
exact domdisplay 0 -- domdisplay d1
echo "vnc://127.0.0.1:$n1" >"$tmp/want"
exact domdisplay-type-vnc 0 -- domdisplay d1 --type vnc
expect domdisplay-type-spice 1 "^error: No graphical display with type 'spice' found" -- domdisplay d1 --type spice
expect domdisplay-all-and-type 1 "^error: Options --all and --type are mutually exclusive" -- domdisplay d1 --all --type vnc
printf '127.0.0.1:%s\n' "$n1" >"$tmp/want"
exact vncdisplay 0 -- vncdisplay d1
same domdisplay domdisplay d1
same domdisplay-all domdisplay d1 --all
same domdisplay-password domdisplay d1 --include-password
same domdisplay-type-spice domdisplay d1 --type spice
same domdisplay-all-and-type domdisplay d1 --all --type vnc
same vncdisplay vncdisplay d1
check vnc-port-listens python3 -c 'import socket,sys; socket.create_connection(("127.0.0.1", int(sys.argv[1])), 5).close()' "$p1"

echo "# screenshot"
wait_log guest-display-check "$tmp/d1.log" "PASS display"
expect screenshot 0 "^Screenshot saved to $tmp/shot.ppm, with type of image/x-portable-pixmap$" -- screenshot d1 "$tmp/shot.ppm"
check screenshot-ppm-640x480 python3 - "$tmp/shot.ppm" <<'PY'
import sys
data = open(sys.argv[1], 'rb').read()
head = data.split(None, 4)
assert head[:4] == [b'P6', b'640', b'480', b'255'], head[:4]
assert len(data) >= 640 * 480 * 3, len(data)
PY
# Every pixel is the test guest's pattern (compat-tests/guest/testos
# README, "Display and input"): R from x, G from y, B a 32x32 checkerboard.
check screenshot-pixels python3 - "$tmp/shot.ppm" <<'PY'
import sys
data = open(sys.argv[1], 'rb').read()
w, h = 640, 480
pixels = data[len(b'P6\n640 480\n255\n'):]
for y in range(h):
    for x in range(w):
        want = (x * 255 // (w - 1), y * 255 // (h - 1), 0xff if ((x >> 5) ^ (y >> 5)) & 1 else 0)
        i = (y * w + x) * 3
        got = tuple(pixels[i:i + 3])
        assert got == want, f"pixel ({x},{y}) is {got}, want {want}"
PY
(cd "$tmp" && timeout 30 virsh -c "$U" screenshot d1 >"$tmp/gen.out" 2>&1)
check screenshot-generated-name grep -Eq "^Screenshot saved to d1-[0-9]{4}-[0-9]{2}-[0-9]{2}-[0-9]{2}:[0-9]{2}:[0-9]{2}\.ppm, with type of image/x-portable-pixmap" "$tmp/gen.out"
expect screenshot-no-such-screen 1 "^error: Requested operation is not valid: no such screen ID" -- screenshot d1 "$tmp/s1.ppm" --screen 1
o=$(timeout 30 "$OXVIRSH" --bus-address "$BUS" screenshot d1 "$tmp/shot-dbus.ppm" 2>&1)
if [ "$o" = "Screenshot saved to $tmp/shot-dbus.ppm, with type of image/x-portable-pixmap" ] &&
    [ "$(head -c 15 "$tmp/shot-dbus.ppm" | tr '\n' ' ')" = "P6 640 480 255 " ]; then
    pass "oxvirsh-screenshot"
else
    fail "oxvirsh-screenshot"
    sed 's/^/       | /' <<<"$o"
fi
(cd "$tmp" && timeout 30 "$OXVIRSH" --bus-address "$BUS" screenshot d1 >"$tmp/gen2.out" 2>&1)
check oxvirsh-screenshot-generated-name grep -Eq "^Screenshot saved to d1-[0-9]{4}-[0-9]{2}-[0-9]{2}-[0-9]{2}:[0-9]{2}:[0-9]{2}\.ppm, with type of image/x-portable-pixmap" "$tmp/gen2.out"
same screenshot-no-such-screen screenshot d1 "$tmp/s2.ppm" --screen 1

echo "# virDomainOpenGraphicsFD (virt-manager's console): a socket to the VNC server"
check open-graphics-fd /usr/bin/python3 - "$U" <<'PY'
import os, socket, sys, libvirt
conn = libvirt.open(sys.argv[1])
assert conn.getLibVersion() and conn.getType()
dom = conn.lookupByName("d1")
fd = dom.openGraphicsFD(0, 0)
s = socket.socket(fileno=fd)
s.settimeout(10)
assert s.recv(12) == b"RFB 003.008\n"
s.sendall(b"RFB 003.008\n")
assert s.recv(2) == b"\x01\x01", "security type None"
try:
    dom.openGraphicsFD(1, 0)
    raise SystemExit("index 1 accepted")
except libvirt.libvirtError as e:
    assert "No graphics backend with index 1" in str(e), e
PY

echo "# the VNC password: update-device, live and in the definition"
# security_types PORT: the RFB security types the server offers (3.8).
security_types() {
    python3 - "$1" <<'PY'
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), 5)
s.recv(12)
s.sendall(b"RFB 003.008\n")
n = s.recv(1)[0]
print(" ".join(str(b) for b in s.recv(n)))
PY
}
[ "$(security_types "$p1")" = 1 ] && pass "no-password-type-none" || fail "no-password-type-none"
printf "<graphics type='vnc' passwd='s3cret'/>\n" >"$tmp/pw.xml"
expect update-password 0 "Device updated successfully" -- update-device d1 "$tmp/pw.xml" --live --config
[ "$(security_types "$p1")" = 2 ] && pass "password-type-vnc-auth" || fail "password-type-vnc-auth"
if virsh -c "$U" dumpxml d1 | grep -q "passwd="; then fail "password-hidden"; else pass "password-hidden"; fi
expect password-secure 0 "passwd='s3cret'" -- dumpxml d1 --security-info
expect password-in-definition 0 "passwd='s3cret'" -- dumpxml d1 --inactive --security-info
printf "<graphics type='vnc' port='5999' autoport='no'/>\n" >"$tmp/port.xml"
check open-graphics-fd-skipauth /usr/bin/python3 - "$U" <<'PY'
import socket, sys, libvirt
dom = libvirt.open(sys.argv[1]).lookupByName("d1")
for flags, want in ((0, b"\x01\x02"), (libvirt.VIR_DOMAIN_OPEN_GRAPHICS_SKIPAUTH, b"\x01\x01")):
    s = socket.socket(fileno=dom.openGraphicsFD(0, flags))
    s.settimeout(10)
    s.recv(12)
    s.sendall(b"RFB 003.008\n")
    got = s.recv(2)
    assert got == want, (flags, got)
PY
expect update-port-refused 1 "cannot change port settings on vnc graphics" -- update-device d1 "$tmp/port.xml" --live
printf "<graphics type='vnc'/>\n" >"$tmp/nopw.xml"
expect update-no-password 0 "Device updated successfully" -- update-device d1 "$tmp/nopw.xml" --live --config
[ "$(security_types "$p1")" = 1 ] && pass "password-removed" || fail "password-removed"

echo "# send-key"
expect send-key 0 "" -- send-key d1 --codeset linux KEY_A
wait_log send-key-reaches-guest "$tmp/d1.log" "INFO key make 0x1e"
expect send-key-number 0 "" -- send-key d1 --codeset linux 48
wait_log send-key-number-reaches-guest "$tmp/d1.log" "INFO key make 0x30"
check oxvirsh-send-key timeout 30 "$OXVIRSH" --bus-address "$BUS" send-key d1 --codeset linux --holdtime 50 KEY_C
wait_log oxvirsh-send-key-reaches-guest "$tmp/d1.log" "INFO key make 0x2e"
# What only a direct caller can send: libvirt's own argument checks.
dpath=/org/libvirt/QEMU/domain/_$(virsh -c "$U" domuuid d1 | head -1 | tr - _)
bcall() { busctl --address="$BUS" call org.libvirt "$dpath" org.libvirt.Domain SendKey "$@"; }
if command -v busctl >/dev/null; then
    bcall uuauu 0 0 1 30 0 >"$tmp/b.out" 2>&1 && pass "dbus-send-key" || { fail "dbus-send-key"; sed 's/^/       | /' "$tmp/b.out"; }
    # bcall_err NAME PATTERN ARGS...: the call fails with PATTERN.
    bcall_err() {
        local name=$1 pat=$2
        shift 2
        local out
        if out=$(bcall "$@" 2>&1); then
            fail "$name (succeeded)"
        elif grep -q -- "$pat" <<<"$out"; then
            pass "$name"
        else
            fail "$name"
            sed 's/^/       | /' <<<"$out"
        fi
    }
    bcall_err dbus-send-key-bad-codeset "Unsupported codeset '99'" uuauu 99 0 1 30 0
    bcall_err dbus-send-key-17-keys "nkeycodes must be <= 16" uuauu 0 0 17 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 0
    bcall_err dbus-send-key-no-keys "nkeycodes in virDomainSendKey must be greater than 0" uuauu 0 0 0 0
else
    fail "busctl is not installed"
fi

echo "# a second guest, SPICE, a socket listener"
guest d2 "<graphics type='vnc'/>" >"$tmp/d2.xml"
expect d2-define 0 "Domain 'd2' defined" -- define "$tmp/d2.xml"
expect d2-start 0 "Domain 'd2' started" -- start d2
p2=$(port_of d2)
if [ -n "$p2" ] && [ "$p2" != "$p1" ] && [ "$p2" -ge 5900 ]; then pass "d2-other-port ($p1, $p2)"; else fail "d2-other-port '$p1' '$p2'"; fi
guest sp "<graphics type='spice'/>" >"$tmp/sp.xml"
expect spice-refused 1 "unsupported configuration: graphics type 'spice' is not supported" -- define "$tmp/sp.xml"
# keymap: a layout QEMU has is taken (plain key events are typed on it:
# tests/vmm_display.rs); another fails the start with QEMU's words.
guest km "<graphics type='vnc' keymap='de'/>" >"$tmp/km.xml"
expect keymap-define 0 "Domain 'km' defined" -- define "$tmp/km.xml"
expect keymap-start 0 "Domain 'km' started" -- start km
expect keymap-live-xml 0 "keymap='de'" -- dumpxml km
expect keymap-destroy 0 "Domain 'km' destroyed" -- destroy km
expect keymap-undefine 0 "Domain 'km' has been undefined" -- undefine km
guest kx "<graphics type='vnc' keymap='xx'/>" >"$tmp/kx.xml"
expect keymap-unknown-define 0 "Domain 'kx' defined" -- define "$tmp/kx.xml"
expect keymap-unknown 1 "could not read keymap file: 'xx'" -- start kx
expect keymap-unknown-shut-off 0 "^shut off" -- domstate kx
expect keymap-unknown-undefine 0 "Domain 'kx' has been undefined" -- undefine kx
guest us "<graphics type='vnc'><listen type='socket'/></graphics>" >"$tmp/us.xml"
expect socket-define 0 "Domain 'us' defined" -- define "$tmp/us.xml"
expect socket-start 0 "Domain 'us' started" -- start us
expect socket-domdisplay 0 "^vnc\+unix:///.+" -- domdisplay us
expect socket-vncdisplay 1 "^error: Failed to get VNC port. Is this domain using VNC\?" -- vncdisplay us
same socket-domdisplay domdisplay us
same socket-vncdisplay vncdisplay us
spath=$(virsh -c "$U" domdisplay us | head -1 | sed 's|^vnc+unix://||')
check socket-exists test -S "$spath"
expect socket-destroy 0 "Domain 'us' destroyed" -- destroy us
check socket-removed test ! -e "$spath"
guest nv "<graphics type='vnc'/>" "<video><model type='none'/></video>" >"$tmp/nv.xml"
expect novideo-define 0 "Domain 'nv' defined" -- define "$tmp/nv.xml"
expect novideo-start 0 "Domain 'nv' started" -- start nv
expect novideo-screenshot 1 "^error: Requested operation is not valid: no screens to take screenshot from" -- screenshot nv "$tmp/nv.ppm"
same novideo-screenshot screenshot nv "$tmp/nv.ppm"
expect novideo-destroy 0 "destroyed" -- destroy nv

echo "# a websocket listener (noVNC without a proxy)"
guest ws "<graphics type='vnc' websocket='-1'/>" >"$tmp/ws.xml"
expect ws-define 0 "Domain 'ws' defined" -- define "$tmp/ws.xml"
expect ws-inactive 0 "<graphics type='vnc' port='-1' autoport='yes' websocket='-1'" -- dumpxml ws
expect ws-start 0 "Domain 'ws' started" -- start ws
wsport=$(virsh -c "$U" dumpxml ws | sed -n "s/.*<graphics type='vnc'.* websocket='\([0-9]*\)'.*/\1/p" | head -1)
if [ -n "$wsport" ] && [ "$wsport" -ge 5700 ]; then pass "ws-port ($wsport)"; else fail "ws-port '$wsport'"; fi
check ws-handshake python3 - "$wsport" <<'PY'
import base64, hashlib, os, socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), 5)
s.settimeout(10)
key = base64.b64encode(os.urandom(16)).decode()
s.sendall(("GET / HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
           "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: binary\r\n\r\n" % key).encode())
head = b""
while b"\r\n\r\n" not in head:
    head += s.recv(1)
assert head.startswith(b"HTTP/1.1 101"), head
accept = base64.b64encode(hashlib.sha1((key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode()).digest()).decode()
assert ("Sec-WebSocket-Accept: " + accept).encode() in head, head
frame = s.recv(2)
assert frame[0] == 0x82, frame
payload = s.recv(frame[1] & 0x7f)
assert payload == b"RFB 003.008\n", payload
PY
expect ws-destroy 0 "destroyed" -- destroy ws

echo "# ports are given back"
expect destroy 0 "Domain 'd1' destroyed" -- destroy d1
check port-free-after-destroy port_free "$p1"
expect off-again-autoport 0 "<graphics type='vnc' port='-1' autoport='yes'" -- dumpxml d1
expect d2-destroy 0 "Domain 'd2' destroyed" -- destroy d2
check d2-port-free-after-destroy port_free "$p2"
expect restart 0 "Domain 'd1' started" -- start d1
p3=$(port_of d1)
if [ "$p3" = "$p1" ]; then pass "restart-lowest-port-again ($p3)"; else fail "restart-lowest-port-again '$p1' '$p3'"; fi
expect restart-destroy 0 "destroyed" -- destroy d1

echo "# virt-install as people type it: graphics, video and a USB tablet by default"
images=$top/compat-tests/guest/out/boot-images
"$top/compat-tests/guest/build-boot-images.sh" "$images" >"$tmp/images.log" 2>&1 ||
    fail "boot images"
cp --sparse=always "$images/bios.raw" "$tmp/vi.raw"
out=$(timeout 120 virt-install --connect "$U" --name vig --memory 256 --import \
    --disk "path=$tmp/vi.raw" --osinfo debian11 --network none --noautoconsole 2>&1)
if grep -q 'Domain creation completed' <<<"$out"; then
    pass "virt-install-default-graphics"
else
    fail "virt-install-default-graphics"
    sed 's/^/       | /' <<<"$out"
fi
expect vig-vnc 0 "<graphics type='vnc' port='[0-9]+' autoport='yes' listen='127.0.0.1'>" -- dumpxml vig
expect vig-xhci 0 "<controller type='usb' index='0' model='qemu-xhci'" -- dumpxml vig
expect vig-tablet 0 "<input type='tablet' bus='usb'>" -- dumpxml vig
expect vig-video 0 "<model type='vga'" -- dumpxml vig
expect vig-domdisplay 0 "^vnc://127.0.0.1:[0-9]+" -- domdisplay vig
# text_screen NAME: SeaBIOS's VGA BIOS draws its text screen on NAME's
# adapter: 80x25 cells of 9x16 pixels, something on the first row.
text_screen() {
    virsh -c "$U" screenshot "$1" "$tmp/$1.ppm" >/dev/null 2>&1 &&
        python3 - "$tmp/$1.ppm" 2>/dev/null <<'PY'
import sys
data = open(sys.argv[1], 'rb').read()
head = data.split(None, 4)
assert head[:4] == [b'P6', b'720', b'400', b'255'], head[:4]
first_row = data[len(b'P6\n720 400\n255\n'):][:720 * 16 * 3]
assert any(first_row), "nothing on the first text row"
PY
}
# wait_text_screen NAME: up to 30 s for it.
wait_text_screen() {
    local ok=
    for _ in $(seq 60); do text_screen "$1" && { ok=1; break; }; sleep 0.5; done
    if [ -n "$ok" ]; then pass "$1-text-screen"; else fail "$1-text-screen"; fi
}
wait_text_screen vig
expect vig-destroy 0 "destroyed" -- destroy vig
expect vig-undefine 0 "undefined" -- undefine vig

echo "# virt-install for an OS without USB 3: ICH9's EHCI, its UHCI companions, a USB tablet"
cp --sparse=always "$images/bios.raw" "$tmp/vgen.raw"
# --osinfo generic also picks an e1000 NIC; --network none leaves it out.
out=$(timeout 120 /usr/bin/python3 /usr/bin/virt-install --connect "$U" --name vgen \
    --memory 256 --import --disk "path=$tmp/vgen.raw" --osinfo generic --network none \
    --noautoconsole 2>&1)
if grep -q 'Domain creation completed' <<<"$out"; then
    pass "virt-install-generic-usb2"
else
    fail "virt-install-generic-usb2"
    sed 's/^/       | /' <<<"$out"
fi
expect vgen-running 0 " [0-9]+ +vgen +running" -- list
# The set as libvirt 9.0 lays it out: one slot, the EHCI at function 7,
# UHCI1-3 at 0 (multi-function), 1, 2 with master start ports 0, 2, 4;
# index 0 for all four, alias 'usb' while running.
usb2_layout() { # FILE LIVE
    python3 - "$1" "$2" <<'PY'
import sys, xml.etree.ElementTree as ET
devices = ET.parse(sys.argv[1]).getroot().find('devices')
live = sys.argv[2] == 'live'
usb = [c for c in devices.findall('controller') if c.get('type') == 'usb']
got = []
for c in usb:
    a = c.find('address')
    m = c.find('master')
    got.append((c.get('model'), c.get('index'), m.get('startport') if m is not None else None,
                a.get('type'), a.get('slot'), a.get('function'), a.get('multifunction')))
    if live:
        assert c.find('alias').get('name') == 'usb', ET.tostring(c)
slots = {g[4] for g in got}
assert len(slots) == 1, got
slot = slots.pop()
want = [('ich9-ehci1', '0', None, 'pci', slot, '0x7', None),
        ('ich9-uhci1', '0', '0', 'pci', slot, '0x0', 'on'),
        ('ich9-uhci2', '0', '2', 'pci', slot, '0x1', None),
        ('ich9-uhci3', '0', '4', 'pci', slot, '0x2', None)]
assert got == want, got
tablets = [i for i in devices.findall('input') if i.get('type') == 'tablet']
assert [t.get('bus') for t in tablets] == ['usb'], tablets
PY
}
virsh -c "$U" dumpxml --inactive vgen >"$tmp/vgen-inactive.xml" 2>&1
check vgen-usb2-persistent usb2_layout "$tmp/vgen-inactive.xml" inactive
virsh -c "$U" dumpxml vgen >"$tmp/vgen-live.xml" 2>&1
check vgen-usb2-live usb2_layout "$tmp/vgen-live.xml" live
wait_text_screen vgen
expect vgen-destroy 0 "destroyed" -- destroy vgen
expect vgen-undefine 0 "undefined" -- undefine vgen

echo "# $passes passed, $fails failed"
[ "$fails" = 0 ]
