#!/usr/bin/python3
"""A Cockpit-like client session against oxvirtd through dbus-python.

dbus-python reads the introspection data to marshal arguments, as
libvirt-dbus's own test suite does, so this also checks that the
introspection oxvirtd serves is usable by that client library.

Usage: cockpit_flow.py BUS_ADDRESS KERNEL SERIAL_LOG
Prints one line per check and "N passed, N failed" at the end.
"""
import sys
import time

import dbus

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

bus = dbus.bus.BusConnection(ADDR)
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

print("%d passed, %d failed" % (passed, failed))
sys.exit(1 if failed else 0)
