//! libvirt's domain XML: a typed model with libvirt's parser behaviour
//! (validation, defaults filled as on `virsh define`) and formatter
//! (byte-compatible with `virsh dumpxml`). No I/O happens here.
//!
//! * [`parse_domain`] reads XML into a [`Domain`], filling defaults.
//! * [`Domain::to_xml`] writes it back in libvirt's canonical form.
//! * [`check_supported`] says whether oxvirt's KVM driver can run it.
//! * [`assign_aliases`] names devices as libvirt does for live XML.

pub mod aliases;
pub mod bitmap;
pub mod check;
pub mod defaults;
pub mod format;
pub mod mac;
pub mod model;
pub mod network;
pub mod nodedev;
pub mod props;
pub mod snapshot;
pub mod storage;
pub mod tree;
pub mod units;
pub mod uuid_text;
pub mod writer;

pub use aliases::assign_aliases;
pub use check::check_supported;
pub use model::Domain;

use crate::error::Result;

/// `virDomainGetXMLDesc` flags that change how a domain is formatted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FormatFlags {
    /// Include secrets such as graphics passwords.
    pub secure: bool,
    /// The persistent definition: no id, generated aliases or live state.
    pub inactive: bool,
    /// Update the guest CPU from the host (accepted, no effect here).
    pub update_cpu: bool,
    /// XML for migration (accepted, no effect here).
    pub migratable: bool,
}

impl FormatFlags {
    pub const SECURE: u32 = 1;
    pub const INACTIVE: u32 = 2;
    pub const UPDATE_CPU: u32 = 4;
    pub const MIGRATABLE: u32 = 8;

    pub fn from_bits(flags: u32) -> FormatFlags {
        FormatFlags {
            secure: flags & Self::SECURE != 0,
            inactive: flags & Self::INACTIVE != 0,
            update_cpu: flags & Self::UPDATE_CPU != 0,
            migratable: flags & Self::MIGRATABLE != 0,
        }
    }
}

/// Parse domain XML as `virsh define` does: syntax, validation, then
/// post-parse defaults (UUID, MACs, controllers, addresses, ...).
pub fn parse_domain(xml: &str) -> Result<Domain> {
    let root = tree::parse_document(xml)?;
    let mut dom = Domain::parse(&root)?;
    defaults::fill(&mut dom)?;
    Ok(dom)
}

impl Domain {
    /// Format as `virsh dumpxml` prints it.
    pub fn to_xml(&self, flags: FormatFlags) -> String {
        format::domain_to_xml(self, flags)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_from_bits() {
        let f = FormatFlags::from_bits(3);
        assert!(f.secure && f.inactive && !f.update_cpu && !f.migratable);
        assert!(FormatFlags::from_bits(12).migratable);
    }
}
