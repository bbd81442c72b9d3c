//! i8042 controller: only what resets the machine (0xFE on port 0x64).

use std::sync::Arc;

use vm_superio::I8042Device;

use crate::vmm::bus::BusDevice;
use crate::vmm::exit::{ExitReason, ExitSignal};

/// Offset of the command/status register from the data port (0x64 - 0x60).
const COMMAND_OFFSET: u64 = 4;

/// Turns the controller's reset pulse into a reboot request.
pub struct ResetTrigger(pub Arc<ExitSignal>);

impl vm_superio::Trigger for ResetTrigger {
    type E = std::convert::Infallible;
    fn trigger(&self) -> Result<(), Self::E> {
        self.0.request(ExitReason::Reboot);
        Ok(())
    }
}

/// The controller, registered at 0x60 (offset 0) and 0x64 (offset 4).
pub struct I8042 {
    dev: I8042Device<ResetTrigger>,
}

impl I8042 {
    pub fn new(exit: Arc<ExitSignal>) -> Self {
        I8042 {
            dev: I8042Device::new(ResetTrigger(exit)),
        }
    }
}

/// Port-bus view of one of the two ports.
pub struct I8042Port {
    pub ctl: Arc<std::sync::Mutex<I8042>>,
    pub command: bool,
}

impl BusDevice for I8042Port {
    fn read(&mut self, _offset: u64, data: &mut [u8]) {
        let off = if self.command { COMMAND_OFFSET } else { 0 };
        let v = match self.ctl.lock() {
            Ok(mut c) => c.dev.read(off as u8),
            Err(_) => 0,
        };
        data.fill(0);
        if let Some(b) = data.first_mut() {
            *b = v;
        }
    }

    fn write(&mut self, _offset: u64, data: &[u8]) {
        let off = if self.command { COMMAND_OFFSET } else { 0 };
        if let (Some(&v), Ok(mut c)) = (data.first(), self.ctl.lock()) {
            let _ = c.dev.write(off as u8, v);
        }
    }
}
