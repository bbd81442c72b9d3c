//! Introspection XML of the objects served, built from [`super::spec`].

use std::fmt::Write;

use super::spec_types::Interface;

pub const DOCTYPE: &str = "<!DOCTYPE node PUBLIC \"-//freedesktop//DTD D-BUS Object Introspection 1.0//EN\"\n\"http://www.freedesktop.org/standards/dbus/1.0/introspect.dtd\">\n";

const STANDARD: &str = r#"  <interface name="org.freedesktop.DBus.Peer">
    <method name="Ping"/>
    <method name="GetMachineId">
      <arg type="s" name="machine_uuid" direction="out"/>
    </method>
  </interface>
  <interface name="org.freedesktop.DBus.Introspectable">
    <method name="Introspect">
      <arg type="s" name="xml_data" direction="out"/>
    </method>
  </interface>
  <interface name="org.freedesktop.DBus.Properties">
    <method name="Get">
      <arg type="s" name="interface_name" direction="in"/>
      <arg type="s" name="property_name" direction="in"/>
      <arg type="v" name="value" direction="out"/>
    </method>
    <method name="GetAll">
      <arg type="s" name="interface_name" direction="in"/>
      <arg type="a{sv}" name="properties" direction="out"/>
    </method>
    <method name="Set">
      <arg type="s" name="interface_name" direction="in"/>
      <arg type="s" name="property_name" direction="in"/>
      <arg type="v" name="value" direction="in"/>
    </method>
    <signal name="PropertiesChanged">
      <arg type="s" name="interface_name"/>
      <arg type="a{sv}" name="changed_properties"/>
      <arg type="as" name="invalidated_properties"/>
    </signal>
  </interface>
"#;

/// One `<interface>` element.
pub fn interface_xml(iface: &Interface) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "  <interface name=\"{}\">", iface.name);
    for p in iface.properties {
        let access = if p.writable { "readwrite" } else { "read" };
        let _ = writeln!(
            s,
            "    <property name=\"{}\" type=\"{}\" access=\"{access}\"/>",
            p.name, p.ty
        );
    }
    for m in iface.methods {
        if m.input.is_empty() && m.output.is_empty() {
            let _ = writeln!(s, "    <method name=\"{}\"/>", m.name);
            continue;
        }
        let _ = writeln!(s, "    <method name=\"{}\">", m.name);
        for (dir, args) in [("in", m.input), ("out", m.output)] {
            for (n, t) in args {
                let _ = writeln!(
                    s,
                    "      <arg name=\"{n}\" type=\"{t}\" direction=\"{dir}\"/>"
                );
            }
        }
        s.push_str("    </method>\n");
    }
    for sig in iface.signals {
        if sig.args.is_empty() {
            let _ = writeln!(s, "    <signal name=\"{}\"/>", sig.name);
            continue;
        }
        let _ = writeln!(s, "    <signal name=\"{}\">", sig.name);
        for (n, t) in sig.args {
            let _ = writeln!(s, "      <arg name=\"{n}\" type=\"{t}\"/>");
        }
        s.push_str("    </signal>\n");
    }
    s.push_str("  </interface>\n");
    s
}

/// A whole node: the standard interfaces, `ifaces`, then child nodes.
pub fn node_xml(ifaces: &[&Interface], children: &[String]) -> String {
    let mut s = String::from(DOCTYPE);
    s.push_str("<node>\n");
    if !ifaces.is_empty() {
        s.push_str(STANDARD);
    }
    for i in ifaces {
        s.push_str(&interface_xml(i));
    }
    for c in children {
        let _ = writeln!(s, "  <node name=\"{c}\"/>");
    }
    s.push_str("</node>\n");
    s
}
