#!/usr/bin/python3
"""python3-libvirt against oxvirtd: open, listAllDomains, defineXML,
create, info, XMLDesc, destroy, undefine, with an event loop thread that
must receive the lifecycle callbacks.

usage: client.py URI DOMAIN_XML_FILE
"""
import sys
import threading
import time

import libvirt

uri, xml_file = sys.argv[1], sys.argv[2]
xml = open(xml_file).read()

libvirt.virEventRegisterDefaultImpl()
seen = []
lock = threading.Lock()


def loop():
    while True:
        libvirt.virEventRunDefaultImpl()


threading.Thread(target=loop, daemon=True).start()


def on_lifecycle(conn, dom, event, detail, opaque):
    with lock:
        seen.append((dom.name(), event, detail))


conn = libvirt.open(uri)
assert conn.getType() == "QEMU", conn.getType()
print("version", conn.getVersion(), "lib", conn.getLibVersion(), "host", conn.getHostname())
print("uri", conn.getURI())
cbid = conn.domainEventRegisterAny(None, libvirt.VIR_DOMAIN_EVENT_ID_LIFECYCLE, on_lifecycle, None)

before = [d.name() for d in conn.listAllDomains()]
print("domains before", before)
dom = conn.defineXML(xml)
name = dom.name()
assert name in [d.name() for d in conn.listAllDomains()]
assert not dom.isActive() and dom.isPersistent()
assert dom.ID() == -1
dom.create()
assert dom.isActive()
assert dom.ID() > 0, dom.ID()
info = dom.info()
print("info", info)
assert info[0] == libvirt.VIR_DOMAIN_RUNNING, info
assert dom.state() == [libvirt.VIR_DOMAIN_RUNNING, libvirt.VIR_DOMAIN_RUNNING_BOOTED]
desc = dom.XMLDesc(0)
assert "<name>%s</name>" % name in desc, desc[:200]
assert dom.UUIDString() in desc
assert conn.lookupByUUIDString(dom.UUIDString()).name() == name
assert conn.lookupByID(dom.ID()).name() == name
try:
    conn.lookupByName("no-such-domain")
    raise SystemExit("lookup of a missing domain succeeded")
except libvirt.libvirtError as e:
    assert e.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN, e.get_error_code()
    print("missing domain:", e)
dom.suspend()
dom.resume()
dom.destroy()
assert not dom.isActive()
dom.undefine()
assert name not in [d.name() for d in conn.listAllDomains()]

deadline = time.time() + 5
want = [
    (name, libvirt.VIR_DOMAIN_EVENT_DEFINED, 0),
    (name, libvirt.VIR_DOMAIN_EVENT_STARTED, 0),
    (name, libvirt.VIR_DOMAIN_EVENT_SUSPENDED, 0),
    (name, libvirt.VIR_DOMAIN_EVENT_RESUMED, 0),
    (name, libvirt.VIR_DOMAIN_EVENT_STOPPED, 1),
    (name, libvirt.VIR_DOMAIN_EVENT_UNDEFINED, 0),
]
while time.time() < deadline:
    with lock:
        if all(w in seen for w in want):
            break
    time.sleep(0.05)
with lock:
    print("events", seen)
    missing = [w for w in want if w not in seen]
conn.domainEventDeregisterAny(cbid)
conn.close()
if missing:
    raise SystemExit("missing events: %r" % missing)
print("python-libvirt: OK")
