//! `virDomainGetMetadata` / `virDomainSetMetadata`: the description, the
//! title and namespaced `<metadata>` elements of the live or persistent
//! definition.

use std::sync::Arc;

use crate::error::{Error, ErrorCode, ErrorDomain, Result};
use crate::xml::model::Domain;
use crate::xml::tree::{Element, parse_document};

use super::Driver;
use super::domain::{DomainData, DomainObj};
use super::vcpus::{AFFECT_CONFIG, AFFECT_LIVE};

/// `virDomainMetadataType`.
pub mod kind {
    pub const DESCRIPTION: i32 = 0;
    pub const TITLE: i32 = 1;
    pub const ELEMENT: i32 = 2;
}

fn not_present() -> Error {
    Error::new(
        ErrorCode::NoDomainMetadata,
        ErrorDomain::Domain,
        "Requested metadata element is not present",
    )
}

fn check_flags(flags: u32, function: &str) -> Result<()> {
    super::check_flags(flags, AFFECT_LIVE | AFFECT_CONFIG, function)
}

/// Which definitions a call with `flags` reads or changes: (live, config).
pub(super) fn targets(d: &DomainData, flags: u32) -> Result<(bool, bool)> {
    let (live, config) = match flags & (AFFECT_LIVE | AFFECT_CONFIG) {
        0 => (d.is_active(), !d.is_active()),
        f => (f & AFFECT_LIVE != 0, f & AFFECT_CONFIG != 0),
    };
    if live && !d.is_active() {
        return Err(Error::operation_invalid("domain is not running"));
    }
    if config && d.persistent.is_none() {
        return Err(Error::operation_invalid(
            "transient domains do not have any persistent config",
        ));
    }
    Ok((live, config))
}

fn namespace_of(e: &Element) -> Option<&str> {
    let prefix = e.prefix()?;
    e.attr(&format!("xmlns:{prefix}"))
}

fn read(def: &Domain, which: i32, uri: Option<&str>) -> Result<String> {
    match which {
        kind::DESCRIPTION => def.description.clone().ok_or_else(not_present),
        kind::TITLE => def.title.clone().ok_or_else(not_present),
        kind::ELEMENT => {
            let uri = uri.ok_or_else(|| {
                Error::invalid_arg("uri in virDomainGetMetadata must not be NULL")
            })?;
            let e = def
                .metadata
                .iter()
                .find(|e| namespace_of(e) == Some(uri))
                .ok_or_else(not_present)?;
            // Without its prefix, as libvirt hands the element back.
            let mut bare = e.clone();
            strip_prefix(&mut bare);
            let mut out = String::new();
            crate::xml::writer::write_element(
                &mut out,
                &bare,
                0,
                crate::xml::writer::Style::Libxml,
            );
            Ok(out.trim_end().to_string())
        }
        other => Err(Error::invalid_arg(format!(
            "unknown metadata type '{other}'"
        ))),
    }
}

fn strip_prefix(e: &mut Element) {
    if let Some((p, local)) = e.name.split_once(':') {
        let decl = format!("xmlns:{p}");
        e.attrs.retain(|(k, _)| *k != decl);
        e.name = local.to_string();
    }
    for c in &mut e.children {
        strip_prefix(c);
    }
}

fn set_prefix(e: &mut Element, key: &str) {
    if !e.name.contains(':') {
        e.name = format!("{key}:{}", e.name);
    }
    for c in &mut e.children {
        set_prefix(c, key);
    }
}

fn write(
    def: &mut Domain,
    which: i32,
    value: Option<&str>,
    key: Option<&str>,
    uri: Option<&str>,
) -> Result<()> {
    let value = value.filter(|v| !v.is_empty());
    match which {
        kind::DESCRIPTION => def.description = value.map(str::to_string),
        kind::TITLE => {
            if value.is_some_and(|v| v.contains('\n')) {
                return Err(Error::invalid_arg("Domain title can't contain newlines"));
            }
            def.title = value.map(str::to_string);
        }
        kind::ELEMENT => {
            let uri = uri.ok_or_else(|| {
                Error::invalid_arg("uri in virDomainSetMetadata must not be NULL")
            })?;
            def.metadata.retain(|e| namespace_of(e) != Some(uri));
            if let Some(xml) = value {
                let key = key.ok_or_else(|| {
                    Error::invalid_arg("key in virDomainSetMetadata must not be NULL")
                })?;
                let mut e = parse_document(xml)?;
                strip_prefix(&mut e);
                set_prefix(&mut e, key);
                e.attrs.insert(0, (format!("xmlns:{key}"), uri.to_string()));
                def.metadata.push(e);
            }
        }
        other => {
            return Err(Error::invalid_arg(format!(
                "unknown metadata type '{other}'"
            )));
        }
    }
    Ok(())
}

impl Driver {
    /// `virDomainGetMetadata`.
    pub fn get_metadata(
        &self,
        obj: &DomainObj,
        which: i32,
        uri: Option<&str>,
        flags: u32,
    ) -> Result<String> {
        check_flags(flags, "virDomainGetMetadata")?;
        super::exclusive_flags(
            flags,
            (AFFECT_LIVE, "VIR_DOMAIN_AFFECT_LIVE"),
            (AFFECT_CONFIG, "VIR_DOMAIN_AFFECT_CONFIG"),
        )?;
        let d = obj.data();
        if d.removed {
            return Err(Error::no_domain_uuid(&obj.uuid.to_string()));
        }
        let (live, _) = targets(&d, flags)?;
        let def = if live {
            d.live.as_ref().map(|l| &l.def)
        } else {
            d.persistent.as_ref()
        }
        .ok_or_else(|| Error::internal("domain without a definition"))?;
        read(def, which, uri)
    }

    /// `virDomainSetMetadata`: changes the live and/or persistent
    /// definition; the persistent one is saved before it is replaced.
    pub async fn set_metadata(
        &self,
        obj: &Arc<DomainObj>,
        which: i32,
        value: Option<&str>,
        key: Option<&str>,
        uri: Option<&str>,
        flags: u32,
    ) -> Result<()> {
        check_flags(flags, "virDomainSetMetadata")?;
        let _job = obj.begin_job().await?;
        let mut d = obj.data();
        if d.removed {
            return Err(Error::no_domain_uuid(&obj.uuid.to_string()));
        }
        let (live, config) = targets(&d, flags)?;
        let new_live = match d.live.as_ref().filter(|_| live) {
            Some(l) => {
                let mut def = l.def.clone();
                write(&mut def, which, value, key, uri)?;
                Some(def)
            }
            None => None,
        };
        let new_config = match d.persistent.as_ref().filter(|_| config) {
            Some(p) => {
                let mut def = p.clone();
                write(&mut def, which, value, key, uri)?;
                self.inner.store.save(&def)?;
                Some(def)
            }
            None => None,
        };
        if let Some(def) = new_config {
            d.persistent = Some(def);
        }
        if let (Some(def), Some(l)) = (new_live, d.live.as_mut()) {
            l.def = def;
        }
        Ok(())
    }
}
