//! The network sub-driver: libvirt's virtual networks, one entry point per
//! libvirt public function (named after it, flags checked here as
//! libvirt's network driver checks them). Networks that make their own
//! bridge (isolated, `nat`, `route`, `open`) get the bridge, addresses,
//! firewall table and dnsmasq libvirt would give them; `bridge` networks
//! name a host bridge.
//!
//! Locking: one mutex over every network. Host changes (bridge, firewall,
//! dnsmasq) run with it released, the network marked as changing so that
//! a second start or destroy is refused meanwhile.

pub mod dnsmasq;
pub mod firewall;
pub mod host;
mod store;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::broadcast;
use uuid::Uuid;

use crate::error::{Error, ErrorCode, ErrorDomain, Result};
use crate::xml::mac::MacAddr;
use crate::xml::network::update::update_section;
use crate::xml::network::{ForwardMode, NetworkDef, parse_network, validate};

use host::HostRecord;
use store::NetStore;

/// A network as clients name it (`virNetworkPtr`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NetworkRef {
    pub name: String,
    pub uuid: Uuid,
}

/// `virNetworkEventLifecycleType`.
pub mod event {
    pub const DEFINED: i32 = 0;
    pub const UNDEFINED: i32 = 1;
    pub const STARTED: i32 = 2;
    pub const STOPPED: i32 = 3;
}

/// `virConnectListAllNetworksFlags`.
pub mod list {
    pub const INACTIVE: u32 = 1;
    pub const ACTIVE: u32 = 2;
    pub const PERSISTENT: u32 = 4;
    pub const TRANSIENT: u32 = 8;
    pub const AUTOSTART: u32 = 16;
    pub const NO_AUTOSTART: u32 = 32;
    pub const ALL: u32 = 63;
}

/// `VIR_NETWORK_DEFINE_VALIDATE` / `VIR_NETWORK_CREATE_VALIDATE`.
pub const VALIDATE: u32 = 1;
/// `VIR_NETWORK_XML_INACTIVE`.
pub const XML_INACTIVE: u32 = 1;

/// `virNetworkUpdateFlags`.
pub mod update_flags {
    pub const LIVE: u32 = 1;
    pub const CONFIG: u32 = 2;
}

/// A network lifecycle event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NetworkEvent {
    pub net: NetworkRef,
    pub event: i32,
    pub detail: i32,
}

/// `virNetworkDHCPLease`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DhcpLease {
    pub iface: String,
    pub expiry_time: i64,
    /// `VIR_IP_ADDR_TYPE_IPV4` (0) or `_IPV6` (1).
    pub ip_type: i32,
    pub mac: Option<String>,
    pub iaid: Option<String>,
    pub ipaddr: String,
    pub prefix: u32,
    pub hostname: Option<String>,
    pub clientid: Option<String>,
}

/// What a guest interface on a network joins. (Its tap takes the bridge's
/// MTU, which is the network's.)
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PortTarget {
    pub bridge: String,
}

struct Net {
    def: NetworkDef,
    /// A persistent definition given while active, applied when it stops.
    new_def: Option<NetworkDef>,
    active: bool,
    persistent: bool,
    autostart: bool,
    host: HostRecord,
    /// A start or destroy is changing the host.
    busy: bool,
}

impl Net {
    /// A network not started, with nothing made on the host.
    fn new(def: NetworkDef, persistent: bool) -> Net {
        Net {
            def,
            new_def: None,
            active: false,
            persistent,
            autostart: false,
            host: HostRecord::default(),
            busy: false,
        }
    }

    fn nref(&self) -> NetworkRef {
        NetworkRef {
            name: self.def.name.clone(),
            uuid: self.def.uuid,
        }
    }

    fn persistent_def(&self) -> &NetworkDef {
        self.new_def.as_ref().unwrap_or(&self.def)
    }

    fn check_not_busy(&self) -> Result<()> {
        if self.busy {
            return Err(err(
                ErrorCode::OperationInvalid,
                format!("network '{}' is being started or stopped", self.def.name),
            ));
        }
        Ok(())
    }
}

