//! The control protocol's commands and replies as one set of Rust types:
//! the daemon builds requests from them and reads replies into them, the
//! VMM parses requests into them and answers with them. A command or a
//! field renamed on one side fails to compile on the other, instead of
//! reading as nothing. The wire format is `control.rs`'s JSON lines:
//! `{"id":N,"execute":NAME,"arguments":{...}}`.

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Value, json};

/// The command set's version, in `query-status` (`protocol`).
pub const PROTOCOL_VERSION: u32 = 1;

/// `balloon-set`: the memory the guest keeps, or the pages it gives up.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct BalloonSet {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_mib: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub num_pages: Option<u64>,
}

/// `path: null` and no `path` at all are different requests.
fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(d).map(Some)
}

/// `change-media`: a drive's medium out (`path: null`), in from a path,
/// or in from the descriptor that came with the request (`fd: true`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChangeMedia {
    pub device: String,
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub path: Option<Option<String>>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub fd: bool,
}

/// A command whose descriptor came with the request (`screendump`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WithFd {
    #[serde(default)]
    pub fd: bool,
}

/// `send-key`: Linux key codes pressed in order, released after the hold.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct SendKey {
    pub keys: Vec<u16>,
    #[serde(default = "SendKey::default_hold")]
    pub hold_ms: u64,
}

impl SendKey {
    pub fn default_hold() -> u64 {
        100
    }
}

/// `set-vnc-password`: what new VNC clients must give (`null`: nothing).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SetVncPassword {
    pub password: Option<String>,
}

/// `vnc-add-client`: the socket that came with the request, as a client.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VncAddClient {
    #[serde(default)]
    pub fd: bool,
    #[serde(default)]
    pub skipauth: bool,
}

/// `save`: the guest state into the descriptor that came with the
/// request; the guest runs on afterwards only with `resume`. With
/// `cancel`, a second descriptor comes too: the save stops, and the guest
/// runs on as it was, once it turns readable (`virDomainAbortJob`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Save {
    #[serde(default)]
    pub resume: bool,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub cancel: bool,
}

/// `disk-reopen`: the virtio disk in PCI slot `slot` goes on with another
/// image: a new overlay whose backing chain holds the image it used (a
/// snapshot), or an image that took in its overlay's data (a commit).
/// The chain's descriptors come with the request, the image first and
/// each backing layer after it, one format per descriptor.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DiskReopen {
    pub slot: u8,
    pub formats: Vec<crate::vmm::config::DiskFormat>,
    /// An internal snapshot taken, applied or deleted in the image (the
    /// first descriptor, a qcow2 image) between letting go of the old
    /// handle and opening the new one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub internal: Option<InternalSnapshot>,
    /// The image may have another size (a resize): the guest is told.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub resize: bool,
}

/// `disk-resize`: the open image of the virtio disk in `slot` given a new
/// virtual size (a qcow2 image; a raw file is resized by the daemon and
/// reopened).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DiskResize {
    pub slot: u8,
    /// In bytes.
    pub size: u64,
}

/// `set-vcpus`: the guest's vCPU count (CPU hotplug, up to the machine's
/// maximum). vCPUs are plugged in at once; those asked to go leave when
/// the guest ejects them (the event `vcpu-removed`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SetVcpus {
    pub count: u32,
}

/// `disk-reopen`'s work in a qcow2 image's own snapshot table.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InternalSnapshot {
    pub op: crate::vmm::storage::qcow2_snapshot::Op,
    pub name: String,
}

/// `set-link`: the link of the virtio NIC in PCI slot `slot` up or down.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SetLink {
    pub slot: u8,
    pub up: bool,
}

/// `device-add`: plugs a device into the running guest (PCI hotplug).
/// A virtio disk's image comes as the request's file descriptor, a NIC's
/// taps as its descriptors (one per queue pair). The reply names the slot.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceAdd {
    pub device: crate::vmm::config::DeviceConfig,
}

