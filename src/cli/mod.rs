//! `oxvirsh`: a virsh-compatible client that talks only to the
//! `org.libvirt` D-Bus API (plus oxvirt's `org.oxvirt.Console`).
//!
//! Every command prints what virsh prints, followed by virsh's blank
//! line; errors go to stderr as `error: ...` lines with exit status 1.

/// `print!` that ignores a closed stdout instead of panicking.
macro_rules! say {
    ($($t:tt)*) => {{
        use std::io::Write as _;
        let _ = write!(std::io::stdout(), $($t)*);
    }};
}

/// `println!` that ignores a closed stdout.
macro_rules! sayln {
    () => { say!("\n") };
    ($($t:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($t)*);
    }};
}

/// `eprint!` that ignores a closed stderr.
macro_rules! esay {
    ($($t:tt)*) => {{
        use std::io::Write as _;
        let _ = write!(std::io::stderr(), $($t)*);
    }};
}

/// `eprintln!` that ignores a closed stderr.
macro_rules! esayln {
    ($($t:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), $($t)*);
    }};
}

pub mod bus;
pub mod console;
pub mod display;
pub mod domain;
pub mod domain_device;
pub mod domain_info;
pub mod domain_lifecycle;
pub mod domain_list;
pub mod domain_save;
pub mod domain_snapshot;
pub mod domain_stats;
pub mod edit;
pub mod error;
pub mod events;
pub mod format;
pub mod help;
pub mod host;
mod network;
mod nodedev;
pub mod options;
pub mod pool;
pub mod shell;
pub mod storage;
pub mod volume;
pub mod xpath;

use std::io::Write;
use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};

use bus::{Bus, BusChoice};
use domain_lifecycle as lc;
use error::{CliError, Result};

/// The default URI when neither `-c` nor `LIBVIRT_DEFAULT_URI` gives one.
pub const DEFAULT_URI: &str = "qemu:///system";

#[derive(Parser, Debug)]
#[command(
    name = "oxvirsh",
    version,
    about = "virtualization interactive terminal over the org.libvirt D-Bus API",
    disable_help_subcommand = true
)]
pub struct Cli {
    /// hypervisor connection URI (selects the D-Bus object, qemu:///system → /org/libvirt/QEMU)
    #[arg(short = 'c', long = "connect", value_name = "URI", global = true)]
    pub connect: Option<String>,
    /// use the session bus
    #[arg(long, global = true, conflicts_with = "bus_address")]
    pub session: bool,
    /// use the system bus (default for system URIs)
    #[arg(long, global = true, conflicts_with_all = ["session", "bus_address"])]
    pub system: bool,
    /// connect to the D-Bus bus at this address
    #[arg(long = "bus-address", value_name = "ADDR", global = true)]
    pub bus_address: Option<String>,
    /// quiet mode
    #[arg(short, long, global = true)]
    pub quiet: bool,
    /// connect readonly (accepted; access is the bus policy's business)
    #[arg(short, long, global = true)]
    pub readonly: bool,
    #[command(subcommand)]
    pub command: Option<Cmd>,
}

#[derive(clap::Args, Debug, Clone)]
pub struct DomArg {
    /// domain name, id or uuid
    #[arg(value_name = "DOMAIN")]
    pub domain: String,
}

/// Which definitions attach-device and detach-device change.
#[derive(clap::Args, Debug, Clone)]
pub struct DeviceAffectArgs {
    /// make device change persistent
    #[arg(long)]
    persistent: bool,
    /// affect next boot
    #[arg(long)]
    config: bool,
    /// affect running domain
    #[arg(long)]
    live: bool,
    /// affect current domain
    #[arg(long)]
    current: bool,
}

impl DeviceAffectArgs {
    fn affect(&self) -> domain_device::Affect {
        domain_device::Affect {
            config: self.config,
            live: self.live,
            current: self.current,
            persistent: self.persistent,
        }
    }
}

/// The snapshot commands (their own enum, flattened into [`Cmd`], so that
/// building the command line does not take one huge stack frame).
#[derive(Subcommand, Debug, Clone)]
pub enum SnapshotCmd {
    /// Create a snapshot from XML
    #[command(name = "snapshot-create")]
    SnapshotCreate {
        #[command(flatten)]
        d: DomArg,
        /// domain snapshot XML
        #[arg(long = "xmlfile")]
        xmlfile: Option<String>,
        #[command(flatten)]
        f: SnapshotCreateArgs,
    },
    /// Create a snapshot from a set of args
    #[command(name = "snapshot-create-as")]
    SnapshotCreateAs {
        #[command(flatten)]
        d: DomArg,
        /// name of snapshot
        #[arg(long = "name", value_name = "NAME")]
        name: Option<String>,
        /// description of snapshot
        #[arg(long = "description", value_name = "DESCRIPTION")]
        description: Option<String>,
        /// the name, given without --name
        #[arg(value_name = "NAME", conflicts_with = "name")]
        name_arg: Option<String>,
        /// the description, given without --description
        #[arg(value_name = "DESCRIPTION", conflicts_with = "description")]
        description_arg: Option<String>,
        /// print XML document rather than create
        #[arg(long = "print-xml")]
        print_xml: bool,
        /// memory attributes: [file=]name[,snapshot=type]
        #[arg(long)]
        memspec: Option<String>,
        /// disk attributes: disk[,snapshot=type][,driver=type][,stype=type][,file=name]
        #[arg(long)]
        diskspec: Vec<String>,
        #[command(flatten)]
        f: SnapshotCreateArgs,
    },
    /// Get or set the current snapshot
    #[command(name = "snapshot-current")]
    SnapshotCurrent {
        #[command(flatten)]
        d: DomArg,
        /// list the name, rather than the full xml
        #[arg(long)]
        name: bool,
        /// include security sensitive information in XML dump
        #[arg(long = "security-info")]
        security_info: bool,
        /// name of existing snapshot to make current
        snapshotname: Option<String>,
    },
    /// Delete a domain snapshot
    #[command(name = "snapshot-delete")]
    SnapshotDelete {
        #[command(flatten)]
        d: DomArg,
        /// snapshot name
        snapshotname: Option<String>,
        /// delete current snapshot
        #[arg(long)]
        current: bool,
        /// delete snapshot and all children
        #[arg(long)]
        children: bool,
        /// delete children but not snapshot
        #[arg(long = "children-only")]
        children_only: bool,
        /// delete only libvirt metadata, leaving snapshot contents behind
        #[arg(long)]
        metadata: bool,
    },
    /// Dump XML for a domain snapshot
    #[command(name = "snapshot-dumpxml")]
    SnapshotDumpxml {
        #[command(flatten)]
        d: DomArg,
        /// snapshot name
        snapshotname: String,
        /// include security sensitive information in XML dump
        #[arg(long = "security-info")]
        security_info: bool,
    },
    /// snapshot information
    #[command(name = "snapshot-info")]
    SnapshotInfo {
        #[command(flatten)]
        d: DomArg,
        /// snapshot name
        snapshotname: Option<String>,
        /// info on current snapshot
        #[arg(long)]
        current: bool,
    },
    /// List snapshots for a domain
    #[command(name = "snapshot-list")]
    SnapshotList {
        #[command(flatten)]
        d: DomArg,
        /// add a column showing parent snapshot
        #[arg(long)]
        parent: bool,
        /// list only snapshots without parents
        #[arg(long)]
        roots: bool,
        /// list only snapshots without children
        #[arg(long)]
        leaves: bool,
        /// list only snapshots that are not leaves (with children)
        #[arg(long = "no-leaves")]
        no_leaves: bool,
        /// list only snapshots that have metadata that would prevent undefine
        #[arg(long)]
        metadata: bool,
        /// list only snapshots that have no metadata managed by libvirt
        #[arg(long = "no-metadata")]
        no_metadata: bool,
        /// filter by snapshots taken while inactive
        #[arg(long)]
        inactive: bool,
        /// filter by snapshots taken while active (full system snapshots)
        #[arg(long)]
        active: bool,
        /// filter by disk-only snapshots
        #[arg(long = "disk-only")]
        disk_only: bool,
        /// filter by internal snapshots
        #[arg(long)]
        internal: bool,
        /// filter by external snapshots
        #[arg(long)]
        external: bool,
        /// list snapshots in a tree
        #[arg(long)]
        tree: bool,
        /// limit list to children of given snapshot
        #[arg(long)]
        from: Option<String>,
        /// limit list to children of current snapshot
        #[arg(long)]
        current: bool,
        /// with --from, list all descendants
        #[arg(long)]
        descendants: bool,
        /// list snapshot names only
        #[arg(long)]
        name: bool,
        /// sort list topologically rather than by name
        #[arg(long)]
        topological: bool,
    },
    /// Get the name of the parent of a snapshot
    #[command(name = "snapshot-parent")]
    SnapshotParent {
        #[command(flatten)]
        d: DomArg,
        /// find parent of snapshot name
        snapshotname: Option<String>,
        /// find parent of current snapshot
        #[arg(long)]
        current: bool,
    },
    /// Revert a domain to a snapshot
    #[command(name = "snapshot-revert")]
    SnapshotRevert {
        #[command(flatten)]
        d: DomArg,
        /// snapshot name
        snapshotname: Option<String>,
        /// revert to current snapshot
        #[arg(long)]
        current: bool,
        /// after reverting, change state to running
        #[arg(long)]
        running: bool,
        /// after reverting, change state to paused
        #[arg(long)]
        paused: bool,
        /// try harder on risky reverts
        #[arg(long)]
        force: bool,
        /// re-initialize NVRAM from its pristine template
        #[arg(long = "reset-nvram")]
        reset_nvram: bool,
    },
}

