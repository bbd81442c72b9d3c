//! Wire bytes of a few generated structures, written out by hand or taken
//! from the hand-written structs of `protocol.rs` that clients already
//! accept; and the limits of the `.x` file enforced on decode.

use super::generated::*;
use super::protocol;
use super::xdr::{CharArray, CharFixed, Opaque, Xdr, XdrError, from_bytes, to_bytes};
use std::fmt::Debug;

/// Encodes to exactly `bytes`, decodes back, and every strict prefix is
/// refused.
fn rt<T: Xdr + PartialEq + Debug>(v: &T, bytes: &[u8]) {
    assert_eq!(to_bytes(v), bytes, "encoding of {v:?}");
    assert_eq!(&from_bytes::<T>(bytes).unwrap(), v);
    for n in 0..bytes.len() {
        assert!(from_bytes::<T>(&bytes[..n]).is_err(), "prefix {n} of {v:?}");
    }
}

fn words(ws: &[u32]) -> Vec<u8> {
    ws.iter().flat_map(|w| w.to_be_bytes()).collect()
}

#[test]
fn storage_pool_lookup_by_name_args() {
    rt(
        &StoragePoolLookupByNameArgs {
            name: "default".into(),
        },
        &[0, 0, 0, 7, b'd', b'e', b'f', b'a', b'u', b'l', b't', 0],
    );
}

#[test]
fn storage_vol_create_xml_args() {
    let v = StorageVolCreateXmlArgs {
        pool: NonnullStoragePool {
            name: "p".into(),
            uuid: [0xab; VIR_UUID_BUFLEN],
        },
        xml: "<volume/>".into(),
        flags: 1,
    };
    let mut b = vec![0, 0, 0, 1, b'p', 0, 0, 0];
    b.extend([0xab; 16]);
    b.extend([0, 0, 0, 9]);
    b.extend(b"<volume/>\0\0\0");
    b.extend([0, 0, 0, 1]);
    rt(&v, &b);
}

#[test]
fn optional_pointers() {
    // The bytes of protocol.rs's open_args_from_the_reference.
    let b = words(&[1, 14, 0x7165_6d75, 0x3a2f_2f2f, 0x7379_7374, 0x656d_0000, 0]);
    rt(
        &ConnectOpenArgs {
            name: Some("qemu:///system".into()),
            flags: 0,
        },
        &b,
    );
    rt(
        &ConnectOpenArgs {
            name: None,
            flags: 3,
        },
        &[0, 0, 0, 0, 0, 0, 0, 3],
    );
    assert_eq!(
        from_bytes::<ConnectOpenArgs>(&[0, 0, 0, 2, 0, 0, 0, 0]),
        Err(XdrError::BadBool(2))
    );
    // A struct behind a pointer (`remote_domain`).
    let dom = NonnullDomain {
        name: "t1".into(),
        uuid: [1; 16],
        id: -1,
    };
    let hand_dom = protocol::Dom {
        name: dom.name.clone(),
        uuid: dom.uuid,
        id: dom.id,
    };
    for d in [None, Some(dom.clone())] {
        let g = ConnectDomainEventCallbackRegisterAnyArgs {
            event_id: 0,
            dom: d.clone(),
        };
        let h = protocol::CallbackRegisterArgs {
            event_id: 0,
            dom: d.map(|_| hand_dom.clone()),
        };
        rt(&g, &to_bytes(&h));
    }
    let err = Error {
        code: 42,
        domain: 10,
        message: Some("m".into()),
        level: 2,
        dom: Some(dom.clone()),
        int1: -1,
        ..Default::default()
    };
    let hand = protocol::RemoteError {
        code: 42,
        domain: 10,
        message: Some("m".into()),
        level: 2,
        dom: Some(hand_dom),
        int1: -1,
        ..Default::default()
    };
    rt(&err, &to_bytes(&hand));
}

#[test]
fn bounded_array_refuses_max_plus_one() {
    assert_eq!(REMOTE_AUTH_TYPE_LIST_MAX, 20);
    let full = AuthListRet {
        types: vec![REMOTE_AUTH_NONE; REMOTE_AUTH_TYPE_LIST_MAX],
    };
    let mut b = words(&[20]);
    b.extend([0; 80]);
    rt(&full, &b);
    let over = words(&[21; 22]);
    assert_eq!(
        from_bytes::<AuthListRet>(&over),
        Err(XdrError::TooLong { len: 21, max: 20 })
    );
}

