//! CMOS RTC at ports 0x70 (index) and 0x71 (data): the host's wall-clock
//! time, in BCD unless the guest clears register B's DM bit, plus NVRAM.

use crate::vmm::bus::BusDevice;

const REG_SECONDS: u8 = 0x00;
const REG_MINUTES: u8 = 0x02;
const REG_HOURS: u8 = 0x04;
const REG_WEEKDAY: u8 = 0x06;
const REG_DAY: u8 = 0x07;
const REG_MONTH: u8 = 0x08;
const REG_YEAR: u8 = 0x09;
const REG_A: u8 = 0x0a;
const REG_B: u8 = 0x0b;
const REG_C: u8 = 0x0c;
const REG_D: u8 = 0x0d;
const REG_CENTURY: u8 = 0x32;
/// Extended memory above 16 MiB in 64 KiB units (low/high byte).
const REG_MEM_ABOVE_16M_LO: u8 = 0x34;
const REG_MEM_ABOVE_16M_HI: u8 = 0x35;
/// Memory above 4 GiB in 64 KiB units (three bytes).
const REG_MEM_ABOVE_4G: u8 = 0x5b;

const B_24H: u8 = 1 << 1;
const B_BINARY: u8 = 1 << 2;
const B_SET: u8 = 1 << 7;
const A_UIP: u8 = 1 << 7;
/// Divider: 32.768 kHz time base, 1024 Hz periodic rate.
const A_DEFAULT: u8 = 0x26;
/// Register D: valid RAM and time.
const D_VRT: u8 = 0x80;

/// Broken-down UTC time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tm {
    pub sec: u8,
    pub min: u8,
    pub hour: u8,
    pub wday: u8,
    pub mday: u8,
    pub mon: u8,
    pub year: u32,
}

/// Converts seconds since the epoch to UTC fields (civil-from-days).
pub fn tm_from_unix(secs: i64) -> Tm {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let mday = doy - (153 * mp + 2) / 5 + 1;
    let mon = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(mon <= 2);
    Tm {
        sec: (rem % 60) as u8,
        min: ((rem / 60) % 60) as u8,
        hour: (rem / 3600) as u8,
        wday: ((days + 4).rem_euclid(7) + 1) as u8,
        mday: mday as u8,
        mon: mon as u8,
        year: year.max(0) as u32,
    }
}

fn to_bcd(v: u8) -> u8 {
    ((v / 10) << 4) | (v % 10)
}

/// What a state image keeps of the CMOS: the index register and NVRAM
/// (the clock itself follows the host).
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CmosState {
    pub index: u8,
    pub nvram: Vec<u8>,
}

/// The RTC/NVRAM device.
pub struct Cmos {
    index: u8,
    nvram: [u8; 128],
    clock: fn() -> i64,
}

fn host_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

impl Cmos {
    pub fn state(&self) -> CmosState {
        CmosState {
            index: self.index,
            nvram: self.nvram.to_vec(),
        }
    }

    pub fn restore(&mut self, s: &CmosState) -> Result<(), String> {
        self.nvram = s
            .nvram
            .as_slice()
            .try_into()
            .map_err(|_| format!("CMOS state has {} NVRAM bytes, not 128", s.nvram.len()))?;
        self.index = s.index;
        Ok(())
    }

    /// A CMOS reporting the host's time, with NVRAM memory sizes filled in.
    pub fn new(mem_below_4g: u64, mem_above_4g: u64) -> Self {
        Self::with_clock(mem_below_4g, mem_above_4g, host_now)
    }

    /// Same, with a custom clock (tests).
    pub fn with_clock(mem_below_4g: u64, mem_above_4g: u64, clock: fn() -> i64) -> Self {
        let mut nvram = [0u8; 128];
        nvram[REG_A as usize] = A_DEFAULT;
        nvram[REG_B as usize] = B_24H;
        nvram[REG_D as usize] = D_VRT;
        let above_16m = (mem_below_4g.saturating_sub(16 << 20) >> 16).min(0xffff);
        nvram[REG_MEM_ABOVE_16M_LO as usize] = above_16m as u8;
        nvram[REG_MEM_ABOVE_16M_HI as usize] = (above_16m >> 8) as u8;
        let above_4g = mem_above_4g >> 16;
        for i in 0..3 {
            nvram[REG_MEM_ABOVE_4G as usize + i] = (above_4g >> (8 * i)) as u8;
        }
        Cmos {
            index: 0,
            nvram,
            clock,
        }
    }