/// The flags `snapshot-create` and `snapshot-create-as` share.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct SnapshotCreateArgs {
    /// redefine metadata for existing snapshot
    #[arg(long)]
    redefine: bool,
    /// with redefine, set current snapshot
    #[arg(long)]
    current: bool,
    /// take snapshot but create no metadata
    #[arg(long = "no-metadata")]
    no_metadata: bool,
    /// halt domain after snapshot is created
    #[arg(long)]
    halt: bool,
    /// capture disk state but not vm state
    #[arg(long = "disk-only")]
    disk_only: bool,
    /// reuse any existing external files
    #[arg(long = "reuse-external")]
    reuse_external: bool,
    /// quiesce guest's file systems
    #[arg(long)]
    quiesce: bool,
    /// require atomic operation
    #[arg(long)]
    atomic: bool,
    /// take a live snapshot
    #[arg(long)]
    live: bool,
    /// validate the XML against the schema
    #[arg(long)]
    validate: bool,
}

impl SnapshotCreateArgs {
    fn flags(&self) -> domain_snapshot::CreateFlags {
        domain_snapshot::CreateFlags {
            redefine: self.redefine,
            current: self.current,
            no_metadata: self.no_metadata,
            halt: self.halt,
            disk_only: self.disk_only,
            reuse_external: self.reuse_external,
            quiesce: self.quiesce,
            atomic: self.atomic,
            live: self.live,
            validate: self.validate,
        }
    }
}

#[derive(clap::Args, Debug, Clone)]
pub struct PoolArg {
    /// pool name or uuid
    #[arg(value_name = "POOL")]
    pub pool: String,
}

#[derive(clap::Args, Debug, Clone)]
pub struct NetArg {
    /// network name or uuid
    #[arg(value_name = "NETWORK")]
    pub network: String,
}

#[derive(clap::Args, Debug, Clone)]
pub struct VolArg {
    /// vol name, key or path
    #[arg(value_name = "VOL")]
    pub vol: String,
}

