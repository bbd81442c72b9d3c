//! libvirt RPC front end: the protocol `virsh`, python-libvirt and
//! virt-install speak over libvirt's Unix sockets.
//!
//! Layers, bottom up: [`xdr`] (the codec), [`frame`] (length word and
//! header), [`protocol`] (procedure numbers and structs), `procnames`
//! (every call of libvirt 9.0's remote program: its function name and
//! whether it writes), `dispatch` (procedure →
//! [`Driver`](crate::driver::Driver) call), `stream`
//! (console streams), `events` (domain event callbacks) and [`server`]
//! (listeners and per-connection tasks). Domain logic lives in the
//! driver; this module only translates.

mod conn;
mod dispatch;
mod events;
pub mod frame;
mod procnames;
pub mod protocol;
pub mod server;
mod stream;
pub mod xdr;

pub use server::{Listeners, RpcConfig, adopt, bind, serve};
