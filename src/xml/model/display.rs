//! `<graphics>` and `<video>`: display outputs and adapters.

use crate::error::{Error, Result};
use crate::xml::props::{XmlEnum, req_enum_attr, uint_attr, xml_enum, yes_no, yes_no_attr};
use crate::xml::tree::Element;

use super::address::{Address, parse_alias, parse_device_address, with_alias_and_address};

xml_enum! {
    GraphicsType { Sdl = "sdl", Vnc = "vnc", Rdp = "rdp", Desktop = "desktop", Spice = "spice", EglHeadless = "egl-headless", Dbus = "dbus" }
}

xml_enum! {
    VideoModel {
        Vga = "vga", Cirrus = "cirrus", Vmvga = "vmvga", Xen = "xen", Vbox = "vbox", Qxl = "qxl",
        Parallels = "parallels", Virtio = "virtio", Gop = "gop", None = "none", Bochs = "bochs",
        Ramfb = "ramfb",
    }
}

/// A graphics output. Apart from the type and password, its attributes
/// and children (listen, channels, ...) are kept as written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Graphics {
    pub graphics_type: GraphicsType,
    pub passwd: Option<String>,
    pub attrs: Vec<(String, String)>,
    pub children: Vec<Element>,
}

/// Graphics attributes in the order libvirt writes them; any others
/// follow in document order.
const GRAPHICS_ATTR_ORDER: &[&str] = &[
    "display",
    "xauth",
    "fullscreen",
    "port",
    "tlsPort",
    "autoport",
    "websocket",
    "multiUser",
    "replaceUser",
    "listen",
    "keymap",
    "defaultMode",
    "sharePolicy",
    "passwdValidTo",
    "connected",
    "powerControl",
    "gl",
    "rendernode",
];

fn attr_rank(name: &str) -> usize {
    GRAPHICS_ATTR_ORDER
        .iter()
        .position(|n| *n == name)
        .unwrap_or(GRAPHICS_ATTR_ORDER.len())
}

impl Graphics {
    pub fn parse(e: &Element) -> Result<Graphics> {
        let mut attrs: Vec<(String, String)> = e
            .attrs
            .iter()
            .filter(|(k, _)| k != "type" && k != "passwd")
            .cloned()
            .collect();
        attrs.sort_by_key(|(k, _)| attr_rank(k));
        let mut children = e.children.clone();
        let listen_attr = e.attr("listen");
        let has_listen_child = children.iter().any(|c| c.name == "listen");
        if let (Some(addr), false) = (listen_attr, has_listen_child) {
            // libvirt mirrors the listen attribute as a listen element.
            let pos = children
                .iter()
                .position(|c| c.name != "listen")
                .unwrap_or(0);
            children.insert(
                pos.min(children.len()),
                Element::new("listen")
                    .with_attr("type", "address")
                    .with_attr("address", addr),
            );
        }
        Ok(Graphics {
            graphics_type: req_enum_attr(e, "type")?,
            passwd: e.attr("passwd").map(str::to_string),
            attrs,
            children,
        })
    }

    /// The password is shown only when `secure` formatting is asked for.
    pub fn to_element(&self, secure: bool) -> Element {
        let mut e = Element::new("graphics").with_attr("type", self.graphics_type.as_str());
        let passwd_rank = attr_rank("passwdValidTo");
        let (before, after): (Vec<_>, Vec<_>) = self
            .attrs
            .iter()
            .cloned()
            .partition(|(k, _)| attr_rank(k) < passwd_rank);
        e.attrs.extend(before);
        if secure {
            e = e.with_opt_attr("passwd", self.passwd.as_ref());
        }
        e.attrs.extend(after);
        e.children = self.children.clone();
        e
    }
}

/// Where a graphics output listens (its `<listen>` children).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Listen {
    /// `type='address'`, with the address when one is set.
    Address(Option<String>),
    /// `type='network'`: the address of a virtual network.
    Network(String),
    /// `type='socket'`, with the path when one is set.
    Socket(Option<String>),
    /// `type='none'`: no listener at all.
    None,
}

