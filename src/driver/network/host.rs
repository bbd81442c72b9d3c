//! What starting a network does to the host, step by step, each step
//! recorded in the network's state before it is taken: the bridge and its
//! addresses, kernel settings, the firewall table and dnsmasq. Undoing
//! walks the record, so a failed start, a destroy and a restart after a
//! crash all remove exactly what was made.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::driver::fsutil::{
    Durability, ensure_dir, ensure_dir_mode, system_error, write_atomic_mode,
};
use crate::error::{Error, ErrorCode, ErrorDomain, Result};
use crate::xml::network::{ForwardMode, NetworkDef};

use super::{dnsmasq, firewall};

/// Changes a network made to the host.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostRecord {
    /// The bridge it created (deleted on stop).
    #[serde(default)]
    pub bridge: Option<String>,
    /// Its nftables table.
    #[serde(default)]
    pub table: Option<String>,
    /// Kernel settings it changed, with their values before.
    #[serde(default)]
    pub sysctls: Vec<(String, String)>,
    /// dnsmasq's pid file, and its pid once running.
    #[serde(default)]
    pub dnsmasq_pidfile: Option<PathBuf>,
    #[serde(default)]
    pub dnsmasq_pid: Option<i32>,
    /// Files written for dnsmasq (configuration, hosts files).
    #[serde(default)]
    pub files: Vec<PathBuf>,
}

fn fail(detail: impl AsRef<str>) -> Error {
    Error::new(ErrorCode::InternalError, ErrorDomain::Network, detail)
}

/// Runs `ip` with `args`; its complaint becomes the error.
fn ip(args: &[&str], what: impl FnOnce(&str) -> String) -> Result<()> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| fail(format!("Cannot run ip: {e}")))?;
    if out.status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    let reason = stderr.trim().trim_start_matches("RTNETLINK answers: ");
    Err(Error::new(
        ErrorCode::SystemError,
        ErrorDomain::None,
        what(reason),
    ))
}

fn sysctl_path(key: &str) -> PathBuf {
    Path::new("/proc/sys").join(key.replace('.', "/"))
}

/// Where a network's files live, and the daemon's firewall tag.
pub struct Dirs<'a> {
    pub tag: &'a str,
    /// dnsmasq configuration, hosts and lease files.
    pub dnsmasq: &'a Path,
    /// pid files.
    pub run: &'a Path,
}

/// Brings a network up. `save` records the state before each change;
/// on failure everything recorded is undone before the error returns.
pub fn bring_up(
    def: &NetworkDef,
    dirs: &Dirs<'_>,
    save: &mut dyn FnMut(&HostRecord) -> Result<()>,
) -> Result<HostRecord> {
    let mut rec = HostRecord::default();
    match steps(def, dirs, &mut rec, save) {
        Ok(()) => Ok(rec),
        Err(e) => {
            tear_down(&rec);
            Err(e)
        }
    }
}

fn steps(
    def: &NetworkDef,
    dirs: &Dirs<'_>,
    rec: &mut HostRecord,
    save: &mut dyn FnMut(&HostRecord) -> Result<()>,
) -> Result<()> {
    if !def.makes_bridge() {
        // A host bridge network only names the bridge guests join.
        if def.forward.mode == ForwardMode::Bridge
            && let Some(b) = def.bridge_name()
            && !crate::driver::netdev::exists(b)
        {
            return Err(Error::new(
                ErrorCode::SystemError,
                ErrorDomain::None,
                format!("Cannot get interface MTU on '{b}': No such device"),
            ));
        }
        return Ok(());
    }
    let bridge = def
        .bridge_name()
        .ok_or_else(|| fail("network has no bridge name"))?
        .to_string();
    check_route_collision(def)?;
    if crate::driver::netdev::exists(&bridge) {
        return Err(Error::new(
            ErrorCode::SystemError,
            ErrorDomain::None,
            format!("error creating bridge interface {bridge}: File exists"),
        ));
    }
    rec.bridge = Some(bridge.clone());
    save(rec)?;
    let delay = (def.bridge.delay * 100).to_string();
    let stp = if def.bridge.stp { "1" } else { "0" };
    ip(
        &[
            "link",
            "add",
            "name",
            &bridge,
            "type",
            "bridge",
            "stp_state",
            stp,
            "forward_delay",
            &delay,
        ],
        |r| format!("error creating bridge interface {bridge}: {r}"),
    )?;
    if let Some(mac) = &def.mac {
        let mac = mac.to_string();
        ip(&["link", "set", "dev", &bridge, "address", &mac], |r| {
            format!("Cannot set interface MAC on '{bridge}': {r}")
        })?;
    }
    if def.mtu > 0 {
        let mtu = def.mtu.to_string();
        ip(&["link", "set", "dev", &bridge, "mtu", &mtu], |r| {
            format!("Cannot set interface MTU on '{bridge}': {r}")
        })?;
    }
    let has_v6 = def.ips.iter().any(|i| i.address.is_ipv6());
    if has_v6 {
        // The bridge takes no addresses from router advertisements: it
        // is the router.
        for (k, v) in [("disable_ipv6", "0"), ("accept_ra", "0"), ("autoconf", "0")] {
            let _ = fs::write(sysctl_path(&format!("net.ipv6.conf.{bridge}.{k}")), v);
        }
    }
    for ipdef in &def.ips {
        let cidr = format!("{}/{}", ipdef.address, ipdef.effective_prefix());
        let mut args = vec!["addr", "add", cidr.as_str(), "dev", bridge.as_str()];
        if ipdef.address.is_ipv4() {
            args.extend(["broadcast", "+"]);
        }
        ip(&args, |r| {
            format!("Failed to add IP address {cidr} to {bridge}: {r}")
        })?;
    }
    ip(&["link", "set", "dev", &bridge, "up"], |r| {
        format!("Cannot set interface flags on '{bridge}': {r}")
    })?;
    let table = firewall::table_name(dirs.tag, &def.uuid);
    if let Some(script) = firewall::ruleset(def, &table) {
        rec.table = Some(table);
        save(rec)?;
        firewall::install(&script)?;
    }
    for key in forwarding_sysctls(def) {
        set_sysctl(rec, key, "1", save)?;
    }
    if def.wants_dnsmasq() {
        start_dnsmasq(def, dirs, rec, save)?;
    }
    Ok(())
}

