//! `<permissions>` of a pool's or volume's target.

use super::out::Out;
use super::xml_error;
use crate::error::Result;
use crate::xml::tree::Element;

/// Mode, owner, group and label; `None` is libvirt's -1 ("not given").
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Perms {
    pub mode: Option<u32>,
    pub owner: Option<u32>,
    pub group: Option<u32>,
    pub label: Option<String>,
}

impl Perms {
    /// Reads `<permissions>` (absent: nothing given), as `virStorageDefParsePerms`.
    pub fn parse(elem: Option<&Element>) -> Result<Perms> {
        let Some(p) = elem else {
            return Ok(Perms::default());
        };
        let mode = match p.child_text("mode") {
            None => None,
            Some(m) => match u32::from_str_radix(m, 8) {
                Ok(v) if v & !0o777 == 0 => Some(v),
                _ => return Err(xml_error("malformed octal mode")),
            },
        };
        let id = |name: &str| -> Result<Option<u32>> {
            match p.child_text(name) {
                None => Ok(None),
                Some(t) => match t.parse::<i64>() {
                    Ok(-1) => Ok(None),
                    Ok(v) if (0..=u32::MAX as i64).contains(&v) => Ok(Some(v as u32)),
                    _ => Err(xml_error(format!("malformed {name} element"))),
                },
            }
        };
        Ok(Perms {
            mode,
            owner: id("owner")?,
            group: id("group")?,
            label: p.child_text("label").map(str::to_string),
        })
    }

    pub fn is_empty(&self) -> bool {
        self.mode.is_none() && self.owner.is_none() && self.group.is_none() && self.label.is_none()
    }

    pub(super) fn write(&self, out: &mut Out) {
        if self.is_empty() {
            return;
        }
        out.open("<permissions>");
        if let Some(m) = self.mode {
            out.line(&format!("<mode>0{m:o}</mode>"));
        }
        if let Some(o) = self.owner {
            out.line(&format!("<owner>{o}</owner>"));
        }
        if let Some(g) = self.group {
            out.line(&format!("<group>{g}</group>"));
        }
        if let Some(l) = &self.label {
            out.text_elem("label", l);
        }
        out.close("</permissions>");
    }
}
