//! The PS/2 mouse behind the i8042: a standard PS/2 mouse that becomes an
//! IntelliMouse (id 3, a wheel byte in every packet) after the sample rate
//! sequence 200, 100, 80.

use std::collections::VecDeque;

/// Bytes of packets the mouse holds; further motion waits, accumulated,
/// until the guest has read some (QEMU keeps the same 16 bytes).
const PACKET_QUEUE_BYTES: usize = 16;
/// Largest movement one packet carries (9-bit two's complement).
const MAX_DELTA: i32 = 255;
/// Largest wheel movement of an IntelliMouse packet (4-bit).
const MAX_WHEEL: i32 = 7;

const ACK: u8 = 0xfa;
const RESEND: u8 = 0xfe;

const SET_RESOLUTION: u8 = 0xe8;
const SET_SAMPLE_RATE: u8 = 0xf3;
const RESET_WRAP: u8 = 0xec;
const RESET: u8 = 0xff;

const INTELLIMOUSE_KNOCK: [u8; 3] = [200, 100, 80];

/// PS/2 packet button bits.
const LEFT: u8 = 0x01;
const RIGHT: u8 = 0x02;
const MIDDLE: u8 = 0x04;

#[derive(Clone, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Mouse {
    replies: VecDeque<u8>,
    packets: VecDeque<u8>,
    awaiting: Option<u8>,
    id: u8,
    enabled: bool,
    remote: bool,
    wrap: bool,
    scaling_2to1: bool,
    resolution: u8,
    sample_rate: u8,
    /// The last three sample rates set, oldest first.
    rates: [u8; 3],
    /// Movement not yet sent: x right, y up, z wheel down.
    dx: i32,
    dy: i32,
    dz: i32,
    /// PS/2 button bits.
    buttons: u8,
    buttons_changed: bool,
    /// Last absolute pointer position and RFB buttons seen.
    last_pos: Option<(u32, u32)>,
    last_rfb_buttons: u8,
}

impl Default for Mouse {
    fn default() -> Self {
        Mouse {
            replies: VecDeque::new(),
            packets: VecDeque::new(),
            awaiting: None,
            id: 0,
            enabled: false,
            remote: false,
            wrap: false,
            scaling_2to1: false,
            resolution: 2,
            sample_rate: 100,
            rates: [0; 3],
            dx: 0,
            dy: 0,
            dz: 0,
            buttons: 0,
            buttons_changed: false,
            last_pos: None,
            last_rfb_buttons: 0,
        }
    }
}

impl Mouse {
    /// The next byte for the controller: answers before packets. Reading
    /// makes room for packets of movement still pending.
    pub fn pop(&mut self) -> Option<u8> {
        let byte = self
            .replies
            .pop_front()
            .or_else(|| self.packets.pop_front());
        self.stream_packets();
        byte
    }

    fn packet_len(&self) -> usize {
        if self.id == 3 { 4 } else { 3 }
    }

    /// Power-on settings; keeps the pointer's position bookkeeping.
    fn set_defaults(&mut self) {
        self.enabled = false;
        self.remote = false;
        self.scaling_2to1 = false;
        self.resolution = 2;
        self.sample_rate = 100;
        self.packets.clear();
        self.dx = 0;
        self.dy = 0;
        self.dz = 0;
        self.buttons_changed = false;
    }

