//! USB: host controllers with HID devices (tablet, keyboard, mouse) on
//! their root ports: an xHCI (QEMU's `qemu-xhci`), and ICH9's EHCI with
//! its UHCI companions (`ich9-ehci1`, `ich9-uhci1..3`).
//!
//! The controllers ([`xhci`], [`ehci`], [`uhci`], the EHCI set in
//! [`ich9`]) own the root ports and move data between guest memory and
//! the devices; the devices ([`hid`]) answer control requests and
//! produce interrupt reports, reached packet by packet through
//! [`packet`] by the UHCI and EHCI; [`descriptors`] builds the byte
//! layouts they share; [`frame_clock`] counts the UHCI's and EHCI's
//! frames.

pub mod descriptors;
pub mod ehci;
pub mod frame_clock;
pub mod hid;
pub mod ich9;
pub mod packet;
#[cfg(test)]
mod testing;
pub mod uhci;
pub mod xhci;

use hid::HidKind;

/// A device to plug into a root port: `port` (1-based; libvirt's
/// `<address type='usb' port='N'/>`), or `None` for the first free one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AttachedDevice {
    pub port: Option<u8>,
    pub kind: HidKind,
}

/// Assigns devices to `count` root ports, explicit ports first, then the
/// rest in order; `make` builds each.
pub fn place<T>(
    devices: &[AttachedDevice],
    count: usize,
    make: impl Fn(HidKind) -> T,
) -> Result<Vec<Option<T>>, String> {
    let mut ports: Vec<Option<T>> = (0..count).map(|_| None).collect();
    for d in devices {
        let Some(n) = d.port else { continue };
        let slot = usize::from(n)
            .checked_sub(1)
            .and_then(|i| ports.get_mut(i))
            .ok_or_else(|| format!("USB port {n} is out of range 1..={count}"))?;
        if slot.is_some() {
            return Err(format!("USB port {n} is already in use"));
        }
        *slot = Some(make(d.kind));
    }
    for d in devices.iter().filter(|d| d.port.is_none()) {
        let free = ports
            .iter_mut()
            .find(|p| p.is_none())
            .ok_or_else(|| format!("more than {count} USB devices"))?;
        *free = Some(make(d.kind));
    }
    Ok(ports)
}

/// The eight bytes of a control transfer's SETUP stage.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SetupPacket {
    pub request_type: u8,
    pub request: u8,
    pub value: u16,
    pub index: u16,
    pub length: u16,
}

impl SetupPacket {
    /// Decodes the packet as it sits, little-endian, in a Setup TRB.
    pub fn from_u64(raw: u64) -> SetupPacket {
        SetupPacket {
            request_type: raw as u8,
            request: (raw >> 8) as u8,
            value: (raw >> 16) as u16,
            index: (raw >> 32) as u16,
            length: (raw >> 48) as u16,
        }
    }

    pub fn to_u64(self) -> u64 {
        u64::from(self.request_type)
            | u64::from(self.request) << 8
            | u64::from(self.value) << 16
            | u64::from(self.index) << 32
            | u64::from(self.length) << 48
    }

    /// Whether the data stage goes to the host.
    pub fn is_in(&self) -> bool {
        self.request_type & 0x80 != 0
    }
}

/// What a device makes of a control request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ControlOutcome {
    /// Accepted; the IN data (empty for OUT and no-data requests), never
    /// longer than the request's wLength.
    Done(Vec<u8>),
    /// The device does not support the request: the endpoint stalls.
    Stall,
}

/// Link speeds as the xHCI PORTSC and slot context number them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Speed {
    Full = 1,
    Low = 2,
    High = 3,
    Super = 4,
}