#[derive(Subcommand, Debug, Clone)]
pub enum Cmd {
    /// list domains
    List(domain_list::ListArgs),
    /// define (but don't start) a domain from an XML file
    Define {
        /// file containing an XML domain description
        file: String,
        /// validate the XML against the schema (accepted)
        #[arg(long)]
        validate: bool,
    },
    /// undefine a domain
    Undefine {
        #[command(flatten)]
        d: DomArg,
        /// remove all associated storage volumes (use with caution)
        #[arg(long = "remove-all-storage")]
        remove_all_storage: bool,
        /// remove all domain snapshot metadata (accepted)
        #[arg(long = "snapshots-metadata")]
        snapshots_metadata: bool,
        /// remove nvram file (accepted)
        #[arg(long)]
        nvram: bool,
        /// remove domain managed state file
        #[arg(long = "managed-save")]
        managed_save: bool,
    },
    /// create a domain from an XML file
    Create {
        /// file containing an XML domain description
        file: String,
        /// attach to console after creation
        #[arg(long)]
        console: bool,
        /// leave the guest paused after creation
        #[arg(long)]
        paused: bool,
    },
    /// start a (previously defined) inactive domain
    Start {
        #[command(flatten)]
        d: DomArg,
        /// attach to console after creation
        #[arg(long)]
        console: bool,
        /// leave the guest paused after creation
        #[arg(long)]
        paused: bool,
    },
    /// gracefully shutdown a domain
    Shutdown {
        #[command(flatten)]
        d: DomArg,
    },
    /// destroy (stop) a domain
    Destroy {
        #[command(flatten)]
        d: DomArg,
        /// terminate gracefully (accepted)
        #[arg(long)]
        graceful: bool,
    },
    /// reboot a domain
    Reboot {
        #[command(flatten)]
        d: DomArg,
    },
    /// reset a domain
    Reset {
        #[command(flatten)]
        d: DomArg,
    },
    /// attach device from an XML file
    #[command(name = "attach-device")]
    AttachDevice {
        #[command(flatten)]
        d: DomArg,
        /// XML file
        file: String,
        #[command(flatten)]
        a: DeviceAffectArgs,
    },
    /// detach device from an XML file
    #[command(name = "detach-device")]
    DetachDevice {
        #[command(flatten)]
        d: DomArg,
        /// XML file
        file: String,
        #[command(flatten)]
        a: DeviceAffectArgs,
    },
    /// attach disk device
    #[command(name = "attach-disk")]
    AttachDisk {
        #[command(flatten)]
        d: DomArg,
        /// source of disk device or name of network disk
        #[arg(allow_hyphen_values = true)]
        source: String,
        /// target of disk device
        target: String,
        /// target bus of disk device
        #[arg(long)]
        targetbus: Option<String>,
        /// driver of disk device
        #[arg(long)]
        driver: Option<String>,
        /// subdriver of disk device
        #[arg(long)]
        subdriver: Option<String>,
        /// IOThread to be used by supported device
        #[arg(long)]
        iothread: Option<String>,
        /// cache mode of disk device
        #[arg(long)]
        cache: Option<String>,
        /// io policy of disk device
        #[arg(long)]
        io: Option<String>,
        /// target device type
        #[arg(long = "type")]
        device: Option<String>,
        /// mode of device reading and writing
        #[arg(long)]
        mode: Option<String>,
        /// mode=shareable
        #[arg(long)]
        shareable: bool,
        /// type of source (block|file|network)
        #[arg(long)]
        sourcetype: Option<String>,
        /// serial of disk device
        #[arg(long)]
        serial: Option<String>,
        /// wwn of disk device
        #[arg(long)]
        wwn: Option<String>,
        /// custom alias name of disk device
        #[arg(long)]
        alias: Option<String>,
        /// needs rawio capability
        #[arg(long)]
        rawio: bool,
        /// print XML document rather than attach the disk
        #[arg(long = "print-xml")]
        print_xml: bool,
        #[command(flatten)]
        a: DeviceAffectArgs,
    },
    /// detach disk device
    #[command(name = "detach-disk")]
    DetachDisk {
        #[command(flatten)]
        d: DomArg,
        /// target of disk device
        target: String,
        /// print XML document rather than detach the disk
        #[arg(long = "print-xml")]
        print_xml: bool,
        #[command(flatten)]
        a: DeviceAffectArgs,
    },
    /// attach network interface
    #[command(name = "attach-interface")]
    AttachInterface {
        #[command(flatten)]
        d: DomArg,
        /// network interface type
        #[arg(value_name = "TYPE")]
        kind: String,
        /// source of network interface
        source: String,
        /// target network name
        #[arg(long)]
        target: Option<String>,
        /// MAC address
        #[arg(long)]
        mac: Option<String>,
        /// script used to bridge network interface
        #[arg(long)]
        script: Option<String>,
        /// model type
        #[arg(long)]
        model: Option<String>,
        /// custom alias name of interface device
        #[arg(long)]
        alias: Option<String>,
        /// control domain's incoming traffics
        #[arg(long)]
        inbound: Option<String>,
        /// control domain's outgoing traffics
        #[arg(long)]
        outbound: Option<String>,
        /// print XML document rather than attach the interface
        #[arg(long = "print-xml")]
        print_xml: bool,
        /// libvirt will automatically detach/attach the device from/to host
        #[arg(long)]
        managed: bool,
        /// mode attribute of <source/> element
        #[arg(long = "source-mode")]
        source_mode: Option<String>,
        #[command(flatten)]
        a: DeviceAffectArgs,
    },
    /// detach network interface
    #[command(name = "detach-interface")]
    DetachInterface {
        #[command(flatten)]
        d: DomArg,
        /// network interface type
        #[arg(value_name = "TYPE")]
        kind: String,
        /// MAC address
        #[arg(long)]
        mac: Option<String>,
        /// print XML document rather than detach the interface
        #[arg(long = "print-xml")]
        print_xml: bool,
        #[command(flatten)]
        a: DeviceAffectArgs,
    },
    /// Resize block device of domain.
    Blockresize {
        #[command(flatten)]
        d: DomArg,
        /// Fully-qualified path of block device
        path: String,
        /// New size of the block device, as scaled integer (default KiB)
        size: String,
    },
    /// save a domain state to a file
    Save {
        #[command(flatten)]
        d: DomArg,
        /// where to save the data
        file: String,
        /// avoid file system cache when saving
        #[arg(long = "bypass-cache")]
        bypass_cache: bool,
        /// filename containing updated XML for the target
        #[arg(long)]
        xml: Option<String>,
        /// set domain to be running on restore
        #[arg(long)]
        running: bool,
        /// set domain to be paused on restore
        #[arg(long)]
        paused: bool,
        /// display the progress of save (accepted)
        #[arg(long)]
        verbose: bool,
    },
    /// restore a domain from a saved state in a file
    Restore {
        /// the state to restore
        file: String,
        /// avoid file system cache when restoring
        #[arg(long = "bypass-cache")]
        bypass_cache: bool,
        /// filename containing updated XML for the target
        #[arg(long)]
        xml: Option<String>,
        /// restore domain into running state
        #[arg(long)]
        running: bool,
        /// restore domain into paused state
        #[arg(long)]
        paused: bool,
    },
    #[command(flatten)]
    Snapshot(SnapshotCmd),
    /// managed save of a domain state
    Managedsave {
        #[command(flatten)]
        d: DomArg,
        /// avoid file system cache when saving
        #[arg(long = "bypass-cache")]
        bypass_cache: bool,
        /// set domain to be running on next start
        #[arg(long)]
        running: bool,
        /// set domain to be paused on next start
        #[arg(long)]
        paused: bool,
        /// display the progress of save (accepted)
        #[arg(long)]
        verbose: bool,
    },
    /// Remove managed save of a domain
    #[command(name = "managedsave-remove")]
    ManagedsaveRemove {
        #[command(flatten)]
        d: DomArg,
    },
    /// saved state domain information in XML
    #[command(name = "save-image-dumpxml")]
    SaveImageDumpxml {
        /// saved state file to read
        file: String,
        /// include security sensitive information in XML dump
        #[arg(long = "security-info")]
        security_info: bool,
    },
    /// redefine the XML for a domain's saved state file
    #[command(name = "save-image-define")]
    SaveImageDefine {
        /// saved state file to modify
        file: String,
        /// filename containing updated XML for the target
        xml: String,
        /// set domain to be running on restore
        #[arg(long)]
        running: bool,
        /// set domain to be paused on restore
        #[arg(long)]
        paused: bool,
    },
    /// suspend a domain
    Suspend {
        #[command(flatten)]
        d: DomArg,
    },
    /// resume a domain
    Resume {
        #[command(flatten)]
        d: DomArg,
    },
    /// domain information
    Dominfo {
        #[command(flatten)]
        d: DomArg,
    },
    /// domain state
    Domstate {
        #[command(flatten)]
        d: DomArg,
        /// also print reason for the state
        #[arg(long)]
        reason: bool,
    },
    /// convert a domain name or UUID to domain id
    Domid {
        #[command(flatten)]
        d: DomArg,
    },
    /// convert a domain id or UUID to domain name
    Domname {
        #[command(flatten)]
        d: DomArg,
    },
    /// convert a domain name or id to domain UUID
    Domuuid {
        #[command(flatten)]
        d: DomArg,
    },
    /// domain information in XML
    Dumpxml {
        #[command(flatten)]
        d: DomArg,
        /// show inactive defined XML
        #[arg(long)]
        inactive: bool,
        /// include security sensitive information in XML dump
        #[arg(long = "security-info")]
        security_info: bool,
        /// xpath expression to filter the XML document
        #[arg(long, value_name = "EXPR")]
        xpath: Option<String>,
        /// wrap xpath results in an common root element
        #[arg(long)]
        wrap: bool,
    },
    /// edit XML configuration for a domain
    Edit {
        #[command(flatten)]
        d: DomArg,
    },
    /// autostart a domain
    Autostart {
        #[command(flatten)]
        d: DomArg,
        /// disable autostarting
        #[arg(long)]
        disable: bool,
    },
    /// list all domain blocks
    Domblklist {
        #[command(flatten)]
        d: DomArg,
        /// get inactive rather than running configuration
        #[arg(long)]
        inactive: bool,
        /// additionally display the type and device value
        #[arg(long)]
        details: bool,
    },
    /// get device block stats for a domain
    Domblkstat {
        #[command(flatten)]
        d: DomArg,
        /// block device
        device: Option<String>,
        /// block device (named form)
        #[arg(long = "device", value_name = "DEVICE", conflicts_with = "device")]
        device_opt: Option<String>,
        /// print a legend with each statistic
        #[arg(long)]
        human: bool,
    },
    /// list all domain virtual interfaces
    Domiflist {
        #[command(flatten)]
        d: DomArg,
        /// get inactive rather than running configuration
        #[arg(long)]
        inactive: bool,
    },
    /// get network interface stats for a domain
    Domifstat {
        #[command(flatten)]
        d: DomArg,
        /// interface device specified by name or MAC Address
        #[arg(required_unless_present = "interface_opt")]
        interface: Option<String>,
        /// interface device (named form)
        #[arg(
            long = "interface",
            value_name = "INTERFACE",
            conflicts_with = "interface"
        )]
        interface_opt: Option<String>,
    },
    /// get memory statistics for a domain
    Dommemstat {
        #[command(flatten)]
        d: DomArg,
    },
    /// domain vcpu counts
    Vcpucount {
        #[command(flatten)]
        d: DomArg,
        /// get maximum count of vcpus
        #[arg(long)]
        maximum: bool,
        /// get number of currently active vcpus
        #[arg(long)]
        active: bool,
        /// get value from running domain
        #[arg(long)]
        live: bool,
        /// get value to be used on next boot
        #[arg(long)]
        config: bool,
        /// get value according to current domain state
        #[arg(long)]
        current: bool,
        /// retrieve vcpu count from the guest instead of the hypervisor
        #[arg(long)]
        guest: bool,
    },
    /// detailed domain vcpu information
    Vcpuinfo {
        #[command(flatten)]
        d: DomArg,
    },
    /// change memory allocation
    Setmem {
        #[command(flatten)]
        d: DomArg,
        /// new memory size, as scaled integer (default KiB)
        size: String,
        /// affect next boot
        #[arg(long)]
        config: bool,
        /// affect running domain
        #[arg(long)]
        live: bool,
        /// affect current domain
        #[arg(long)]
        current: bool,
    },
    /// change number of virtual CPUs
    Setvcpus {
        #[command(flatten)]
        d: DomArg,
        /// number of virtual CPUs
        count: String,
        /// set maximum limit on next boot
        #[arg(long)]
        maximum: bool,
        /// affect next boot
        #[arg(long)]
        config: bool,
        /// affect running domain
        #[arg(long)]
        live: bool,
        /// affect current domain
        #[arg(long)]
        current: bool,
        /// modify cpu state in the guest
        #[arg(long)]
        guest: bool,
        /// make added vcpus hot(un)pluggable
        #[arg(long)]
        hotpluggable: bool,
    },
    /// connect to the guest console
    Console {
        #[command(flatten)]
        d: DomArg,
        /// character device name
        #[arg(long)]
        devname: Option<String>,
        /// force console connection (disconnect already connected sessions)
        #[arg(long)]
        force: bool,
        /// only connect if safe console handling is supported
        #[arg(long)]
        safe: bool,
    },
    /// take a screenshot of a current domain console and store it into a file
    Screenshot {
        #[command(flatten)]
        d: DomArg,
        /// where to store the screenshot
        #[arg(value_name = "FILE")]
        file: Option<String>,
        /// ID of a screen to take screenshot of
        #[arg(long, value_name = "NUMBER", allow_hyphen_values = true)]
        screen: Option<String>,
    },
    /// Send keycodes to the guest
    SendKey {
        #[command(flatten)]
        d: DomArg,
        /// the codeset of keycodes, default:linux
        #[arg(long, value_name = "STRING")]
        codeset: Option<String>,
        /// the time (in milliseconds) how long the keys will be held
        #[arg(long, value_name = "NUMBER", allow_hyphen_values = true)]
        holdtime: Option<String>,
        /// the key code
        #[arg(value_name = "KEYCODE", required = true, num_args = 1.., allow_hyphen_values = true)]
        keycode: Vec<String>,
    },
    /// domain display connection URI
    Domdisplay {
        #[command(flatten)]
        d: DomArg,
        /// includes the password into the connection URI if available
        #[arg(long)]
        include_password: bool,
        /// select particular graphical display (e.g. "vnc", "spice", "rdp", "dbus")
        #[arg(long = "type", value_name = "STRING")]
        kind: Option<String>,
        /// show all possible graphical displays
        #[arg(long)]
        all: bool,
    },
    /// vnc display
    Vncdisplay {
        #[command(flatten)]
        d: DomArg,
    },
    /// Domain Events
    Event(events::EventArgs),
    /// enumerate devices on this host
    NodedevList(nodedev::NodedevListArgs),
    /// node device details in XML
    NodedevDumpxml {
        /// device name or wwn pair in 'wwnn,wwpn' format
        device: String,
    },
    /// list physical host interfaces
    IfaceList {
        /// list inactive interfaces
        #[arg(long)]
        inactive: bool,
        /// list inactive & active interfaces
        #[arg(long)]
        all: bool,
    },
    /// interface information in XML
    IfaceDumpxml {
        /// interface name or MAC address
        #[arg(value_name = "INTERFACE")]
        interface: String,
        /// show inactive defined XML
        #[arg(long)]
        inactive: bool,
    },
    /// list networks
    NetList(network::NetListArgs),
    /// network information
    NetInfo {
        #[command(flatten)]
        n: NetArg,
    },
    /// network information in XML
    NetDumpxml {
        #[command(flatten)]
        n: NetArg,
        /// show inactive defined XML
        #[arg(long)]
        inactive: bool,
    },
    /// define an inactive persistent virtual network or modify an existing persistent one from an XML file
    NetDefine {
        /// file containing an XML network description
        file: String,
    },
    /// create a network from an XML file
    NetCreate {
        /// file containing an XML network description
        file: String,
    },
    /// start a (previously defined) inactive network
    NetStart {
        #[command(flatten)]
        n: NetArg,
    },
    /// destroy (stop) a network
    NetDestroy {
        #[command(flatten)]
        n: NetArg,
    },
    /// undefine a persistent network
    NetUndefine {
        #[command(flatten)]
        n: NetArg,
    },
    /// autostart a network
    NetAutostart {
        #[command(flatten)]
        n: NetArg,
        /// disable autostarting
        #[arg(long)]
        disable: bool,
    },
    /// convert a network name to network UUID
    NetUuid {
        #[command(flatten)]
        n: NetArg,
    },
    /// convert a network UUID to network name
    NetName {
        #[command(flatten)]
        n: NetArg,
    },
    /// update parts of an existing network's configuration
    NetUpdate(network::NetUpdateArgs),
    /// print lease info for a given network
    NetDhcpLeases {
        #[command(flatten)]
        n: NetArg,
        /// MAC address
        #[arg(long)]
        mac: Option<String>,
    },
    /// list pools
    PoolList(pool::PoolListArgs),
    /// storage pool information
    PoolInfo {
        #[command(flatten)]
        p: PoolArg,
        /// Reture pool info in bytes
        #[arg(long)]
        bytes: bool,
    },
    /// pool information in XML
    PoolDumpxml {
        #[command(flatten)]
        p: PoolArg,
        /// show inactive defined XML
        #[arg(long)]
        inactive: bool,
    },
    /// define an inactive persistent storage pool or modify an existing persistent one from an XML file
    PoolDefine {
        /// file containing an XML pool description
        file: String,
    },
    /// define a pool from a set of args
    PoolDefineAs(pool::PoolAsArgs),
    /// create a pool from an XML file
    PoolCreate {
        /// file containing an XML pool description
        file: String,
        #[command(flatten)]
        b: pool::BuildArgs,
    },
    /// create a pool from a set of args
    PoolCreateAs {
        #[command(flatten)]
        a: pool::PoolAsArgs,
        #[command(flatten)]
        b: pool::BuildArgs,
    },
    /// build a pool
    PoolBuild {
        #[command(flatten)]
        p: PoolArg,
        /// do not overwrite any existing data
        #[arg(long = "no-overwrite")]
        no_overwrite: bool,
        /// overwrite any existing data
        #[arg(long)]
        overwrite: bool,
    },
    /// start a (previously defined) inactive pool
    PoolStart {
        #[command(flatten)]
        p: PoolArg,
        #[command(flatten)]
        b: pool::BuildArgs,
    },
    /// destroy (stop) a pool
    PoolDestroy {
        #[command(flatten)]
        p: PoolArg,
    },
    /// delete a pool
    PoolDelete {
        #[command(flatten)]
        p: PoolArg,
    },
    /// undefine an inactive pool
    PoolUndefine {
        #[command(flatten)]
        p: PoolArg,
    },
    /// refresh a pool
    PoolRefresh {
        #[command(flatten)]
        p: PoolArg,
    },
    /// autostart a pool
    PoolAutostart {
        #[command(flatten)]
        p: PoolArg,
        /// disable autostarting
        #[arg(long)]
        disable: bool,
    },
    /// convert a pool name to pool UUID
    PoolUuid {
        #[command(flatten)]
        p: PoolArg,
    },
    /// convert a pool UUID to pool name
    PoolName {
        #[command(flatten)]
        p: PoolArg,
    },
    /// list vols
    VolList {
        #[command(flatten)]
        p: PoolArg,
        /// display extended details for volumes
        #[arg(long)]
        details: bool,
    },
    /// storage vol information
    VolInfo {
        #[command(flatten)]
        v: VolArg,
        /// pool name or uuid
        #[arg(long, value_name = "POOL")]
        pool: Option<String>,
        /// sizes are represented in bytes rather than pretty units
        #[arg(long)]
        bytes: bool,
        /// return the physical size of the volume in allocation field
        #[arg(long)]
        physical: bool,
    },
    /// vol information in XML
    VolDumpxml {
        #[command(flatten)]
        v: VolArg,
        /// pool name or uuid
        #[arg(long, value_name = "POOL")]
        pool: Option<String>,
    },
    /// create a vol from an XML file
    VolCreate {
        #[command(flatten)]
        p: PoolArg,
        /// file containing an XML vol description
        file: String,
        /// preallocate metadata (for qcow2 instead of full allocation)
        #[arg(long = "prealloc-metadata")]
        prealloc_metadata: bool,
    },
    /// create a volume from a set of args
    VolCreateAs(volume::VolCreateAsArgs),
    /// clone a volume.
    #[command(about = "clone a volume.")]
    VolClone {
        #[command(flatten)]
        v: VolArg,
        /// clone name
        #[arg(value_name = "NEWNAME")]
        newname: String,
        /// pool name or uuid
        #[arg(long, value_name = "POOL")]
        pool: Option<String>,
        /// preallocate metadata (for qcow2 instead of full allocation)
        #[arg(long = "prealloc-metadata")]
        prealloc_metadata: bool,
        /// use btrfs COW lightweight copy
        #[arg(long)]
        reflink: bool,
    },
    /// delete a vol
    VolDelete {
        #[command(flatten)]
        v: VolArg,
        /// pool name or uuid
        #[arg(long, value_name = "POOL")]
        pool: Option<String>,
        /// delete snapshots associated with volume (must be supported by storage driver)
        #[arg(long = "delete-snapshots")]
        delete_snapshots: bool,
    },
    /// wipe a vol
    VolWipe {
        #[command(flatten)]
        v: VolArg,
        /// pool name or uuid
        #[arg(long, value_name = "POOL")]
        pool: Option<String>,
        /// perform selected wiping algorithm
        #[arg(long, value_name = "ALGORITHM")]
        algorithm: Option<String>,
    },
    /// resize a vol
    VolResize(volume::VolResizeArgs),
    /// returns the volume path for a given volume name or key
    VolPath {
        #[command(flatten)]
        v: VolArg,
        /// pool name or uuid
        #[arg(long, value_name = "POOL")]
        pool: Option<String>,
    },
    /// returns the volume key for a given volume name or path
    VolKey {
        #[command(flatten)]
        v: VolArg,
        /// pool name or uuid
        #[arg(long, value_name = "POOL")]
        pool: Option<String>,
    },
    /// returns the volume name for a given volume key or path
    VolName {
        #[command(flatten)]
        v: VolArg,
    },
    /// returns the storage pool for a given volume key or path
    VolPool {
        #[command(flatten)]
        v: VolArg,
        /// return the pool uuid rather than pool name
        #[arg(long)]
        uuid: bool,
    },
    /// node information
    Nodeinfo,
    /// capabilities
    Capabilities,
    /// show version
    Version,
    /// print the hypervisor canonical URI
    Uri,
    /// print the hypervisor hostname
    Hostname,
    /// print the hypervisor sysinfo
    Sysinfo,
    /// print help
    Help {
        /// command
        command: Option<String>,
    },
    /// quit this interactive terminal
    Quit,
    /// quit this interactive terminal
    Exit,
    /// shell completion script for bash, zsh or fish
    #[command(hide = true)]
    Completions { shell: clap_complete::Shell },
    /// the manual page (roff)
    #[command(hide = true)]
    Manpage,
}

