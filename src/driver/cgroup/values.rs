//! libvirt's tunables as cgroup files take them: ranges, units, and the
//! v1 and v2 spellings of "unlimited".

use std::os::unix::fs::FileTypeExt;
use std::os::unix::fs::MetadataExt;

use crate::error::{Error, Result};

/// `VIR_DOMAIN_MEMORY_PARAM_UNLIMITED`: KiB meaning "no limit".
pub const UNLIMITED_KIB: u64 = 9_007_199_254_740_991;

const SHARES_MIN: u64 = 2;
const SHARES_MAX: u64 = 262_144;
const WEIGHT_MIN: u64 = 1;
const WEIGHT_MAX: u64 = 10_000;
const PERIOD_MIN: u64 = 1000;
const PERIOD_MAX: u64 = 1_000_000;
const QUOTA_MIN: i64 = 1000;
const QUOTA_MAX: i64 = 17_592_186_044_415;

/// Shares as v1 takes them, or v2's weight (libvirt writes the value as
/// it is to either).
pub fn check_shares(v: u64, v2: bool) -> Result<()> {
    let (lo, hi) = if v2 {
        (WEIGHT_MIN, WEIGHT_MAX)
    } else {
        (SHARES_MIN, SHARES_MAX)
    };
    if !(lo..=hi).contains(&v) {
        return Err(Error::invalid_arg(format!(
            "shares '{v}' must be in range [{lo}, {hi}]"
        )));
    }
    Ok(())
}

pub fn check_period(v: u64) -> Result<()> {
    if !(PERIOD_MIN..=PERIOD_MAX).contains(&v) {
        return Err(Error::invalid_arg(format!(
            "cfs_period '{v}' must be in range ({PERIOD_MIN}, {PERIOD_MAX})"
        )));
    }
    Ok(())
}

/// A quota below 0 means none.
pub fn check_quota(v: i64) -> Result<()> {
    if v >= 0 && !(QUOTA_MIN..=QUOTA_MAX).contains(&v) {
        return Err(Error::invalid_arg(format!(
            "cfs_quota '{v}' must be in range ({QUOTA_MIN}, {QUOTA_MAX})"
        )));
    }
    Ok(())
}

/// v2's `cpu.max` ("QUOTA PERIOD", QUOTA "max" for none) as (quota, period).
pub fn parse_cpu_max(text: &str) -> Result<(i64, u64)> {
    let bad = || Error::internal(format!("Invalid 'cpu.max' data: '{text}'"));
    let (q, p) = text.trim().split_once(' ').ok_or_else(bad)?;
    let quota = if q == "max" {
        -1
    } else {
        q.parse().map_err(|_| bad())?
    };
    Ok((quota, p.parse().map_err(|_| bad())?))
}

pub fn format_cpu_max(quota: i64, period: u64) -> String {
    if quota < 0 {
        format!("max {period}")
    } else {
        format!("{quota} {period}")
    }
}

/// Which memory limit (`<memtune>`'s children).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MemoryLimit {
    Hard,
    Soft,
    SwapHard,
}

impl MemoryLimit {
    pub fn file(self, v2: bool) -> &'static str {
        match (self, v2) {
            (MemoryLimit::Hard, false) => "memory.limit_in_bytes",
            (MemoryLimit::Soft, false) => "memory.soft_limit_in_bytes",
            (MemoryLimit::SwapHard, false) => "memory.memsw.limit_in_bytes",
            (MemoryLimit::Hard, true) => "memory.max",
            (MemoryLimit::Soft, true) => "memory.high",
            (MemoryLimit::SwapHard, true) => "memory.swap.max",
        }
    }
}

/// A memory limit within what libvirt takes.
pub fn check_memory_kib(kib: u64) -> Result<()> {
    if kib > UNLIMITED_KIB {
        return Err(Error::invalid_arg(format!(
            "Memory '{kib}' must be less than {UNLIMITED_KIB}"
        )));
    }
    Ok(())
}

