//! The typed domain model. Each submodule owns one part of the XML: its
//! types, how they are read from an element and written back.

pub mod address;
pub mod chardev;
pub mod clock;
pub mod controller;
pub mod cpu;
pub mod devices;
pub mod disk;
pub mod display;
pub mod domain;
pub mod features;
pub mod input;
pub mod interface;
pub mod lifecycle;
pub mod os;
pub mod virtio_misc;

pub use address::{Address, PciAddress};
pub use chardev::{CharSource, CharSourceType, CharTarget, Chardev, ChardevKind};
pub use clock::{Clock, ClockOffset, Timer};
pub use controller::{Controller, ControllerType};
pub use cpu::{Cpu, CpuMode, Topology};
pub use devices::Devices;
pub use disk::{BackingStore, Disk, DiskBus, DiskDevice, DiskDriver, DiskSource, DiskType};
pub use display::{Graphics, GraphicsType, Video, VideoModel};
pub use domain::{Domain, MaxMemory, Vcpu, VcpuPlacement, VirtType};
pub use features::{FeatureKind, Features};
pub use input::{Input, InputBus, InputType};
pub use interface::{Interface, InterfaceSource, InterfaceType};
pub use lifecycle::{CrashAction, LifecycleAction, Pm};
pub use os::{BootDev, Os, OsType};
pub use virtio_misc::{Memballoon, Rng, Vsock, Watchdog};
