#!/usr/bin/python3
"""A Cockpit-like client session against oxvirtd through dbus-python.

dbus-python reads the introspection data to marshal arguments, as
libvirt-dbus's own test suite does, so this also checks that the
introspection oxvirtd serves is usable by that client library.

After the domain part, the storage page's calls: define and start a
directory pool, Refresh(0) and wait for the pool's Refresh signal (as
Cockpit does before it reads an active pool), create, look up and
delete a volume, and the StoragePoolEvent signals of all that.

Usage: cockpit_flow.py BUS_ADDRESS KERNEL SERIAL_LOG
Prints one line per check and "N passed, N failed" at the end.
"""
import os
import shutil
import sys
import tempfile
import time

import dbus
from dbus.mainloop.glib import DBusGMainLoop
from gi.repository import GLib

ADDR, KERNEL, SERIAL = sys.argv[1:4]
UUID = "12345678-1111-2222-3333-444444444444"
XML = (
    "<domain type='kvm'><name>py</name><uuid>%s</uuid>"
    "<memory unit='MiB'>64</memory><vcpu>1</vcpu>"
    "<os><type arch='x86_64'>hvm</type><kernel>%s</kernel>"
    "<cmdline>oxtest.then=powerbutton</cmdline></os>"
    "<devices><serial type='file'><source path='%s'/></serial></devices></domain>"
    % (UUID, KERNEL, SERIAL)
)

# A main loop only to receive signals; calls stay synchronous.
bus = dbus.bus.BusConnection(ADDR, mainloop=DBusGMainLoop())
conn_obj = bus.get_object("org.libvirt", "/org/libvirt/QEMU")
connect = dbus.Interface(conn_obj, "org.libvirt.Connect")
props = dbus.Interface(conn_obj, "org.freedesktop.DBus.Properties")

passed = failed = 0


def check(name, ok, detail=""):
    global passed, failed
    if ok:
        passed += 1
        print("ok   %s" % name)
    else:
        failed += 1
        print("FAIL %s %s" % (name, detail))


def state(dom):
    return tuple(int(x) for x in dom.GetState(0))


def wait_state(dom, want, secs=10):
    end = time.time() + secs
    while time.time() < end:
        if state(dom) == want:
            return True
        time.sleep(0.05)
    return False


check("LibVersion", int(props.Get("org.libvirt.Connect", "LibVersion")) == 9000000)
check("ListDomains empty", len(connect.ListDomains(0)) == 0)
path = connect.DomainDefineXML(XML)
check("DomainDefineXML path", str(path) == "/org/libvirt/QEMU/domain/_" + UUID.replace("-", "_"))
dom_obj = bus.get_object("org.libvirt", path)
dom = dbus.Interface(dom_obj, "org.libvirt.Domain")
dprops = dbus.Interface(dom_obj, "org.freedesktop.DBus.Properties")
allp = dprops.GetAll("org.libvirt.Domain")
check("GetAll double variant", allp["Name"].variant_level == 2 and str(allp["Name"]) == "py",
      repr(allp.get("Name")))
check("GetAll Active false", not bool(allp["Active"]))
check("Get single variant", str(dprops.Get("org.libvirt.Domain", "Name")) == "py")
check("GetXMLDesc inactive", "<name>py</name>" in dom.GetXMLDesc(3))
check("GetState shutoff", state(dom) == (5, 0))
caps = connect.GetDomainCapabilities("", "x86_64", "pc", "", 0)
check("GetDomainCapabilities", "<domainCapabilities>" in caps)
mem = connect.NodeGetMemoryStats(-1, 0)
check("NodeGetMemoryStats total", int(mem["total"]) > 0)

dom.Create(0)
check("Create -> running", state(dom) == (1, 1))
stats = dom.GetStats(45, 0)
check("GetStats state.state", int(stats["state.state"]) == 1 and stats["state.state"].variant_level == 2)
dom.Suspend()
check("Suspend -> paused", state(dom) == (3, 1))
dom.Resume()
check("Resume -> running", state(dom) == (1, 5))
dprops.Set("org.libvirt.Domain", "Autostart", True)
check("Set Autostart", bool(dprops.Get("org.libvirt.Domain", "Autostart")))

def serial_says(text, secs=10):
    end = time.time() + secs
    while time.time() < end:
        try:
            with open(SERIAL, errors="replace") as f:
                if text in f.read():
                    return True
        except OSError:
            pass
        time.sleep(0.05)
    return False


# The test guest arms its power-button handler after its checks.
check("guest waits for the power button", serial_says("waiting for power button"))
dom.Shutdown(0)
check("Shutdown -> shut off", wait_state(dom, (5, 1)), repr(state(dom)))
try:
    dom.Destroy(0)
    check("Destroy inactive refused", False)
except dbus.exceptions.DBusException as e:
    check("Destroy inactive refused",
          e.get_dbus_name() == "org.libvirt.Error"
          and e.get_dbus_message() == "Requested operation is not valid: domain is not running",
          e.get_dbus_message())