/// What running one command asks of the caller.
pub enum Flow {
    Continue,
    Quit,
}

/// Moves `--domain X` and `--file X` (virsh's named form of the main
/// argument) to the positional place after the command name.
pub fn normalize_args(args: Vec<String>) -> Vec<String> {
    let Some(cmd_at) = args
        .iter()
        .enumerate()
        .skip(1)
        .find(|(i, a)| {
            !a.starts_with('-')
                && !matches!(
                    args.get(i - 1).map(String::as_str),
                    Some("-c" | "--connect" | "--bus-address")
                )
        })
        .map(|(i, _)| i)
    else {
        return args;
    };
    if let Some((_, data)) = DATA_OPTIONS.iter().find(|(c, _)| *c == args[cmd_at]) {
        return lift_data_options(&args, cmd_at, data);
    }
    let mut head: Vec<String> = args[..=cmd_at].to_vec();
    let mut rest: Vec<String> = Vec::new();
    let mut lifted: Vec<String> = Vec::new();
    let mut it = args[cmd_at + 1..].iter().cloned();
    let is_event = args[cmd_at] == "event";
    while let Some(a) = it.next() {
        if let Some(v) = a
            .strip_prefix("--domain=")
            .or_else(|| a.strip_prefix("--file="))
            && !is_event
        {
            lifted.push(v.to_string());
        } else if (a == "--domain" || a == "--file") && !is_event {
            if let Some(v) = it.next() {
                lifted.push(v);
            }
        } else {
            rest.push(a);
        }
    }
    head.extend(lifted);
    head.extend(rest);
    head
}