/// `device-del`: asks the guest to release the device in PCI slot
/// `slot`; the event `device-deleted` follows once it has.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceDel {
    pub slot: u8,
}

/// The reply to `device-add`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceAdded {
    pub slot: u8,
}

/// A request.
#[derive(Clone, Debug, PartialEq)]
pub enum Command {
    QueryStatus,
    QueryStats,
    Pause,
    /// `resume` (or `cont`).
    Resume,
    /// The ACPI power button (`powerdown`, or `system_powerdown`).
    Powerdown,
    /// `reset` (or `system_reset`): the guest boots again in a new VMM.
    Reset,
    Quit,
    BalloonSet(BalloonSet),
    ChangeMedia(ChangeMedia),
    Screendump(WithFd),
    SendKey(SendKey),
    SetVncPassword(SetVncPassword),
    VncAddClient(VncAddClient),
    Save(Save),
    DiskReopen(DiskReopen),
    DiskResize(DiskResize),
    SetLink(SetLink),
    DeviceAdd(Box<DeviceAdd>),
    DeviceDel(DeviceDel),
    SetVcpus(SetVcpus),
    /// Test builds only: a system call no filter allows.
    ForbiddenSyscall,
}

/// Why a request is not a command.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ParseError {
    UnknownCommand(String),
    BadArguments(String),
}

fn args<T: serde::de::DeserializeOwned>(name: &str, a: Option<Value>) -> Result<T, ParseError> {
    serde_json::from_value(a.unwrap_or_else(|| json!({})))
        .map_err(|e| ParseError::BadArguments(format!("{name}: {e}")))
}

impl Command {
    /// The command's name on the wire.
    pub fn name(&self) -> &'static str {
        match self {
            Command::QueryStatus => "query-status",
            Command::QueryStats => "query-stats",
            Command::Pause => "pause",
            Command::Resume => "resume",
            Command::Powerdown => "powerdown",
            Command::Reset => "reset",
            Command::Quit => "quit",
            Command::BalloonSet(_) => "balloon-set",
            Command::ChangeMedia(_) => "change-media",
            Command::Screendump(_) => "screendump",
            Command::SendKey(_) => "send-key",
            Command::SetVncPassword(_) => "set-vnc-password",
            Command::VncAddClient(_) => "vnc-add-client",
            Command::Save(_) => "save",
            Command::DiskReopen(_) => "disk-reopen",
            Command::DiskResize(_) => "disk-resize",
            Command::SetLink(_) => "set-link",
            Command::DeviceAdd(_) => "device-add",
            Command::DeviceDel(_) => "device-del",
            Command::SetVcpus(_) => "set-vcpus",
            Command::ForbiddenSyscall => "x-oxvirt-forbidden-syscall",
        }
    }

    /// Its arguments on the wire, if it has any.
    pub fn arguments(&self) -> Option<Value> {
        let v = match self {
            Command::BalloonSet(a) => serde_json::to_value(a),
            Command::ChangeMedia(a) => serde_json::to_value(a),
            Command::Screendump(a) => serde_json::to_value(a),
            Command::SendKey(a) => serde_json::to_value(a),
            Command::SetVncPassword(a) => serde_json::to_value(a),
            Command::VncAddClient(a) => serde_json::to_value(a),
            Command::Save(a) => serde_json::to_value(a),
            Command::DiskReopen(a) => serde_json::to_value(a),
            Command::DiskResize(a) => serde_json::to_value(a),
            Command::SetLink(a) => serde_json::to_value(a),
            Command::DeviceAdd(a) => serde_json::to_value(a),
            Command::DeviceDel(a) => serde_json::to_value(a),
            Command::SetVcpus(a) => serde_json::to_value(a),
            _ => return None,
        };
        v.ok()
    }

    /// The command named `name` with `arguments`.
    pub fn parse(name: &str, arguments: Option<Value>) -> Result<Command, ParseError> {
        Ok(match name {
            "query-status" => Command::QueryStatus,
            "query-stats" => Command::QueryStats,
            "pause" => Command::Pause,
            "resume" | "cont" => Command::Resume,
            "powerdown" | "system_powerdown" => Command::Powerdown,
            "reset" | "system_reset" => Command::Reset,
            "quit" => Command::Quit,
            "balloon-set" => Command::BalloonSet(args(name, arguments)?),
            "change-media" => Command::ChangeMedia(args(name, arguments)?),
            "screendump" => Command::Screendump(args(name, arguments)?),
            "send-key" => Command::SendKey(args(name, arguments)?),
            "set-vnc-password" => Command::SetVncPassword(args(name, arguments)?),
            "vnc-add-client" => Command::VncAddClient(args(name, arguments)?),
            "save" => Command::Save(args(name, arguments)?),
            "disk-reopen" => Command::DiskReopen(args(name, arguments)?),
            "disk-resize" => Command::DiskResize(args(name, arguments)?),
            "set-vcpus" => Command::SetVcpus(args(name, arguments)?),
            "set-link" => Command::SetLink(args(name, arguments)?),
            "device-add" => Command::DeviceAdd(Box::new(args(name, arguments)?)),
            "device-del" => Command::DeviceDel(args(name, arguments)?),
            "x-oxvirt-forbidden-syscall" if cfg!(feature = "test-hooks") => {
                Command::ForbiddenSyscall
            }
            other => return Err(ParseError::UnknownCommand(other.to_string())),
        })
    }
}