#[test]
fn field_limit_replaces_the_default_array_limit() {
    // names<REMOTE_NODE_DEVICE_LIST_MAX> allows more than xdr's ARRAY_MAX.
    let n = super::xdr::ARRAY_MAX + 1;
    let mut b = words(&[n as u32]);
    b.extend(std::iter::repeat_n(0u8, 4 * n));
    let ret: NodeListDevicesRet = from_bytes(&b).unwrap();
    assert_eq!(ret.names.len(), n);
    // Past its own limit the count is refused before anything is read.
    let over = words(&[REMOTE_NODE_DEVICE_LIST_MAX as u32 + 1]);
    assert_eq!(
        from_bytes::<NodeListDevicesRet>(&over),
        Err(XdrError::TooLong {
            len: REMOTE_NODE_DEVICE_LIST_MAX + 1,
            max: REMOTE_NODE_DEVICE_LIST_MAX
        })
    );
}

#[test]
fn bounded_opaque_and_char_array() {
    let pin = DomainPinVcpuArgs {
        dom: NonnullDomain::default(),
        vcpu: 0,
        cpumap: Opaque(vec![1; REMOTE_CPUMAP_MAX]),
    };
    assert_eq!(
        from_bytes::<DomainPinVcpuArgs>(&to_bytes(&pin)).unwrap(),
        pin
    );
    let too_long = DomainPinVcpuArgs {
        cpumap: Opaque(vec![1; REMOTE_CPUMAP_MAX + 1]),
        ..pin
    };
    assert_eq!(
        from_bytes::<DomainPinVcpuArgs>(&to_bytes(&too_long)),
        Err(XdrError::TooLong {
            len: 2049,
            max: 2048
        })
    );
    // char model<REMOTE_SECURITY_MODEL_MAX>: 256 characters and the NUL.
    let model = NodeGetSecurityModelRet {
        model: CharArray("m".repeat(256)),
        doi: CharArray("0".into()),
    };
    assert_eq!(
        from_bytes::<NodeGetSecurityModelRet>(&to_bytes(&model)).unwrap(),
        model
    );
    let over = NodeGetSecurityModelRet {
        model: CharArray("m".repeat(257)),
        ..model
    };
    assert!(matches!(
        from_bytes::<NodeGetSecurityModelRet>(&to_bytes(&over)),
        Err(XdrError::TooLong { max: 257, .. })
    ));
}

#[test]
fn typed_param_union_matches_protocol_rs() {
    use protocol::TypedValue as H;
    let cases = [
        (TypedParamValue::Int(-5), H::Int(-5)),
        (TypedParamValue::Uint(5), H::UInt(5)),
        (TypedParamValue::Llong(-1), H::LLong(-1)),
        (TypedParamValue::Ullong(1 << 40), H::ULLong(1 << 40)),
        (TypedParamValue::Double(0.5), H::Double(0.5)),
        (TypedParamValue::Boolean(1), H::Boolean(true)),
        (
            TypedParamValue::String("abc".into()),
            H::String("abc".into()),
        ),
    ];
    for (generated, hand) in cases {
        let p = TypedParam {
            field: "f".into(),
            value: generated,
        };
        let h = protocol::TypedParam {
            field: "f".into(),
            value: hand,
        };
        rt(&p, &to_bytes(&h));
    }
    let mut bad = to_bytes(&TypedParamValue::Int(0));
    bad[3] = 8;
    assert_eq!(
        from_bytes::<TypedParamValue>(&bad),
        Err(XdrError::BadDiscriminant(8))
    );
}

#[test]
fn narrow_and_fixed_char_fields_match_protocol_rs() {
    let info = protocol::NodeInfoRet {
        model: "x86_64".into(),
        memory: 1 << 20,
        cpus: 4,
        mhz: 2000,
        nodes: 1,
        sockets: 1,
        cores: 2,
        threads: 2,
    };
    let b = to_bytes(&info);
    let g: NodeGetInfoRet = from_bytes(&b).unwrap();
    assert_eq!(g.model, CharFixed::<32>("x86_64".into()));
    assert_eq!((g.memory, g.cpus, g.threads), (1 << 20, 4, 2));
    assert_eq!(to_bytes(&g), b);

    let dom = protocol::DomainInfoRet {
        state: 1,
        max_mem: 2,
        memory: 3,
        nr_virt_cpu: 4,
        cpu_time: 5,
    };
    let g = DomainGetInfoRet {
        state: 1,
        max_mem: 2,
        memory: 3,
        nr_virt_cpu: 4,
        cpu_time: 5,
    };
    rt(&g, &to_bytes(&dom));
}

#[test]
fn procedure_numbers() {
    assert_eq!(procs::CONNECT_OPEN, 1);
    assert_eq!(procs::DOMAIN_GET_XML_DESC, 14);
    assert_eq!(procs::STORAGE_POOL_LOOKUP_BY_NAME, 84);
    assert_eq!(procs::DOMAIN_EVENT_CALLBACK_LIFECYCLE, 318);
    assert_eq!(procs::DOMAIN_FD_ASSOCIATE, 443);
    assert_eq!(REMOTE_PROGRAM, super::frame::PROGRAM_REMOTE);
    assert_eq!(REMOTE_PROTOCOL_VERSION, super::frame::PROTOCOL_VERSION);
}
