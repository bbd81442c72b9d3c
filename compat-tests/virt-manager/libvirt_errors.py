#!/usr/bin/python3
"""What failed against the daemon, from virt-manager --debug logs written
through vmgr_probe.py (vm-RUN.log): each libvirt error once, with how often
and in which runs it came, and the error dialogs virt-manager showed.

usage: libvirt_errors.py vm-RUN.log...
"""
import collections
import os
import re
import sys

LINE = re.compile(r"OXPROBE libvirt-error call=(\S+) code=(\S+) domain=(\S+) caller=(\S+) msg=(.*)$")
# libvirt's "no such object" codes: virt-manager looks names up before it
# uses them (new VM and pool names, the `default` pool): expected.
NOT_FOUND = {"42", "43", "44", "49", "50", "55", "59", "66", "81", "87", "101"}
NOSUPPORT = "3"

errors = collections.OrderedDict()
dialogs = []
for path in sys.argv[1:]:
    run = re.sub(r"^vm-|\.log$", "", os.path.basename(path))
    with open(path, errors="replace") as f:
        lines = f.read().splitlines()
    for i, line in enumerate(lines):
        m = LINE.search(line)
        if m:
            call, code, _dom, caller, msg = m.groups()
            e = errors.setdefault((call, code, msg), {"n": 0, "runs": [], "callers": []})
            e["n"] += 1
            if run not in e["runs"]:
                e["runs"].append(run)
            if caller not in e["callers"]:
                e["callers"].append(caller)
        elif line.endswith("error dialog message:") and i + 1 < len(lines):
            dialogs.append("%s: %s" % (run, lines[i + 1].replace("summary=", "", 1)))


def show(title, items):
    if not items:
        return
    print(title)
    for (call, code, msg), e in sorted(items, key=lambda kv: -kv[1]["n"]):
        print("  %3d  %s: %s  [code %s; runs %s; from %s]" % (
            e["n"], call, msg, code, ",".join(e["runs"]), ", ".join(e["callers"][:2])))


items = list(errors.items())
show("not supported by oxvirtd:", [kv for kv in items if kv[0][1] == NOSUPPORT])
show("other errors:", [kv for kv in items if kv[0][1] not in NOT_FOUND and kv[0][1] != NOSUPPORT])
show("not found (virt-manager checks a name before using it; expected):",
     [kv for kv in items if kv[0][1] in NOT_FOUND])
if dialogs:
    print("error dialogs:")
    for d in dict.fromkeys(dialogs):
        print("  " + d)
if not items and not dialogs:
    print("none")
