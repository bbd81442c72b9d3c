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
}
