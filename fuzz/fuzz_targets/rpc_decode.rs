//! Feed arbitrary bytes to the RPC frame and argument decoders: nothing may
//! panic, and whatever decodes must encode back to bytes that decode to
//! the same value.
#![no_main]

use libfuzzer_sys::fuzz_target;
use oxvirt::rpc::frame;
use oxvirt::rpc::protocol::*;
use oxvirt::rpc::xdr::{CharArray, Opaque, Xdr, from_bytes, to_bytes};

fn roundtrip<T: Xdr + PartialEq + std::fmt::Debug>(data: &[u8]) {
    if let Ok(v) = from_bytes::<T>(data) {
        let again: T = from_bytes(&to_bytes(&v)).expect("re-encoded value decodes");
        assert_eq!(again, v);
    }
}

fuzz_target!(|data: &[u8]| {
    if data.len() >= 4 {
        let len = u32::from_be_bytes([data[0], data[1], data[2], data[3]]);
        let _ = frame::check_length(len);
        if let Some((h, payload)) = frame::split(&data[4..]) {
            assert_eq!(frame::encode(&h, payload)[4..], data[4..]);
        }
    }
    roundtrip::<OpenArgs>(data);
    roundtrip::<Dom>(data);
    roundtrip::<DomFlagsArgs>(data);
    roundtrip::<DomStringArgs>(data);
    roundtrip::<XmlFlagsArgs>(data);
    roundtrip::<ListAllArgs>(data);
    roundtrip::<ListAllRet>(data);
    roundtrip::<MemoryStatsArgs>(data);
    roundtrip::<GetVcpusArgs>(data);
    roundtrip::<VcpuPinInfoArgs>(data);
    roundtrip::<MetadataArgs>(data);
    roundtrip::<DomainCapsArgs>(data);
    roundtrip::<OpenConsoleArgs>(data);
    roundtrip::<CallbackRegisterArgs>(data);
    roundtrip::<RemoteError>(data);
    roundtrip::<CharArray>(data);
    roundtrip::<Opaque>(data);
    roundtrip::<Vec<String>>(data);
});