/// The positional arguments of the storage commands, in virsh's order;
/// virsh takes each of them as `--<name> value` too.
const DATA_OPTIONS: &[(&str, &[&str])] = &[
    ("iface-dumpxml", &["interface"]),
    ("net-info", &["network"]),
    ("net-dumpxml", &["network"]),
    ("net-define", &["file"]),
    ("net-create", &["file"]),
    ("net-start", &["network"]),
    ("net-destroy", &["network"]),
    ("net-undefine", &["network"]),
    ("net-autostart", &["network"]),
    ("net-uuid", &["network"]),
    ("net-name", &["network"]),
    ("net-update", &["network", "command", "section", "xml"]),
    ("net-dhcp-leases", &["network"]),
    ("pool-info", &["pool"]),
    ("pool-dumpxml", &["pool"]),
    ("pool-define", &["file"]),
    ("pool-define-as", &["name", "type"]),
    ("pool-create", &["file"]),
    ("pool-create-as", &["name", "type"]),
    ("pool-build", &["pool"]),
    ("pool-start", &["pool"]),
    ("pool-destroy", &["pool"]),
    ("pool-delete", &["pool"]),
    ("pool-undefine", &["pool"]),
    ("pool-refresh", &["pool"]),
    ("pool-autostart", &["pool"]),
    ("pool-uuid", &["pool"]),
    ("pool-name", &["pool"]),
    ("vol-list", &["pool"]),
    ("vol-info", &["vol"]),
    ("vol-dumpxml", &["vol"]),
    ("vol-create", &["pool", "file"]),
    ("vol-create-as", &["pool", "name", "capacity"]),
    ("vol-clone", &["vol", "newname"]),
    ("vol-delete", &["vol"]),
    ("vol-wipe", &["vol"]),
    ("vol-resize", &["vol", "capacity"]),
    ("vol-path", &["vol"]),
    ("vol-key", &["vol"]),
    ("vol-name", &["vol"]),
    ("vol-pool", &["vol"]),
];

/// Puts the positional arguments `data` of the command at `cmd_at` in
/// their places, whether given bare or as `--<name> value`: named ones
/// where they belong, bare ones filling the rest in order. Every other
/// argument follows, unchanged.
fn lift_data_options(args: &[String], cmd_at: usize, data: &[&str]) -> Vec<String> {
    let cli = Cli::command();
    let sub = cli.find_subcommand(&args[cmd_at]);
    let takes_value = |long: &str| {
        matches!(long, "connect" | "bus-address")
            || sub
                .and_then(|s| s.get_arguments().find(|a| a.get_long() == Some(long)))
                .is_some_and(|a| a.get_action().takes_values())
    };
    let mut named: Vec<(&str, String)> = Vec::new();
    let mut bare: std::collections::VecDeque<String> = std::collections::VecDeque::new();
    let mut other: Vec<String> = Vec::new();
    let mut it = args[cmd_at + 1..].iter().cloned();
    while let Some(a) = it.next() {
        if a == "--" {
            bare.extend(it.by_ref());
            break;
        }
        if let Some(long) = a.strip_prefix("--") {
            let (key, value) = match long.split_once('=') {
                Some((k, v)) => (k, Some(v.to_string())),
                None => (long, None),
            };
            if let Some(d) = data.iter().find(|d| **d == key) {
                if let Some(v) = value.or_else(|| it.next()) {
                    named.push((d, v));
                }
                continue;
            }
            let wants = value.is_none() && takes_value(key);
            other.push(a.clone());
            if wants && let Some(v) = it.next() {
                other.push(v);
            }
            continue;
        }
        let negative_number = a.len() > 1 && a[1..].starts_with(|c: char| c.is_ascii_digit());
        if a.starts_with('-') && a.len() > 1 && !negative_number {
            let wants = a == "-c";
            other.push(a);
            if wants && let Some(v) = it.next() {
                other.push(v);
            }
            continue;
        }
        bare.push_back(a);
    }
    let mut out: Vec<String> = args[..=cmd_at].to_vec();
    for d in data {
        match named.iter().position(|(n, _)| n == d) {
            Some(i) => out.push(named.remove(i).1),
            None => {
                if let Some(v) = bare.pop_front() {
                    out.push(v);
                }
            }
        }
    }
    out.extend(bare);
    out.extend(other);
    out
}

/// The connection, opened on first use.
pub struct Session {
    choice: Option<BusChoice>,
    uri: String,
    bus: Option<Bus>,
    pub quiet: bool,
}

impl Session {
    pub fn new(cli: &Cli) -> Session {
        let choice = if let Some(a) = &cli.bus_address {
            Some(BusChoice::Address(a.clone()))
        } else if cli.session {
            Some(BusChoice::Session)
        } else if cli.system {
            Some(BusChoice::System)
        } else {
            None
        };
        let uri = cli
            .connect
            .clone()
            .or_else(|| std::env::var("LIBVIRT_DEFAULT_URI").ok())
            .filter(|u| !u.is_empty())
            .unwrap_or_else(|| DEFAULT_URI.to_string());
        Session {
            choice,
            uri,
            bus: None,
            quiet: cli.quiet,
        }
    }

    pub fn bus(&mut self) -> Result<&Bus> {
        if self.bus.is_none() {
            self.bus = Some(Bus::open(self.choice.clone(), &self.uri)?);
        }
        self.bus
            .as_ref()
            .ok_or_else(|| CliError::msg("no connection"))
    }
}

