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

/// A set of CPUs as libvirt writes it: ranges where they run, `0-3,8`.
pub fn format_cpu_list(cpus: &[u32]) -> String {
    let mut sorted = cpus.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    let mut parts = Vec::new();
    let mut i = 0;
    while i < sorted.len() {
        let start = sorted[i];
        let mut end = start;
        while i + 1 < sorted.len() && sorted[i + 1] == end + 1 {
            i += 1;
            end = sorted[i];
        }
        parts.push(if start == end {
            start.to_string()
        } else {
            format!("{start}-{end}")
        });
        i += 1;
    }
    parts.join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_as_libvirt() {
        assert_eq!(format_cpu_list(&[0, 1, 2, 3, 8]), "0-3,8");
        assert_eq!(format_cpu_list(&[5]), "5");
        assert_eq!(format_cpu_list(&[3, 1]), "1,3");
        assert_eq!(format_cpu_list(&[]), "");
    }

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