    fn time_field(&self, reg: u8) -> Option<u8> {
        let tm = tm_from_unix((self.clock)());
        let b = self.nvram[REG_B as usize];
        let enc = |v: u8| if b & B_BINARY != 0 { v } else { to_bcd(v) };
        Some(match reg {
            REG_SECONDS => enc(tm.sec),
            REG_MINUTES => enc(tm.min),
            REG_HOURS => {
                if b & B_24H != 0 {
                    enc(tm.hour)
                } else {
                    let pm = tm.hour >= 12;
                    let h12 = match tm.hour % 12 {
                        0 => 12,
                        h => h,
                    };
                    enc(h12) | if pm { 0x80 } else { 0 }
                }
            }
            REG_WEEKDAY => enc(tm.wday),
            REG_DAY => enc(tm.mday),
            REG_MONTH => enc(tm.mon),
            REG_YEAR => enc((tm.year % 100) as u8),
            REG_CENTURY => enc((tm.year / 100).min(99) as u8),
            _ => return None,
        })
    }

    fn read_reg(&mut self, reg: u8) -> u8 {
        match reg {
            // The time is read straight from the host clock, so an update
            // is never in progress.
            REG_A => self.nvram[REG_A as usize] & !A_UIP,
            REG_C => {
                let v = self.nvram[REG_C as usize];
                self.nvram[REG_C as usize] = 0;
                v
            }
            REG_D => D_VRT,
            r => self.time_field(r).unwrap_or(self.nvram[r as usize]),
        }
    }

    fn write_reg(&mut self, reg: u8, v: u8) {
        match reg {
            // Setting the guest's clock is not supported; the RTC always
            // follows the host. Register B keeps its format bits.
            REG_SECONDS..=REG_YEAR | REG_CENTURY | REG_C | REG_D => {}
            REG_A => self.nvram[REG_A as usize] = v & !A_UIP,
            REG_B => self.nvram[REG_B as usize] = v & !B_SET,
            r => self.nvram[r as usize] = v,
        }
    }
}

impl BusDevice for Cmos {
    fn read(&mut self, offset: u64, data: &mut [u8]) {
        data.fill(0xff);
        if data.len() != 1 {
            return;
        }
        data[0] = match offset {
            0 => self.index,
            1 => {
                let reg = self.index;
                self.read_reg(reg)
            }
            _ => 0xff,
        };
    }

    fn write(&mut self, offset: u64, data: &[u8]) {
        let Some(&v) = data.first() else { return };
        match offset {
            // Bit 7 of the index port is the NMI mask; ignore it.
            0 => self.index = v & 0x7f,
            1 => {
                let reg = self.index;
                self.write_reg(reg, v);
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixed() -> i64 {
        // 2024-02-29 13:04:05 UTC, a Thursday.
        1_709_211_845
    }

    fn rd(c: &mut Cmos, reg: u8) -> u8 {
        c.write(0, &[reg]);
        let mut b = [0u8];
        c.read(1, &mut b);
        b[0]
    }

    #[test]
    fn civil_time() {
        let tm = tm_from_unix(fixed());
        assert_eq!((tm.year, tm.mon, tm.mday), (2024, 2, 29));
        assert_eq!((tm.hour, tm.min, tm.sec, tm.wday), (13, 4, 5, 5));
        assert_eq!(tm_from_unix(0).year, 1970);
    }

    #[test]
    fn bcd_and_binary() {
        let mut c = Cmos::with_clock(512 << 20, 0, fixed);
        assert_eq!(rd(&mut c, REG_HOURS), 0x13);
        assert_eq!(rd(&mut c, REG_YEAR), 0x24);
        assert_eq!(rd(&mut c, REG_CENTURY), 0x20);
        assert_eq!(rd(&mut c, REG_A) & A_UIP, 0);
        c.write(0, &[REG_B]);
        c.write(1, &[B_24H | B_BINARY]);
        assert_eq!(rd(&mut c, REG_HOURS), 13);
        c.write(0, &[REG_B]);
        c.write(1, &[0]);
        assert_eq!(rd(&mut c, REG_HOURS), 0x81);
        assert_eq!(rd(&mut c, REG_MEM_ABOVE_16M_HI), ((496u64 << 4) >> 8) as u8);
    }
}
