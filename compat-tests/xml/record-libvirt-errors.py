#!/usr/bin/python3
"""Re-record or re-check the libvirt side of the XML corpus against a running
libvirtd (the QEMU driver), through python3-libvirt.

    record-libvirt-errors.py            check: compare with the stored .err files
    record-libvirt-errors.py --write    record: rewrite the .err files of invalid/
    record-libvirt-errors.py --canonical DIR
                                        also save what `virsh dumpxml` prints for
                                        every valid/ file into DIR

The connection is LIBVIRT_DEFAULT_URI (default qemu:///system).

invalid/NAME.xml (NAME not starting with "ox-"): libvirt must refuse the
definition; NAME.err holds "<code> <message>" exactly as libvirt reported it.
Well-formedness errors (the document is not XML at all: code 35,
VIR_ERR_XML_DETAIL, with a message naming "(domain_definition)" or an empty
document) are stored as "35 *": any parser words those differently.

invalid/ox-NAME.xml: refused by oxvirt but accepted by libvirt. Their .err
files are oxvirt's own and are never written here; the check only confirms
that libvirt still accepts the document.

valid/*.xml and virt-install-defaults/*.xml: libvirt must accept them.

Every domain defined here is undefined again right away.
"""
import glob
import os
import sys

import libvirt

HERE = os.path.dirname(os.path.abspath(__file__))
SYNTAX = 35  # VIR_ERR_XML_DETAIL

# oxvirt-specific files that libvirt may refuse on some hosts for a reason of
# that host (no emulator for the architecture): name -> text of that refusal.
HOST_DEPENDENT = {
    "ox-arch-aarch64": "No emulator found for arch 'aarch64'",
}


def quiet(_ctx, _err):
    pass


def define(conn, xml):
    """Define then undefine; None if accepted, else (code, message)."""
    try:
        dom = conn.defineXML(xml)
    except libvirt.libvirtError as e:
        return e.get_error_code(), e.get_error_message() or ""
    try:
        dom.undefineFlags(libvirt.VIR_DOMAIN_UNDEFINE_NVRAM)
    except libvirt.libvirtError:
        dom.undefine()
    return None


def expectation(code, message):
    if code == SYNTAX and ("(domain_definition)" in message or message == ""
                           or message.startswith("Document is empty")):
        return f"{code} *"
    if "\n" in message:
        raise SystemExit(f"multi-line message for code {code}: {message!r}")
    return f"{code} {message}"


def main():
    args = sys.argv[1:]
    write = "--write" in args
    canon = None
    if "--canonical" in args:
        canon = args[args.index("--canonical") + 1]
        os.makedirs(canon, exist_ok=True)
    libvirt.registerErrorHandler(quiet, None)
    conn = libvirt.open(os.environ.get("LIBVIRT_DEFAULT_URI", "qemu:///system"))
    problems = []

    for path in sorted(glob.glob(os.path.join(HERE, "invalid", "*.xml"))):
        name = os.path.basename(path)[:-4]
        errfile = path[:-4] + ".err"
        xml = open(path, encoding="utf-8").read()
        got = define(conn, xml)
        if name.startswith("ox-"):
            if got is not None and HOST_DEPENDENT.get(name, "\0") not in got[1]:
                problems.append(f"invalid/{name}: oxvirt-specific but libvirt refuses it: {got[0]} {got[1]}")
            continue
        if got is None:
            problems.append(f"invalid/{name}: libvirt accepts it")
            continue
        line = expectation(*got)
        if write:
            with open(errfile, "w", encoding="utf-8") as f:
                f.write(line + "\n")
            print(f"{name}: {line}")
        else:
            want = open(errfile, encoding="utf-8").read().strip() if os.path.exists(errfile) else None
            if want != line:
                problems.append(f"invalid/{name}: stored {want!r}, libvirt says {line!r}")

    for sub in ("valid", "virt-install-defaults"):
        for path in sorted(glob.glob(os.path.join(HERE, sub, "*.xml"))):
            xml = open(path, encoding="utf-8").read()
            if canon is not None and sub == "valid":
                try:
                    dom = conn.defineXML(xml)
                except libvirt.libvirtError as e:
                    problems.append(f"{sub}/{os.path.basename(path)}: libvirt refuses it: "
                                    f"{e.get_error_code()} {e.get_error_message()}")
                    continue
                out = dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)
                try:
                    dom.undefineFlags(libvirt.VIR_DOMAIN_UNDEFINE_NVRAM)
                except libvirt.libvirtError:
                    dom.undefine()
                with open(os.path.join(canon, os.path.basename(path)), "w", encoding="utf-8") as f:
                    f.write(out + "\n")
                continue
            got = define(conn, xml)
            if got is not None:
                problems.append(f"{sub}/{os.path.basename(path)}: libvirt refuses it: {got[0]} {got[1]}")

    for p in problems:
        print(p, file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
