//! Errors as virsh reports them: an optional line saying what failed
//! (`failed to get domain 'x'`), then the libvirt message, each on stderr
//! prefixed with `error: `.

use std::fmt;

#[derive(Debug, Clone, Default)]
pub struct CliError {
    /// What the command was doing (`Failed to start domain 'x'`).
    pub context: Option<String>,
    /// The libvirt (or D-Bus) message.
    pub message: Option<String>,
}

pub type Result<T> = std::result::Result<T, CliError>;

impl CliError {
    /// An error carrying only a libvirt message.
    pub fn msg(m: impl Into<String>) -> Self {
        CliError {
            context: None,
            message: Some(m.into()),
        }
    }

    /// An error with only the context line (virsh's own errors).
    pub fn ctx(c: impl Into<String>) -> Self {
        CliError {
            context: Some(c.into()),
            message: None,
        }
    }

    /// Puts `c` in front of the message.
    pub fn with_ctx(mut self, c: impl Into<String>) -> Self {
        if self.context.is_none() {
            self.context = Some(c.into());
        }
        self
    }

    /// Prints the error lines to stderr.
    pub fn report(&self) {
        esay!("{self}");
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(c) = &self.context {
            writeln!(f, "error: {c}")?;
        }
        if let Some(m) = &self.message {
            writeln!(f, "error: {m}")?;
        }
        Ok(())
    }
}

impl From<zbus::Error> for CliError {
    fn from(e: zbus::Error) -> Self {
        match e {
            zbus::Error::MethodError(_, Some(text), _) => CliError::msg(text),
            zbus::Error::MethodError(name, None, _) => CliError::msg(name.to_string()),
            other => CliError::msg(other.to_string()),
        }
    }
}

impl From<zbus::zvariant::Error> for CliError {
    fn from(e: zbus::zvariant::Error) -> Self {
        CliError::msg(format!("unexpected reply: {e}"))
    }
}
