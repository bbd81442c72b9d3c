#!/usr/bin/python3
"""Storage operations timed through python3-libvirt against several
daemons in turn (each gets its own directory pool on the same filesystem):

  create-qcow2-10G   storageVolCreateXML of a 10 GiB qcow2 volume
  clone-raw-1G       storageVolCreateXMLFrom of a 1 GiB raw volume full of data
  upload-256M        a 256 MiB stream into a volume (MiB/s)
  download-256M      a 256 MiB stream out of a volume (MiB/s)
  refresh-1000       storagePoolRefresh of a pool holding 1000 volumes

Prints "LABEL NAME VALUE" lines: seconds (medians) or MiB/s (medians).

usage: storage_bench.py ROUNDS DIR LABEL=URI [LABEL=URI ...]
"""
import os
import statistics
import sys
import time

import libvirt

rounds = int(sys.argv[1])
base = sys.argv[2]
targets = [a.split("=", 1) for a in sys.argv[3:]]
MiB = 1 << 20
blob = os.urandom(MiB)


def pool_for(conn, label, name, subdir):
    path = os.path.join(base, label, subdir)
    os.makedirs(path, exist_ok=True)
    try:
        p = conn.storagePoolLookupByName(name)
        if p.isActive():
            p.destroy()
        p.undefine()
    except libvirt.libvirtError:
        pass
    p = conn.storagePoolDefineXML(
        "<pool type='dir'><name>%s</name><target><path>%s</path></target></pool>" % (name, path), 0)
    p.create(0)
    return p, path


def timed(f):
    t = time.perf_counter()
    f()
    return time.perf_counter() - t


def vol_xml(name, size, fmt, alloc=None):
    a = "" if alloc is None else "<allocation>%d</allocation>" % alloc
    return ("<volume><name>%s</name><capacity>%d</capacity>%s"
            "<target><format type='%s'/></target></volume>" % (name, size, a, fmt))


def drop_caches():
    # Every daemon reads from the disk, not from the page cache of the
    # previous one.
    os.sync()
    try:
        with open("/proc/sys/vm/drop_caches", "w") as f:
            f.write("3\n")
    except OSError:
        pass


conns = {label: libvirt.open(uri) for label, uri in targets}
results = {label: {} for label, _ in targets}

for label, conn in conns.items():
    pool, path = pool_for(conn, label, "bench-" + label, "ops")
    # A 1 GiB raw source full of data, written once.
    with open(os.path.join(path, "src.raw"), "wb") as f:
        for _ in range(1024):
            f.write(blob)
    os.chmod(os.path.join(path, "src.raw"), 0o600)
    pool.refresh(0)
    results[label]["pool"] = pool

for r in range(rounds):
    order = list(conns.items()) if r % 2 == 0 else list(reversed(list(conns.items())))
    for label, conn in order:
        pool = results[label]["pool"]
        res = results[label]

        def create():
            pool.createXML(vol_xml("q10", 10 << 30, "qcow2"), 0)
        res.setdefault("create-qcow2-10G", []).append(timed(create))
        pool.storageVolLookupByName("q10").delete(0)

        src = pool.storageVolLookupByName("src.raw")
        drop_caches()

        def clone():
            pool.createXMLFrom(vol_xml("c1", 1 << 30, "raw", 0), src, 0)
        res.setdefault("clone-raw-1G", []).append(timed(clone))
        pool.storageVolLookupByName("c1").delete(0)

        vol = pool.createXML(vol_xml("up", 256 * MiB, "raw", 0), 0)

        def upload():
            st = conn.newStream(0)
            vol.upload(st, 0, 256 * MiB, 0)
            for _ in range(256):
                st.send(blob)
            st.finish()
        res.setdefault("upload-256M", []).append(256 / timed(upload))
        drop_caches()

        def download():
            st = conn.newStream(0)
            vol.download(st, 0, 256 * MiB, 0)
            got = 0
            while True:
                c = st.recv(1 << 20)
                if c in (-2, None):
                    continue
                if len(c) == 0:
                    break
                got += len(c)
            st.finish()
            assert got == 256 * MiB, got
        res.setdefault("download-256M", []).append(256 / timed(download))
        vol.delete(0)

for label, conn in conns.items():
    p, path = pool_for(conn, label, "many-" + label, "many")
    for i in range(1000):
        with open(os.path.join(path, "v%04d.img" % i), "wb") as f:
            f.truncate(MiB)
    for r in range(rounds):
        results[label].setdefault("refresh-1000", []).append(timed(lambda: p.refresh(0)))
    p.destroy()
    p.undefine()
    results[label]["pool"].destroy()
    results[label]["pool"].undefine()

for label, _ in targets:
    for name, vals in results[label].items():
        if name == "pool":
            continue
        print(label, name, "%.6f" % statistics.median(vals))
