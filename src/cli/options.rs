//! virsh's rules between a command's boolean options, and the flag word
//! they make.

use super::error::{CliError, Result};

/// virsh's check of options that may not be given together: each entry
/// is two option names and whether both were given. The first pair given
/// is the error.
pub fn exclusive(pairs: &[(&str, &str, bool)]) -> Result<()> {
    match pairs.iter().find(|(_, _, both)| *both) {
        Some((a, b, _)) => Err(CliError::ctx(format!(
            "Options --{a} and --{b} are mutually exclusive"
        ))),
        None => Ok(()),
    }
}

/// The bits of the options that were given.
pub fn flag_bits(options: &[(bool, u32)]) -> u32 {
    options
        .iter()
        .filter(|(given, _)| *given)
        .fold(0, |f, (_, bit)| f | bit)
}

/// The filters `net-list` and `pool-list` share. libvirt numbers them
/// alike for networks and storage pools
/// (`virConnectListAll{Networks,StoragePools}Flags`).
pub struct ListFilter {
    pub inactive: bool,
    pub all: bool,
    pub persistent: bool,
    pub transient: bool,
    pub autostart: bool,
    pub no_autostart: bool,
}

impl ListFilter {
    pub const INACTIVE: u32 = 1;
    pub const ACTIVE: u32 = 2;
    pub const PERSISTENT: u32 = 4;
    pub const TRANSIENT: u32 = 8;
    pub const AUTOSTART: u32 = 16;
    pub const NO_AUTOSTART: u32 = 32;

    /// The flag word: active objects unless `--inactive` or `--all`.
    pub fn flags(&self) -> u32 {
        let state = match (self.all, self.inactive) {
            (true, _) => Self::ACTIVE | Self::INACTIVE,
            (false, true) => Self::INACTIVE,
            (false, false) => Self::ACTIVE,
        };
        state
            | flag_bits(&[
                (self.persistent, Self::PERSISTENT),
                (self.transient, Self::TRANSIENT),
                (self.autostart, Self::AUTOSTART),
                (self.no_autostart, Self::NO_AUTOSTART),
            ])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_clash_is_reported() {
        assert!(exclusive(&[("a", "b", false)]).is_ok());
        let e = exclusive(&[("a", "b", false), ("c", "d", true), ("e", "f", true)]).unwrap_err();
        assert_eq!(
            e.context.as_deref(),
            Some("Options --c and --d are mutually exclusive")
        );
        assert_eq!(flag_bits(&[(true, 1), (false, 2), (true, 8)]), 9);
    }

    #[test]
    fn listing_flags_as_virsh_sets_them() {
        let f = |inactive, all, persistent| {
            ListFilter {
                inactive,
                all,
                persistent,
                transient: false,
                autostart: false,
                no_autostart: false,
            }
            .flags()
        };
        assert_eq!(f(false, false, false), 2);
        assert_eq!(f(true, false, false), 1);
        assert_eq!(f(true, true, true), 7);
    }
}
