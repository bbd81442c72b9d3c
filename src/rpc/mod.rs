//! libvirt RPC front end: the protocol `virsh`, python-libvirt and
//! virt-install speak over libvirt's Unix sockets.
//!
//! Layers, bottom up: [`xdr`] (the codec), [`frame`] (length word and
//! header), [`generated`] (every constant, procedure number and struct of
//! libvirt 9.0's `remote_protocol.x`, generated), [`protocol`] (the
//! structs served today, hand-written), `procnames`
//! (every call of libvirt 9.0's remote program: its function name and
//! whether it writes), `dispatch` (procedure →
//! [`Driver`](crate::driver::Driver) call), `stream`
//! (console streams), `events` (domain event callbacks) and [`server`]
//! (listeners and per-connection tasks). Domain logic lives in the
//! driver; this module only translates.

mod codec;
mod conn;
mod connect;
mod dispatch;
mod display;
mod domain;
mod domain_queries;
mod domain_save;
mod domain_snapshot;
mod events;
pub mod frame;
mod keepalive;
// Written by compat-tests/rpc/gen_protocol.py; most of it is not served yet.
pub mod generated;
#[cfg(test)]
mod generated_tests;
mod network;
mod nodedev;
mod object_events;
mod objects;
mod procnames;
pub mod protocol;
pub mod server;
mod storage;
mod stream;
mod vol_stream;
pub mod xdr;

pub use server::{ClientLimits, Listeners, RpcConfig, adopt, bind, serve};
