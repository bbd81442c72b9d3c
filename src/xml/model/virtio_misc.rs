//! Small single-purpose devices: `<rng>`, `<memballoon>`, `<vsock>`,
//! `<watchdog>`.

use crate::error::{Error, Result};
use crate::xml::props::{
    XmlEnum, on_off, on_off_attr, opt_string, req_enum_attr, uint_attr, xml_enum, yes_no,
    yes_no_attr,
};
use crate::xml::tree::Element;

use super::address::{Address, parse_alias, parse_device_address, with_alias_and_address};

xml_enum! {
    RngBackendModel { Random = "random", Egd = "egd", Builtin = "builtin" }
}

xml_enum! {
    BalloonModel { Virtio = "virtio", Xen = "xen", None = "none", VirtioTransitional = "virtio-transitional", VirtioNonTransitional = "virtio-non-transitional" }
}

xml_enum! {
    WatchdogModel { I6300esb = "i6300esb", Ib700 = "ib700", Diag288 = "diag288", Itco = "itco" }
}

xml_enum! {
    WatchdogAction { Reset = "reset", Shutdown = "shutdown", Poweroff = "poweroff", Pause = "pause", Dump = "dump", None = "none", InjectNmi = "inject-nmi" }
}

fn rate_value(rate: &Element, attr: &str) -> Result<Option<u32>> {
    uint_attr(rate, attr).map_err(|_| Error::xml(format!("invalid RNG rate {attr} value")))
}

const RNG_MODELS: &[&str] = &["virtio", "virtio-transitional", "virtio-non-transitional"];

/// Entropy source for the guest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rng {
    pub model: String,
    pub rate_bytes: Option<u32>,
    pub rate_period: Option<u32>,
    pub backend: RngBackendModel,
    /// Host file for the `random` backend.
    pub backend_path: Option<String>,
    /// `type=` of an `egd` backend and its source/protocol children.
    pub backend_type: Option<String>,
    pub backend_children: Vec<Element>,
    pub alias: Option<String>,
    pub address: Option<Address>,
}

impl Rng {
    pub fn parse(e: &Element) -> Result<Rng> {
        if e.children_named("backend").count() != 1 {
            return Err(Error::xml("only one RNG backend is supported"));
        }
        let backend = e
            .child("backend")
            .ok_or_else(|| Error::xml("missing RNG device backend"))?;
        let rate = e.child("rate");
        let model = e
            .attr("model")
            .ok_or_else(|| Error::xml("missing RNG device model"))?;
        if !RNG_MODELS.contains(&model) {
            return Err(Error::unsupported(format!("unknown RNG model '{model}'")));
        }
        let backend_model = backend
            .attr("model")
            .ok_or_else(|| Error::xml("missing RNG device backend model"))?;
        let backend_kind = RngBackendModel::from_xml(backend_model).ok_or_else(|| {
            Error::unsupported(format!("unknown RNG backend model '{backend_model}'"))
        })?;
        Ok(Rng {
            model: model.to_string(),
            rate_bytes: rate.map(|r| rate_value(r, "bytes")).transpose()?.flatten(),
            rate_period: rate.map(|r| rate_value(r, "period")).transpose()?.flatten(),
            backend: backend_kind,
            backend_path: Some(backend.text.trim().to_string()).filter(|p| !p.is_empty()),
            backend_type: opt_string(backend, "type"),
            backend_children: backend.children.clone(),
            alias: parse_alias(e),
            address: parse_device_address(e)?,
        })
    }

