//! USB standard descriptors (USB 2.0 chapter 9) and the HID class
//! descriptor, as the bytes a GET_DESCRIPTOR returns.

/// Descriptor types (the high byte of GET_DESCRIPTOR's wValue).
pub const DT_DEVICE: u8 = 1;
pub const DT_CONFIGURATION: u8 = 2;
pub const DT_STRING: u8 = 3;
pub const DT_INTERFACE: u8 = 4;
pub const DT_ENDPOINT: u8 = 5;
pub const DT_HID: u8 = 0x21;
pub const DT_HID_REPORT: u8 = 0x22;

/// Interface class of HID devices.
pub const CLASS_HID: u8 = 3;
/// Configuration attributes: the reserved one bit, remote wakeup.
pub const CONFIG_ATTR_ONE: u8 = 0x80;
pub const CONFIG_ATTR_REMOTE_WAKEUP: u8 = 0x20;
/// US English, the only language of the string descriptors.
pub const LANGUAGE_EN_US: u16 = 0x0409;

/// The fields of a device descriptor that vary between devices.
#[derive(Clone, Copy, Debug)]
pub struct DeviceDescriptor {
    pub bcd_usb: u16,
    pub max_packet_size0: u8,
    pub vendor: u16,
    pub product: u16,
    pub bcd_device: u16,
    pub manufacturer: u8,
    pub product_string: u8,
    pub serial: u8,
}

impl DeviceDescriptor {
    /// The 18-byte device descriptor (class defined by the interface,
    /// one configuration).
    pub fn bytes(&self) -> [u8; 18] {
        let [usb_lo, usb_hi] = self.bcd_usb.to_le_bytes();
        let [vid_lo, vid_hi] = self.vendor.to_le_bytes();
        let [pid_lo, pid_hi] = self.product.to_le_bytes();
        let [dev_lo, dev_hi] = self.bcd_device.to_le_bytes();
        [
            18,
            DT_DEVICE,
            usb_lo,
            usb_hi,
            0, // class, subclass, protocol: per interface
            0,
            0,
            self.max_packet_size0,
            vid_lo,
            vid_hi,
            pid_lo,
            pid_hi,
            dev_lo,
            dev_hi,
            self.manufacturer,
            self.product_string,
            self.serial,
            1, // configurations
        ]
    }
}

/// A configuration with one HID interface and one interrupt IN endpoint,
/// what every HID device here has.
#[derive(Clone, Copy, Debug)]
pub struct HidConfiguration {
    pub configuration_string: u8,
    pub attributes: u8,
    /// In units of 2 mA.
    pub max_power: u8,
    pub subclass: u8,
    pub protocol: u8,
    pub report_descriptor_len: u16,
    pub endpoint_address: u8,
    pub max_packet_size: u16,
    pub interval: u8,
}

impl HidConfiguration {
    /// Configuration, interface, HID and endpoint descriptors, in the
    /// order GET_DESCRIPTOR(configuration) returns them.
    pub fn bytes(&self) -> Vec<u8> {
        const TOTAL: u16 = 9 + 9 + 9 + 7;
        let [total_lo, total_hi] = TOTAL.to_le_bytes();
        let [rep_lo, rep_hi] = self.report_descriptor_len.to_le_bytes();
        let [mps_lo, mps_hi] = self.max_packet_size.to_le_bytes();
        let mut out = Vec::with_capacity(usize::from(TOTAL));
        out.extend_from_slice(&[
            9,
            DT_CONFIGURATION,
            total_lo,
            total_hi,
            1, // interfaces
            1, // bConfigurationValue
            self.configuration_string,
            self.attributes,
            self.max_power,
        ]);
        out.extend_from_slice(&[
            9,
            DT_INTERFACE,
            0, // interface number
            0, // alternate setting
            1, // endpoints
            CLASS_HID,
            self.subclass,
            self.protocol,
            0, // no interface string
        ]);
        out.extend_from_slice(&[
            9,
            DT_HID,
            0x01, // HID 1.01
            0x01,
            0, // not localised
            1, // one class descriptor follows
            DT_HID_REPORT,
            rep_lo,
            rep_hi,
        ]);
        out.extend_from_slice(&[
            7,
            DT_ENDPOINT,
            self.endpoint_address,
            3, // interrupt
            mps_lo,
            mps_hi,
            self.interval,
        ]);
        out
    }

    /// The HID descriptor alone (GET_DESCRIPTOR(HID) to the interface).
    pub fn hid_descriptor(&self) -> Vec<u8> {
        self.bytes()
            .get(18..27)
            .map(<[u8]>::to_vec)
            .unwrap_or_default()
    }
}

/// String descriptor 0: the supported languages.
pub fn languages() -> Vec<u8> {
    let [lo, hi] = LANGUAGE_EN_US.to_le_bytes();
    vec![4, DT_STRING, lo, hi]
}

/// A string descriptor: UTF-16LE, at most 126 code units (the length
/// byte caps it at 254 bytes of text).
pub fn string(text: &str) -> Vec<u8> {
    let units: Vec<u16> = text.encode_utf16().take(126).collect();
    let mut out = Vec::with_capacity(2 + 2 * units.len());
    out.push((2 + 2 * units.len()) as u8);
    out.push(DT_STRING);
    for u in units {
        out.extend_from_slice(&u.to_le_bytes());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_descriptor_layout() {
        let d = DeviceDescriptor {
            bcd_usb: 0x0200,
            max_packet_size0: 64,
            vendor: 0x0627,
            product: 0x0001,
            bcd_device: 0,
            manufacturer: 1,
            product_string: 2,
            serial: 3,
        };
        let b = d.bytes();
        assert_eq!(&b[..4], &[18, 1, 0x00, 0x02]);
        assert_eq!(b[7], 64);
        assert_eq!(&b[8..12], &[0x27, 0x06, 0x01, 0x00]);
        assert_eq!(&b[14..], &[1, 2, 3, 1]);
    }

    #[test]
    fn configuration_totals_and_hid_descriptor() {
        let c = HidConfiguration {
            configuration_string: 4,
            attributes: CONFIG_ATTR_ONE | CONFIG_ATTR_REMOTE_WAKEUP,
            max_power: 50,
            subclass: 1,
            protocol: 1,
            report_descriptor_len: 63,
            endpoint_address: 0x81,
            max_packet_size: 8,
            interval: 7,
        };
        let b = c.bytes();
        assert_eq!(b.len(), 34);
        assert_eq!(u16::from_le_bytes([b[2], b[3]]), 34);
        assert_eq!(&b[9..18], &[9, 4, 0, 0, 1, 3, 1, 1, 0]);
        assert_eq!(c.hid_descriptor(), vec![9, 0x21, 1, 1, 0, 1, 0x22, 63, 0]);
        assert_eq!(&b[27..], &[7, 5, 0x81, 3, 8, 0, 7]);
    }

    #[test]
    fn strings_are_utf16_and_capped() {
        assert_eq!(string("QE"), vec![6, 3, b'Q', 0, b'E', 0]);
        assert_eq!(string(&"x".repeat(400)).len(), 254);
        assert_eq!(languages(), vec![4, 3, 0x09, 0x04]);
    }
}