/// Runs one command; its output (without virsh's trailing blank line).
pub fn run(s: &mut Session, cmd: &Cmd) -> Result<(String, Flow)> {
    let out = match cmd {
        Cmd::List(a) => domain_list::list(s.bus()?, a)?,
        Cmd::Define { file, .. } => lc::define(s.bus()?, file)?,
        Cmd::Undefine {
            d,
            remove_all_storage,
            managed_save,
            ..
        } => lc::undefine(s.bus()?, &d.domain, *remove_all_storage, *managed_save)?,
        Cmd::Create {
            file,
            console: con,
            paused,
        } => {
            let bus = s.bus()?;
            let (msg, dom) = lc::create(bus, file, *paused)?;
            if *con {
                say!("{msg}");
                console::console(bus, &dom.name, None, false, false)?;
                String::new()
            } else {
                msg
            }
        }
        Cmd::Start {
            d,
            console: con,
            paused,
        } => {
            let bus = s.bus()?;
            let (msg, dom) = lc::start(bus, &d.domain, *paused)?;
            if *con {
                say!("{msg}");
                console::console(bus, &dom.name, None, false, false)?;
                String::new()
            } else {
                msg
            }
        }
        Cmd::Shutdown { d } => lc::simple(s.bus()?, &d.domain, &lc::SHUTDOWN)?,
        Cmd::Destroy { d, .. } => lc::simple(s.bus()?, &d.domain, &lc::DESTROY)?,
        Cmd::Reboot { d } => lc::simple(s.bus()?, &d.domain, &lc::REBOOT)?,
        Cmd::Reset { d } => lc::simple(s.bus()?, &d.domain, &lc::RESET)?,
        Cmd::AttachDevice { d, file, a } => {
            domain_device::attach_device(s.bus()?, &d.domain, file, a.affect())?
        }
        Cmd::DetachDevice { d, file, a } => {
            domain_device::detach_device(s.bus()?, &d.domain, file, a.affect())?
        }
        Cmd::AttachDisk {
            d,
            source,
            target,
            targetbus,
            driver,
            subdriver,
            iothread,
            cache,
            io,
            device,
            mode,
            shareable,
            sourcetype,
            serial,
            wwn,
            alias,
            rawio,
            print_xml,
            a,
        } => {
            let spec = domain_device::DiskSpec {
                source: source.clone(),
                target: target.clone(),
                targetbus: targetbus.clone(),
                driver: driver.clone(),
                subdriver: subdriver.clone(),
                iothread: iothread.clone(),
                cache: cache.clone(),
                io: io.clone(),
                device: device.clone(),
                mode: mode
                    .clone()
                    .or_else(|| shareable.then(|| "shareable".to_string())),
                sourcetype: sourcetype.clone(),
                serial: serial.clone(),
                wwn: wwn.clone(),
                alias: alias.clone(),
                rawio: *rawio,
            };
            domain_device::attach_disk(s.bus()?, &d.domain, &spec, a.affect(), *print_xml)?
        }
        Cmd::DetachDisk {
            d,
            target,
            print_xml,
            a,
        } => domain_device::detach_disk(s.bus()?, &d.domain, target, a.affect(), *print_xml)?,
        Cmd::AttachInterface {
            d,
            kind,
            source,
            target,
            mac,
            script,
            model,
            alias,
            inbound,
            outbound,
            print_xml,
            managed,
            source_mode,
            a,
        } => {
            let spec = domain_device::InterfaceSpec {
                kind: kind.clone(),
                source: source.clone(),
                target: target.clone(),
                mac: mac.clone(),
                script: script.clone(),
                model: model.clone(),
                alias: alias.clone(),
                inbound: inbound.clone(),
                outbound: outbound.clone(),
                managed: *managed,
                source_mode: source_mode.clone(),
            };
            domain_device::attach_interface(s.bus()?, &d.domain, &spec, a.affect(), *print_xml)?
        }
        Cmd::DetachInterface {
            d,
            kind,
            mac,
            print_xml,
            a,
        } => domain_device::detach_interface(
            s.bus()?,
            &d.domain,
            kind,
            mac.as_deref(),
            a.affect(),
            *print_xml,
        )?,
        Cmd::Blockresize { d, path, size } => {
            domain_device::blockresize(s.bus()?, &d.domain, path, size)?
        }
        Cmd::Save {
            d,
            file,
            bypass_cache,
            xml,
            running,
            paused,
            ..
        } => {
            let f = domain_save::SaveFlags {
                bypass_cache: *bypass_cache,
                running: *running,
                paused: *paused,
            };
            domain_save::save(s.bus()?, &d.domain, file, xml.as_deref(), f)?
        }
        Cmd::Restore {
            file,
            bypass_cache,
            xml,
            running,
            paused,
        } => {
            let f = domain_save::SaveFlags {
                bypass_cache: *bypass_cache,
                running: *running,
                paused: *paused,
            };
            domain_save::restore(s.bus()?, file, xml.as_deref(), f)?
        }
        Cmd::Snapshot(c) => run_snapshot(s.bus()?, c)?,
        Cmd::Managedsave {
            d,
            bypass_cache,
            running,
            paused,
            ..
        } => {
            let f = domain_save::SaveFlags {
                bypass_cache: *bypass_cache,
                running: *running,
                paused: *paused,
            };
            domain_save::managedsave(s.bus()?, &d.domain, f)?
        }
        Cmd::ManagedsaveRemove { d } => domain_save::managedsave_remove(s.bus()?, &d.domain)?,
        Cmd::SaveImageDumpxml {
            file,
            security_info,
        } => domain_save::save_image_dumpxml(s.bus()?, file, *security_info)?,
        Cmd::SaveImageDefine {
            file,
            xml,
            running,
            paused,
        } => {
            let f = domain_save::SaveFlags {
                bypass_cache: false,
                running: *running,
                paused: *paused,
            };
            domain_save::save_image_define(s.bus()?, file, xml, f)?
        }
        Cmd::Suspend { d } => lc::simple(s.bus()?, &d.domain, &lc::SUSPEND)?,
        Cmd::Resume { d } => lc::simple(s.bus()?, &d.domain, &lc::RESUME)?,
        Cmd::Dominfo { d } => domain_info::dominfo(s.bus()?, &d.domain)?,
        Cmd::Domstate { d, reason } => domain_info::domstate(s.bus()?, &d.domain, *reason)?,
        Cmd::Domid { d } => domain_info::domid(s.bus()?, &d.domain)?,
        Cmd::Domname { d } => domain_info::domname(s.bus()?, &d.domain)?,
        Cmd::Domuuid { d } => domain_info::domuuid(s.bus()?, &d.domain)?,
        Cmd::Dumpxml {
            d,
            inactive,
            security_info,
            xpath,
            wrap,
        } => domain_info::dumpxml(
            s.bus()?,
            &d.domain,
            *inactive,
            *security_info,
            xpath.as_deref(),
            *wrap,
        )?,
        Cmd::Edit { d } => edit::edit(s.bus()?, &d.domain)?,
        Cmd::Autostart { d, disable } => lc::autostart(s.bus()?, &d.domain, *disable)?,
        Cmd::Domblklist {
            d,
            inactive,
            details,
        } => domain_stats::domblklist(s.bus()?, &d.domain, *inactive, *details)?,
        Cmd::Domblkstat {
            d,
            device,
            device_opt,
            human,
        } => domain_stats::domblkstat(
            s.bus()?,
            &d.domain,
            device.as_deref().or(device_opt.as_deref()),
            *human,
        )?,
        Cmd::Domiflist { d, inactive } => domain_stats::domiflist(s.bus()?, &d.domain, *inactive)?,
        Cmd::Domifstat {
            d,
            interface,
            interface_opt,
        } => domain_stats::domifstat(
            s.bus()?,
            &d.domain,
            interface
                .as_deref()
                .or(interface_opt.as_deref())
                .unwrap_or(""),
        )?,
        Cmd::Dommemstat { d } => domain_stats::dommemstat(s.bus()?, &d.domain)?,
        Cmd::Vcpucount {
            d,
            maximum,
            active,
            live,
            config,
            current,
            guest,
        } => {
            let q = domain_info::VcpuCountQuery {
                maximum: *maximum,
                active: *active,
                live: *live,
                config: *config,
                current: *current,
                guest: *guest,
            };
            domain_info::vcpucount(s.bus()?, &d.domain, &q)?
        }
        Cmd::Vcpuinfo { d } => domain_stats::vcpuinfo(s.bus()?, &d.domain)?,
        Cmd::Setmem {
            d,
            size,
            config,
            live,
            current,
        } => {
            let f = lc::affect(*config, *live, *current)?;
            lc::setmem(s.bus()?, &d.domain, size, f)?
        }
        Cmd::Setvcpus {
            d,
            count,
            maximum,
            config,
            live,
            current,
            guest,
            hotpluggable,
        } => {
            let opts = lc::VcpuOpts {
                maximum: *maximum,
                config: *config,
                live: *live,
                current: *current,
                guest: *guest,
                hotpluggable: *hotpluggable,
            };
            lc::setvcpus(s.bus()?, &d.domain, count, &opts)?
        }
        Cmd::Console {
            d,
            devname,
            force,
            safe,
        } => {
            console::console(s.bus()?, &d.domain, devname.as_deref(), *force, *safe)?;
            String::new()
        }
        Cmd::Screenshot { d, file, screen } => {
            let msg = display::screenshot(s.bus()?, &d.domain, file.as_deref(), screen.as_deref())?;
            // virsh prints it as an "extra" message, which --quiet drops.
            if s.quiet { String::new() } else { msg }
        }
        Cmd::SendKey {
            d,
            codeset,
            holdtime,
            keycode,
        } => display::send_key(
            s.bus()?,
            &d.domain,
            codeset.as_deref(),
            holdtime.as_deref(),
            keycode,
        )?,
        Cmd::Domdisplay {
            d,
            include_password,
            kind,
            all,
        } => display::domdisplay(
            s.bus()?,
            &d.domain,
            *include_password,
            kind.as_deref(),
            *all,
        )?,
        Cmd::Vncdisplay { d } => display::vncdisplay(s.bus()?, &d.domain)?,
        Cmd::Event(a) => {
            events::event(s.bus()?, a)?;
            String::new()
        }
        Cmd::NodedevList(a) => nodedev::nodedev_list(s.bus()?, a)?,
        Cmd::NodedevDumpxml { device } => nodedev::nodedev_dumpxml(s.bus()?, device)?,
        Cmd::IfaceList { inactive, all } => network::iface_list(s.bus()?, *inactive, *all)?,
        Cmd::IfaceDumpxml {
            interface,
            inactive,
        } => network::iface_dumpxml(s.bus()?, interface, *inactive)?,
        Cmd::NetList(a) => network::net_list(s.bus()?, a)?,
        Cmd::NetInfo { n } => network::net_info(s.bus()?, &n.network)?,
        Cmd::NetDumpxml { n, inactive } => network::net_dumpxml(s.bus()?, &n.network, *inactive)?,
        Cmd::NetDefine { file } => network::net_define(s.bus()?, file)?,
        Cmd::NetCreate { file } => network::net_create(s.bus()?, file)?,
        Cmd::NetStart { n } => network::simple(s.bus()?, &n.network, &network::START)?,
        Cmd::NetDestroy { n } => network::simple(s.bus()?, &n.network, &network::DESTROY)?,
        Cmd::NetUndefine { n } => network::simple(s.bus()?, &n.network, &network::UNDEFINE)?,
        Cmd::NetAutostart { n, disable } => network::net_autostart(s.bus()?, &n.network, *disable)?,
        Cmd::NetUuid { n } => network::net_uuid(s.bus()?, &n.network)?,
        Cmd::NetName { n } => network::net_name(s.bus()?, &n.network)?,
        Cmd::NetUpdate(a) => network::net_update(s.bus()?, a)?,
        Cmd::NetDhcpLeases { n, mac } => {
            network::net_dhcp_leases(s.bus()?, &n.network, mac.as_deref())?
        }
        Cmd::PoolList(a) => pool::pool_list(s.bus()?, a)?,
        Cmd::PoolInfo { p, bytes } => pool::pool_info(s.bus()?, &p.pool, *bytes)?,
        Cmd::PoolDumpxml { p, inactive } => pool::pool_dumpxml(s.bus()?, &p.pool, *inactive)?,
        Cmd::PoolDefine { file } => pool::pool_define(s.bus()?, file)?,
        Cmd::PoolDefineAs(a) => pool::pool_define_as(s.bus()?, a)?,
        Cmd::PoolCreate { file, b } => pool::pool_create(s.bus()?, file, b)?,
        Cmd::PoolCreateAs { a, b } => pool::pool_create_as(s.bus()?, a, b)?,
        Cmd::PoolBuild {
            p,
            no_overwrite,
            overwrite,
        } => pool::pool_build(s.bus()?, &p.pool, *overwrite, *no_overwrite)?,
        Cmd::PoolStart { p, b } => pool::pool_start(s.bus()?, &p.pool, b)?,
        Cmd::PoolDestroy { p } => pool::simple(s.bus()?, &p.pool, &pool::DESTROY)?,
        Cmd::PoolDelete { p } => pool::simple(s.bus()?, &p.pool, &pool::DELETE)?,
        Cmd::PoolUndefine { p } => pool::simple(s.bus()?, &p.pool, &pool::UNDEFINE)?,
        Cmd::PoolRefresh { p } => pool::simple(s.bus()?, &p.pool, &pool::REFRESH)?,
        Cmd::PoolAutostart { p, disable } => pool::pool_autostart(s.bus()?, &p.pool, *disable)?,
        Cmd::PoolUuid { p } => pool::pool_uuid(s.bus()?, &p.pool)?,
        Cmd::PoolName { p } => pool::pool_name(s.bus()?, &p.pool)?,
        Cmd::VolList { p, details } => volume::vol_list(s.bus()?, &p.pool, *details)?,
        Cmd::VolInfo {
            v,
            pool,
            bytes,
            physical,
        } => volume::vol_info(s.bus()?, &v.vol, pool.as_deref(), *bytes, *physical)?,
        Cmd::VolDumpxml { v, pool } => volume::vol_dumpxml(s.bus()?, &v.vol, pool.as_deref())?,
        Cmd::VolCreate {
            p,
            file,
            prealloc_metadata,
        } => volume::vol_create(s.bus()?, &p.pool, file, *prealloc_metadata)?,
        Cmd::VolCreateAs(a) => volume::vol_create_as(s.bus()?, a)?,
        Cmd::VolClone {
            v,
            newname,
            pool,
            prealloc_metadata,
            reflink,
        } => volume::vol_clone(
            s.bus()?,
            &v.vol,
            newname,
            pool.as_deref(),
            *prealloc_metadata,
            *reflink,
        )?,
        Cmd::VolDelete {
            v,
            pool,
            delete_snapshots,
        } => volume::vol_delete(s.bus()?, &v.vol, pool.as_deref(), *delete_snapshots)?,
        Cmd::VolWipe { v, pool, algorithm } => {
            volume::vol_wipe(s.bus()?, &v.vol, pool.as_deref(), algorithm.as_deref())?
        }
        Cmd::VolResize(a) => volume::vol_resize(s.bus()?, a)?,
        Cmd::VolPath { v, pool } => volume::vol_path(s.bus()?, &v.vol, pool.as_deref())?,
        Cmd::VolKey { v, pool } => volume::vol_key(s.bus()?, &v.vol, pool.as_deref())?,
        Cmd::VolName { v } => volume::vol_name(s.bus()?, &v.vol)?,
        Cmd::VolPool { v, uuid } => volume::vol_pool(s.bus()?, &v.vol, *uuid)?,
        Cmd::Nodeinfo => host::nodeinfo(s.bus()?)?,
        Cmd::Capabilities => host::capabilities(s.bus()?)?,
        Cmd::Version => host::version(s.bus()?)?,
        Cmd::Uri => format!("{}\n", s.bus()?.uri),
        Cmd::Hostname => host::hostname(s.bus()?)?,
        Cmd::Sysinfo => host::sysinfo(s.bus()?)?,
        Cmd::Help { command } => help::help(command.as_deref())?,
        Cmd::Quit | Cmd::Exit => return Ok((String::new(), Flow::Quit)),
        Cmd::Completions { shell } => {
            let mut c = Cli::command();
            let mut buf = Vec::new();
            clap_complete::generate(*shell, &mut c, "oxvirsh", &mut buf);
            String::from_utf8_lossy(&buf).into_owned()
        }
        Cmd::Manpage => {
            let mut buf = Vec::new();
            clap_mangen::Man::new(Cli::command())
                .render(&mut buf)
                .map_err(|e| CliError::msg(e.to_string()))?;
            String::from_utf8_lossy(&buf).into_owned()
        }
    };
    Ok((out, Flow::Continue))
}

