#!/bin/bash
# The graphical console of oxvirt-vmm side by side with QEMU 7.2's, the same
# test guest, device (standard VGA: oxvirt-vmm --vga, QEMU -M q35 -device VGA)
# and RFB client (tests/vnc_common, in benches/display.rs), in the same run:
#   (1) display-loop at 1920x1080 and 1024x768: the guest redraws the whole
#       screen every frame; the client asks for incremental updates back to
#       back for STREAM_SECONDS (10) s with ZRLE, then with Raw. Full-screen updates
#       per second, bytes received per update, the guest's own frame rate.
#   (2) key latency: a QEMU extended key event until the guest's
#       "INFO key make" line is read from the monitor's stdout (a pipe,
#       each line stamped by a reader thread as it arrives); PRESSES (50)
#       presses a run.
#   (3) RSS beyond guest RAM (from /proc/PID/smaps) with a 1920x1080 frame
#       drawn and sent to a client once, minus that of the same monitor
#       without the display adapter and VNC server.
# oxvirt-vmm runs unconfined and sandboxed (as the daemon runs it) in the
# same run. Prints medians over RUNS runs (default 3) with the issue's
# targets beside them: frame rate >= QEMU's, bytes per update <= QEMU's,
# added RSS <= 2x the framebuffer. Reports only; asserts nothing.
#
# usage: compat-tests/bench/display.sh [RUNS]
# env: OXVIRT_VMM (default: the release build, built or refreshed first),
#      QEMU (qemu-system-x86_64), STREAM_SECONDS, PRESSES, MODES (1920x1080,1024x768),
#      MEMORY (256), SANDBOX (1), ONLY (vmm,vmm-sandbox,qemu)
set -euo pipefail
here=$(cd "$(dirname "$0")/../.." && pwd)
runs=${1:-${RUNS:-3}}
# shellcheck source=anchors.sh
. "$here/compat-tests/bench/anchors.sh"
[ -n "${QEMU:-}" ] || install_qemu
make -s -C "$here/compat-tests/guest/testos"
elf="$here/compat-tests/guest/out/testos.elf"
cd "$here"
find_vmm
case $vmm in
*/release/*) ;;
*) echo "display.sh: measuring a non-release oxvirt-vmm ($vmm)" >&2 ;;
esac
export VMM="$vmm" ELF="$elf" RUNS="$runs" QEMU=${QEMU:-qemu-system-x86_64}

exec cargo bench -q --bench display
