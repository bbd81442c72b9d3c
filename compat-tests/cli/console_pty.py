#!/usr/bin/env python3
"""Runs a console client (argv) on a pty, reads what it prints for a few
seconds, types a line, detaches with Ctrl-], and reports as JSON: the
output, whether the terminal was raw while attached, whether the mode was
restored afterwards, and the exit status."""
import json
import os
import pty
import select
import sys
import termios
import time


def pump(fd, secs, out):
    end = time.time() + secs
    while time.time() < end:
        r, _, _ = select.select([fd], [], [], 0.1)
        if not r:
            continue
        try:
            d = os.read(fd, 4096)
        except OSError:
            return False
        if not d:
            return False
        out.append(d)
    return True


def main():
    wait = float(os.environ.get("CONSOLE_WAIT", "3"))
    pid, fd = pty.fork()
    if pid == 0:
        os.execvp(sys.argv[1], sys.argv[1:])
    before = termios.tcgetattr(fd)
    out = []
    pump(fd, wait, out)
    during = termios.tcgetattr(fd)
    os.write(fd, b"typed-into-console\r")
    time.sleep(0.3)
    os.write(fd, b"\x1d")
    pump(fd, 1.0, out)
    after = termios.tcgetattr(fd)
    deadline = time.time() + 10
    status = None
    while time.time() < deadline:
        p, st = os.waitpid(pid, os.WNOHANG)
        if p:
            status = os.waitstatus_to_exitcode(st)
            break
        pump(fd, 0.1, out)
    if status is None:
        os.kill(pid, 9)
        os.waitpid(pid, 0)
    print(json.dumps({
        "output": b"".join(out).decode("utf-8", "replace"),
        "raw_while_attached": (during[3] & termios.ICANON) == 0 and (during[3] & termios.ECHO) == 0,
        "restored": after == before,
        "status": status,
    }))


main()
