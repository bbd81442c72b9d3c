//! CPU lists such as `0-3,^2,8` as libvirt reads them.

use crate::error::{Error, Result};

/// Largest CPU number accepted in a list.
const MAX_CPU: u32 = 65535;

/// Parse a CPU list into the set of CPUs it names, sorted.
pub fn parse_cpu_list(text: &str) -> Result<Vec<u32>> {
    let bad = || Error::invalid_arg(format!("Failed to parse bitmap '{text}'"));
    let number = |s: &str| -> Result<u32> {
        s.trim()
            .parse::<u32>()
            .ok()
            .filter(|n| *n <= MAX_CPU)
            .ok_or_else(bad)
    };
    let mut set = Vec::new();
    let mut excluded = Vec::new();
    for item in text.split(',') {
        let item = item.trim();
        if let Some(neg) = item.strip_prefix('^') {
            excluded.push(number(neg)?);
            continue;
        }
        let (first, last) = match item.split_once('-') {
            Some((a, b)) => (number(a)?, number(b)?),
            None => {
                let n = number(item)?;
                (n, n)
            }
        };
        if first > last {
            return Err(bad());
        }
        set.extend(first..=last);
    }
    set.retain(|c| !excluded.contains(c));
    set.sort_unstable();
    set.dedup();
    Ok(set)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_ranges_and_exclusions() {
        assert_eq!(parse_cpu_list("0-3,^2,8").unwrap(), [0, 1, 3, 8]);
        assert_eq!(parse_cpu_list("5").unwrap(), [5]);
        assert_eq!(
            parse_cpu_list("0-a").unwrap_err().message,
            "invalid argument: Failed to parse bitmap '0-a'"
        );
        assert!(parse_cpu_list("").is_err());
        assert!(parse_cpu_list("3-1").is_err());
        assert!(parse_cpu_list("0-4294967295").is_err());
    }
}