/// The kernel settings a running network needs at 1: IP forwarding for
/// the modes that route (`nat`, `route`, `open`), IPv6's too when it has
/// IPv6 addresses.
pub fn forwarding_sysctls(def: &NetworkDef) -> Vec<&'static str> {
    if !matches!(
        def.forward.mode,
        ForwardMode::Nat | ForwardMode::Route | ForwardMode::Open
    ) {
        return Vec::new();
    }
    let mut keys = vec!["net.ipv4.ip_forward"];
    if def.ips.iter().any(|i| i.address.is_ipv6()) {
        keys.push("net.ipv6.conf.all.forwarding");
    }
    keys
}

/// `networkCheckRouteCollision`: refuses an IPv4 subnet the host already
/// routes through some interface.
fn check_route_collision(def: &NetworkDef) -> Result<()> {
    let routes = fs::read_to_string("/proc/net/route").unwrap_or_default();
    // Addresses there are the in-memory bytes of the kernel's
    // big-endian values, printed as native integers.
    let addr = |hex: &str| {
        u32::from_str_radix(hex, 16)
            .ok()
            .map(|v| u32::from(std::net::Ipv4Addr::from(v.to_ne_bytes())))
    };
    for line in routes.lines().skip(1) {
        let f: Vec<&str> = line.split_whitespace().collect();
        let (Some(iface), Some(dest), Some(mask)) = (
            f.first(),
            f.get(1).and_then(|d| addr(d)),
            f.get(7).and_then(|m| addr(m)),
        ) else {
            continue;
        };
        for ip in &def.ips {
            let std::net::IpAddr::V4(a) = ip.address else {
                continue;
            };
            let want = u32::from(crate::xml::network::addr::prefix_netmask(
                ip.effective_prefix(),
            ));
            if mask == want && dest == u32::from(a) & want {
                return Err(fail(format!(
                    "Network is already in use by interface {iface}"
                )));
            }
        }
    }
    Ok(())
}

/// Sets a kernel setting, recording its old value first when it changes.
fn set_sysctl(
    rec: &mut HostRecord,
    key: &str,
    value: &str,
    save: &mut dyn FnMut(&HostRecord) -> Result<()>,
) -> Result<()> {
    let path = sysctl_path(key);
    let old = fs::read_to_string(&path)
        .unwrap_or_default()
        .trim()
        .to_string();
    if old == value {
        return Ok(());
    }
    rec.sysctls.push((key.to_string(), old));
    save(rec)?;
    fs::write(&path, value).map_err(|e| system_error("failed to enable IP forwarding", &e))
}

