//! Serial/console pairing and character device targets, as libvirt
//! arranges them on x86: the first console mirrors the first serial port.

use crate::error::{Error, Result};
use crate::xml::model::Domain;
use crate::xml::model::address::Address;
use crate::xml::model::chardev::{Chardev, ChardevKind};

const ISA_SERIAL: &str = "isa-serial";

fn is_serial_console(c: &Chardev) -> bool {
    matches!(c.target.target_type.as_deref(), None | Some("serial"))
}

/// A console that mirrors `serial`'s host side.
fn console_for(serial: &Chardev) -> Chardev {
    let mut console = Chardev::new(ChardevKind::Console, serial.source_type);
    console.copy_source_from(serial);
    console.target.target_type = Some("serial".to_string());
    console.target.port = Some(0);
    console
}

fn pair_serial_and_console(dom: &mut Domain) {
    let d = &mut dom.devices;
    match d.consoles.first_mut() {
        Some(first) if is_serial_console(first) => {
            if let Some(serial) = d.serials.first() {
                first.copy_source_from(serial);
            } else {
                // A lone serial console implies the serial port itself.
                let mut serial = Chardev::new(ChardevKind::Serial, first.source_type);
                serial.copy_source_from(first);
                serial.alias = None;
                d.serials.push(serial);
            }
            first.target.target_type = Some("serial".to_string());
            first.target.port = Some(0);
        }
        _ => {
            if let Some(serial) = d.serials.first() {
                let console = console_for(serial);
                d.consoles.insert(0, console);
            }
        }
    }
}

fn fill_serial_targets(dom: &mut Domain) {
    let serials = &mut dom.devices.serials;
    let mut next_port = serials
        .iter()
        .filter_map(|s| s.target.port)
        .max()
        .map_or(0, |p| p + 1);
    for s in serials.iter_mut() {
        if s.target.target_type.is_none() {
            s.target.target_type = Some(ISA_SERIAL.to_string());
        }
        if s.target.port.is_none() {
            s.target.port = Some(next_port);
            next_port += 1;
        }
        if s.target.model.is_none() && s.target.target_type.as_deref() == Some(ISA_SERIAL) {
            s.target.model = Some(ISA_SERIAL.to_string());
        }
    }
    let parallels = &mut dom.devices.parallels;
    let mut next_port = parallels
        .iter()
        .filter_map(|s| s.target.port)
        .max()
        .map_or(0, |p| p + 1);
    for p in parallels.iter_mut() {
        if p.target.port.is_none() {
            p.target.port = Some(next_port);
            next_port += 1;
        }
    }
}

fn fill_console_targets(dom: &mut Domain) -> Result<()> {
    let mut virtio_port = 0;
    for (i, c) in dom.devices.consoles.iter_mut().enumerate() {
        if i > 0 && matches!(c.target.target_type.as_deref(), None | Some("serial")) {
            return Err(Error::unsupported(
                "Only the first console can be a serial port",
            ));
        }
        if c.target.target_type.as_deref() == Some("virtio") {
            if c.target.port.is_none() {
                c.target.port = Some(virtio_port);
            }
            virtio_port += 1;
        }
    }
    Ok(())
}

/// Virtio channels sit on virtio-serial controller 0; port 0 belongs to
/// a virtio console, so channels are numbered from 1.
fn fill_channel_addresses(dom: &mut Domain) {
    let mut used: Vec<u32> = dom
        .devices
        .channels
        .iter()
        .filter_map(|c| match c.address {
            Some(Address::VirtioSerial { port, .. }) => Some(port),
            _ => None,
        })
        .collect();
    for ch in &mut dom.devices.channels {
        if ch.target.target_type.as_deref() != Some("virtio") || ch.address.is_some() {
            continue;
        }
        let port = (1..).find(|p| !used.contains(p)).unwrap_or(1);
        used.push(port);
        ch.address = Some(Address::VirtioSerial {
            controller: 0,
            bus: 0,
            port,
        });
    }
}

pub fn fill(dom: &mut Domain) -> Result<()> {
    pair_serial_and_console(dom);
    fill_serial_targets(dom);
    fill_console_targets(dom)?;
    fill_channel_addresses(dom);
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::xml::parse_domain;

    fn devices(devs: &str) -> crate::xml::Domain {
        parse_domain(&format!(
            "<domain type='kvm'><name>t</name><memory>65536</memory><os><type>hvm</type></os><devices>{devs}</devices></domain>"
        ))
        .unwrap()
    }

    #[test]
    fn serial_gets_a_console() {
        let d = devices("<serial type='pty'/>");
        assert_eq!(d.devices.consoles.len(), 1);
        assert_eq!(
            d.devices.consoles[0].target.target_type.as_deref(),
            Some("serial")
        );
        assert_eq!(
            d.devices.serials[0].target.model.as_deref(),
            Some("isa-serial")
        );
    }

    #[test]
    fn lone_console_gets_a_serial() {
        let d = devices("<console type='pty'/>");
        assert_eq!(d.devices.serials.len(), 1);
        assert_eq!(d.devices.serials[0].target.port, Some(0));
    }

    #[test]
    fn virtio_console_keeps_its_place_after_serial_console() {
        let d = devices(
            "<serial type='file'><source path='/l'/></serial><console type='pty'><target type='virtio'/></console>",
        );
        assert_eq!(d.devices.consoles.len(), 2);
        assert_eq!(d.devices.consoles[0].sources[0].path.as_deref(), Some("/l"));
        assert_eq!(
            d.devices.consoles[1].target.target_type.as_deref(),
            Some("virtio")
        );
    }
}