/// Whether the guest runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RunStatus {
    Running,
    Paused,
}

/// A virtio console on a pty.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsolePty {
    pub slot: u8,
    pub path: String,
}

/// `query-status`'s answer. Fields a newer VMM adds are ignored, so that
/// a daemon re-attaches to the guests of the VMM it was upgraded from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct Status {
    pub status: RunStatus,
    pub running: bool,
    pub name: String,
    pub vcpus: u32,
    pub memory_mib: u64,
    pub pid: u32,
    /// [`PROTOCOL_VERSION`] (0 from a VMM older than the versioning).
    #[serde(default)]
    pub protocol: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serial_pty: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub console_ptys: Vec<ConsolePty>,
}

/// One vCPU in `query-stats`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct VcpuStats {
    pub id: usize,
    /// Its thread's id (0 before it started).
    pub tid: i32,
    /// CPU time of its thread.
    pub time_ns: u64,
}

/// Guest RAM and the VMM's resident memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct MemoryStats {
    pub guest_bytes: u64,
    pub rss_bytes: u64,
}

/// A virtio-blk device's counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct BlockCounters {
    pub slot: u8,
    pub reads: u64,
    pub writes: u64,
    pub read_bytes: u64,
    pub write_bytes: u64,
    pub flushes: u64,
    pub errors: u64,
    pub read_time_ns: u64,
    pub write_time_ns: u64,
    pub flush_time_ns: u64,
}

/// A NIC's counters (virtio-net or e1000).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct NetCounters {
    pub slot: u8,
    pub rx_packets: u64,
    pub rx_bytes: u64,
    pub rx_drops: u64,
    pub tx_packets: u64,
    pub tx_bytes: u64,
    pub tx_drops: u64,
}

/// The devices' counters.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct DeviceStats {
    pub block: Vec<BlockCounters>,
    pub net: Vec<NetCounters>,
    /// The balloon's report (`virtio/README.md`), null without one.
    #[serde(default)]
    pub balloon: Value,
}

/// `query-stats`' answer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct Stats {
    pub vcpus: Vec<VcpuStats>,
    pub memory: MemoryStats,
    pub devices: DeviceStats,
    /// The balloon's report again, where the first clients read it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub balloon: Option<Value>,
    /// Instructions KVM could not emulate, finished here, by kind.
    #[serde(default)]
    pub finished_instructions: Value,
}

