//! The set of known domains, looked up by name, UUID or id. The list lock
//! is held only to read or change membership.

use std::sync::{Arc, Mutex, MutexGuard};

use uuid::Uuid;

use crate::error::{Error, ErrorCode, ErrorDomain, Result};

use super::domain::DomainObj;

#[derive(Default)]
pub struct Registry {
    doms: Mutex<Vec<Arc<DomainObj>>>,
}

impl Registry {
    fn list(&self) -> MutexGuard<'_, Vec<Arc<DomainObj>>> {
        match self.doms.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }

    pub fn all(&self) -> Vec<Arc<DomainObj>> {
        self.list().clone()
    }

    pub fn by_uuid(&self, uuid: &Uuid) -> Option<Arc<DomainObj>> {
        self.list().iter().find(|d| &d.uuid == uuid).cloned()
    }

    pub fn by_name(&self, name: &str) -> Option<Arc<DomainObj>> {
        self.list().iter().find(|d| d.data().name == name).cloned()
    }

    pub fn by_id(&self, id: i32) -> Option<Arc<DomainObj>> {
        self.list()
            .iter()
            .find(|d| d.data().live.as_ref().is_some_and(|l| l.id == id))
            .cloned()
    }

    /// Adds `obj` unless a domain with the same name or UUID exists.
    pub fn insert(&self, obj: Arc<DomainObj>) -> Result<()> {
        let mut list = self.list();
        let name = obj.name();
        if let Some(other) = list.iter().find(|d| d.uuid == obj.uuid) {
            return Err(Error::new(
                ErrorCode::OperationFailed,
                ErrorDomain::Qemu,
                format!(
                    "domain '{}' is already defined with uuid {}",
                    other.name(),
                    other.uuid
                ),
            ));
        }
        if let Some(other) = list.iter().find(|d| d.data().name == name) {
            return Err(Error::new(
                ErrorCode::OperationFailed,
                ErrorDomain::Qemu,
                format!("domain '{name}' already exists with uuid {}", other.uuid),
            ));
        }
        list.push(obj);
        Ok(())
    }

    /// Gives `obj` the name `new` unless another domain has it.
    pub fn rename(&self, obj: &Arc<DomainObj>, new: &str) -> Result<()> {
        let list = self.list();
        if list
            .iter()
            .any(|d| !Arc::ptr_eq(d, obj) && d.data().name == new)
        {
            return Err(Error::operation_invalid(format!(
                "domain with name '{new}' already exists"
            )));
        }
        obj.data().name = new.to_string();
        Ok(())
    }

    /// Removes `obj` (by identity) and marks it removed.
    pub fn remove(&self, obj: &Arc<DomainObj>) {
        self.list().retain(|d| !Arc::ptr_eq(d, obj));
        obj.data().removed = true;
    }

    /// The highest domain id in use.
    pub fn max_id(&self) -> i32 {
        self.list()
            .iter()
            .filter_map(|d| d.data().live.as_ref().map(|l| l.id))
            .max()
            .unwrap_or(0)
    }
}
