//! `on_poweroff`/`on_reboot`/`on_crash` actions and `<pm>`.

use crate::error::{Error, Result};
use crate::xml::props::{XmlEnum, xml_enum, yes_no, yes_no_attr};
use crate::xml::tree::Element;

xml_enum! {
    LifecycleAction { Destroy = "destroy", Restart = "restart", RenameRestart = "rename-restart", Preserve = "preserve" }
}

xml_enum! {
    CrashAction {
        Destroy = "destroy", Restart = "restart", RenameRestart = "rename-restart", Preserve = "preserve",
        CoredumpDestroy = "coredump-destroy", CoredumpRestart = "coredump-restart",
    }
}

/// Parse `<on_NAME>` text into an action, with libvirt's error.
pub fn parse_action<T: XmlEnum>(dom: &Element, name: &str, default: T) -> Result<T> {
    match dom
        .child(name)
        .map(|e| e.text.as_str())
        .filter(|t| !t.is_empty())
    {
        None => Ok(default),
        Some(text) => T::from_xml(text)
            .ok_or_else(|| Error::unsupported(format!("unknown {name} action: {text}"))),
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Pm {
    pub suspend_to_mem: Option<bool>,
    pub suspend_to_disk: Option<bool>,
}

impl Pm {
    pub fn parse(pm: &Element) -> Result<Pm> {
        let enabled = |name: &str| -> Result<Option<bool>> {
            match pm.child(name) {
                None => Ok(None),
                Some(e) => yes_no_attr(e, "enabled"),
            }
        };
        Ok(Pm {
            suspend_to_mem: enabled("suspend-to-mem")?,
            suspend_to_disk: enabled("suspend-to-disk")?,
        })
    }

    pub fn to_element(&self) -> Element {
        let item = |name: &str, v: Option<bool>| {
            v.map(|b| Element::new(name).with_attr("enabled", yes_no(b)))
        };
        Element::new("pm")
            .with_opt_child(item("suspend-to-mem", self.suspend_to_mem))
            .with_opt_child(item("suspend-to-disk", self.suspend_to_disk))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::xml::tree::parse_document;

    #[test]
    fn parses_actions_with_defaults_and_errors() {
        let d = parse_document(
            "<domain><on_crash>coredump-destroy</on_crash><on_poweroff>foo</on_poweroff></domain>",
        )
        .unwrap();
        assert_eq!(
            parse_action(&d, "on_crash", CrashAction::Destroy).unwrap(),
            CrashAction::CoredumpDestroy
        );
        assert_eq!(
            parse_action(&d, "on_reboot", LifecycleAction::Restart).unwrap(),
            LifecycleAction::Restart
        );
        assert_eq!(
            parse_action(&d, "on_poweroff", LifecycleAction::Destroy)
                .unwrap_err()
                .message,
            "unsupported configuration: unknown on_poweroff action: foo"
        );
    }

    #[test]
    fn pm_round_trips() {
        let e = parse_document("<pm><suspend-to-disk enabled='no'/></pm>").unwrap();
        let pm = Pm::parse(&e).unwrap();
        assert_eq!(Pm::parse(&pm.to_element()).unwrap(), pm);
    }
}