/// Writes the network's dnsmasq files and starts it.
fn start_dnsmasq(
    def: &NetworkDef,
    dirs: &Dirs<'_>,
    rec: &mut HostRecord,
    save: &mut dyn FnMut(&HostRecord) -> Result<()>,
) -> Result<()> {
    // dnsmasq reads its hosts files again as nobody (on SIGHUP).
    ensure_dir_mode(dirs.dnsmasq, 0o755)?;
    ensure_dir(dirs.run)?;
    let pidfile = dirs.run.join(format!("{}.pid", def.name));
    let cfg = dnsmasq::Config::new(def, dirs.dnsmasq, Some(&pidfile))?;
    let conf = dnsmasq::conf_path(dirs.dnsmasq, &def.name);
    let files = [
        (conf.clone(), cfg.conf.as_str()),
        (
            dnsmasq::hostsfile_path(dirs.dnsmasq, &def.name),
            cfg.hostsfile.as_str(),
        ),
        (
            dnsmasq::addnhosts_path(dirs.dnsmasq, &def.name),
            cfg.addnhosts.as_str(),
        ),
    ];
    rec.files = files.iter().map(|(p, _)| p.clone()).collect();
    rec.dnsmasq_pidfile = Some(pidfile.clone());
    save(rec)?;
    for (path, text) in &files {
        write_dnsmasq_file(path, text)?;
    }
    let _ = fs::remove_file(&pidfile);
    let leases = dnsmasq::leases_path(dirs.dnsmasq, &def.name);
    // dnsmasq forks into the background once it serves; its exit status
    // and complaint tell whether it could.
    let out = Command::new(dnsmasq::DNSMASQ)
        .arg(format!("--conf-file={}", conf.display()))
        .arg(format!("--dhcp-leasefile={}", leases.display()))
        .output()
        .map_err(|e| system_error(format!("Cannot find '{}' in path", dnsmasq::DNSMASQ), &e))?;
    if !out.status.success() {
        return Err(fail(format!(
            "Child process (dnsmasq --conf-file={}) unexpected exit status {}: {}",
            conf.display(),
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    let pid = read_pid(&pidfile)
        .ok_or_else(|| fail(format!("dnsmasq wrote no pid to '{}'", pidfile.display())))?;
    rec.dnsmasq_pid = Some(pid);
    save(rec)
}

/// One of dnsmasq's files, readable by it after it drops privileges.
fn write_dnsmasq_file(path: &Path, text: &str) -> Result<()> {
    write_atomic_mode(path, text.as_bytes(), Durability::Runtime, 0o644).map_err(|e| {
        system_error(
            format!("couldn't write dnsmasq config file '{}'", path.display()),
            &e,
        )
    })
}

/// Gives a running dnsmasq the hosts of a changed definition: its hosts
/// files written again, then SIGHUP (which re-reads them).
pub fn refresh_dnsmasq(def: &NetworkDef, dirs: &Dirs<'_>, rec: &HostRecord) -> Result<()> {
    let cfg = dnsmasq::Config::new(def, dirs.dnsmasq, rec.dnsmasq_pidfile.as_deref())?;
    write_dnsmasq_file(
        &dnsmasq::hostsfile_path(dirs.dnsmasq, &def.name),
        &cfg.hostsfile,
    )?;
    write_dnsmasq_file(
        &dnsmasq::addnhosts_path(dirs.dnsmasq, &def.name),
        &cfg.addnhosts,
    )?;
    if let (true, Some(pid)) = (dnsmasq_alive(rec), rec.dnsmasq_pid) {
        // SAFETY: a plain signal to a process verified to be ours.
        unsafe { libc::kill(pid, libc::SIGHUP) };
    }
    Ok(())
}

fn read_pid(path: &Path) -> Option<i32> {
    fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// Whether `pid` is a live dnsmasq serving the configuration of the
/// record (not a recycled pid).
pub fn dnsmasq_alive(rec: &HostRecord) -> bool {
    let (Some(pid), Some(conf)) = (rec.dnsmasq_pid, rec.files.first()) else {
        return false;
    };
    let want = format!("--conf-file={}", conf.display());
    crate::driver::pidfd::running_as(pid, |args| args.contains(&want.as_bytes()))
}

/// Stops the record's dnsmasq and waits (briefly) for it to go.
pub fn stop_dnsmasq(rec: &HostRecord) {
    if !dnsmasq_alive(rec) {
        return;
    }
    let Some(pid) = rec.dnsmasq_pid else { return };
    // SAFETY: a plain signal to a process verified above to be ours.
    unsafe { libc::kill(pid, libc::SIGTERM) };
    let end = Instant::now() + Duration::from_secs(2);
    while dnsmasq_alive(rec) && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Starts dnsmasq again for an active network whose dnsmasq is gone.
pub fn restart_dnsmasq(
    def: &NetworkDef,
    dirs: &Dirs<'_>,
    rec: &mut HostRecord,
    save: &mut dyn FnMut(&HostRecord) -> Result<()>,
) -> Result<()> {
    stop_dnsmasq(rec);
    rec.dnsmasq_pid = None;
    if def.wants_dnsmasq() {
        start_dnsmasq(def, dirs, rec, save)?;
    }
    Ok(())
}

/// Undoes everything the record lists, newest first.
pub fn tear_down(rec: &HostRecord) {
    stop_dnsmasq(rec);
    if let Some(p) = &rec.dnsmasq_pidfile {
        let _ = fs::remove_file(p);
    }
    for f in &rec.files {
        let _ = fs::remove_file(f);
    }
    for (key, old) in rec.sysctls.iter().rev() {
        let _ = fs::write(sysctl_path(key), old);
    }
    if let Some(t) = &rec.table {
        firewall::remove(t);
    }
    if let Some(b) = &rec.bridge
        && crate::driver::netdev::exists(b)
    {
        let _ = ip(&["link", "del", "dev", b], |r| r.to_string());
    }
}
