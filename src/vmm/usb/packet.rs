//! A HID device as UHCI and EHCI reach it: by the address the guest's
//! SET_ADDRESS gave it, one token packet (SETUP, IN, OUT) at a time.
//! xHCI hands whole control transfers to [`HidDevice`] and addresses
//! devices itself; these controllers do neither, so this layer keeps
//! the address and the stages of a control transfer (USB 2.0 section
//! 8.5.3): the request runs at its SETUP when it reads data, at the
//! status stage when it writes (or carries no data).

use super::hid::{HidDevice, HidKind, INTERRUPT_ENDPOINT};
use super::{ControlOutcome, SetupPacket, Speed};

/// A packet's token.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pid {
    Setup,
    In,
    Out,
}

/// The device's answer to a packet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Handshake {
    /// Accepted: the data of an IN packet (empty for SETUP and OUT).
    Ack(Vec<u8>),
    /// Nothing to send yet (an interrupt endpoint without a report).
    Nak,
    /// The endpoint does not take this packet.
    Stall,
}

/// Where a control transfer on endpoint 0 stands.
#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
enum ControlStage {
    #[default]
    Idle,
    /// A read: its data, `sent` bytes of it gone; an OUT ends it.
    DataIn { data: Vec<u8>, sent: usize },
    /// A write collecting its data; the request runs at the IN status.
    DataOut { setup: SetupPacket, data: Vec<u8> },
    /// A write (or no-data request) waiting for its IN status stage.
    StatusIn { setup: SetupPacket, data: Vec<u8> },
}

/// SET_ADDRESS as a standard device request.
const SET_ADDRESS: (u8, u8) = (0x00, 5);

/// A device on a root port of a UHCI or EHCI controller.
#[derive(Clone, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PacketDevice {
    hid: HidDevice,
    address: u8,
    stage: ControlStage,
}

impl PacketDevice {
    pub fn new(kind: HidKind) -> PacketDevice {
        PacketDevice {
            hid: HidDevice::new(kind),
            address: 0,
            stage: ControlStage::Idle,
        }
    }

    pub fn hid(&self) -> &HidDevice {
        &self.hid
    }

    pub fn hid_mut(&mut self) -> &mut HidDevice {
        &mut self.hid
    }

    /// The address the device answers at (0 until SET_ADDRESS).
    pub fn address(&self) -> u8 {
        self.address
    }

    /// A bus reset (port reset): address 0, unconfigured.
    pub fn reset(&mut self) {
        self.hid.reset();
        self.address = 0;
        self.stage = ControlStage::Idle;
    }

    /// Connected to a port of this speed (the device is reset, as a
    /// device plugged into another port would be).
    pub fn attach(&mut self, speed: Speed) {
        self.hid.set_speed(speed);
        self.reset();
    }

    /// One packet to endpoint `endpoint` (0..=15): `out` carries the data
    /// of SETUP and OUT packets, `max` bounds the data of an IN packet.
    pub fn packet(&mut self, pid: Pid, endpoint: u8, out: &[u8], max: usize) -> Handshake {
        match (endpoint, pid) {
            (0, Pid::Setup) => self.setup(out),
            (0, Pid::In) => self.control_in(max),
            (0, Pid::Out) => self.control_out(out),
            (e, Pid::In) if e == INTERRUPT_ENDPOINT & 0xf => match self.hid.take_report() {
                Some(mut report) => {
                    // A longer report would babble; the endpoint's
                    // packets are as long as any report.
                    report.truncate(max);
                    Handshake::Ack(report)
                }
                None => Handshake::Nak,
            },
            _ => Handshake::Stall,
        }
    }

    fn setup(&mut self, bytes: &[u8]) -> Handshake {
        let Ok(raw) = <[u8; 8]>::try_from(bytes) else {
            self.stage = ControlStage::Idle;
            return Handshake::Stall;
        };
        let setup = SetupPacket::from_u64(u64::from_le_bytes(raw));
        self.stage = if setup.is_in() {
            match self.hid.control(&setup, &[]) {
                ControlOutcome::Done(data) => ControlStage::DataIn { data, sent: 0 },
                ControlOutcome::Stall => {
                    self.stage = ControlStage::Idle;
                    return Handshake::Stall;
                }
            }
        } else if setup.length == 0 {
            ControlStage::StatusIn {
                setup,
                data: Vec::new(),
            }
        } else {
            ControlStage::DataOut {
                setup,
                data: Vec::new(),
            }
        };
        Handshake::Ack(Vec::new())
    }

    fn control_in(&mut self, max: usize) -> Handshake {
        match std::mem::take(&mut self.stage) {
            ControlStage::DataIn { data, sent } => {
                let end = sent.saturating_add(max).min(data.len());
                let chunk = data.get(sent..end).unwrap_or_default().to_vec();
                self.stage = ControlStage::DataIn { data, sent: end };
                Handshake::Ack(chunk)
            }
            // The status stage (a write cut short counts as complete).
            ControlStage::DataOut { setup, data } | ControlStage::StatusIn { setup, data } => {
                match self.hid.control(&setup, &data) {
                    ControlOutcome::Done(_) => {
                        if (setup.request_type, setup.request) == SET_ADDRESS {
                            self.address = (setup.value & 0x7f) as u8;
                        }
                        Handshake::Ack(Vec::new())
                    }
                    ControlOutcome::Stall => Handshake::Stall,
                }
            }
            ControlStage::Idle => Handshake::Stall,
        }
    }