    pub fn to_element(&self, inactive: bool) -> Element {
        let rate = (self.rate_bytes.is_some() || self.rate_period.is_some()).then(|| {
            Element::new("rate")
                .with_opt_attr("bytes", self.rate_bytes)
                .with_opt_attr("period", self.rate_period)
        });
        let mut backend = Element::new("backend")
            .with_attr("model", self.backend.as_str())
            .with_opt_attr("type", self.backend_type.as_ref())
            .with_text(self.backend_path.clone().unwrap_or_default());
        backend.children = self.backend_children.clone();
        let e = Element::new("rng")
            .with_attr("model", self.model.clone())
            .with_opt_child(rate)
            .with_child(backend);
        with_alias_and_address(e, &self.alias, &self.address, inactive)
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Memballoon {
    pub model: BalloonModel,
    pub autodeflate: Option<bool>,
    pub free_page_reporting: Option<bool>,
    pub stats_period: Option<u32>,
    pub alias: Option<String>,
    pub address: Option<Address>,
}

impl Memballoon {
    pub fn virtio() -> Memballoon {
        Memballoon {
            model: BalloonModel::Virtio,
            autodeflate: None,
            free_page_reporting: None,
            stats_period: None,
            alias: None,
            address: None,
        }
    }

    pub fn parse(e: &Element) -> Result<Memballoon> {
        Ok(Memballoon {
            model: req_enum_attr(e, "model")?,
            autodeflate: on_off_attr(e, "autodeflate")?,
            free_page_reporting: on_off_attr(e, "freePageReporting")?,
            stats_period: e
                .child("stats")
                .map(|s| uint_attr(s, "period"))
                .transpose()?
                .flatten(),
            alias: parse_alias(e),
            address: parse_device_address(e)?,
        })
    }

    pub fn to_element(&self, inactive: bool) -> Element {
        let e = Element::new("memballoon")
            .with_attr("model", self.model.as_str())
            .with_opt_attr("autodeflate", self.autodeflate.map(on_off))
            .with_opt_attr("freePageReporting", self.free_page_reporting.map(on_off))
            .with_opt_child(
                self.stats_period
                    .map(|p| Element::new("stats").with_attr("period", p.to_string())),
            );
        with_alias_and_address(e, &self.alias, &self.address, inactive)
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Vsock {
    pub model: Option<String>,
    pub cid_auto: Option<bool>,
    pub cid: Option<u32>,
    pub alias: Option<String>,
    pub address: Option<Address>,
}

impl Vsock {
    pub fn parse(e: &Element) -> Result<Vsock> {
        if let Some(m) = e.attr("model")
            && !RNG_MODELS.contains(&m)
        {
            return Err(crate::xml::props::invalid_attr(e, "model", m));
        }
        let cid = e.child("cid");
        let address: Option<u32> = cid.map(|c| uint_attr(c, "address")).transpose()?.flatten();
        if address.is_some_and(|a| a < 3) {
            return Err(Error::unsupported("guest CIDs must be >= 3"));
        }
        Ok(Vsock {
            model: opt_string(e, "model"),
            cid_auto: cid.map(|c| yes_no_attr(c, "auto")).transpose()?.flatten(),
            cid: address,
            alias: parse_alias(e),
            address: parse_device_address(e)?,
        })
    }

    pub fn to_element(&self, inactive: bool) -> Element {
        let cid = (self.cid_auto.is_some() || self.cid.is_some()).then(|| {
            Element::new("cid")
                .with_opt_attr("auto", self.cid_auto.map(yes_no))
                .with_opt_attr("address", self.cid)
        });
        let e = Element::new("vsock")
            .with_opt_attr("model", self.model.as_ref())
            .with_opt_child(cid);
        with_alias_and_address(e, &self.alias, &self.address, inactive)
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Watchdog {
    pub model: WatchdogModel,
    pub action: Option<WatchdogAction>,
    pub alias: Option<String>,
    pub address: Option<Address>,
}

impl Watchdog {
    pub fn parse(e: &Element) -> Result<Watchdog> {
        let m = e
            .attr("model")
            .ok_or_else(|| Error::internal("watchdog must contain model name"))?;
        let model = WatchdogModel::from_xml(m)
            .ok_or_else(|| Error::unsupported(format!("unknown watchdog model '{m}'")))?;
        let action = match e.attr("action") {
            None => None,
            Some(a) => Some(
                WatchdogAction::from_xml(a)
                    .ok_or_else(|| Error::unsupported(format!("unknown watchdog action '{a}'")))?,
            ),
        };
        Ok(Watchdog {
            model,
            action,
            alias: parse_alias(e),
            address: parse_device_address(e)?,
        })
    }

    pub fn to_element(&self, inactive: bool) -> Element {
        let e = Element::new("watchdog")
            .with_attr("model", self.model.as_str())
            .with_opt_attr("action", self.action);
        with_alias_and_address(e, &self.alias, &self.address, inactive)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::xml::tree::parse_document;

    #[test]
    fn devices_round_trip() {
        let e = parse_document("<rng model='virtio'><rate bytes='1024' period='1000'/><backend model='random'>/dev/urandom</backend></rng>").unwrap();
        let r = Rng::parse(&e).unwrap();
        assert_eq!(Rng::parse(&r.to_element(true)).unwrap(), r);
        let e = parse_document(
            "<memballoon model='virtio' autodeflate='on'><stats period='10'/></memballoon>",
        )
        .unwrap();
        let b = Memballoon::parse(&e).unwrap();
        assert_eq!(Memballoon::parse(&b.to_element(true)).unwrap(), b);
        let e =
            parse_document("<vsock model='virtio'><cid auto='no' address='3'/></vsock>").unwrap();
        let v = Vsock::parse(&e).unwrap();
        assert_eq!(Vsock::parse(&v.to_element(true)).unwrap(), v);
    }

    #[test]
    fn rejects_bad_models() {
        let e = parse_document("<watchdog model='foo'/>").unwrap();
        assert_eq!(
            Watchdog::parse(&e).unwrap_err().message,
            "unsupported configuration: unknown watchdog model 'foo'"
        );
        let e = parse_document("<memballoon model='foo'/>").unwrap();
        assert!(
            Memballoon::parse(&e)
                .unwrap_err()
                .message
                .contains("'memballoon': 'foo'")
        );
    }
}