try:
    connect.DomainLookupByName("nope")
    check("lookup unknown", False)
except dbus.exceptions.DBusException as e:
    check("lookup unknown", e.get_dbus_message().startswith("Domain not found"))
dom.Undefine(0)
check("Undefine", len(connect.ListDomains(0)) == 0)

# ---- storage pools and volumes, as Cockpit's storage page uses them ----

POOL_UUID = "87654321-1111-2222-3333-444444444444"
POOL_PATH = "/org/libvirt/QEMU/storagepool/_" + POOL_UUID.replace("-", "_")
pool_events = []
refreshes = []
bus.add_signal_receiver(lambda p, e, d: pool_events.append((str(p), int(e), int(d))),
                        signal_name="StoragePoolEvent", dbus_interface="org.libvirt.Connect")
bus.add_signal_receiver(lambda path=None: refreshes.append(str(path)),
                        signal_name="Refresh", dbus_interface="org.libvirt.StoragePool",
                        path_keyword="path")


def pump(until, secs=5):
    """Runs the main loop until until() holds or secs pass."""
    ctx = GLib.MainContext.default()
    end = time.time() + secs
    while not until() and time.time() < end:
        ctx.iteration(False)
        time.sleep(0.01)
    return until()


tmp = tempfile.mkdtemp(prefix="cockpit-flow-")
try:
    target = os.path.join(tmp, "pool")
    os.mkdir(target)
    pxml = ("<pool type='dir'><name>cockpit</name><uuid>%s</uuid>"
            "<target><path>%s</path></target></pool>" % (POOL_UUID, target))
    ppath = connect.StoragePoolDefineXML(pxml, 0)
    check("StoragePoolDefineXML path", str(ppath) == POOL_PATH, str(ppath))
    pobj = bus.get_object("org.libvirt", ppath)
    pool = dbus.Interface(pobj, "org.libvirt.StoragePool")
    pprops = dbus.Interface(pobj, "org.freedesktop.DBus.Properties")
    pprops.Set("org.libvirt.StoragePool", "Autostart", True)
    pool.Create(0)
    check("ListStoragePools", [str(p) for p in connect.ListStoragePools(0)] == [POOL_PATH])
    check("Get Active", bool(pprops.Get("org.libvirt.StoragePool", "Active")))
    pool.Refresh(0)
    check("Refresh signal", pump(lambda: POOL_PATH in refreshes), repr(refreshes))
    check("pool GetXMLDesc", "<name>cockpit</name>" in pool.GetXMLDesc(0))
    pall = pprops.GetAll("org.libvirt.StoragePool")
    check("pool GetAll", pall["Active"].variant_level == 2 and bool(pall["Active"])
          and bool(pall["Persistent"]) and bool(pall["Autostart"]), repr(pall))
    check("StoragePoolLookupByName", str(connect.StoragePoolLookupByName("cockpit")) == POOL_PATH)
    check("ListStorageVolumes empty", len(pool.ListStorageVolumes(0)) == 0)
    vpath = pool.StorageVolCreateXML(
        "<volume><name>disk.qcow2</name><capacity unit='MiB'>8</capacity>"
        "<target><format type='qcow2'/></target></volume>", 0)
    check("StorageVolCreateXML", str(vpath).startswith("/org/libvirt/QEMU/storagevol/_2f"), str(vpath))
    check("StorageVolLookupByName", str(pool.StorageVolLookupByName("disk.qcow2")) == str(vpath))
    check("StorageVolLookupByPath",
          str(connect.StorageVolLookupByPath(os.path.join(target, "disk.qcow2"))) == str(vpath))
    vol = dbus.Interface(bus.get_object("org.libvirt", vpath), "org.libvirt.StorageVol")
    check("vol GetXMLDesc", "<format type='qcow2'/>" in vol.GetXMLDesc(0))
    vol.Delete(0)
    check("vol Delete", not os.path.exists(os.path.join(target, "disk.qcow2")))
    pool.Destroy()
    pool.Undefine()
    check("pool gone", len(connect.ListStoragePools(0)) == 0)
    want = [(POOL_PATH, e, 0) for e in (0, 2, 3, 1)]
    check("StoragePoolEvent signals", pump(lambda: pool_events == want), repr(pool_events))
    try:
        pool.GetXMLDesc(0)
        check("undefined pool not found", False)
    except dbus.exceptions.DBusException as e:
        check("undefined pool not found",
              e.get_dbus_name() == "org.libvirt.Error"
              and e.get_dbus_message().startswith("Storage pool not found"),
              e.get_dbus_message())
    check("ListNetworks empty", len(connect.ListNetworks(0)) == 0)
    check("ListNodeDevices answers", isinstance(connect.ListNodeDevices(0), dbus.Array))
    check("ListInterfaces answers", isinstance(connect.ListInterfaces(3), dbus.Array))
finally:
    shutil.rmtree(tmp, ignore_errors=True)

print("%d passed, %d failed" % (passed, failed))
sys.exit(1 if failed else 0)
