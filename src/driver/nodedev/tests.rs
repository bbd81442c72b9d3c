//! The node-device driver on fixture sysfs trees: names, parents and XML
//! as libvirt 9.0 printed them on the same kind of host (a KVM guest with
//! virtio devices and no DMI: `/work/lvtrace`, section 5).

use std::path::{Path, PathBuf};

use super::*;

/// A sysfs tree, a udev database and a PCI ID file in a temp dir.
struct Fixture {
    dir: PathBuf,
}

impl Drop for Fixture {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Fixture {
    fn new(tag: &str) -> Fixture {
        let dir = std::env::temp_dir().join(format!(
            "oxvirt-nodedev-{tag}-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("sys")).unwrap();
        std::fs::create_dir_all(dir.join("udev")).unwrap();
        std::fs::write(
            dir.join("pci.ids"),
            "1af4  Red Hat, Inc.\n\t1041  Virtio 1.0 network device\n\
             \t1042  Virtio 1.0 block device\n\
             8086  Intel Corporation\n\t1572  Ethernet Controller X710 for 10GbE SFP+\n\
             \t1c02  6 Series/C200 Series Chipset Family & \"SATA\" <AHCI>\n",
        )
        .unwrap();
        Fixture { dir }
    }

    fn sys(&self, rel: &str) -> PathBuf {
        self.dir.join("sys").join(rel)
    }

    fn write(&self, rel: &str, text: &str) {
        let p = self.sys(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }

    fn link(&self, rel: &str, target: &Path) {
        let p = self.sys(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::os::unix::fs::symlink(target, p).unwrap();
    }

    /// A device at `devices/<path>` in `subsystem` (a bus when `bus`,
    /// else a class), listed there as `listed` (its name by default).
    fn device(&self, path: &str, subsystem: &str, bus: bool, uevent: &str) {
        let dev = format!("devices/{path}");
        self.write(&format!("{dev}/uevent"), uevent);
        let top = if bus { "bus" } else { "class" };
        let sub = self.sys(&format!("{top}/{subsystem}"));
        std::fs::create_dir_all(&sub).unwrap();
        self.link(&format!("{dev}/subsystem"), &sub);
        let name = Path::new(path).file_name().unwrap().to_str().unwrap();
        let list = if bus {
            format!("bus/{subsystem}/devices/{name}")
        } else {
            format!("class/{subsystem}/{name}")
        };
        self.link(&list, &self.sys(&dev));
    }

    fn udev(&self, id: &str, text: &str) {
        std::fs::write(self.dir.join("udev").join(id), text).unwrap();
    }

    fn driver(&self, privileged: bool) -> NodeDev {
        NodeDev::new(HostPaths {
            sysfs: self.dir.join("sys"),
            udev_data: self.dir.join("udev"),
            pci_ids: self.dir.join("pci.ids"),
            privileged,
            ethtool: false,
            host_uuid: "4e5a3b2c-1d0e-4f6a-8b7c-9d0e1f2a3b4c".into(),
        })
    }

    /// The devices of the KVM guest libvirt was recorded on.
    fn kvm_guest(tag: &str) -> Fixture {
        let f = Fixture::new(tag);
        let pci = |addr: &str, class: &str, id: &str, cfg_len: usize| {
            let (v, d) = id.split_once(':').unwrap();
            f.device(
                &format!("pci0000:00/{addr}"),
                "pci",
                true,
                &format!(
                    "PCI_CLASS={class}\nPCI_ID={id}\nPCI_SLOT_NAME={addr}\n\
                     MODALIAS=pci:v0000{v}d0000{d}\n"
                ),
            );
            let dev = format!("devices/pci0000:00/{addr}");
            f.write(
                &format!("{dev}/vendor"),
                &format!("0x{}\n", v.to_lowercase()),
            );
            f.write(
                &format!("{dev}/device"),
                &format!("0x{}\n", d.to_lowercase()),
            );
            f.write(&format!("{dev}/numa_node"), "-1\n");
            let mut cfg = vec![0u8; cfg_len];
            let (vv, dd) = (
                u16::from_str_radix(v, 16).unwrap(),
                u16::from_str_radix(d, 16).unwrap(),
            );
            cfg[0..2].copy_from_slice(&vv.to_le_bytes());
            cfg[2..4].copy_from_slice(&dd.to_le_bytes());
            std::fs::write(f.sys(&format!("{dev}/config")), cfg).unwrap();
        };
        // The host bridge: no capability list, a 4 KiB config space.
        pci("0000:00:00.0", "60000", "8086:0D57", 4096);
        pci("0000:00:02.0", "18000", "1AF4:1042", 256);
        pci("0000:00:03.0", "20000", "1AF4:1041", 256);
        for a in ["0000:00:02.0", "0000:00:03.0"] {
            f.link(
                &format!("devices/pci0000:00/{a}/driver"),
                Path::new("../../../bus/pci/drivers/virtio-pci"),
            );
        }
        // virtio bus devices are no node devices.
        f.device(
            "pci0000:00/0000:00:03.0/virtio2",
            "virtio",
            true,
            "DRIVER=virtio_net\n",
        );
        f.device(
            "pci0000:00/0000:00:03.0/virtio2/net/eth0",
            "net",
            false,
            "INTERFACE=eth0\nIFINDEX=4\n",
        );
        let eth0 = "devices/pci0000:00/0000:00:03.0/virtio2/net/eth0";
        f.write(&format!("{eth0}/address"), "02:fc:00:00:00:01\n");
        f.write(&format!("{eth0}/addr_len"), "6\n");
        f.write(&format!("{eth0}/operstate"), "up\n");
        f.write(&format!("{eth0}/speed"), "-1\n");
        f.device("virtual/net/lo", "net", false, "INTERFACE=lo\nIFINDEX=1\n");
        f.write("devices/virtual/net/lo/address", "00:00:00:00:00:00\n");
        f.write("devices/virtual/net/lo/addr_len", "6\n");
        f.write("devices/virtual/net/lo/operstate", "unknown\n");
        // A bridge: udev gives it a DEVTYPE libvirt does not list.
        f.device(
            "virtual/net/br0",
            "net",
            false,
            "DEVTYPE=bridge\nINTERFACE=br0\nIFINDEX=5\n",
        );
        f.write("devices/virtual/net/br0/address", "52:54:00:aa:bb:cc\n");
        f.write("devices/virtual/net/br0/operstate", "down\n");
        // The virtio disk, and a loop disk libvirt cannot type.
        f.device("pci0000:00/0000:00:02.0/virtio1", "virtio", true, "");
        f.write("devices/pci0000:00/0000:00:02.0/virtio1/vendor", "0x1af4\n");
        f.device(
            "pci0000:00/0000:00:02.0/virtio1/block/vda",
            "block",
            false,
            "MAJOR=254\nMINOR=0\nDEVNAME=vda\nDEVTYPE=disk\nDISKSEQ=9\n",
        );
        let vda = "devices/pci0000:00/0000:00:02.0/virtio1/block/vda";
        f.write(&format!("{vda}/size"), "536870912\n");
        f.write(&format!("{vda}/queue/logical_block_size"), "512\n");
        f.write(&format!("{vda}/removable"), "0\n");
        f.write(&format!("{vda}/serial"), "\n");
        f.link(&format!("{vda}/device"), Path::new("../../../virtio1"));
        f.device(
            "virtual/block/loop0",
            "block",
            false,
            "MAJOR=7\nMINOR=0\nDEVNAME=loop0\nDEVTYPE=disk\n",
        );
        f.write("devices/virtual/block/loop0/size", "0\n");
        // Ignored subsystems and devices of no type.
        f.device(
            "virtual/tty/tty0",
            "tty",
            false,
            "MAJOR=4\nMINOR=0\nDEVNAME=tty0\n",
        );
        f.device(
            "platform/serial8250",
            "platform",
            true,
            "DRIVER=serial8250\n",
        );
        f
    }
}

const ETH0: &str = "net_eth0_02_fc_00_00_00_01";

#[test]
fn lists_what_libvirt_listed_on_the_same_host() {
    let f = Fixture::kvm_guest("list");
    let nd = f.driver(true);
    assert_eq!(
        nd.connect_list_all_node_devices(LIST_ACTIVE).unwrap(),
        [
            "computer",
            "block_vda",
            ETH0,
            "net_lo_00_00_00_00_00_00",
            "pci_0000_00_00_0",
            "pci_0000_00_02_0",
            "pci_0000_00_03_0",
        ]
    );
    let parent = |n: &str| nd.node_device_get_parent(n).unwrap();
    assert_eq!(parent("computer"), None);
    assert_eq!(parent("pci_0000_00_00_0").as_deref(), Some("computer"));
    assert_eq!(parent(ETH0).as_deref(), Some("pci_0000_00_03_0"));
    assert_eq!(
        parent("net_lo_00_00_00_00_00_00").as_deref(),
        Some("computer")
    );
    assert_eq!(parent("block_vda").as_deref(), Some("pci_0000_00_02_0"));
}

#[test]
fn filters_by_capability_as_libvirt() {
    let f = Fixture::kvm_guest("filter");
    let nd = f.driver(true);
    let pci = CapType::PciDev.list_flag();
    let net = CapType::Net.list_flag();
    let storage = CapType::Storage.list_flag();
    assert_eq!(
        nd.connect_list_all_node_devices(pci | LIST_ACTIVE).unwrap(),
        ["pci_0000_00_00_0", "pci_0000_00_02_0", "pci_0000_00_03_0"]
    );
    assert_eq!(
        nd.connect_list_all_node_devices(net | storage).unwrap(),
        ["block_vda", ETH0, "net_lo_00_00_00_00_00_00"]
    );
    assert_eq!(
        nd.connect_list_all_node_devices(CapType::System.list_flag())
            .unwrap(),
        ["computer"]
    );
    // Nothing is inactive.
    assert!(
        nd.connect_list_all_node_devices(LIST_INACTIVE)
            .unwrap()
            .is_empty()
    );
    assert_eq!(nd.connect_list_all_node_devices(0).unwrap().len(), 7);
    let e = nd.connect_list_all_node_devices(1 << 25).unwrap_err();
    assert_eq!((e.code as i32, e.domain as i32), (8, 22));
    assert_eq!(
        e.message,
        "invalid argument: unsupported flags (0x2000000) in function nodeConnectListAllNodeDevices"
    );

    assert_eq!(nd.node_num_of_devices(None, 0).unwrap(), 7);
    assert_eq!(nd.node_num_of_devices(Some("net"), 0).unwrap(), 2);
    assert_eq!(nd.node_num_of_devices(Some("nonsense"), 0).unwrap(), 0);
    assert_eq!(
        nd.node_list_devices(Some("pci"), 2, 0).unwrap(),
        ["pci_0000_00_00_0", "pci_0000_00_02_0"]
    );
    assert_eq!(
        nd.node_list_devices(None, -1, 0).unwrap_err().message,
        "invalid argument: maxnames in virNodeListDevices must be zero or greater"
    );
    assert_eq!(
        nd.node_num_of_devices(None, 1).unwrap_err().message,
        "invalid argument: unsupported flags (0x1) in function nodeNumOfDevices"
    );
}

#[test]
fn dumps_the_xml_libvirt_printed() {
    let f = Fixture::kvm_guest("xml");
    let nd = f.driver(true);
    // nodedev-dumpxml computer (603): no DMI, so a zero UUID.
    assert_eq!(
        nd.node_device_get_xml_desc("computer", 0).unwrap(),
        "<device>\n  <name>computer</name>\n  <capability type='system'>\n    <hardware>\n      \
         <uuid>00000000-0000-0000-0000-000000000000</uuid>\n    </hardware>\n    <firmware>\n    \
         </firmware>\n  </capability>\n</device>\n"
    );
    // nodedev-dumpxml pci_0000_00_00_0 (605), byte for byte.
    assert_eq!(
        nd.node_device_get_xml_desc("pci_0000_00_00_0", 0).unwrap(),
        "<device>
  <name>pci_0000_00_00_0</name>
  <path>/sys/devices/pci0000:00/0000:00:00.0</path>
  <parent>computer</parent>
  <capability type='pci'>
    <class>0x060000</class>
    <domain>0</domain>
    <bus>0</bus>
    <slot>0</slot>
    <function>0</function>
    <product id='0x0d57'/>
    <vendor id='0x8086'>Intel Corporation</vendor>
    <pci-express/>
  </capability>
</device>
"
    );
    // nodedev-dumpxml of the NIC (604) without the ethtool features,
    // which this fixture cannot ask the kernel for.
    assert_eq!(
        nd.node_device_get_xml_desc(ETH0, 0).unwrap(),
        "<device>
  <name>net_eth0_02_fc_00_00_00_01</name>
  <path>/sys/devices/pci0000:00/0000:00:03.0/virtio2/net/eth0</path>
  <parent>pci_0000_00_03_0</parent>
  <capability type='net'>
    <interface>eth0</interface>
    <address>02:fc:00:00:00:01</address>
    <link speed='4294967295' state='up'/>
    <capability type='80203'/>
  </capability>
</device>
"
    );
    assert_eq!(
        nd.node_device_get_xml_desc("pci_0000_00_03_0", 0).unwrap(),
        "<device>
  <name>pci_0000_00_03_0</name>
  <path>/sys/devices/pci0000:00/0000:00:03.0</path>
  <parent>computer</parent>
  <driver>
    <name>virtio-pci</name>
  </driver>
  <capability type='pci'>
    <class>0x020000</class>
    <domain>0</domain>
    <bus>0</bus>
    <slot>3</slot>
    <function>0</function>
    <product id='0x1041'>Virtio 1.0 network device</product>
    <vendor id='0x1af4'>Red Hat, Inc.</vendor>
  </capability>
</device>
"
    );
    assert_eq!(
        nd.node_device_get_xml_desc("block_vda", 0).unwrap(),
        "<device>
  <name>block_vda</name>
  <path>/sys/devices/pci0000:00/0000:00:02.0/virtio1/block/vda</path>
  <devnode type='dev'>/dev/vda</devnode>
  <parent>pci_0000_00_02_0</parent>
  <capability type='storage'>
    <block>/dev/vda</block>
    <drive_type>disk</drive_type>
    <vendor>0x1af4</vendor>
    <size>274877906944</size>
    <logical_block_size>512</logical_block_size>
    <num_blocks>536870912</num_blocks>
  </capability>
</device>
"
    );
    let lo = nd
        .node_device_get_xml_desc("net_lo_00_00_00_00_00_00", 0)
        .unwrap();
    assert!(lo.contains("<link state='unknown'/>\n"), "{lo}");
    // Unprivileged, libvirt reads no config space: no <pci-express/>.
    let unpriv = f.driver(false);
    let x = unpriv
        .node_device_get_xml_desc("pci_0000_00_00_0", 0)
        .unwrap();
    assert!(!x.contains("pci-express"), "{x}");
}

#[test]
fn per_device_calls_and_their_errors() {
    let f = Fixture::kvm_guest("calls");
    let nd = f.driver(true);
    let e = nd.node_device_lookup_by_name("nope").unwrap_err();
    assert_eq!((e.code as i32, e.domain as i32), (53, 22));
    assert_eq!(
        e.message,
        "Node device not found: no node device with matching name 'nope'"
    );
    assert_eq!(nd.node_device_lookup_by_name(ETH0).unwrap(), ETH0);
    assert_eq!(
        nd.node_device_get_xml_desc("computer", 2)
            .unwrap_err()
            .message,
        "invalid argument: unsupported flags (0x2) in function nodeDeviceGetXMLDesc"
    );
    assert_eq!(nd.node_device_num_of_caps("block_vda").unwrap(), 1);
    assert_eq!(
        nd.node_device_list_caps("pci_0000_00_02_0", 10).unwrap(),
        ["pci"]
    );
    assert!(nd.node_device_list_caps("computer", 0).unwrap().is_empty());
    assert!(nd.node_device_is_active(ETH0).unwrap());
    assert!(!nd.node_device_is_persistent(ETH0).unwrap());
    assert!(nd.node_device_is_persistent("computer").unwrap());
    assert!(nd.node_device_get_autostart("computer").unwrap());
    assert!(!nd.node_device_get_autostart(ETH0).unwrap());
    assert_eq!(
        nd.node_device_is_active("nope").unwrap_err().code as i32,
        53
    );

    let e = nd.node_device_destroy(ETH0).unwrap_err();
    assert_eq!((e.code as i32, e.domain as i32), (67, 22));
    assert_eq!(
        e.message,
        "unsupported configuration: Unsupported device type"
    );
    assert_eq!(
        nd.node_device_undefine(ETH0, 0).unwrap_err().message,
        format!("Requested operation is not valid: Node device '{ETH0}' is not defined")
    );
    assert_eq!(
        nd.node_device_undefine("computer", 0).unwrap_err().message,
        "unsupported configuration: Unsupported device type"
    );
    assert_eq!(
        nd.node_device_create(ETH0, 0).unwrap_err().message,
        "Requested operation is not valid: Device is already active"
    );
    assert_eq!(
        nd.node_device_set_autostart(ETH0, true)
            .unwrap_err()
            .message,
        "Operation not supported: Unsupported device type"
    );
    let mdev = "<device><parent>pci_0000_00_02_0</parent>\
                <capability type='mdev'><type id='x'/></capability></device>";
    let e = nd.node_device_create_xml(mdev, 0).unwrap_err();
    assert_eq!(
        (e.code as i32, e.message.as_str()),
        (
            3,
            "this function is not supported by the connection driver: virNodeDeviceCreateXML"
        )
    );
    let pci = "<device><name>x</name><capability type='pci'/></device>";
    assert_eq!(
        nd.node_device_define_xml(pci, 0).unwrap_err().message,
        "unsupported configuration: Unsupported device type"
    );
    assert_eq!(
        nd.node_device_define_xml(pci, 4).unwrap_err().message,
        "invalid argument: unsupported flags (0x4) in function nodeDeviceDefineXML"
    );
}

#[test]
fn pci_details_from_sysfs_and_config_space() {
    let f = Fixture::new("pcidetail");
    let addr = "0000:3b:00.0";
    let dev = format!("devices/pci0000:3a/0000:3a:00.0/{addr}");
    f.device(
        &format!("pci0000:3a/0000:3a:00.0/{addr}"),
        "pci",
        true,
        "DRIVER=i40e\nPCI_CLASS=20000\n",
    );
    // The bridge above it: a PCI-to-PCI bridge header.
    f.device("pci0000:3a/0000:3a:00.0", "pci", true, "PCI_CLASS=60400\n");
    f.write("devices/pci0000:3a/0000:3a:00.0/vendor", "0x8086\n");
    f.write("devices/pci0000:3a/0000:3a:00.0/device", "0x2030\n");
    let mut bridge = vec![0u8; 256];
    bridge[0x0e] = 0x81; // multi-function, type 1
    std::fs::write(f.sys("devices/pci0000:3a/0000:3a:00.0/config"), bridge).unwrap();
    f.write(&format!("{dev}/vendor"), "0x8086\n");
    f.write(&format!("{dev}/device"), "0x1572\n");
    f.write(&format!("{dev}/numa_node"), "1\n");
    f.write(&format!("{dev}/sriov_totalvfs"), "64\n");
    // Two virtual functions, and an IOMMU group of two functions.
    for (i, vf) in ["0000:3b:02.0", "0000:3b:02.1"].iter().enumerate() {
        std::fs::create_dir_all(f.sys(&format!("devices/pci0000:3a/0000:3a:00.0/{vf}"))).unwrap();
        f.link(&format!("{dev}/virtfn{i}"), Path::new(&format!("../{vf}")));
    }
    std::fs::create_dir_all(f.sys("kernel/iommu_groups/27/devices")).unwrap();
    f.link("kernel/iommu_groups/27/devices/0000:3b:00.0", &f.sys(&dev));
    f.link(
        &format!("{dev}/iommu_group"),
        &f.sys("kernel/iommu_groups/27"),
    );
    // PCI Express endpoint: capability list at 0x40, link 8 GT/s x8
    // capable, running 5 GT/s x4.
    let mut cfg = vec![0u8; 4096];
    cfg[0x06] = 0x10;
    cfg[0x34] = 0x40;
    cfg[0x40] = 0x10;
    cfg[0x41] = 0x00;
    cfg[0x42..0x44].copy_from_slice(&0x0002u16.to_le_bytes());
    let lnkcap: u32 = (1 << 24) | (8 << 4) | 3;
    cfg[0x4c..0x50].copy_from_slice(&lnkcap.to_le_bytes());
    let lnksta: u16 = (4 << 4) | 2;
    cfg[0x52..0x54].copy_from_slice(&lnksta.to_le_bytes());
    std::fs::write(f.sys(&format!("{dev}/config")), cfg).unwrap();
    f.link(
        &format!("{dev}/driver"),
        Path::new("../../../../bus/pci/drivers/i40e"),
    );

    let nd = f.driver(true);
    assert_eq!(
        nd.connect_list_all_node_devices(0).unwrap(),
        ["computer", "pci_0000_3a_00_0", "pci_0000_3b_00_0"]
    );
    assert_eq!(
        nd.node_device_get_parent("pci_0000_3b_00_0")
            .unwrap()
            .as_deref(),
        Some("pci_0000_3a_00_0")
    );
    assert_eq!(
        nd.node_device_get_xml_desc("pci_0000_3b_00_0", 0).unwrap(),
        "<device>
  <name>pci_0000_3b_00_0</name>
  <path>/sys/devices/pci0000:3a/0000:3a:00.0/0000:3b:00.0</path>
  <parent>pci_0000_3a_00_0</parent>
  <driver>
    <name>i40e</name>
  </driver>
  <capability type='pci'>
    <class>0x020000</class>
    <domain>0</domain>
    <bus>59</bus>
    <slot>0</slot>
    <function>0</function>
    <product id='0x1572'>Ethernet Controller X710 for 10GbE SFP+</product>
    <vendor id='0x8086'>Intel Corporation</vendor>
    <capability type='virt_functions' maxCount='64'>
      <address domain='0x0000' bus='0x3b' slot='0x02' function='0x0'/>
      <address domain='0x0000' bus='0x3b' slot='0x02' function='0x1'/>
    </capability>
    <iommuGroup number='27'>
      <address domain='0x0000' bus='0x3b' slot='0x00' function='0x0'/>
    </iommuGroup>
    <numa node='1'/>
    <pci-express>
      <link validity='cap' port='1' speed='8' width='8'/>
      <link validity='sta' speed='5' width='4'/>
    </pci-express>
  </capability>
</device>
"
    );
    let bridge = nd.node_device_get_xml_desc("pci_0000_3a_00_0", 0).unwrap();
    assert!(
        bridge.contains("<vendor id='0x8086'>Intel Corporation</vendor>\n    <capability type='pci-bridge'/>\n  </capability>"),
        "{bridge}"
    );
}

#[test]
fn usb_scsi_drm_and_udev_properties() {
    let f = Fixture::new("usb");
    f.device("pci0000:00/0000:00:14.0", "pci", true, "PCI_CLASS=C0330\n");
    let hc = "pci0000:00/0000:00:14.0";
    f.device(
        &format!("{hc}/usb1"),
        "usb",
        true,
        "MAJOR=189\nMINOR=0\nDEVNAME=bus/usb/001/001\nDEVTYPE=usb_device\nBUSNUM=001\nDEVNUM=001\n",
    );
    f.write(
        &format!("devices/{hc}/usb1/manufacturer"),
        "Linux 6.1 xhci-hcd\n",
    );
    f.udev(
        "c189:0",
        "I:123\nE:ID_VENDOR_ID=1d6b\nE:ID_MODEL_ID=0002\n\
         E:ID_VENDOR_FROM_DATABASE=Linux Foundation\nE:ID_MODEL_FROM_DATABASE=2.0 root hub\n",
    );
    f.device(
        &format!("{hc}/usb1/1-0:1.0"),
        "usb",
        true,
        "DEVTYPE=usb_interface\nINTERFACE=9/0/0\n",
    );
    for (a, v) in [
        ("bInterfaceNumber", "00"),
        ("bInterfaceClass", "09"),
        ("bInterfaceSubClass", "00"),
        ("bInterfaceProtocol", "00"),
    ] {
        f.write(&format!("devices/{hc}/usb1/1-0:1.0/{a}"), &format!("{v}\n"));
    }
    // A stick udev has not described: libvirt cannot read its ids.
    f.device(
        &format!("{hc}/usb1/1-1"),
        "usb",
        true,
        "MAJOR=189\nMINOR=1\nDEVNAME=bus/usb/001/002\nDEVTYPE=usb_device\nBUSNUM=001\nDEVNUM=002\n",
    );
    f.device(
        &format!("{hc}/usb1/1-1/1-1:1.0"),
        "usb",
        true,
        "DEVTYPE=usb_interface\n",
    );
    f.write(
        &format!("devices/{hc}/usb1/1-1/1-1:1.0/bInterfaceClass"),
        "08\n",
    );
    // Its SCSI host, target, disk and generic device.
    let h = format!("{hc}/usb1/1-1/1-1:1.0/host2");
    f.device(&h, "scsi", true, "DEVTYPE=scsi_host\n");
    f.write("class/scsi_host/host2/unique_id", "5\n");
    f.device(
        &format!("{h}/target2:0:0"),
        "scsi",
        true,
        "DEVTYPE=scsi_target\n",
    );
    let sd = format!("{h}/target2:0:0/2:0:0:0");
    f.device(&sd, "scsi", true, "DEVTYPE=scsi_device\n");
    f.write(&format!("devices/{sd}/type"), "0\n");
    f.write(&format!("devices/{sd}/vendor"), "SanDisk \n");
    f.write(&format!("devices/{sd}/model"), "Cruzer Blade    \n");
    f.device(
        &format!("{sd}/scsi_generic/sg0"),
        "scsi_generic",
        false,
        "MAJOR=21\nMINOR=0\nDEVNAME=sg0\n",
    );
    f.device(
        &format!("{sd}/block/sda"),
        "block",
        false,
        "MAJOR=8\nMINOR=0\nDEVNAME=sda\nDEVTYPE=disk\n",
    );
    f.write(&format!("devices/{sd}/block/sda/size"), "60063744\n");
    f.write(
        &format!("devices/{sd}/block/sda/queue/logical_block_size"),
        "512\n",
    );
    f.write(&format!("devices/{sd}/block/sda/removable"), "1\n");
    f.link(
        &format!("devices/{sd}/block/sda/device"),
        Path::new("../../../2:0:0:0"),
    );
    f.udev(
        "b8:0",
        "S:disk/by-id/usb-SanDisk_Cruzer_Blade_4C53-0:0\n\
         E:ID_BUS=usb\nE:ID_TYPE=disk\nE:ID_SERIAL=SanDisk_Cruzer_Blade_4C53-0:0\n",
    );
    f.device(
        &format!("{sd}/block/sda/sda1"),
        "block",
        false,
        "MAJOR=8\nMINOR=1\nDEVNAME=sda1\nDEVTYPE=partition\n",
    );
    f.device(
        "pci0000:00/0000:00:02.0/drm/card0",
        "drm",
        false,
        "MAJOR=226\nMINOR=0\nDEVNAME=dri/card0\nDEVTYPE=drm_minor\n",
    );
    f.device(
        "pci0000:00/0000:00:02.0/drm/renderD128",
        "drm",
        false,
        "MAJOR=226\nMINOR=128\nDEVNAME=dri/renderD128\nDEVTYPE=drm_minor\n",
    );
    f.device(
        "pci0000:00/0000:00:02.0/drm/card0/card0-HDMI-A-1",
        "drm",
        false,
        "DEVTYPE=drm_connector\n",
    );

    let nd = f.driver(false);
    let all = nd.connect_list_all_node_devices(0).unwrap();
    assert_eq!(
        all,
        [
            "computer",
            "block_sda_SanDisk_Cruzer_Blade_4C53_0_0",
            "drm_card0",
            "drm_renderD128",
            "pci_0000_00_14_0",
            "scsi_2_0_0_0",
            "scsi_generic_sg0",
            "scsi_host2",
            "scsi_target2_0_0",
            "usb_1_0_1_0",
            "usb_1_1_1_0",
            "usb_usb1",
        ]
    );
    let parent = |n: &str| nd.node_device_get_parent(n).unwrap().unwrap();
    assert_eq!(parent("usb_usb1"), "pci_0000_00_14_0");
    assert_eq!(parent("usb_1_0_1_0"), "usb_usb1");
    // Its USB device was left out, so the interface hangs off the bus's.
    assert_eq!(parent("usb_1_1_1_0"), "usb_usb1");
    assert_eq!(parent("scsi_host2"), "usb_1_1_1_0");
    assert_eq!(parent("scsi_generic_sg0"), "scsi_2_0_0_0");
    assert_eq!(
        parent("block_sda_SanDisk_Cruzer_Blade_4C53_0_0"),
        "scsi_2_0_0_0"
    );
    assert_eq!(parent("drm_card0"), "computer");

    let x = |n: &str| nd.node_device_get_xml_desc(n, 0).unwrap();
    assert_eq!(
        x("usb_usb1"),
        "<device>
  <name>usb_usb1</name>
  <path>/sys/devices/pci0000:00/0000:00:14.0/usb1</path>
  <devnode type='dev'>/dev/bus/usb/001/001</devnode>
  <parent>pci_0000_00_14_0</parent>
  <capability type='usb_device'>
    <bus>1</bus>
    <device>1</device>
    <product id='0x0002'>2.0 root hub</product>
    <vendor id='0x1d6b'>Linux Foundation</vendor>
  </capability>
</device>
"
    );
    assert!(x("usb_1_0_1_0").contains(
        "<capability type='usb'>\n    <number>0</number>\n    <class>9</class>\n    \
             <subclass>0</subclass>\n    <protocol>0</protocol>\n  </capability>"
    ));
    assert_eq!(
        x("block_sda_SanDisk_Cruzer_Blade_4C53_0_0"),
        "<device>
  <name>block_sda_SanDisk_Cruzer_Blade_4C53_0_0</name>
  <path>/sys/devices/pci0000:00/0000:00:14.0/usb1/1-1/1-1:1.0/host2/target2:0:0/2:0:0:0/block/sda</path>
  <devnode type='dev'>/dev/sda</devnode>
  <devnode type='link'>/dev/disk/by-id/usb-SanDisk_Cruzer_Blade_4C53-0:0</devnode>
  <parent>scsi_2_0_0_0</parent>
  <capability type='storage'>
    <block>/dev/sda</block>
    <bus>usb</bus>
    <drive_type>disk</drive_type>
    <model>Cruzer Blade</model>
    <vendor>SanDisk</vendor>
    <serial>SanDisk_Cruzer_Blade_4C53-0:0</serial>
    <size>30752636928</size>
    <logical_block_size>512</logical_block_size>
    <num_blocks>60063744</num_blocks>
  </capability>
</device>
"
    );
    assert!(x("scsi_host2").contains("<host>2</host>\n    <unique_id>5</unique_id>\n"));
    assert!(x("scsi_target2_0_0").contains("<target>target2:0:0</target>\n"));
    assert!(x("scsi_2_0_0_0").contains(
        "<host>2</host>\n    <bus>0</bus>\n    <target>0</target>\n    <lun>0</lun>\n    \
         <type>disk</type>\n"
    ));
    assert!(x("scsi_generic_sg0").contains("<char>/dev/sg0</char>\n"));
    assert!(x("drm_renderD128").contains("<devnode type='dev'>/dev/dri/renderD128</devnode>"));
    assert!(x("drm_renderD128").contains("<type>render</type>\n"));
    assert!(x("drm_card0").contains("<type>primary</type>\n"));
    assert_eq!(
        nd.node_list_devices(Some("scsi_host"), 10, 0).unwrap(),
        ["scsi_host2"]
    );
    let e = nd.node_device_destroy("scsi_host2").unwrap_err();
    assert_eq!(
        e.message,
        "internal error: Device is not a fibre channel HBA"
    );
}

#[test]
fn computer_from_dmi() {
    let f = Fixture::new("dmi");
    let dmi = "devices/virtual/dmi/id";
    f.write(&format!("{dmi}/uevent"), "MODALIAS=dmi:bvnSeaBIOS\n");
    f.write(
        &format!("{dmi}/product_name"),
        "Standard PC (Q35 + ICH9, 2009)\n",
    );
    f.write(&format!("{dmi}/sys_vendor"), "QEMU\n");
    f.write(&format!("{dmi}/product_version"), "pc-q35-7.2\n");
    f.write(&format!("{dmi}/product_serial"), "\n");
    f.write(&format!("{dmi}/bios_vendor"), "SeaBIOS\n");
    f.write(&format!("{dmi}/bios_version"), "1.16.2-debian-1.16.2-1\n");
    f.write(&format!("{dmi}/bios_date"), "04/01/2014\n");
    f.write(
        &format!("{dmi}/product_uuid"),
        "8d0e3f8e-8b8c-4a47-9a2f-3c8e9f0a1b2c\n",
    );
    let nd = f.driver(false);
    assert_eq!(
        nd.node_device_get_xml_desc("computer", 0).unwrap(),
        "<device>
  <name>computer</name>
  <capability type='system'>
    <product>Standard PC (Q35 + ICH9, 2009)</product>
    <hardware>
      <vendor>QEMU</vendor>
      <version>pc-q35-7.2</version>
      <uuid>8d0e3f8e-8b8c-4a47-9a2f-3c8e9f0a1b2c</uuid>
    </hardware>
    <firmware>
      <vendor>SeaBIOS</vendor>
      <version>1.16.2-debian-1.16.2-1</version>
      <release_date>04/01/2014</release_date>
    </firmware>
  </capability>
</device>
"
    );
    // An unreadable or meaningless DMI UUID: the host's own.
    f.write(
        &format!("{dmi}/product_uuid"),
        "ffffffff-ffff-ffff-ffff-ffffffffffff\n",
    );
    assert!(
        nd.node_device_get_xml_desc("computer", 0)
            .unwrap()
            .contains("<uuid>4e5a3b2c-1d0e-4f6a-8b7c-9d0e1f2a3b4c</uuid>")
    );
}

#[test]
fn the_running_host_has_a_computer() {
    let nd = NodeDev::system();
    let all = nd.connect_list_all_node_devices(0).unwrap();
    assert_eq!(all.first().map(String::as_str), Some("computer"));
    for n in &all {
        let x = nd.node_device_get_xml_desc(n, 0).unwrap();
        assert!(x.starts_with(&format!("<device>\n  <name>{n}</name>\n")));
    }
}