impl Listen {
    fn parse(e: &Element) -> Result<Listen> {
        let owned = |n: &str| e.attr(n).map(str::to_string);
        match e.attr("type") {
            Some("address") => Ok(Listen::Address(owned("address"))),
            Some("network") => Ok(Listen::Network(owned("network").ok_or_else(|| {
                Error::xml("network attribute is required for listen type 'network'")
            })?)),
            Some("socket") => Ok(Listen::Socket(owned("socket"))),
            Some("none") => Ok(Listen::None),
            Some(other) => Err(Error::xml(format!(
                "unknown graphics listen type '{other}'"
            ))),
            None => Err(Error::xml("graphics listen type must be specified")),
        }
    }
}

impl Graphics {
    pub fn attr(&self, name: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// Sets `name`, keeping the attributes in libvirt's order.
    pub fn set_attr(&mut self, name: &str, value: impl ToString) {
        let value = value.to_string();
        if let Some(slot) = self.attrs.iter_mut().find(|(k, _)| k == name) {
            slot.1 = value;
            return;
        }
        let rank = attr_rank(name);
        let pos = self
            .attrs
            .iter()
            .position(|(k, _)| attr_rank(k) > rank)
            .unwrap_or(self.attrs.len());
        self.attrs.insert(pos, (name.to_string(), value));
    }

    pub fn remove_attr(&mut self, name: &str) {
        self.attrs.retain(|(k, _)| k != name);
    }

    /// The `<listen>` children, in order.
    pub fn listens(&self) -> Result<Vec<Listen>> {
        self.children
            .iter()
            .filter(|c| c.name == "listen")
            .map(Listen::parse)
            .collect()
    }

    /// The first `<listen>` child, which the legacy attributes mirror.
    pub fn first_listen_mut(&mut self) -> Option<&mut Element> {
        self.children.iter_mut().find(|c| c.name == "listen")
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Video {
    pub model: Option<VideoModel>,
    pub ram: Option<u32>,
    pub vram: Option<u32>,
    pub vgamem: Option<u32>,
    pub heads: Option<u32>,
    pub primary: Option<bool>,
    pub alias: Option<String>,
    pub address: Option<Address>,
}

impl Video {
    pub fn parse(e: &Element) -> Result<Video> {
        let m = e.child("model");
        let model = match m.and_then(|m| m.attr("type")) {
            None => None,
            Some(t) => Some(
                VideoModel::from_xml(t)
                    .ok_or_else(|| Error::unsupported(format!("unknown video model '{t}'")))?,
            ),
        };
        let num = |attr: &str| -> Result<Option<u32>> {
            m.map(|m| uint_attr(m, attr))
                .transpose()
                .map(Option::flatten)
        };
        Ok(Video {
            model,
            ram: num("ram")?,
            vram: num("vram")?,
            vgamem: num("vgamem")?,
            heads: num("heads")?,
            primary: m.map(|m| yes_no_attr(m, "primary")).transpose()?.flatten(),
            alias: parse_alias(e),
            address: parse_device_address(e)?,
        })
    }

    pub fn to_element(&self, inactive: bool) -> Element {
        let model = Element::new("model")
            .with_opt_attr("type", self.model)
            .with_opt_attr("ram", self.ram)
            .with_opt_attr("vram", self.vram)
            .with_opt_attr("vgamem", self.vgamem)
            .with_opt_attr("heads", self.heads)
            .with_opt_attr("primary", self.primary.map(yes_no));
        let e = Element::new("video").with_child(model);
        with_alias_and_address(e, &self.alias, &self.address, inactive)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::xml::tree::parse_document;

    #[test]
    fn hides_password_unless_secure() {
        let e = parse_document(
            "<graphics type='vnc' port='-1' passwd='s'><listen type='address'/></graphics>",
        )
        .unwrap();
        let g = Graphics::parse(&e).unwrap();
        assert_eq!(g.to_element(false).attr("passwd"), None);
        assert_eq!(g.to_element(true).attr("passwd"), Some("s"));
        assert_eq!(Graphics::parse(&g.to_element(true)).unwrap(), g);
    }

    #[test]
    fn rejects_unknown_video_model() {
        let e = parse_document("<video><model type='foo'/></video>").unwrap();
        assert_eq!(
            Video::parse(&e).unwrap_err().message,
            "unsupported configuration: unknown video model 'foo'"
        );
    }
}