/// `save`'s answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Saved {
    /// Bytes of RAM written (pages of zeros are not).
    pub ram_bytes: u64,
    /// The guest stayed paused.
    pub paused: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every command parses back from what it sends.
    #[test]
    fn commands_round_trip() {
        let all = [
            Command::QueryStatus,
            Command::QueryStats,
            Command::Pause,
            Command::Resume,
            Command::Powerdown,
            Command::Reset,
            Command::Quit,
            Command::BalloonSet(BalloonSet {
                num_pages: Some(7),
                target_mib: None,
            }),
            Command::ChangeMedia(ChangeMedia {
                device: "sata0-0-2".into(),
                path: Some(None),
                fd: false,
            }),
            Command::ChangeMedia(ChangeMedia {
                device: "d".into(),
                path: Some(Some("/x.iso".into())),
                fd: false,
            }),
            Command::ChangeMedia(ChangeMedia {
                device: "d".into(),
                path: None,
                fd: true,
            }),
            Command::Screendump(WithFd { fd: true }),
            Command::SendKey(SendKey {
                keys: vec![29, 56, 111],
                hold_ms: 50,
            }),
            Command::SetVncPassword(SetVncPassword { password: None }),
            Command::VncAddClient(VncAddClient {
                fd: true,
                skipauth: true,
            }),
            Command::Save(Save {
                resume: true,
                cancel: false,
            }),
            Command::Save(Save {
                resume: false,
                cancel: true,
            }),
            Command::DiskReopen(DiskReopen {
                slot: 4,
                formats: vec![
                    crate::vmm::config::DiskFormat::Qcow2,
                    crate::vmm::config::DiskFormat::Raw,
                ],
                internal: None,
                resize: true,
            }),
            Command::DiskReopen(DiskReopen {
                slot: 5,
                formats: vec![crate::vmm::config::DiskFormat::Qcow2],
                internal: Some(InternalSnapshot {
                    op: crate::vmm::storage::qcow2_snapshot::Op::Create,
                    name: "s1".into(),
                }),
                resize: false,
            }),
            Command::DiskResize(DiskResize {
                slot: 4,
                size: 1 << 30,
            }),
            Command::SetLink(SetLink { slot: 3, up: false }),
        ];
        for c in all {
            assert_eq!(
                Command::parse(c.name(), c.arguments()),
                Ok(c.clone()),
                "{c:?}"
            );
        }
    }

    #[test]
    fn the_wire_names_and_bad_arguments() {
        assert_eq!(Command::parse("cont", None), Ok(Command::Resume));
        assert_eq!(
            Command::parse("system_powerdown", None),
            Ok(Command::Powerdown)
        );
        assert_eq!(
            Command::parse("nope", None),
            Err(ParseError::UnknownCommand("nope".into()))
        );
        let eject = Command::parse("change-media", Some(json!({"device": "d", "path": null})));
        assert!(matches!(
            eject,
            Ok(Command::ChangeMedia(ChangeMedia {
                path: Some(None),
                ..
            }))
        ));
        assert!(matches!(
            Command::parse("send-key", Some(json!({"keys": "a"}))),
            Err(ParseError::BadArguments(_))
        ));
        assert!(matches!(
            Command::parse("save", Some(json!({"resume": true, "extra": 1}))),
            Err(ParseError::BadArguments(_))
        ));
        let keys = Command::parse("send-key", Some(json!({"keys": [1]}))).unwrap();
        assert_eq!(
            keys,
            Command::SendKey(SendKey {
                keys: vec![1],
                hold_ms: 100
            })
        );
    }

    #[test]
    fn status_reads_what_the_vmm_writes() {
        let s = Status {
            status: RunStatus::Paused,
            running: false,
            name: "g".into(),
            vcpus: 2,
            memory_mib: 256,
            pid: 9,
            protocol: PROTOCOL_VERSION,
            serial_pty: Some("/dev/pts/3".into()),
            console_ptys: vec![ConsolePty {
                slot: 6,
                path: "/dev/pts/4".into(),
            }],
        };
        let v = serde_json::to_value(&s).unwrap();
        assert_eq!(v["status"], "paused");
        assert_eq!(v["serial-pty"], "/dev/pts/3");
        assert_eq!(serde_json::from_value::<Status>(v).unwrap(), s);
    }
}