struct Inner {
    store: NetStore,
    /// This daemon's firewall table tag.
    tag: String,
    dnsmasq_dir: PathBuf,
    nets: Mutex<Vec<Net>>,
    /// Guest taps on each network (by name), joined again when it starts.
    ports: Mutex<HashMap<String, Vec<String>>>,
    events: broadcast::Sender<NetworkEvent>,
}

/// The network sub-driver; cheap to clone.
#[derive(Clone)]
pub struct Networks {
    inner: Arc<Inner>,
}

fn err(code: ErrorCode, detail: impl AsRef<str>) -> Error {
    Error::new(code, ErrorDomain::Network, detail)
}

fn check_flags(flags: u32, allowed: u32, function: &str) -> Result<()> {
    crate::driver::check_flags_in(ErrorDomain::Network, flags, allowed, function)
}

fn no_name(name: &str) -> Error {
    err(
        ErrorCode::NoNetwork,
        format!("no network with matching name '{name}'"),
    )
}

fn no_uuid(n: &NetworkRef) -> Error {
    err(
        ErrorCode::NoNetwork,
        format!("no network with matching uuid '{}' ({})", n.uuid, n.name),
    )
}

fn not_active(name: &str) -> Error {
    err(
        ErrorCode::OperationInvalid,
        format!("network '{name}' is not active"),
    )
}

fn state_dir_of(store: &NetStore) -> PathBuf {
    let d = store.state_dir();
    std::fs::canonicalize(d).unwrap_or_else(|_| d.to_path_buf())
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f).await.map_err(|e| {
        err(
            ErrorCode::InternalError,
            format!("network task failed: {e}"),
        )
    })?
}

/// Keeps a network marked busy until dropped.
struct BusyGuard {
    nets: Networks,
    uuid: Uuid,
}

impl Drop for BusyGuard {
    fn drop(&mut self) {
        if let Some(n) = self
            .nets
            .lock()
            .iter_mut()
            .find(|n| n.def.uuid == self.uuid)
        {
            n.busy = false;
        }
    }
}

impl Networks {
    /// Loads network definitions and state: takes back the networks whose
    /// bridge is still there, undoes what is left of the others and
    /// removes firewall tables no network owns. ([`Networks::autostart`]
    /// starts the autostart networks.)
    pub fn open(config_dir: PathBuf, state_dir: PathBuf, dnsmasq_dir: PathBuf) -> Result<Networks> {
        let store = NetStore::new(config_dir, state_dir);
        store.ensure_dirs()?;
        let (events, _) = broadcast::channel(256);
        let tag = firewall::daemon_tag(&state_dir_of(&store));
        let nets_obj = Networks {
            inner: Arc::new(Inner {
                tag,
                store,
                dnsmasq_dir,
                nets: Mutex::new(Vec::new()),
                ports: Mutex::new(HashMap::new()),
                events,
            }),
        };
        let mut nets: Vec<Net> = Vec::new();
        for mut l in nets_obj.inner.store.load_all() {
            if l.incomplete && l.status.is_none() {
                // libvirt fills in and keeps a UUID, a bridge name and a
                // MAC for a definition written by hand or by a package.
                match Self::complete(&nets, &mut l.def)
                    .and_then(|()| nets_obj.inner.store.save_config(&l.def))
                {
                    Ok(()) => {}
                    Err(e) => tracing::error!(network = l.def.name, "cannot complete network: {e}"),
                }
            }
            let mut net = Net {
                autostart: l.autostart,
                ..Net::new(l.def, l.persistent)
            };
            if let Some((live, mut rec)) = l.status {
                let bridge_there = match (&rec.bridge, live.makes_bridge()) {
                    (Some(b), true) => crate::driver::netdev::exists(b),
                    (_, true) => false,
                    (_, false) => true,
                };
                if bridge_there {
                    // Still up: put the rules back (they do not survive
                    // a firewall flush) and dnsmasq if it died.
                    if let Some(t) = &rec.table
                        && let Err(e) = firewall::apply(&live, t)
                    {
                        tracing::error!(network = live.name, "cannot restore firewall rules: {e}");
                    }
                    if live.wants_dnsmasq() && !host::dnsmasq_alive(&rec) {
                        let store = &nets_obj.inner.store;
                        let r =
                            host::restart_dnsmasq(&live, &nets_obj.dirs(), &mut rec, &mut |r| {
                                store.save_state(&live, r)
                            });
                        if let Err(e) = r {
                            tracing::error!(network = live.name, "cannot restart dnsmasq: {e}");
                        }
                    }
                    if live != net.def && net.persistent {
                        net.new_def = Some(std::mem::replace(&mut net.def, live));
                    } else {
                        net.def = live;
                    }
                    net.active = true;
                    net.host = rec;
                } else {
                    tracing::warn!(network = live.name, "network's bridge is gone; cleaning up");
                    host::tear_down(&rec);
                    nets_obj.inner.store.remove_state(&live.name);
                }
            }
            if net.active || net.persistent {
                nets.push(net);
            }
        }
        let owned: Vec<String> = nets.iter().filter_map(|n| n.host.table.clone()).collect();
        for t in firewall::owned_tables(&nets_obj.inner.tag) {
            if !owned.contains(&t) {
                tracing::warn!(table = t, "removing a firewall table no network owns");
                firewall::remove(&t);
            }
        }
        *nets_obj.lock() = nets;
        Ok(nets_obj)
    }

