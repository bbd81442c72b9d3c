//! Hardware-reduced ACPI registers in port I/O space: sleep control
//! (offset 0), sleep status (offset 1) and reset (offset 4), as the FADT
//! describes them, and a free-running ACPI PM timer (offset 8, 32-bit),
//! which edk2's CloudHv firmware times every delay with.

use std::sync::Arc;
use std::time::Instant;

use crate::vmm::bus::BusDevice;
use crate::vmm::exit::{ExitReason, ExitSignal};
use crate::vmm::layout;

const SLP_EN: u8 = 1 << 5;
const SLP_TYP_SHIFT: u8 = 2;
const SLP_TYP_MASK: u8 = 0x7;
const WAK_STS: u8 = 1 << 7;

const SLEEP_CTL_OFFSET: u64 = 0;
const SLEEP_STS_OFFSET: u64 = (layout::ACPI_SLEEP_STS_PORT - layout::ACPI_SLEEP_CTL_PORT) as u64;
const RESET_OFFSET: u64 = (layout::ACPI_RESET_PORT - layout::ACPI_SLEEP_CTL_PORT) as u64;
const PM_TIMER_OFFSET: u64 = (layout::ACPI_PM_TIMER_PORT - layout::ACPI_SLEEP_CTL_PORT) as u64;
/// The PM timer's fixed rate.
const PM_TIMER_HZ: u128 = 3_579_545;
/// Ports covered, from the sleep control register on.
pub const PORT_COUNT: u64 = PM_TIMER_OFFSET + 4;

/// The register block.
pub struct AcpiPm {
    exit: Arc<ExitSignal>,
    sleep_sts: u8,
    started: Instant,
}

/// The PM block's state: the sleep status and where the PM timer stood.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AcpiPmState {
    pub sleep_sts: u8,
    pub timer_ns: u64,
}

impl AcpiPm {
    pub fn state(&self) -> AcpiPmState {
        AcpiPmState {
            sleep_sts: self.sleep_sts,
            timer_ns: self.started.elapsed().as_nanos() as u64,
        }
    }

    /// The PM timer carries on from the saved count.
    pub fn restore(&mut self, s: &AcpiPmState) {
        self.sleep_sts = s.sleep_sts;
        let elapsed = std::time::Duration::from_nanos(s.timer_ns);
        self.started = Instant::now()
            .checked_sub(elapsed)
            .unwrap_or_else(Instant::now);
    }

    pub fn new(exit: Arc<ExitSignal>) -> Self {
        AcpiPm {
            exit,
            sleep_sts: 0,
            started: Instant::now(),
        }
    }

    /// PM timer ticks since the machine was built, wrapping at 32 bits.
    fn pm_timer(&self) -> u32 {
        (self.started.elapsed().as_nanos() * PM_TIMER_HZ / 1_000_000_000) as u32
    }
}

impl BusDevice for AcpiPm {
    fn read(&mut self, offset: u64, data: &mut [u8]) {
        data.fill(0);
        if offset == SLEEP_STS_OFFSET
            && let Some(b) = data.first_mut()
        {
            *b = self.sleep_sts;
        } else if (PM_TIMER_OFFSET..PM_TIMER_OFFSET + 4).contains(&offset) {
            let shift = (offset - PM_TIMER_OFFSET) as usize;
            let bytes = self.pm_timer().to_le_bytes();
            for (d, s) in data.iter_mut().zip(bytes.iter().skip(shift)) {
                *d = *s;
            }
        }
    }

    fn write(&mut self, offset: u64, data: &[u8]) {
        let Some(&v) = data.first() else { return };
        match offset {
            SLEEP_CTL_OFFSET if v & SLP_EN != 0 => {
                let typ = (v >> SLP_TYP_SHIFT) & SLP_TYP_MASK;
                if typ == layout::S5_SLEEP_TYPE {
                    tracing::info!("guest entered S5 through the sleep control register");
                    self.exit.request(ExitReason::Poweroff);
                } else {
                    tracing::warn!("guest asked for sleep type {typ}, which is not offered");
                }
            }
            // Write-one-to-clear.
            SLEEP_STS_OFFSET => self.sleep_sts &= !(v & WAK_STS),
            RESET_OFFSET if v == layout::ACPI_RESET_VALUE => {
                tracing::info!("guest wrote the ACPI reset register");
                self.exit.request(ExitReason::Reboot);
            }
            _ => {}
        }
    }
}
