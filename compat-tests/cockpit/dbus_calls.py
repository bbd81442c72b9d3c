#!/usr/bin/python3
"""Summarise a `dbus-monitor` log: every method call made to org.libvirt,
in order, with its arguments and how it was answered.

usage: dbus_calls.py DBUS_MONITOR_LOG [--errors] [--unique]
  --errors   only the calls answered with an error
  --unique   each interface.member once (first call), with a count

One line per call:
  N  interface.member path(args) -> ok | ERROR name: message
Long string arguments (domain XML) are shortened; the path is left out for
the Connect object.
"""
import re
import sys

HEAD = re.compile(r"^(method call|method return|error|signal) time=\S+ sender=(\S+) -> "
                  r"destination=(\S+)(.*)$")
KV = re.compile(r"(\w+)=([^;\s]+)")


def messages(lines):
    msg = None
    for line in lines:
        m = HEAD.match(line)
        if m:
            if msg:
                yield msg
            kind, sender, dest, rest = m.groups()
            msg = {"kind": kind, "sender": sender, "dest": dest, "body": []}
            msg.update(dict(KV.findall(rest)))
        elif msg is not None:
            msg["body"].append(line.rstrip("\n"))
    if msg:
        yield msg


def short(body, limit=160):
    """The arguments as one line: type names dropped, long strings cut."""
    text = "\n".join(body)
    args = []
    for m in re.finditer(r'^\s+(string|object path|uint32|int32|uint64|int64|boolean|'
                         r'double|array|variant|struct|uint16|int16|byte)\s*(.*?)(?=^\s{3}\S|\Z)',
                         text, re.S | re.M):
        typ, val = m.group(1), m.group(2).strip()
        if typ in ("string", "object path"):
            val = val.replace("\n", " ")
            if len(val) > 60:
                val = val[:50] + '…"(%d chars)' % len(val)
        elif typ in ("array", "struct", "variant"):
            val = re.sub(r"\s+", " ", val)
            if len(val) > 60:
                val = val[:50] + "…"
        args.append(val)
    out = ", ".join(args)
    return out if len(out) <= limit else out[:limit] + "…"


def main():
    path = sys.argv[1]
    only_errors = "--errors" in sys.argv
    unique = "--unique" in sys.argv
    with open(path, errors="replace") as f:
        msgs = list(messages(f))
    owner = {"org.libvirt"}
    calls = []  # [call msg, reply msg or None]
    pending = {}
    for m in msgs:
        if m["kind"] == "method call" and m["dest"] in owner:
            rec = [m, None]
            calls.append(rec)
            pending[(m["sender"], m.get("serial"))] = rec
        elif m["kind"] in ("method return", "error"):
            rec = pending.pop((m["dest"], m.get("reply_serial")), None)
            if rec is not None:
                rec[1] = m
                owner.add(m["sender"])
    # Domain object paths -> names, from GetXMLDesc replies.
    names = {}
    for call, reply in calls:
        if call.get("member") == "GetXMLDesc" and reply and reply["kind"] == "method return":
            m = re.search(r"<name>([^<]*)</name>", "\n".join(reply["body"]))
            if m:
                names[call.get("path")] = m.group(1)
    seen = {}
    n = 0
    for call, reply in calls:
        name = "%s.%s" % (call.get("interface", "?"), call.get("member", "?"))
        objpath = call.get("path", "")
        where = "" if objpath == "/org/libvirt/QEMU" else " [%s]" % names.get(
            objpath, objpath.replace("/org/libvirt/QEMU/", ""))
        if reply is None:
            result = "(no reply)"
        elif reply["kind"] == "error":
            msg = " ".join(b.strip() for b in reply["body"])
            if msg.startswith('string "') and msg.endswith('"'):
                msg = msg[8:-1]
            result = "ERROR %s: %s" % (reply.get("error_name"), msg[:300])
        else:
            result = "ok"
        if only_errors and not result.startswith(("ERROR", "(no")):
            continue
        if unique:
            key = name if not result.startswith("ERROR") else name + result
            if key in seen:
                seen[key][1] += 1
                continue
            seen[key] = [len(seen), 1, "%s%s(%s) -> %s" % (name, where, short(call["body"]), result)]
            continue
        n += 1
        print("%4d %s%s(%s) -> %s" % (n, name, where, short(call["body"]), result))
    if unique:
        for _, count, line in sorted(seen.values()):
            print("%4dx %s" % (count, line))


if __name__ == "__main__":
    main()