    fn control_out(&mut self, bytes: &[u8]) -> Handshake {
        match std::mem::take(&mut self.stage) {
            ControlStage::DataOut { setup, mut data } => {
                let room = usize::from(setup.length).saturating_sub(data.len());
                data.extend_from_slice(bytes.get(..room.min(bytes.len())).unwrap_or_default());
                self.stage = if data.len() >= usize::from(setup.length) {
                    ControlStage::StatusIn { setup, data }
                } else {
                    ControlStage::DataOut { setup, data }
                };
                Handshake::Ack(Vec::new())
            }
            // The status stage of a read.
            ControlStage::DataIn { .. } => Handshake::Ack(Vec::new()),
            // More data than wLength said: ignored.
            stage @ ControlStage::StatusIn { .. } => {
                self.stage = stage;
                Handshake::Ack(Vec::new())
            }
            ControlStage::Idle => Handshake::Stall,
        }
    }
}

/// The device at `address` among `ports`, where `reachable(i)` says
/// whether the controller reaches port `i` (connected and enabled).
pub fn find(
    ports: &mut [Option<PacketDevice>],
    address: u8,
    reachable: impl Fn(usize) -> bool,
) -> Option<&mut PacketDevice> {
    ports
        .iter_mut()
        .enumerate()
        .filter(|(i, _)| reachable(*i))
        .find_map(|(_, d)| d.as_mut().filter(|d| d.address == address))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn setup(rt: u8, req: u8, value: u16, len: u16) -> Vec<u8> {
        let s = crate::vmm::usb::testing::setup(rt, req, value, len);
        s.to_u64().to_le_bytes().to_vec()
    }

    fn data(h: Handshake) -> Vec<u8> {
        match h {
            Handshake::Ack(d) => d,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_read_in_packets_then_set_address_at_its_status_stage() {
        let mut d = PacketDevice::new(HidKind::Tablet);
        d.attach(Speed::Full);
        // GET_DESCRIPTOR(device) in 8-byte packets, as UHCI moves it.
        assert_eq!(
            d.packet(Pid::Setup, 0, &setup(0x80, 6, 0x0100, 18), 8),
            Handshake::Ack(vec![])
        );
        let mut desc = Vec::new();
        for _ in 0..3 {
            desc.extend(data(d.packet(Pid::In, 0, &[], 8)));
        }
        assert_eq!(desc.len(), 18);
        assert_eq!(desc[7], 8, "full-speed ep0 packets");
        assert_eq!(d.packet(Pid::Out, 0, &[], 0), Handshake::Ack(vec![]));
        // SET_ADDRESS takes effect after its status stage.
        d.packet(Pid::Setup, 0, &setup(0, 5, 9, 0), 8);
        assert_eq!(d.address(), 0);
        assert_eq!(d.packet(Pid::In, 0, &[], 0), Handshake::Ack(vec![]));
        assert_eq!(d.address(), 9);
        // A status stage without a transfer stalls.
        assert_eq!(d.packet(Pid::In, 0, &[], 0), Handshake::Stall);
        d.reset();
        assert_eq!(d.address(), 0);
    }

    #[test]
    fn a_write_runs_at_its_status_stage_and_reports_nak_until_input() {
        let mut d = PacketDevice::new(HidKind::Keyboard);
        d.packet(Pid::Setup, 0, &setup(0x21, 9, 0x0200, 1), 8);
        assert_eq!(
            d.packet(Pid::Out, 0, &[0x02, 0xff], 8),
            Handshake::Ack(vec![])
        );
        assert_eq!(d.hid().leds(), 0, "not before the status stage");
        assert_eq!(d.packet(Pid::In, 0, &[], 0), Handshake::Ack(vec![]));
        assert_eq!(d.hid().leds(), 2);
        assert_eq!(d.packet(Pid::In, 1, &[], 8), Handshake::Nak);
        d.hid_mut().key_usage(0x04, true);
        assert_eq!(data(d.packet(Pid::In, 1, &[], 8))[2], 0x04);
        assert_eq!(d.packet(Pid::Out, 1, &[0], 8), Handshake::Stall);
        assert_eq!(d.packet(Pid::In, 2, &[], 8), Handshake::Stall);
        // A SETUP of the wrong size, and an unknown request, stall.
        assert_eq!(d.packet(Pid::Setup, 0, &[0; 7], 8), Handshake::Stall);
        assert_eq!(
            d.packet(Pid::Setup, 0, &setup(0x80, 6, 0x0900, 9), 8),
            Handshake::Stall
        );
    }

    #[test]
    fn find_by_address_on_reachable_ports() {
        let mut ports = vec![
            Some(PacketDevice::new(HidKind::Tablet)),
            None,
            Some(PacketDevice::new(HidKind::Keyboard)),
        ];
        ports[2].as_mut().unwrap().address = 3;
        assert!(find(&mut ports, 3, |_| true).is_some());
        assert!(find(&mut ports, 3, |i| i != 2).is_none());
        assert_eq!(
            find(&mut ports, 0, |_| true).map(|d| d.hid().kind()),
            Some(HidKind::Tablet)
        );
    }
}
