//! One incoming method call and the ways to answer it.

use serde::Serialize;
use serde::de::DeserializeOwned;
use zbus::zvariant::{DynamicType, Type};
use zbus::{Connection, Message};

use crate::driver::Driver;
use crate::error::Error;

/// libvirt-dbus's one error name.
pub const LIBVIRT_ERROR: &str = "org.libvirt.Error";
pub const UNKNOWN_METHOD: &str = "org.freedesktop.DBus.Error.UnknownMethod";
pub const INVALID_ARGS: &str = "org.freedesktop.DBus.Error.InvalidArgs";

/// A call being handled. Handlers answer through [`Call::ok`]; an `Err`
/// from a handler becomes `org.libvirt.Error`.
pub struct Call {
    pub conn: Connection,
    pub msg: Message,
    pub driver: Driver,
}

impl Call {
    /// The call's arguments.
    pub fn args<T: DeserializeOwned + Type>(&self) -> Result<T, Error> {
        self.msg
            .body()
            .deserialize::<T>()
            .map_err(|e| Error::invalid_arg(format!("cannot decode arguments: {e}")))
    }

    /// The sole argument of a method that takes only `flags`.
    pub fn flags(&self) -> Result<u32, Error> {
        let (flags,): (u32,) = self.args()?;
        Ok(flags)
    }

    /// The signature of the call's arguments, without outer parentheses.
    pub fn signature(&self) -> String {
        self.msg.body().signature().to_string_no_parens()
    }

    pub async fn ok<B: Serialize + DynamicType>(&self, body: &B) -> Result<(), Error> {
        if let Err(e) = self.conn.reply(&self.msg.header(), body).await {
            tracing::warn!("cannot send a reply: {e}");
        }
        Ok(())
    }

    pub async fn dbus_error(&self, name: &str, text: &str) {
        if let Err(e) = self
            .conn
            .reply_error(&self.msg.header(), name, &(text,))
            .await
        {
            tracing::warn!("cannot send an error reply: {e}");
        }
    }

    pub async fn libvirt_error(&self, err: &Error) {
        tracing::debug!(code = ?err.code, "call failed: {}", err.message);
        self.dbus_error(LIBVIRT_ERROR, &err.message).await;
    }
}

/// libvirt's answer for a call this driver does not implement.
pub fn not_supported(function: &str) -> Error {
    Error::no_support(function)
}