    /// A byte from the host (after the controller's 0xD4).
    pub fn write(&mut self, byte: u8) {
        self.replies.clear();
        if self.wrap && byte != RESET && byte != RESET_WRAP {
            self.replies.push_back(byte);
            return;
        }
        if let Some(cmd) = self.awaiting.take() {
            match cmd {
                SET_RESOLUTION => self.resolution = byte & 0x03,
                _ => {
                    self.sample_rate = byte;
                    self.rates = [self.rates[1], self.rates[2], byte];
                    if self.rates == INTELLIMOUSE_KNOCK {
                        self.id = 3;
                    }
                }
            }
            self.replies.push_back(ACK);
            return;
        }
        match byte {
            RESET => {
                self.set_defaults();
                self.wrap = false;
                self.id = 0;
                self.rates = [0; 3];
                self.replies.extend([ACK, 0xaa, 0x00]);
                return;
            }
            0xf6 => self.set_defaults(),
            0xf5 => self.enabled = false,
            0xf4 => self.enabled = true,
            0xf2 => {
                self.replies.extend([ACK, self.id]);
                return;
            }
            SET_SAMPLE_RATE | SET_RESOLUTION => self.awaiting = Some(byte),
            0xf0 => self.remote = true,
            0xea => self.remote = false,
            0xee => self.wrap = true,
            RESET_WRAP => self.wrap = false,
            0xeb => {
                self.replies.push_back(ACK);
                let packet = self.next_packet();
                self.replies.extend(packet);
                return;
            }
            0xe9 => {
                let status = u8::from(self.remote) << 6
                    | u8::from(self.enabled) << 5
                    | u8::from(self.scaling_2to1) << 4
                    | u8::from(self.buttons & LEFT != 0) << 2
                    | u8::from(self.buttons & MIDDLE != 0) << 1
                    | u8::from(self.buttons & RIGHT != 0);
                self.replies
                    .extend([ACK, status, self.resolution, self.sample_rate]);
                return;
            }
            0xe7 => self.scaling_2to1 = true,
            0xe6 => self.scaling_2to1 = false,
            _ => {
                self.replies.push_back(RESEND);
                return;
            }
        }
        self.replies.push_back(ACK);
    }

    /// The pointer at an absolute position with RFB `buttons` (bit 0 left,
    /// 1 middle, 2 right, 3/4 wheel up/down). The first position only sets
    /// the origin; nothing is recorded while the mouse is disabled.
    pub fn pointer(&mut self, x: u32, y: u32, rfb_buttons: u8) {
        let previous = self.last_pos.replace((x, y));
        let pressed = rfb_buttons & !self.last_rfb_buttons;
        self.last_rfb_buttons = rfb_buttons;
        if !self.enabled {
            return;
        }
        if let Some((px, py)) = previous {
            let dx = i64::from(x) - i64::from(px);
            let dy = i64::from(py) - i64::from(y); // PS/2 y grows upwards
            self.dx = clamp_i32(i64::from(self.dx) + dx);
            self.dy = clamp_i32(i64::from(self.dy) + dy);
        }
        if pressed & 0x08 != 0 {
            self.dz = self.dz.saturating_sub(1);
        }
        if pressed & 0x10 != 0 {
            self.dz = self.dz.saturating_add(1);
        }
        let buttons = (rfb_buttons & 0x01)
            | if rfb_buttons & 0x04 != 0 { RIGHT } else { 0 }
            | if rfb_buttons & 0x02 != 0 { MIDDLE } else { 0 };
        if buttons != self.buttons {
            self.buttons = buttons;
            self.buttons_changed = true;
        }
        self.stream_packets();
    }

    /// Queues packets of the pending movement while there is room.
    fn stream_packets(&mut self) {
        if !self.enabled || self.remote {
            return;
        }
        while (self.dx != 0 || self.dy != 0 || self.dz != 0 || self.buttons_changed)
            && self.packets.len() + self.packet_len() <= PACKET_QUEUE_BYTES
        {
            let packet = self.next_packet();
            self.packets.extend(packet);
        }
    }

    /// One packet of at most the largest deltas, taken off the pending
    /// movement.
    fn next_packet(&mut self) -> Vec<u8> {
        let dx = self.dx.clamp(-MAX_DELTA, MAX_DELTA);
        let dy = self.dy.clamp(-MAX_DELTA, MAX_DELTA);
        self.dx -= dx;
        self.dy -= dy;
        self.buttons_changed = false;
        let first = 0x08 | self.buttons | u8::from(dx < 0) << 4 | u8::from(dy < 0) << 5;
        let mut packet = vec![first, dx as u8, dy as u8];
        if self.id == 3 {
            let dz = self.dz.clamp(-MAX_WHEEL, MAX_WHEEL);
            self.dz -= dz;
            packet.push(dz as u8);
        } else {
            self.dz = 0;
        }
        packet
    }
}

