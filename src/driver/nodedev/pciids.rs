//! Vendor and device names from the PCI ID database (`pci.ids`, Debian's
//! `pci.ids` package), as libpciaccess's `pci_get_strings` finds them for
//! libvirt: the vendor's name, and the device's name under that vendor.

use std::io::{BufRead, BufReader};
use std::path::Path;

fn hex4(s: &str) -> Option<(u32, &str)> {
    let id = s.get(..4)?;
    if !id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let rest = &s[4..];
    if !rest.starts_with([' ', '\t']) {
        return None;
    }
    Some((u32::from_str_radix(id, 16).ok()?, rest.trim()))
}

/// The names of `vendor` and of its `device`, each if the database has it.
/// Reads the file once, stopping after the vendor's entries.
pub fn lookup(ids: &Path, vendor: u32, device: u32) -> (Option<String>, Option<String>) {
    let Ok(f) = std::fs::File::open(ids) else {
        return (None, None);
    };
    let mut vendor_name = None;
    let mut device_name = None;
    for line in BufReader::new(f).lines() {
        let Ok(line) = line else { break };
        if line.starts_with('#') || line.is_empty() {
            continue;
        }
        if let Some(dev) = line.strip_prefix('\t') {
            if vendor_name.is_some()
                && device_name.is_none()
                && !dev.starts_with('\t')
                && let Some((id, name)) = hex4(dev)
                && id == device
            {
                device_name = Some(name.to_string());
            }
            continue;
        }
        // A new top-level entry: a vendor, or the class list at the end.
        if vendor_name.is_some() {
            break;
        }
        if let Some((id, name)) = hex4(&line)
            && id == vendor
        {
            vendor_name = Some(name.to_string());
        }
    }
    (vendor_name, device_name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_vendor_and_device_names() {
        let dir = std::env::temp_dir().join(format!("oxvirt-pciids-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("pci.ids");
        std::fs::write(
            &f,
            "# comment\n\
             1af4  Red Hat, Inc.\n\
             \t1000  Virtio network device\n\
             \t\t1af4 0001  Virtio network device\n\
             \t1041  Virtio 1.0 network device\n\
             8086  Intel Corporation\n\
             \t0d57  Not me\n\
             C 00  Unclassified device\n\
             \t00  Non-VGA unclassified device\n",
        )
        .unwrap();
        assert_eq!(
            lookup(&f, 0x1af4, 0x1041),
            (
                Some("Red Hat, Inc.".into()),
                Some("Virtio 1.0 network device".into())
            )
        );
        assert_eq!(
            lookup(&f, 0x1af4, 0x0001),
            (Some("Red Hat, Inc.".into()), None)
        );
        assert_eq!(lookup(&f, 0x10de, 0x0001), (None, None));
        assert_eq!(lookup(&dir.join("none"), 0x1af4, 0x1041), (None, None));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
