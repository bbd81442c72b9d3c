//! The adapter's port-bus devices: the legacy registers at 0x3B0-0x3DF
//! and the DISPI index/data pair at 0x1CE/0x1CF. Wider accesses are split
//! into consecutive byte ports, lowest first (so `outw 0x3C4` writes the
//! index, then the data).

use std::sync::{Arc, Mutex};

use super::vram::Vram;
use super::{DISPI_PORTS, LEGACY_PORTS, VgaState, lock};
use crate::vmm::bus::BusDevice;

pub struct VgaPorts {
    state: Arc<Mutex<VgaState>>,
}

impl VgaPorts {
    pub(super) fn new(state: Arc<Mutex<VgaState>>) -> Self {
        VgaPorts { state }
    }
}

/// The port `offset + i` bytes into the legacy range.
fn legacy_port(offset: u64, i: usize) -> Option<u16> {
    u16::try_from(LEGACY_PORTS.0 + offset + i as u64).ok()
}

impl BusDevice for VgaPorts {
    fn read(&mut self, offset: u64, data: &mut [u8]) {
        let mut s = lock(&self.state);
        let on = s.io_decode;
        for (i, b) in data.iter_mut().enumerate() {
            *b = match legacy_port(offset, i) {
                Some(p) if on => s.regs.read(p),
                _ => 0xff,
            };
        }
    }

    fn write(&mut self, offset: u64, data: &[u8]) {
        let mut s = lock(&self.state);
        if !s.io_decode {
            return;
        }
        for (i, &b) in data.iter().enumerate() {
            if let Some(p) = legacy_port(offset, i) {
                s.regs.write(p, b);
            }
        }
    }
}

pub struct DispiPorts {
    state: Arc<Mutex<VgaState>>,
    vram: Arc<Vram>,
}

impl DispiPorts {
    pub(super) fn new(state: Arc<Mutex<VgaState>>, vram: Arc<Vram>) -> Self {
        DispiPorts { state, vram }
    }
}

/// Offset of the data port from the index port.
const DATA: u64 = 0x1cf - DISPI_PORTS.0;

impl BusDevice for DispiPorts {
    fn read(&mut self, offset: u64, data: &mut [u8]) {
        let s = lock(&self.state);
        let v = match offset {
            _ if !s.io_decode => 0xffff,
            0 => s.dispi.index(),
            DATA => s.dispi.read_data(),
            _ => 0xffff,
        };
        for (b, x) in data
            .iter_mut()
            .zip(v.to_le_bytes().into_iter().chain([0; 6]))
        {
            *b = x;
        }
    }

    fn write(&mut self, offset: u64, data: &[u8]) {
        let mut s = lock(&self.state);
        if !s.io_decode {
            return;
        }
        let mut raw = [0u8; 2];
        for (r, d) in raw.iter_mut().zip(data) {
            *r = *d;
        }
        let v = u16::from_le_bytes(raw);
        match offset {
            0 => s.dispi.write_index(v),
            DATA => s.dispi.write_data(v, &self.vram),
            _ => {}
        }
    }
}