fn clamp_i32(v: i64) -> i32 {
    v.clamp(i64::from(i32::MIN), i64::from(i32::MAX)) as i32
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drain(m: &mut Mouse) -> Vec<u8> {
        std::iter::from_fn(|| m.pop()).collect()
    }

    fn command(m: &mut Mouse, bytes: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        for &b in bytes {
            m.write(b);
            out.extend(drain(m));
        }
        out
    }

    #[test]
    fn reset_id_and_intellimouse_knock() {
        let mut m = Mouse::default();
        assert_eq!(command(&mut m, &[0xff]), [0xfa, 0xaa, 0x00]);
        assert_eq!(command(&mut m, &[0xf2]), [0xfa, 0x00]);
        let knock = [0xf3, 200, 0xf3, 100, 0xf3, 80];
        assert_eq!(command(&mut m, &knock), [0xfa; 6]);
        assert_eq!(command(&mut m, &[0xf2]), [0xfa, 0x03]);
        assert_eq!(
            command(&mut m, &[0xff, 0xf2]),
            [0xfa, 0xaa, 0x00, 0xfa, 0x00]
        );
    }

    #[test]
    fn status_wrap_and_unknown() {
        let mut m = Mouse::default();
        assert_eq!(command(&mut m, &[0xe8, 3, 0xe7, 0xf4]), [0xfa; 4]);
        assert_eq!(command(&mut m, &[0xe9]), [0xfa, 0x30, 3, 100]);
        assert_eq!(command(&mut m, &[0xee, 0x12, 0xec]), [0xfa, 0x12, 0xfa]);
        assert_eq!(command(&mut m, &[0x77]), [0xfe]);
        assert_eq!(command(&mut m, &[0xf0, 0xea, 0xe6, 0xf5]), [0xfa; 4]);
    }

    #[test]
    fn packets_for_moves_and_buttons() {
        let mut m = Mouse::default();
        m.pointer(100, 100, 0);
        command(&mut m, &[0xf4]);
        m.pointer(105, 97, 0); // right 5, up 3
        assert_eq!(drain(&mut m), [0x08, 5, 3]);
        m.pointer(100, 110, 0x01); // left 5, down 13, left button
        assert_eq!(drain(&mut m), [0x39, 0xfb, 0xf3]);
        m.pointer(100, 110, 0x04); // right button only
        assert_eq!(drain(&mut m), [0x0a, 0, 0]);
        m.pointer(100, 110, 0x04);
        assert!(drain(&mut m).is_empty());
    }

    #[test]
    fn large_moves_split_and_wheel() {
        let mut m = Mouse::default();
        command(&mut m, &[0xf3, 200, 0xf3, 100, 0xf3, 80, 0xf4]);
        m.pointer(0, 0, 0);
        m.pointer(600, 0, 0x08);
        let bytes = drain(&mut m);
        let packets: Vec<&[u8]> = bytes.chunks(4).collect();
        assert_eq!(
            packets,
            [
                &[0x08, 255, 0, 0xff][..],
                &[0x08, 255, 0, 0],
                &[0x08, 90, 0, 0]
            ]
        );
        // Far more than the queue holds: it stays bounded and the rest
        // comes as the guest reads.
        m.pointer(100_600, 0, 0);
        assert!(m.packets.len() <= PACKET_QUEUE_BYTES);
        let total: u64 = drain(&mut m).chunks(4).map(|p| u64::from(p[1])).sum();
        assert_eq!(total, 100_000);
    }

    #[test]
    fn disabled_mouse_sends_nothing() {
        let mut m = Mouse::default();
        m.pointer(0, 0, 0);
        m.pointer(10, 10, 1);
        assert!(drain(&mut m).is_empty());
        command(&mut m, &[0xf4]);
        m.pointer(12, 10, 1);
        assert_eq!(drain(&mut m), [0x09, 2, 0]);
        assert_eq!(command(&mut m, &[0xf0]), [0xfa]);
        m.pointer(15, 10, 1);
        assert!(drain(&mut m).is_empty());
        assert_eq!(command(&mut m, &[0xeb]), [0xfa, 0x09, 3, 0]);
    }
}