/// Whether virsh's blank line follows the output of `cmd`.
fn trailing_blank(cmd: &Cmd) -> bool {
    !matches!(
        cmd,
        Cmd::Completions { .. } | Cmd::Manpage | Cmd::Quit | Cmd::Exit
    )
}

/// Runs one of the snapshot commands.
fn run_snapshot(bus: &Bus, cmd: &SnapshotCmd) -> Result<String> {
    Ok(match cmd {
        SnapshotCmd::SnapshotCreate { d, xmlfile, f } => {
            domain_snapshot::create(bus, &d.domain, xmlfile.as_deref(), f.flags())?
        }
        SnapshotCmd::SnapshotCreateAs {
            d,
            name,
            description,
            name_arg,
            description_arg,
            print_xml,
            memspec,
            diskspec,
            f,
        } => {
            let a = domain_snapshot::CreateAs {
                name: name.clone().or_else(|| name_arg.clone()),
                description: description.clone().or_else(|| description_arg.clone()),
                print_xml: *print_xml,
                memspec: memspec.clone(),
                diskspec: diskspec.clone(),
            };
            if *print_xml {
                domain_snapshot::create_as_xml(&a)?
            } else {
                domain_snapshot::create_as(bus, &d.domain, &a, f.flags())?
            }
        }
        SnapshotCmd::SnapshotCurrent {
            d,
            name,
            security_info,
            snapshotname,
        } => domain_snapshot::current(
            bus,
            &d.domain,
            *name,
            *security_info,
            snapshotname.as_deref(),
        )?,
        SnapshotCmd::SnapshotDelete {
            d,
            snapshotname,
            current,
            children,
            children_only,
            metadata,
        } => {
            let flags =
                u32::from(*children) | u32::from(*metadata) << 1 | u32::from(*children_only) << 2;
            domain_snapshot::delete(bus, &d.domain, snapshotname.as_deref(), *current, flags)?
        }
        SnapshotCmd::SnapshotDumpxml {
            d,
            snapshotname,
            security_info,
        } => domain_snapshot::dumpxml(bus, &d.domain, snapshotname, *security_info)?,
        SnapshotCmd::SnapshotInfo {
            d,
            snapshotname,
            current,
        } => domain_snapshot::info(bus, &d.domain, snapshotname.as_deref(), *current)?,
        SnapshotCmd::SnapshotList {
            d,
            parent,
            roots,
            leaves,
            no_leaves,
            metadata,
            no_metadata,
            inactive,
            active,
            disk_only,
            internal,
            external,
            tree,
            from,
            current,
            descendants,
            name,
            topological,
        } => {
            let o = domain_snapshot::ListOpts {
                parent: *parent,
                roots: *roots,
                leaves: *leaves,
                no_leaves: *no_leaves,
                metadata: *metadata,
                no_metadata: *no_metadata,
                inactive: *inactive,
                active: *active,
                disk_only: *disk_only,
                internal: *internal,
                external: *external,
                tree: *tree,
                from: from.clone(),
                current: *current,
                descendants: *descendants,
                name: *name,
                topological: *topological,
            };
            domain_snapshot::list(bus, &d.domain, &o)?
        }
        SnapshotCmd::SnapshotParent {
            d,
            snapshotname,
            current,
        } => domain_snapshot::parent(bus, &d.domain, snapshotname.as_deref(), *current)?,
        SnapshotCmd::SnapshotRevert {
            d,
            snapshotname,
            current,
            running,
            paused,
            force,
            reset_nvram,
        } => {
            let flags = u32::from(*running)
                | u32::from(*paused) << 1
                | u32::from(*force) << 2
                | u32::from(*reset_nvram) << 3;
            domain_snapshot::revert(bus, &d.domain, snapshotname.as_deref(), *current, flags)?
        }
    })
}