    /// Starts the autostart networks that are not running.
    pub async fn autostart(&self) {
        let todo: Vec<NetworkRef> = self
            .lock()
            .iter()
            .filter(|n| n.autostart && !n.active)
            .map(Net::nref)
            .collect();
        for n in todo {
            if let Err(e) = self.network_create(&n).await {
                tracing::error!(network = n.name, "cannot autostart network: {e}");
            }
        }
    }

    fn dirs(&self) -> host::Dirs<'_> {
        host::Dirs {
            tag: &self.inner.tag,
            dnsmasq: &self.inner.dnsmasq_dir,
            run: self.inner.store.state_dir(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Vec<Net>> {
        self.inner.nets.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn subscribe(&self) -> broadcast::Receiver<NetworkEvent> {
        self.inner.events.subscribe()
    }

    fn emit(&self, net: NetworkRef, event: i32) {
        tracing::info!(network = net.name, event, "network event");
        let _ = self.inner.events.send(NetworkEvent {
            net,
            event,
            detail: 0,
        });
    }

    fn with_net<T>(&self, n: &NetworkRef, f: impl FnOnce(&mut Net) -> Result<T>) -> Result<T> {
        let mut nets = self.lock();
        let net = nets
            .iter_mut()
            .find(|x| x.def.uuid == n.uuid)
            .ok_or_else(|| no_uuid(n))?;
        f(net)
    }

    // ---- listing and lookups ------------------------------------------

    /// `virConnectListAllNetworks`.
    pub fn connect_list_all_networks(&self, flags: u32) -> Result<Vec<NetworkRef>> {
        check_flags(flags, list::ALL, "networkConnectListAllNetworks")?;
        let pair = |yes: u32, no: u32, v: bool| crate::driver::list_pair_matches(flags, yes, no, v);
        let mut out: Vec<NetworkRef> = self
            .lock()
            .iter()
            .filter(|n| {
                pair(list::ACTIVE, list::INACTIVE, n.active)
                    && pair(list::PERSISTENT, list::TRANSIENT, n.persistent)
                    && pair(list::AUTOSTART, list::NO_AUTOSTART, n.autostart)
            })
            .map(Net::nref)
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// `virConnectNumOfNetworks` / `virConnectNumOfDefinedNetworks`.
    pub fn connect_num_of_networks(&self, active: bool) -> i32 {
        self.lock().iter().filter(|n| n.active == active).count() as i32
    }

    /// `virConnectListNetworks` / `virConnectListDefinedNetworks`.
    pub fn connect_list_networks(&self, active: bool, max: i32) -> Vec<String> {
        let mut names: Vec<String> = self
            .lock()
            .iter()
            .filter(|n| n.active == active)
            .map(|n| n.def.name.clone())
            .collect();
        names.sort();
        names.truncate(max.max(0) as usize);
        names
    }

    /// `virNetworkLookupByName`.
    pub fn network_lookup_by_name(&self, name: &str) -> Result<NetworkRef> {
        self.lock()
            .iter()
            .find(|n| n.def.name == name)
            .map(Net::nref)
            .ok_or_else(|| no_name(name))
    }

    /// `virNetworkLookupByUUID`.
    pub fn network_lookup_by_uuid(&self, uuid: &Uuid) -> Result<NetworkRef> {
        self.lock()
            .iter()
            .find(|n| n.def.uuid == *uuid)
            .map(Net::nref)
            .ok_or_else(|| {
                err(
                    ErrorCode::NoNetwork,
                    format!("no network with matching uuid '{uuid}'"),
                )
            })
    }

    /// `virNetworkLookupByUUIDString`.
    pub fn network_lookup_by_uuid_string(&self, text: &str) -> Result<NetworkRef> {
        let uuid = crate::xml::uuid_text::parse_uuid(text).ok_or_else(|| {
            err(
                ErrorCode::InvalidArg,
                "uuidstr in virNetworkLookupByUUIDString must be a valid UUID",
            )
        })?;
        self.network_lookup_by_uuid(&uuid)
    }

    // ---- definition ----------------------------------------------------

    /// Refuses a definition clashing with another network by UUID or name;
    /// returns the index of the network it redefines.
    fn check_duplicate(
        nets: &[Net],
        def: &NetworkDef,
        check_active: bool,
    ) -> Result<Option<usize>> {
        if let Some(i) = nets.iter().position(|n| n.def.uuid == def.uuid) {
            let n = &nets[i];
            if n.def.name != def.name {
                return Err(err(
                    ErrorCode::OperationFailed,
                    format!(
                        "network '{}' is already defined with uuid {}",
                        n.def.name, n.def.uuid
                    ),
                ));
            }
            if check_active && n.active {
                return Err(err(
                    ErrorCode::OperationInvalid,
                    format!("network is already active as '{}'", n.def.name),
                ));
            }
            return Ok(Some(i));
        }
        if let Some(n) = nets.iter().find(|n| n.def.name == def.name) {
            return Err(err(
                ErrorCode::OperationFailed,
                format!(
                    "network '{}' already exists with uuid {}",
                    def.name, n.def.uuid
                ),
            ));
        }
        Ok(None)
    }

    /// `networkValidate`: the driver's checks, a bridge name and MAC
    /// assigned where the network makes its bridge.
    fn complete(nets: &[Net], def: &mut NetworkDef) -> Result<()> {
        validate(def)?;
        if !def.makes_bridge() {
            return Ok(());
        }
        let in_use = |name: &str| {
            nets.iter().any(|n| {
                n.def.name != def.name
                    && (n.def.bridge_name() == Some(name)
                        || n.new_def.as_ref().and_then(|d| d.bridge_name()) == Some(name))
            })
        };
        match def.bridge.name.clone() {
            Some(b) if !b.contains("%d") => {
                if in_use(&b) {
                    return Err(err(
                        ErrorCode::InternalError,
                        format!("bridge name '{b}' already in use."),
                    ));
                }
            }
            template => {
                let templ = template
                    .filter(|t| t.matches('%').count() == 1)
                    .unwrap_or_else(|| "virbr%d".into());
                let name = (0..=256)
                    .map(|i| templ.replace("%d", &i.to_string()))
                    .find(|n| !in_use(n) && !crate::driver::netdev::exists(n))
                    .ok_or_else(|| {
                        err(
                            ErrorCode::InternalError,
                            "Bridge generation exceeded max id 256",
                        )
                    })?;
                def.bridge.name = Some(name);
            }
        }
        if def.mac.is_none() {
            def.mac = Some(MacAddr::generate());
        }
        Ok(())
    }

    /// `virNetworkDefineXMLFlags`.
    pub fn network_define_xml(&self, xml: &str, flags: u32) -> Result<NetworkRef> {
        check_flags(flags, VALIDATE, "networkDefineXMLFlags")?;
        let mut def = parse_network(xml)?;
        let mut nets = self.lock();
        let existing = Self::check_duplicate(&nets, &def, false)?;
        Self::complete(&nets, &mut def)?;
        self.inner.store.save_config(&def)?;
        let nref = NetworkRef {
            name: def.name.clone(),
            uuid: def.uuid,
        };
        match existing {
            Some(i) => {
                let n = &mut nets[i];
                n.persistent = true;
                if n.active {
                    n.new_def = Some(def);
                } else {
                    n.def = def;
                }
            }
            None => nets.push(Net::new(def, true)),
        }
        drop(nets);
        self.emit(nref.clone(), event::DEFINED);
        Ok(nref)
    }

    /// `virNetworkCreateXMLFlags`: a transient network, started.
    pub async fn network_create_xml(&self, xml: &str, flags: u32) -> Result<NetworkRef> {
        check_flags(flags, VALIDATE, "networkCreateXMLFlags")?;
        let mut def = parse_network(xml)?;
        let nref = {
            let mut nets = self.lock();
            let existing = Self::check_duplicate(&nets, &def, true)?;
            Self::complete(&nets, &mut def)?;
            let nref = NetworkRef {
                name: def.name.clone(),
                uuid: def.uuid,
            };
            match existing {
                Some(i) => {
                    // An inactive persistent network started with a new
                    // live definition.
                    let n = &mut nets[i];
                    n.check_not_busy()?;
                    n.new_def = Some(std::mem::replace(&mut n.def, def));
                    n.busy = true;
                }
                None => nets.push(Net {
                    busy: true,
                    ..Net::new(def, false)
                }),
            }
            nref
        };
        if let Err(e) = self.start_marked(&nref).await {
            let mut nets = self.lock();
            if let Some(i) = nets.iter().position(|n| n.def.uuid == nref.uuid) {
                if nets[i].persistent {
                    let n = &mut nets[i];
                    if let Some(d) = n.new_def.take() {
                        n.def = d;
                    }
                } else {
                    nets.remove(i);
                }
            }
            return Err(e);
        }
        Ok(nref)
    }

    /// `virNetworkUndefine`.
    pub fn network_undefine(&self, n: &NetworkRef) -> Result<()> {
        let nref = {
            let mut nets = self.lock();
            let i = nets
                .iter()
                .position(|x| x.def.uuid == n.uuid)
                .ok_or_else(|| no_uuid(n))?;
            let net = &mut nets[i];
            if !net.persistent {
                return Err(err(
                    ErrorCode::OperationInvalid,
                    "can't undefine transient network",
                ));
            }
            self.inner.store.remove_config(&net.def.name)?;
            let nref = net.nref();
            if net.active {
                // It keeps running, as a transient network.
                net.persistent = false;
                net.autostart = false;
                net.new_def = None;
            } else {
                nets.remove(i);
            }
            nref
        };
        self.emit(nref, event::UNDEFINED);
        Ok(())
    }

    // ---- lifecycle -------------------------------------------------------

    /// `virNetworkCreate`: starts a defined network.
    pub async fn network_create(&self, n: &NetworkRef) -> Result<()> {
        self.with_net(n, |net| {
            if net.active {
                return Err(err(
                    ErrorCode::OperationInvalid,
                    "network is already active",
                ));
            }
            net.check_not_busy()?;
            net.busy = true;
            Ok(())
        })?;
        self.start_marked(n).await
    }

    /// Brings up a network already marked busy.
    async fn start_marked(&self, n: &NetworkRef) -> Result<()> {
        let _guard = BusyGuard {
            nets: self.clone(),
            uuid: n.uuid,
        };
        let mut def = self.with_net(n, |net| Ok(net.def.clone()))?;
        // A started NAT network shows the source ports it masquerades to.
        if def.forward.mode == ForwardMode::Nat && def.forward.nat_ports.is_none() {
            def.forward.nat_ports = Some((1024, 65535));
        }
        let live = def.clone();
        let this = self.clone();
        let rec = blocking(move || {
            let store = &this.inner.store;
            let rec = host::bring_up(&def, &this.dirs(), &mut |r| store.save_state(&def, r));
            if rec.is_err() {
                store.remove_state(&def.name);
            }
            let rec = rec?;
            this.rejoin_ports(&def);
            Ok(rec)
        })
        .await?;
        self.with_net(n, |net| {
            if net.persistent && net.new_def.is_none() {
                net.new_def = Some(net.def.clone());
            }
            net.def = live;
            net.active = true;
            net.host = rec;
            Ok(())
        })?;
        self.emit(n.clone(), event::STARTED);
        Ok(())
    }

    /// Puts the taps of running guests back on a restarted network's bridge.
    fn rejoin_ports(&self, def: &NetworkDef) {
        let Some(bridge) = def.bridge_name() else {
            return;
        };
        let taps = self
            .inner
            .ports
            .lock()
            .map(|p| p.get(&def.name).cloned().unwrap_or_default())
            .unwrap_or_default();
        for tap in taps {
            if crate::driver::netdev::exists(&tap)
                && let Err(e) = crate::driver::netdev::bridge_add_port(bridge, &tap)
            {
                tracing::warn!(
                    network = def.name,
                    tap,
                    "cannot reattach guest interface: {e}"
                );
            }
        }
    }

    /// `virNetworkDestroy`.
    pub async fn network_destroy(&self, n: &NetworkRef) -> Result<()> {
        let (rec, name) = self.with_net(n, |net| {
            if !net.active {
                return Err(not_active(&net.def.name));
            }
            net.check_not_busy()?;
            net.busy = true;
            Ok((net.host.clone(), net.def.name.clone()))
        })?;
        let _guard = BusyGuard {
            nets: self.clone(),
            uuid: n.uuid,
        };
        let rec = self.hand_over_sysctls(n, rec);
        let store = self.inner.store.clone();
        blocking(move || {
            host::tear_down(&rec);
            store.remove_state(&name);
            Ok(())
        })
        .await?;
        {
            let mut nets = self.lock();
            match nets.iter().position(|x| x.def.uuid == n.uuid) {
                Some(i) if !nets[i].persistent => {
                    nets.remove(i);
                }
                Some(i) => {
                    let net = &mut nets[i];
                    net.active = false;
                    net.host = HostRecord::default();
                    if let Some(d) = net.new_def.take() {
                        net.def = d;
                    }
                }
                None => {}
            }
        }
        self.emit(n.clone(), event::STOPPED);
        Ok(())
    }

    /// Kernel settings another active network still needs are not put
    /// back when this one stops: that network takes over the record.
    fn hand_over_sysctls(&self, n: &NetworkRef, mut rec: HostRecord) -> HostRecord {
        let mut nets = self.lock();
        let mut keep = Vec::new();
        for (key, old) in std::mem::take(&mut rec.sysctls) {
            let heir = nets.iter_mut().find(|o| {
                o.def.uuid != n.uuid
                    && o.active
                    && host::forwarding_sysctls(&o.def).contains(&key.as_str())
            });
            match heir {
                Some(h) => {
                    h.host.sysctls.push((key, old));
                    let _ = self.inner.store.save_state(&h.def, &h.host);
                }
                None => keep.push((key, old)),
            }
        }
        rec.sysctls = keep;
        rec
    }

    // ---- queries and settings ------------------------------------------

    /// `virNetworkGetXMLDesc`.
    pub fn network_get_xml_desc(&self, n: &NetworkRef, flags: u32) -> Result<String> {
        check_flags(flags, XML_INACTIVE, "networkGetXMLDesc")?;
        let connections = self.connections(&n.name);
        self.with_net(n, |net| {
            Ok(if flags & XML_INACTIVE != 0 {
                net.persistent_def().to_xml(true, 0)
            } else {
                net.def.to_xml(!net.active, connections)
            })
        })
    }

    /// `virNetworkGetBridgeName`.
    pub fn network_get_bridge_name(&self, n: &NetworkRef) -> Result<String> {
        self.with_net(n, |net| {
            net.def.bridge_name().map(str::to_string).ok_or_else(|| {
                err(
                    ErrorCode::InternalError,
                    format!("network '{}' does not have a bridge name.", net.def.name),
                )
            })
        })
    }

    /// `virNetworkGetAutostart`.
    pub fn network_get_autostart(&self, n: &NetworkRef) -> Result<bool> {
        self.with_net(n, |net| Ok(net.autostart))
    }

    /// `virNetworkSetAutostart`.
    pub fn network_set_autostart(&self, n: &NetworkRef, on: bool) -> Result<()> {
        self.with_net(n, |net| {
            if !net.persistent {
                return Err(err(
                    ErrorCode::OperationInvalid,
                    "cannot set autostart for transient network",
                ));
            }
            if net.autostart != on {
                self.inner.store.set_autostart(&net.def.name, on)?;
                net.autostart = on;
            }
            Ok(())
        })
    }

    /// `virNetworkIsActive`.
    pub fn network_is_active(&self, n: &NetworkRef) -> Result<bool> {
        self.with_net(n, |net| Ok(net.active))
    }

    /// `virNetworkIsPersistent`.
    pub fn network_is_persistent(&self, n: &NetworkRef) -> Result<bool> {
        self.with_net(n, |net| Ok(net.persistent))
    }

    /// `virNetworkUpdate`.
    pub async fn network_update(
        &self,
        n: &NetworkRef,
        command: u32,
        section: u32,
        parent_index: i32,
        xml: &str,
        flags: u32,
    ) -> Result<()> {
        check_flags(
            flags,
            update_flags::LIVE | update_flags::CONFIG,
            "networkUpdate",
        )?;
        let (live_def, rec) = {
            let mut nets = self.lock();
            let net = nets
                .iter_mut()
                .find(|x| x.def.uuid == n.uuid)
                .ok_or_else(|| no_uuid(n))?;
            net.check_not_busy()?;
            let mut flags = flags;
            if flags & (update_flags::LIVE | update_flags::CONFIG) == 0 {
                flags |= if net.active {
                    update_flags::LIVE
                } else {
                    update_flags::CONFIG
                };
            }
            if flags & update_flags::LIVE != 0 && !net.active {
                return Err(err(ErrorCode::OperationInvalid, "network is not running"));
            }
            if flags & update_flags::CONFIG != 0 && !net.persistent {
                return Err(err(
                    ErrorCode::OperationInvalid,
                    "cannot change persistent config of a transient network",
                ));
            }
            // Both copies are changed first, then stored: a bad update
            // leaves both as they were.
            let mut config = net.persistent_def().clone();
            let mut live = net.def.clone();
            if flags & update_flags::CONFIG != 0 {
                update_section(&mut config, command, section, parent_index, xml)?;
                validate(&config)?;
            }
            if flags & update_flags::LIVE != 0 {
                update_section(&mut live, command, section, parent_index, xml)?;
                validate(&live)?;
            }
            if flags & update_flags::CONFIG != 0 {
                self.inner.store.save_config(&config)?;
                if net.active {
                    net.new_def = Some(config);
                } else {
                    net.def = config;
                }
            }
            if flags & update_flags::LIVE == 0 {
                return Ok(());
            }
            net.def = live.clone();
            self.inner.store.save_state(&net.def, &net.host)?;
            (live, net.host.clone())
        };
        // The running dnsmasq serves the new definition: a new range
        // needs a restart, hosts are read again on SIGHUP.
        let this = self.clone();
        let restart = section == crate::xml::network::update::section::IP_DHCP_RANGE;
        let rec = blocking(move || {
            let mut rec = rec;
            if restart {
                let store = &this.inner.store;
                host::restart_dnsmasq(&live_def, &this.dirs(), &mut rec, &mut |r| {
                    store.save_state(&live_def, r)
                })?;
            } else if live_def.wants_dnsmasq() {
                host::refresh_dnsmasq(&live_def, &this.dirs(), &rec)?;
            }
            Ok(rec)
        })
        .await?;
        self.with_net(n, |net| {
            net.host = rec;
            Ok(())
        })
    }

    /// `virNetworkGetDHCPLeases`: the leases dnsmasq handed out and that
    /// have not expired, for one MAC address if `mac` is given.
    pub fn network_get_dhcp_leases(
        &self,
        n: &NetworkRef,
        mac: Option<&str>,
        flags: u32,
    ) -> Result<Vec<DhcpLease>> {
        check_flags(flags, 0, "networkGetDHCPLeases")?;
        if let Some(m) = mac
            && MacAddr::parse(m).is_err()
        {
            return Err(err(ErrorCode::InvalidMac, m));
        }
        let def = self.with_net(n, |net| Ok(net.def.clone()))?;
        let path = dnsmasq::leases_path(&self.inner.dnsmasq_dir, &def.name);
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0);
        let iface = def.bridge_name().unwrap_or_default().to_string();
        let mut out = Vec::new();
        for l in dnsmasq::parse_leases(&text) {
            if l.expiry != 0 && l.expiry < now {
                continue;
            }
            if let Some(m) = mac
                && !l.mac.as_deref().is_some_and(|x| x.eq_ignore_ascii_case(m))
            {
                continue;
            }
            let prefix = def
                .ips
                .iter()
                .find(|i| {
                    crate::xml::network::addr::in_subnet(l.ip, i.address, i.effective_prefix())
                })
                .map(|i| u32::from(i.effective_prefix()))
                .unwrap_or(0);
            out.push(DhcpLease {
                iface: iface.clone(),
                expiry_time: l.expiry,
                ip_type: if l.ip.is_ipv4() { 0 } else { 1 },
                mac: l.mac,
                iaid: l.iaid,
                ipaddr: l.ip.to_string(),
                prefix,
                hostname: l.hostname,
                clientid: l.client_id,
            });
        }
        Ok(out)
    }

    // ---- for guest interfaces -------------------------------------------

    /// Where an interface with `<source network=name>` attaches: the
    /// network must be active and have a bridge.
    pub fn port_target(&self, name: &str) -> Result<PortTarget> {
        let nets = self.lock();
        let net = nets
            .iter()
            .find(|n| n.def.name == name)
            .ok_or_else(|| no_name(name))?;
        if !net.active {
            return Err(not_active(name));
        }
        match net.def.forward.mode {
            ForwardMode::Private
            | ForwardMode::Vepa
            | ForwardMode::Passthrough
            | ForwardMode::Hostdev => {
                return Err(err(
                    ErrorCode::ConfigUnsupported,
                    format!(
                        "network '{name}' uses forward mode '{}', which needs macvtap or host devices",
                        net.def.forward.mode.as_str()
                    ),
                ));
            }
            _ => {}
        }
        let bridge = net.def.bridge_name().ok_or_else(|| {
            err(
                ErrorCode::InternalError,
                format!("network '{name}' does not have a bridge name."),
            )
        })?;
        Ok(PortTarget {
            bridge: bridge.to_string(),
        })
    }

    /// Records that a guest tap is on network `name` (joined again when
    /// the network restarts).
    pub fn port_attached(&self, name: &str, tap: &str) {
        if let Ok(mut p) = self.inner.ports.lock() {
            let v = p.entry(name.to_string()).or_default();
            if !v.iter().any(|t| t == tap) {
                v.push(tap.to_string());
            }
        }
    }

    /// Forgets a guest tap.
    pub fn port_detached(&self, name: &str, tap: &str) {
        if let Ok(mut p) = self.inner.ports.lock()
            && let Some(v) = p.get_mut(name)
        {
            v.retain(|t| t != tap);
        }
    }

    /// Guest interfaces on network `name`.
    fn connections(&self, name: &str) -> u32 {
        self.inner
            .ports
            .lock()
            .map(|p| p.get(name).map_or(0, |v| v.len() as u32))
            .unwrap_or(0)
    }
}
