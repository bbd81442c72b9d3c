//! The node-device sub-driver: the host's devices as libvirt 9.0's udev
//! node-device driver shows them, read-only, with one entry point per
//! libvirt public function (named after it, flags checked here as
//! libvirt's `node_device_driver.c` checks them).
//!
//! Devices are read from sysfs on every call ([`sysfs::scan`]): sysfs is
//! quick to read, and a fresh scan sees hot-plugged devices, driver
//! changes and link state as libvirt's refresh does. Mediated devices and
//! vHBAs are not managed: creating, defining or destroying one answers
//! "not supported"; any other device answers libvirt's "Unsupported
//! device type".

pub mod ethtool;
pub mod pciids;
pub mod sysfs;

use std::sync::Arc;

use crate::error::{Error, ErrorCode, ErrorDomain, Result};
use crate::xml::nodedev::{CapType, NodeDeviceDef, parse_definition_caps};

pub use sysfs::HostPaths;

/// `VIR_CONNECT_LIST_NODE_DEVICES_INACTIVE` / `_ACTIVE`.
pub const LIST_INACTIVE: u32 = 1 << 30;
pub const LIST_ACTIVE: u32 = 1 << 31;
/// Every capability bit (`VIR_CONNECT_LIST_NODE_DEVICES_FILTERS_CAP`).
pub const LIST_CAPS: u32 = (1 << 22) - 1;

/// `VIR_NODE_DEVICE_CREATE_XML_VALIDATE` / `VIR_NODE_DEVICE_DEFINE_XML_VALIDATE`.
pub const XML_VALIDATE: u32 = 1;

/// The node-device sub-driver; cheap to clone.
#[derive(Clone)]
pub struct NodeDev {
    paths: Arc<HostPaths>,
}

fn err(code: ErrorCode, detail: impl AsRef<str>) -> Error {
    Error::new(code, ErrorDomain::NodeDev, detail)
}

/// `virCheckFlags`.
fn check_flags(flags: u32, allowed: u32, function: &str) -> Result<()> {
    crate::driver::check_flags_in(ErrorDomain::NodeDev, flags, allowed, function)
}

/// `virCheckNonNegativeArgGoto` on `maxnames`.
fn check_maxnames(maxnames: i32, function: &str) -> Result<usize> {
    usize::try_from(maxnames).map_err(|_| {
        err(
            ErrorCode::InvalidArg,
            format!("maxnames in {function} must be zero or greater"),
        )
    })
}

fn unsupported_type() -> Error {
    err(ErrorCode::ConfigUnsupported, "Unsupported device type")
}

/// Whether `computer` (libvirt's one persistent, autostarted device).
fn is_system(d: &NodeDeviceDef) -> bool {
    d.has_cap(CapType::System)
}

impl NodeDev {
    pub fn new(paths: HostPaths) -> NodeDev {
        NodeDev {
            paths: Arc::new(paths),
        }
    }

    /// The running host.
    pub fn system() -> NodeDev {
        NodeDev::new(HostPaths::system())
    }

    fn devices(&self) -> Vec<NodeDeviceDef> {
        sysfs::scan(&self.paths)
    }

    /// `nodeDeviceObjFindByName`.
    fn find(&self, name: &str) -> Result<NodeDeviceDef> {
        self.devices()
            .into_iter()
            .find(|d| d.name == name)
            .ok_or_else(|| {
                err(
                    ErrorCode::NoNodeDevice,
                    format!("no node device with matching name '{name}'"),
                )
            })
    }

    /// Devices having capability `cap` (`virNodeDeviceObjHasCapStr`: an
    /// unknown name matches nothing), or all.
    fn names_with_cap(&self, cap: Option<&str>) -> Vec<String> {
        let want = cap.map(CapType::parse);
        self.devices()
            .into_iter()
            .filter(|d| match want {
                None => true,
                Some(None) => false,
                Some(Some(t)) => d.has_cap(t),
            })
            .map(|d| d.name)
            .collect()
    }

    // ---- connection-level ---------------------------------------------

    /// `virConnectListAllNodeDevices`: the devices' names, filtered by
    /// capability bits and by active/inactive (every udev device is
    /// active).
    pub fn connect_list_all_node_devices(&self, flags: u32) -> Result<Vec<String>> {
        check_flags(
            flags,
            LIST_CAPS | LIST_ACTIVE | LIST_INACTIVE,
            "nodeConnectListAllNodeDevices",
        )?;
        let caps = flags & LIST_CAPS;
        Ok(self
            .devices()
            .into_iter()
            .filter(|d| caps == 0 || d.cap_types().iter().any(|t| caps & t.list_flag() != 0))
            .filter(|_| flags & (LIST_ACTIVE | LIST_INACTIVE) == 0 || flags & LIST_ACTIVE != 0)
            .map(|d| d.name)
            .collect())
    }

    /// `virNodeNumOfDevices`.
    pub fn node_num_of_devices(&self, cap: Option<&str>, flags: u32) -> Result<i32> {
        check_flags(flags, 0, "nodeNumOfDevices")?;
        Ok(self.names_with_cap(cap).len() as i32)
    }