/// Runs `cmd`, prints its output and errors; whether it succeeded.
pub fn execute(s: &mut Session, cmd: &Cmd) -> (bool, Flow) {
    let (ok, flow) = match run(s, cmd) {
        Ok((out, flow)) => {
            say!("{out}");
            (true, flow)
        }
        Err(e) => {
            let _ = std::io::stdout().flush();
            e.report();
            (false, Flow::Continue)
        }
    };
    if trailing_blank(cmd) && !s.quiet {
        sayln!();
    }
    let _ = std::io::stdout().flush();
    (ok, flow)
}

/// The `oxvirsh` program.
pub fn main() -> ExitCode {
    let args = normalize_args(std::env::args().collect());
    let cli = match Cli::try_parse_from(&args) {
        Ok(c) => c,
        Err(e) => {
            use clap::error::ErrorKind;
            if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) {
                let _ = e.print();
                return ExitCode::SUCCESS;
            }
            esayln!("error: {}", clap_error_text(&e));
            return ExitCode::FAILURE;
        }
    };
    let mut session = Session::new(&cli);
    match &cli.command {
        None => shell::interactive(&mut session),
        Some(cmd) => {
            let (ok, _) = execute(&mut session, cmd);
            if ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
    }
}

/// A clap error worded as virsh words its own parsing errors.
pub fn clap_error_text(e: &clap::Error) -> String {
    let line = first_line(&e.to_string());
    match line.strip_prefix("unrecognized subcommand ") {
        Some(name) => format!("unknown command: {name}"),
        None => line,
    }
}

/// The first line of a clap error, without its own `error: ` prefix.
pub fn first_line(s: &str) -> String {
    s.lines()
        .next()
        .unwrap_or("")
        .trim_start_matches("error: ")
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &[&str]) -> Vec<String> {
        s.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn domain_option_becomes_positional() {
        assert_eq!(
            normalize_args(v(&[
                "oxvirsh",
                "-c",
                "qemu:///system",
                "dominfo",
                "--domain",
                "a"
            ])),
            v(&["oxvirsh", "-c", "qemu:///system", "dominfo", "a"])
        );
        assert_eq!(
            normalize_args(v(&["oxvirsh", "setmem", "--domain=a", "1G", "--live"])),
            v(&["oxvirsh", "setmem", "a", "1G", "--live"])
        );
        assert_eq!(
            normalize_args(v(&["oxvirsh", "event", "--domain", "a", "--all"])),
            v(&["oxvirsh", "event", "--domain", "a", "--all"])
        );
    }

    #[test]
    fn storage_arguments_by_name_or_place() {
        assert_eq!(
            normalize_args(v(&["oxvirsh", "vol-info", "--pool", "p1", "v1"])),
            v(&["oxvirsh", "vol-info", "v1", "--pool", "p1"])
        );
        assert_eq!(
            normalize_args(v(&[
                "oxvirsh",
                "vol-create-as",
                "--format",
                "qcow2",
                "p1",
                "--capacity=10M",
                "v1"
            ])),
            v(&[
                "oxvirsh",
                "vol-create-as",
                "p1",
                "v1",
                "10M",
                "--format",
                "qcow2"
            ])
        );
        assert_eq!(
            normalize_args(v(&["oxvirsh", "vol-list", "--pool", "p1", "--details"])),
            v(&["oxvirsh", "vol-list", "p1", "--details"])
        );
        assert_eq!(
            normalize_args(v(&["oxvirsh", "vol-create", "--file", "f.xml", "p1"])),
            v(&["oxvirsh", "vol-create", "p1", "f.xml"])
        );
        assert_eq!(
            normalize_args(v(&["oxvirsh", "vol-resize", "v", "-1M", "--shrink"])),
            v(&["oxvirsh", "vol-resize", "v", "-1M", "--shrink"])
        );
        for argv in [
            &["oxvirsh", "pool-define-as", "p", "dir", "--target", "/t"][..],
            &["oxvirsh", "pool-list", "--all", "--details"],
            &[
                "oxvirsh",
                "vol-create-as",
                "p",
                "v",
                "1M",
                "--backing-vol",
                "b",
            ],
            &[
                "oxvirsh",
                "vol-resize",
                "v",
                "-1M",
                "--shrink",
                "--pool",
                "p",
            ],
        ] {
            let args = normalize_args(v(argv));
            assert!(Cli::try_parse_from(&args).is_ok(), "{args:?}");
        }
    }

    #[test]
    fn cli_is_consistent() {
        Cli::command().debug_assert();
    }
}
