//! `<os>`: guest type, firmware, direct kernel boot and boot order.

use crate::error::{Error, Result};
use crate::xml::props::{XmlEnum, enum_attr, int_attr, opt_string, xml_enum, yes_no, yes_no_attr};
use crate::xml::tree::Element;

xml_enum! {
    OsType { Hvm = "hvm", Linux = "linux", Xen = "xen", Exe = "exe", XenPvh = "xenpvh" }
}

xml_enum! {
    BootDev { Fd = "fd", Cdrom = "cdrom", Hd = "hd", Network = "network" }
}

xml_enum! {
    LoaderType { Rom = "rom", Pflash = "pflash" }
}

xml_enum! {
    Firmware { Bios = "bios", Efi = "efi" }
}

/// Architectures libvirt knows; oxvirt itself runs only x86_64.
const KNOWN_ARCHES: &[&str] = &[
    "aarch64",
    "alpha",
    "armv6l",
    "armv7l",
    "armv7b",
    "cris",
    "i686",
    "ia64",
    "lm32",
    "loongarch64",
    "m68k",
    "microblaze",
    "microblazeel",
    "mips",
    "mipsel",
    "mips64",
    "mips64el",
    "openrisc",
    "parisc",
    "parisc64",
    "ppc",
    "ppcle",
    "ppc64",
    "ppc64le",
    "ppcemb",
    "riscv32",
    "riscv64",
    "s390",
    "s390x",
    "sh4",
    "sh4eb",
    "sparc",
    "sparc64",
    "unicore32",
    "x86_64",
    "xtensa",
    "xtensaeb",
];

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Loader {
    pub path: Option<String>,
    pub readonly: Option<bool>,
    pub secure: Option<bool>,
    pub loader_type: Option<LoaderType>,
    pub stateless: Option<bool>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Nvram {
    pub path: Option<String>,
    pub template: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BootMenu {
    pub enable: Option<bool>,
    pub timeout: Option<u32>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Bios {
    pub useserial: Option<bool>,
    pub reboot_timeout: Option<i64>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Os {
    pub firmware: Option<Firmware>,
    pub os_type: OsType,
    pub arch: Option<String>,
    pub machine: Option<String>,
    pub loader: Option<Loader>,
    pub nvram: Option<Nvram>,
    pub kernel: Option<String>,
    pub initrd: Option<String>,
    pub cmdline: Option<String>,
    pub dtb: Option<String>,
    pub boot_devs: Vec<BootDev>,
    pub bootmenu: Option<BootMenu>,
    pub bios: Option<Bios>,
    pub smbios_mode: Option<String>,
}

fn text_of(os: &Element, name: &str) -> Option<String> {
    os.child(name).map(|e| e.text.clone())
}

fn parse_smbios_mode(smbios: &Element) -> Result<String> {
    let mode = smbios.attr("mode").unwrap_or("");
    if !["emulate", "host", "sysinfo"].contains(&mode) {
        return Err(Error::unsupported(format!("unknown smbios mode '{mode}'")));
    }
    Ok(mode.to_string())
}

impl Os {
    pub fn parse(os: &Element) -> Result<Os> {
        let type_elem = os
            .child("type")
            .ok_or_else(|| Error::xml("an os <type> must be specified"))?;
        let type_text = type_elem.text.as_str();
        if type_text.is_empty() {
            return Err(Error::xml("an os <type> must be specified"));
        }
        let os_type = OsType::from_xml(type_text)
            .ok_or_else(|| Error::unsupported(format!("unknown OS type '{type_text}'")))?;
        let arch = opt_string(type_elem, "arch").filter(|a| !a.is_empty());
        if let Some(a) = &arch
            && !KNOWN_ARCHES.contains(&a.as_str())
        {
            return Err(Error::unsupported(format!("Unknown architecture {a}")));
        }
        let loader = match os.child("loader") {
            None => None,
            Some(l) => Some(Loader {
                path: Some(l.text.trim().to_string()).filter(|p| !p.is_empty()),
                readonly: yes_no_attr(l, "readonly")?,
                secure: yes_no_attr(l, "secure")?,
                loader_type: enum_attr(l, "type")?,
                stateless: yes_no_attr(l, "stateless")?,
            }),
        };
        let nvram = os.child("nvram").map(|n| Nvram {
            path: Some(n.text.trim().to_string()).filter(|p| !p.is_empty()),
            template: opt_string(n, "template"),
        });
        let mut boot_devs = Vec::new();
        for b in os.children_named("boot") {
            let dev = crate::xml::props::req_enum_attr(b, "dev")?;
            boot_devs.push(dev);
        }
        let bootmenu = match os.child("bootmenu") {
            None => None,
            Some(m) => {
                let timeout: Option<u32> = m
                    .attr("timeout")
                    .map(|t| t.trim().parse::<u32>().ok().filter(|t| *t <= 65535))
                    .map(|t| {
                        t.ok_or_else(|| {
                            Error::unsupported(
                                "invalid value for boot menu timeout, must be in range [0,65535]",
                            )
                        })
                    })
                    .transpose()?;
                Some(BootMenu {
                    enable: yes_no_attr(m, "enable")?,
                    timeout,
                })
            }
        };
        let bios = match os.child("bios") {
            None => None,
            Some(b) => Some(Bios {
                useserial: yes_no_attr(b, "useserial")?,
                reboot_timeout: int_attr(b, "rebootTimeout")?,
            }),
        };
        Ok(Os {
            firmware: enum_attr(os, "firmware")?,
            os_type,
            arch,
            machine: opt_string(type_elem, "machine"),
            loader,
            nvram,
            kernel: text_of(os, "kernel"),
            initrd: text_of(os, "initrd"),
            cmdline: text_of(os, "cmdline"),
            dtb: text_of(os, "dtb"),
            boot_devs,
            bootmenu,
            bios,
            smbios_mode: os
                .child("smbios")
                .filter(|s| s.attr("mode").is_some())
                .map(parse_smbios_mode)
                .transpose()?,
        })
    }

    pub fn to_element(&self) -> Element {
        let mut os = Element::new("os").with_opt_attr("firmware", self.firmware);
        os.children.push(
            Element::new("type")
                .with_opt_attr("arch", self.arch.as_ref())
                .with_opt_attr("machine", self.machine.as_ref())
                .with_text(self.os_type.as_str()),
        );
        if let Some(l) = &self.loader {
            os.children.push(
                Element::new("loader")
                    .with_opt_attr("readonly", l.readonly.map(yes_no))
                    .with_opt_attr("secure", l.secure.map(yes_no))
                    .with_opt_attr("type", l.loader_type)
                    .with_opt_attr("stateless", l.stateless.map(yes_no))
                    .with_text(l.path.clone().unwrap_or_default()),
            );
        }
        if let Some(n) = &self.nvram {
            os.children.push(
                Element::new("nvram")
                    .with_opt_attr("template", n.template.as_ref())
                    .with_text(n.path.clone().unwrap_or_default()),
            );
        }
        for (name, value) in [
            ("kernel", &self.kernel),
            ("initrd", &self.initrd),
            ("cmdline", &self.cmdline),
            ("dtb", &self.dtb),
        ] {
            if let Some(v) = value {
                os.children.push(Element::new(name).with_text(v.clone()));
            }
        }
        for dev in &self.boot_devs {
            os.children
                .push(Element::new("boot").with_attr("dev", dev.as_str()));
        }
        if let Some(m) = &self.bootmenu {
            os.children.push(
                Element::new("bootmenu")
                    .with_opt_attr("enable", m.enable.map(yes_no))
                    .with_opt_attr("timeout", m.timeout),
            );
        }
        if let Some(b) = &self.bios {
            os.children.push(
                Element::new("bios")
                    .with_opt_attr("useserial", b.useserial.map(yes_no))
                    .with_opt_attr("rebootTimeout", b.reboot_timeout),
            );
        }
        if let Some(mode) = &self.smbios_mode {
            os.children
                .push(Element::new("smbios").with_attr("mode", mode.clone()));
        }
        os
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::xml::tree::parse_document;

    #[test]
    fn parses_kernel_boot_and_formats_in_libvirt_order() {
        let e = parse_document(
            "<os><smbios mode='host'/><boot dev='cdrom'/><kernel>/k</kernel><type arch='x86_64'>hvm</type></os>",
        )
        .unwrap();
        let os = Os::parse(&e).unwrap();
        let names: Vec<_> = os
            .to_element()
            .children
            .iter()
            .map(|c| c.name.clone())
            .collect();
        assert_eq!(names, ["type", "kernel", "boot", "smbios"]);
        assert_eq!(Os::parse(&os.to_element()).unwrap(), os);
    }

    #[test]
    fn reports_libvirt_errors() {
        let e = parse_document("<os/>").unwrap();
        assert_eq!(
            Os::parse(&e).unwrap_err().message,
            "XML error: an os <type> must be specified"
        );
        let e = parse_document("<os><type arch='foo'>hvm</type></os>").unwrap();
        assert_eq!(
            Os::parse(&e).unwrap_err().message,
            "unsupported configuration: Unknown architecture foo"
        );
        let e = parse_document("<os><type>hvm</type><boot dev='foo'/></os>").unwrap();
        assert_eq!(
            Os::parse(&e).unwrap_err().message,
            "XML error: Invalid value for attribute 'dev' in element 'boot': 'foo'."
        );
    }
}