    /// `virNodeListDevices`: at most `maxnames` names.
    pub fn node_list_devices(
        &self,
        cap: Option<&str>,
        maxnames: i32,
        flags: u32,
    ) -> Result<Vec<String>> {
        let max = check_maxnames(maxnames, "virNodeListDevices")?;
        check_flags(flags, 0, "nodeListDevices")?;
        let mut names = self.names_with_cap(cap);
        names.truncate(max);
        Ok(names)
    }

    // ---- one device -----------------------------------------------------

    /// `virNodeDeviceLookupByName`.
    pub fn node_device_lookup_by_name(&self, name: &str) -> Result<String> {
        Ok(self.find(name)?.name)
    }

    /// `virNodeDeviceGetXMLDesc`.
    pub fn node_device_get_xml_desc(&self, name: &str, flags: u32) -> Result<String> {
        check_flags(flags, 0, "nodeDeviceGetXMLDesc")?;
        let mut d = self.find(name)?;
        sysfs::fill_pci_names(&self.paths, &mut d);
        Ok(d.to_xml())
    }

    /// `virNodeDeviceGetParent`: `None` for `computer` (libvirt's driver
    /// raises "no parent for this device", which its RPC server turns into
    /// a null parent).
    pub fn node_device_get_parent(&self, name: &str) -> Result<Option<String>> {
        Ok(self.find(name)?.parent)
    }

    /// `virNodeDeviceNumOfCaps`.
    pub fn node_device_num_of_caps(&self, name: &str) -> Result<i32> {
        Ok(self.find(name)?.cap_types().len() as i32)
    }

    /// `virNodeDeviceListCaps`: at most `maxnames` capability names.
    pub fn node_device_list_caps(&self, name: &str, maxnames: i32) -> Result<Vec<String>> {
        let max = check_maxnames(maxnames, "virNodeDeviceListCaps")?;
        let mut caps: Vec<String> = self
            .find(name)?
            .cap_types()
            .iter()
            .map(|t| t.as_str().to_string())
            .collect();
        caps.truncate(max);
        Ok(caps)
    }

    /// `virNodeDeviceIsActive`: every device found is.
    pub fn node_device_is_active(&self, name: &str) -> Result<bool> {
        self.find(name).map(|_| true)
    }

    /// `virNodeDeviceIsPersistent`: only `computer` (udev devices come
    /// and go with the hardware).
    pub fn node_device_is_persistent(&self, name: &str) -> Result<bool> {
        Ok(is_system(&self.find(name)?))
    }

    /// `virNodeDeviceGetAutostart`: only `computer`.
    pub fn node_device_get_autostart(&self, name: &str) -> Result<bool> {
        Ok(is_system(&self.find(name)?))
    }

    /// `virNodeDeviceSetAutostart`: only mediated devices have one to set.
    pub fn node_device_set_autostart(&self, name: &str, _autostart: bool) -> Result<()> {
        self.find(name)?;
        Err(err(
            ErrorCode::OperationUnsupported,
            "Unsupported device type",
        ))
    }

    // ---- creating and removing (mediated devices, vHBAs) ----------------

    /// What libvirt does with a definition's type: mediated devices and
    /// vHBAs (`scsi_host`) are made by mdevctl or the FC HBA, which this
    /// driver does not drive; anything else is not a device one makes.
    fn definition_type(xml: &str, function: &str, vhba: bool) -> Result<()> {
        let caps = parse_definition_caps(xml)?;
        if caps.contains(&CapType::Mdev) || (vhba && caps.contains(&CapType::ScsiHost)) {
            return Err(err(ErrorCode::NoSupport, function));
        }
        Err(unsupported_type())
    }

    /// `virNodeDeviceCreateXML`.
    pub fn node_device_create_xml(&self, xml: &str, flags: u32) -> Result<String> {
        check_flags(flags, XML_VALIDATE, "nodeDeviceCreateXML")?;
        Self::definition_type(xml, "virNodeDeviceCreateXML", true).map(|_| String::new())
    }

    /// `virNodeDeviceDefineXML`.
    pub fn node_device_define_xml(&self, xml: &str, flags: u32) -> Result<String> {
        check_flags(flags, XML_VALIDATE, "nodeDeviceDefineXML")?;
        Self::definition_type(xml, "virNodeDeviceDefineXML", false).map(|_| String::new())
    }

    /// `virNodeDeviceDestroy`: a vHBA needs its fibre channel names,
    /// anything else is not a device one destroys.
    pub fn node_device_destroy(&self, name: &str) -> Result<()> {
        let d = self.find(name)?;
        if d.has_cap(CapType::ScsiHost) {
            return Err(err(
                ErrorCode::InternalError,
                "Device is not a fibre channel HBA",
            ));
        }
        Err(unsupported_type())
    }

    /// `virNodeDeviceUndefine`.
    pub fn node_device_undefine(&self, name: &str, flags: u32) -> Result<()> {
        check_flags(flags, 0, "nodeDeviceUndefine")?;
        let d = self.find(name)?;
        if !is_system(&d) {
            return Err(err(
                ErrorCode::OperationInvalid,
                format!("Node device '{name}' is not defined"),
            ));
        }
        Err(unsupported_type())
    }

    /// `virNodeDeviceCreate`: every device found is already active.
    pub fn node_device_create(&self, name: &str, flags: u32) -> Result<()> {
        check_flags(flags, 0, "nodeDeviceCreate")?;
        self.find(name)?;
        Err(err(ErrorCode::OperationInvalid, "Device is already active"))
    }
}

#[cfg(test)]
mod tests;