/// KiB as the file takes them.
pub fn format_memory(kib: u64, v2: bool) -> Result<String> {
    check_memory_kib(kib)?;
    Ok(match (kib == UNLIMITED_KIB, v2) {
        (true, true) => "max".to_string(),
        (true, false) => "-1".to_string(),
        (false, _) => (kib << 10).to_string(),
    })
}

/// v1's "no limit": the kernel's page counter maximum, in bytes, with
/// 4 KiB pages (`LONG_MAX / PAGE_SIZE * PAGE_SIZE`).
const V1_UNLIMITED_BYTES: u64 = 0x7fff_ffff_ffff_f000;

/// A memory file's value in KiB; "no limit" reads as [`UNLIMITED_KIB`].
pub fn parse_memory(text: &str) -> Result<u64> {
    let t = text.trim();
    if t == "max" {
        return Ok(UNLIMITED_KIB);
    }
    let bytes: u64 = t
        .parse()
        .map_err(|_| Error::internal(format!("cannot parse memory limit '{t}'")))?;
    if bytes >= V1_UNLIMITED_BYTES {
        return Ok(UNLIMITED_KIB);
    }
    Ok(bytes >> 10)
}

/// A weight file's value ("N" or v2's "default N\n...").
pub fn parse_weight(text: &str) -> Result<u32> {
    let first = text.lines().next().unwrap_or_default();
    first
        .trim_start_matches("default")
        .trim()
        .parse()
        .map_err(|_| Error::internal(format!("cannot parse blkio weight '{first}'")))
}

/// v2's `cpu.stat` as (total, user, system) ns.
pub fn parse_cpu_stat(text: &str) -> Option<(u64, u64, u64)> {
    let get = |key: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(key)?.trim().parse::<u64>().ok())
    };
    Some((
        get("usage_usec ")? * 1000,
        get("user_usec ")? * 1000,
        get("system_usec ")? * 1000,
    ))
}

/// A block device a per-device tunable names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlkioDevice {
    pub path: String,
    pub major: u32,
    pub minor: u32,
}

impl BlkioDevice {
    /// The device at `path`; libvirt's error when it is not a block device.
    pub fn open(path: &str) -> Result<BlkioDevice> {
        let meta = std::fs::metadata(path).map_err(|e| {
            super::super::fsutil::system_error(format!("Unable to stat {path}"), &e)
        })?;
        if !meta.file_type().is_block_device() {
            return Err(Error::invalid_arg(format!(
                "Path '{path}' is not a block device"
            )));
        }
        let rdev = meta.rdev();
        Ok(BlkioDevice {
            path: path.to_string(),
            major: libc::major(rdev),
            minor: libc::minor(rdev),
        })
    }
}

/// The per-device limits of `<blkiotune><device>`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeviceLimit {
    ReadBytes,
    WriteBytes,
    ReadIops,
    WriteIops,
}

impl DeviceLimit {
    pub const ALL: [DeviceLimit; 4] = [
        DeviceLimit::ReadIops,
        DeviceLimit::WriteIops,
        DeviceLimit::ReadBytes,
        DeviceLimit::WriteBytes,
    ];

