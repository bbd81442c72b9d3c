//! COM1: the vm-superio 16550 model on the port bus.

use std::io::Write;

use vm_superio::Serial;
use vm_superio::serial::NoEvents;

use super::IrqLine;
use crate::vmm::bus::BusDevice;

/// The UART and its output backend.
pub struct SerialDevice {
    uart: Serial<IrqLine, NoEvents, Box<dyn Write + Send>>,
}

impl SerialDevice {
    pub fn new(irq: IrqLine, out: Box<dyn Write + Send>) -> Self {
        SerialDevice {
            uart: Serial::new(irq, out),
        }
    }

    /// Queues host input for the guest; returns how many bytes fit.
    pub fn input(&mut self, bytes: &[u8]) -> usize {
        let room = self.uart.fifo_capacity();
        let n = bytes.len().min(room);
        if n == 0 {
            return 0;
        }
        match self.uart.enqueue_raw_bytes(&bytes[..n]) {
            Ok(n) => n,
            Err(e) => {
                tracing::warn!("serial input dropped: {e:?}");
                0
            }
        }
    }
}

impl BusDevice for SerialDevice {
    fn read(&mut self, offset: u64, data: &mut [u8]) {
        if data.len() != 1 || offset > 7 {
            data.fill(0xff);
            return;
        }
        data[0] = self.uart.read(offset as u8);
    }

    fn write(&mut self, offset: u64, data: &[u8]) {
        if data.len() != 1 || offset > 7 {
            return;
        }
        if let Err(e) = self.uart.write(offset as u8, data[0]) {
            tracing::debug!("serial write: {e:?}");
        }
    }
}
