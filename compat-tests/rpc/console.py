#!/usr/bin/python3
"""Runs `virsh console DOMAIN` on a pseudo-terminal, waits for guest output
to arrive, types a line, then presses Ctrl-] and checks virsh exits 0.
With --shutdown, asks for a guest shutdown instead of pressing Ctrl-] and
checks virsh ends by itself when the guest's console goes away.

usage: console.py URI DOMAIN EXPECTED_TEXT [--shutdown]
"""
import os
import pty
import select
import subprocess
import sys
import time

uri, dom, expect = sys.argv[1], sys.argv[2], sys.argv[3].encode()
shutdown = "--shutdown" in sys.argv[4:]

pid, fd = pty.fork()
if pid == 0:
    os.execvp("virsh", ["virsh", "-c", uri, "console", dom])

buf = b""


def pump(until, timeout):
    global buf
    # The text may already have come in with an earlier read.
    if until is not None and until in buf:
        return True
    end = time.time() + timeout
    while time.time() < end:
        r, _, _ = select.select([fd], [], [], 0.2)
        if r:
            try:
                data = os.read(fd, 65536)
            except OSError:
                return False
            if not data:
                return False
            buf += data
            if until is not None and until in buf:
                return True
    return until is None


ok = pump(b"Escape character is ^]", 10)
print("connected:", ok)
if not ok:
    print(buf.decode(errors="replace"))
    sys.exit(2)
got = pump(expect, 20)
print("guest output seen:", got)
os.write(fd, b"hello-from-console\r")
pump(None, 0.5)
if shutdown:
    subprocess.run(["virsh", "-c", uri, "shutdown", dom], capture_output=True)
else:
    os.write(fd, b"\x1d")  # Ctrl-]
deadline = time.time() + 10
status = None
while time.time() < deadline:
    try:
        wpid, st = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        break
    if wpid == pid:
        status = os.waitstatus_to_exitcode(st)
        break
    pump(None, 0.2)
print("virsh exit status:", status)
text = buf.decode(errors="replace")
print("---- console transcript (tail) ----")
print(text[-600:])
sys.exit(0 if got and status == 0 else 1)