    pub fn file(self, v2: bool) -> &'static str {
        if v2 {
            return "io.max";
        }
        match self {
            DeviceLimit::ReadBytes => "blkio.throttle.read_bps_device",
            DeviceLimit::WriteBytes => "blkio.throttle.write_bps_device",
            DeviceLimit::ReadIops => "blkio.throttle.read_iops_device",
            DeviceLimit::WriteIops => "blkio.throttle.write_iops_device",
        }
    }

    /// v2's key in `io.max`.
    fn key(self) -> &'static str {
        match self {
            DeviceLimit::ReadBytes => "rbps",
            DeviceLimit::WriteBytes => "wbps",
            DeviceLimit::ReadIops => "riops",
            DeviceLimit::WriteIops => "wiops",
        }
    }

    /// The line that sets `value` (0: no limit) for `dev`.
    pub fn format(self, dev: &BlkioDevice, value: u64, v2: bool) -> String {
        match (v2, value) {
            (true, 0) => format!("{}:{} {}=max", dev.major, dev.minor, self.key()),
            (true, v) => format!("{}:{} {}={v}", dev.major, dev.minor, self.key()),
            (false, v) => format!("{}:{} {v}", dev.major, dev.minor),
        }
    }

    /// The limits the file's text holds, by device number.
    pub fn parse(self, text: &str, v2: bool) -> Vec<((u32, u32), u64)> {
        text.lines()
            .filter_map(|l| {
                let mut f = l.split_whitespace();
                let (maj, min) = f.next()?.split_once(':')?;
                let dev = (maj.parse().ok()?, min.parse().ok()?);
                let value = if v2 {
                    let want = format!("{}=", self.key());
                    let v = f.find_map(|kv| kv.strip_prefix(want.as_str()).map(str::to_string))?;
                    if v == "max" { 0 } else { v.parse().ok()? }
                } else {
                    f.next()?.parse().ok()?
                };
                (value != 0).then_some((dev, value))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_ranges_as_libvirt() {
        assert!(check_shares(1024, false).is_ok());
        assert!(check_shares(1, false).is_err());
        assert!(check_shares(10_000, true).is_ok());
        assert!(check_shares(10_001, true).is_err());
        assert!(check_period(100_000).is_ok());
        assert!(check_period(999).is_err());
        assert!(check_quota(-1).is_ok());
        assert!(check_quota(500).is_err());
        assert_eq!(parse_cpu_max("max 100000\n").unwrap(), (-1, 100_000));
        assert_eq!(format_cpu_max(50_000, 100_000), "50000 100000");
        assert_eq!(format_cpu_max(-1, 100_000), "max 100000");
    }

    #[test]
    fn memory_in_both_versions() {
        assert_eq!(format_memory(1024, false).unwrap(), "1048576");
        assert_eq!(format_memory(UNLIMITED_KIB, false).unwrap(), "-1");
        assert_eq!(format_memory(UNLIMITED_KIB, true).unwrap(), "max");
        assert!(format_memory(UNLIMITED_KIB + 1, true).is_err());
        assert_eq!(parse_memory("9223372036854771712").unwrap(), UNLIMITED_KIB);
        assert_eq!(parse_memory("max").unwrap(), UNLIMITED_KIB);
        assert_eq!(parse_memory("1048576\n").unwrap(), 1024);
    }

    #[test]
    fn device_limits_in_both_versions() {
        let d = BlkioDevice {
            path: "/dev/x".into(),
            major: 8,
            minor: 0,
        };
        assert_eq!(DeviceLimit::ReadBytes.format(&d, 1000, false), "8:0 1000");
        assert_eq!(DeviceLimit::WriteIops.format(&d, 0, true), "8:0 wiops=max");
        let v2 = "8:0 rbps=1000 wbps=max riops=max wiops=30\n";
        assert_eq!(DeviceLimit::ReadBytes.parse(v2, true), [((8, 0), 1000)]);
        assert_eq!(DeviceLimit::WriteBytes.parse(v2, true), []);
        assert_eq!(DeviceLimit::WriteIops.parse(v2, true), [((8, 0), 30)]);
        assert_eq!(
            DeviceLimit::ReadIops.parse("8:16 200\n", false),
            [((8, 16), 200)]
        );
        assert_eq!(parse_weight("default 100\n8:0 200").unwrap(), 100);
        assert_eq!(
            parse_cpu_stat("usage_usec 10\nuser_usec 6\nsystem_usec 4\n"),
            Some((10_000, 6_000, 4_000))
        );
    }
}
