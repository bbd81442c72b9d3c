//! Types describing a D-Bus interface: what [`super::spec`] lists.

/// A method: name, `(name, type)` of its in and out arguments, and the
/// libvirt function it maps to.
pub struct Method {
    pub name: &'static str,
    pub input: &'static [(&'static str, &'static str)],
    pub output: &'static [(&'static str, &'static str)],
    pub libvirt: &'static str,
}

impl Method {
    /// The signature of the in arguments, concatenated.
    pub fn in_signature(&self) -> String {
        self.input.iter().map(|(_, t)| *t).collect()
    }
}

pub struct Property {
    pub name: &'static str,
    pub ty: &'static str,
    pub writable: bool,
    pub libvirt: &'static str,
}

pub struct Signal {
    pub name: &'static str,
    pub args: &'static [(&'static str, &'static str)],
}

pub struct Interface {
    pub name: &'static str,
    pub methods: &'static [Method],
    pub properties: &'static [Property],
    pub signals: &'static [Signal],
}

impl Interface {
    pub fn method(&self, name: &str) -> Option<&'static Method> {
        self.methods.iter().find(|m| m.name == name)
    }

    pub fn property(&self, name: &str) -> Option<&'static Property> {
        self.properties.iter().find(|p| p.name == name)
    }
}
