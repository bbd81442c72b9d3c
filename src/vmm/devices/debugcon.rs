//! The firmware debug port (0x402, QEMU's `isa-debugcon`): SeaBIOS writes
//! its log there. Lines go to the VMM's log at debug level
//! (`OXVIRT_VMM_LOG=oxvirt::vmm::devices::debugcon=debug`).

use crate::vmm::bus::BusDevice;

pub const PORT: u16 = 0x402;
/// Reads answer this so firmware can tell the port is there.
const PRESENT: u8 = 0xe9;
const MAX_LINE: usize = 512;

#[derive(Default)]
pub struct DebugCon {
    line: Vec<u8>,
}

impl BusDevice for DebugCon {
    fn read(&mut self, _offset: u64, data: &mut [u8]) {
        data.fill(PRESENT);
    }

    fn write(&mut self, _offset: u64, data: &[u8]) {
        for &b in data {
            if b == b'\n' || self.line.len() >= MAX_LINE {
                tracing::debug!(
                    "firmware: {}",
                    String::from_utf8_lossy(&self.line).trim_end()
                );
                self.line.clear();
            } else {
                self.line.push(b);
            }
        }
    }
}
