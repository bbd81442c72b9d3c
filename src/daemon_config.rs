//! `oxvirtd`'s configuration file, `/etc/oxvirt/oxvirtd.conf` (or
//! `$XDG_CONFIG_HOME/oxvirt/oxvirtd.conf` for a session daemon).
//!
//! The syntax is libvirt's daemon configuration syntax, reduced to what
//! oxvirtd needs: one `key = value` per line, `#` starts a comment, values
//! are double-quoted strings (`\"` and `\\` escape) or the integers 0/1.
//! Every setting has a compiled-in default, so an empty or missing file is
//! a valid configuration. Precedence: command line, then file, then
//! default. A bad line is an error naming the file and the line.

use std::fmt;
use std::path::{Path, PathBuf};

/// Where the daemon serves D-Bus.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BusSetting {
    System,
    Session,
    Address(String),
}

/// The daemon's settings after defaults and the file are applied.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Settings {
    /// Persistent domain definitions.
    pub config_dir: PathBuf,
    /// Runtime status files and VMM control sockets.
    pub run_dir: PathBuf,
    /// Persistent state such as VMM logs.
    pub state_dir: PathBuf,
    /// The `oxvirt-vmm` binary.
    pub vmm_path: PathBuf,
    /// Serve libvirt's RPC protocol.
    pub rpc_enabled: bool,
    /// Read-write RPC socket.
    pub rpc_socket: PathBuf,
    /// Read-only RPC socket, if any.
    pub rpc_socket_ro: Option<PathBuf>,
    /// How many RPC clients are served and queued, how many calls each,
    /// and how dead ones are found.
    pub clients: ClientLimits,
    /// The bus to serve `org.libvirt` on.
    pub bus: BusSetting,
    /// A `tracing` filter: `info`, `debug`, `oxvirt=debug,zbus=warn`, ...
    pub log_level: String,
    /// The user guests' VMMs run as; None: [`DEFAULT_VMM_USER`] when it
    /// exists (qemu.conf's `user`).
    pub user: Option<String>,
    /// Their group; None: the user's primary group (qemu.conf's `group`).
    pub group: Option<String>,
    /// Give guests' files to that user while they run (qemu.conf's
    /// `dynamic_ownership`).
    pub dynamic_ownership: bool,
    /// Per-thread seccomp filters in VMMs (qemu.conf's `seccomp_sandbox`).
    pub seccomp_sandbox: bool,
    /// Firmware images guests boot without a kernel (`bios_firmware`,
    /// `uefi_firmware`).
    pub firmware: crate::driver::boot::Firmwares,
    /// `vnc_listen` and `vnc_password`, as in libvirt's `qemu.conf`.
    pub graphics: crate::driver::graphics::GraphicsDefaults,
}

/// A configuration error, worded for the administrator.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError(pub String);

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConfigError {}

/// The system configuration file.
pub const SYSTEM_CONFIG: &str = "/etc/oxvirt/oxvirtd.conf";

/// libvirt's limits on the clients of its RPC sockets (`libvirtd.conf`).
/// At `max_clients`, the daemon stops accepting: new connections wait in
/// the socket's queue, which holds `max_queued_clients`; the kernel
/// refuses connections beyond it. Read-only clients cannot take the
/// read-write socket's places, so a flood of local users' connections
/// never locks root out. Clients that asked whether keepalive is
/// supported get a ping after `keepalive_interval` seconds of silence and
/// are dropped after `keepalive_count` pings unanswered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClientLimits {
    pub max_clients: usize,
    /// Clients not yet authenticated. The Unix sockets authenticate by
    /// the peer's credentials when they connect, so none wait.
    pub max_anonymous_clients: usize,
    pub max_queued_clients: usize,
    pub max_client_requests: usize,
    /// Seconds; 0 or less turns keepalive off.
    pub keepalive_interval: i32,
    pub keepalive_count: u32,
}

impl Default for ClientLimits {
    /// libvirtd's defaults.
    fn default() -> Self {
        ClientLimits {
            max_clients: 5000,
            max_anonymous_clients: 20,
            max_queued_clients: 1000,
            max_client_requests: 5,
            keepalive_interval: 5,
            keepalive_count: 5,
        }
    }
}

impl ClientLimits {
    /// Refuses combinations libvirt refuses.
    fn check(&self) -> Result<(), String> {
        if self.max_anonymous_clients > self.max_clients {
            return Err(format!(
                "The overall maximum number of clients must not be less than the number of clients waiting for authentication (max_clients {} < max_anonymous_clients {})",
                self.max_clients, self.max_anonymous_clients
            ));
        }
        Ok(())
    }
}

/// The user the package creates for guests' VMMs (libvirt's `libvirt-qemu`).
pub const DEFAULT_VMM_USER: &str = "oxvirt-qemu";
/// Where the VMM is installed when it is not next to `oxvirtd`.
pub const LIBEXEC_VMM: &str = "/usr/libexec/oxvirt-vmm";

fn env_dir(var: &str, fallback: impl FnOnce() -> PathBuf) -> PathBuf {
    std::env::var_os(var)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(fallback)
}

fn home() -> PathBuf {
    env_dir("HOME", || PathBuf::from("/tmp"))
}

/// `oxvirt-vmm` next to the running binary if it is there, else the
/// packaged location.
pub fn default_vmm() -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(|d| d.join("oxvirt-vmm")))
        .filter(|p| p.is_file())
        .unwrap_or_else(|| PathBuf::from(LIBEXEC_VMM))
}

impl Settings {
    /// Defaults of the system daemon: libvirt's paths.
    pub fn system_default() -> Self {
        Settings {
            config_dir: PathBuf::from("/etc/oxvirt/qemu"),
            run_dir: PathBuf::from("/run/oxvirt/qemu"),
            state_dir: PathBuf::from("/var/lib/oxvirt/qemu"),
            vmm_path: default_vmm(),
            rpc_enabled: true,
            rpc_socket: PathBuf::from("/run/libvirt/libvirt-sock"),
            rpc_socket_ro: Some(PathBuf::from("/run/libvirt/libvirt-sock-ro")),
            clients: ClientLimits::default(),
            bus: BusSetting::System,
            log_level: "info".to_string(),
            user: None,
            group: None,
            dynamic_ownership: true,
            seccomp_sandbox: true,
            firmware: Default::default(),
            graphics: Default::default(),
        }
    }

    /// Defaults of a session daemon: XDG directories, and libvirt's
    /// session socket (`$XDG_RUNTIME_DIR/libvirt/libvirt-sock`, no
    /// read-only socket).
    pub fn session_default() -> Self {
        let config = env_dir("XDG_CONFIG_HOME", || home().join(".config"));
        let runtime = env_dir("XDG_RUNTIME_DIR", || home().join(".cache"));
        let data = env_dir("XDG_DATA_HOME", || home().join(".local/share"));
        Settings {
            config_dir: config.join("oxvirt/qemu"),
            run_dir: runtime.join("oxvirt/qemu/run"),
            state_dir: data.join("oxvirt/qemu"),
            vmm_path: default_vmm(),
            rpc_enabled: true,
            rpc_socket: runtime.join("libvirt/libvirt-sock"),
            rpc_socket_ro: None,
            clients: ClientLimits::default(),
            bus: BusSetting::Session,
            log_level: "info".to_string(),
            user: None,
            group: None,
            dynamic_ownership: true,
            seccomp_sandbox: true,
            firmware: Default::default(),
            graphics: Default::default(),
        }
    }

    /// The configuration file a session daemon reads.
    pub fn session_config_path() -> PathBuf {
        env_dir("XDG_CONFIG_HOME", || home().join(".config")).join("oxvirt/oxvirtd.conf")
    }

    /// Reads `path` over these settings. A missing file is not an error
    /// when `must_exist` is false.
    pub fn load_file(&mut self, path: &Path, must_exist: bool) -> Result<(), ConfigError> {
        match std::fs::read_to_string(path) {
            Ok(text) => self.apply(&text, &path.display().to_string()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !must_exist => Ok(()),
            Err(e) => Err(ConfigError(format!(
                "cannot read configuration file {}: {e}",
                path.display()
            ))),
        }
    }

    /// Applies the settings in `text`; `origin` names the file in errors.
    pub fn apply(&mut self, text: &str, origin: &str) -> Result<(), ConfigError> {
        let mut seen: Vec<(String, usize)> = Vec::new();
        for (i, raw) in text.lines().enumerate() {
            let n = i + 1;
            let err = |msg: String| ConfigError(format!("{origin}:{n}: {msg}"));
            let Some((key, value)) = split_line(raw).map_err(err)? else {
                continue;
            };
            if let Some((_, first)) = seen.iter().find(|(k, _)| *k == key) {
                return Err(err(format!(
                    "setting '{key}' given twice (first on line {first})"
                )));
            }
            self.set(&key, value).map_err(err)?;
            seen.push((key, n));
        }
        self.clients
            .check()
            .map_err(|e| ConfigError(format!("{origin}: {e}")))
    }

    fn set(&mut self, key: &str, value: Value) -> Result<(), String> {
        match key {
            "config_dir" => self.config_dir = value.path(key)?,
            "run_dir" => self.run_dir = value.path(key)?,
            "state_dir" => self.state_dir = value.path(key)?,
            "vmm_path" => self.vmm_path = value.path(key)?,
            "rpc_enabled" => self.rpc_enabled = value.flag(key)?,
            "rpc_socket" => self.rpc_socket = value.path(key)?,
            "rpc_socket_ro" => {
                let s = value.string(key)?;
                self.rpc_socket_ro = if s.is_empty() {
                    None
                } else {
                    Some(absolute(key, s)?)
                };
            }
            "max_clients" => self.clients.max_clients = value.count(key)?,
            "max_anonymous_clients" => self.clients.max_anonymous_clients = value.count(key)?,
            "max_queued_clients" => self.clients.max_queued_clients = value.count(key)?,
            "max_client_requests" => self.clients.max_client_requests = value.count(key)?,
            "keepalive_interval" => self.clients.keepalive_interval = value.int(key)?,
            "keepalive_count" => self.clients.keepalive_count = value.unsigned(key)?,
            "bus" => {
                let s = value.string(key)?;
                self.bus = match s.as_str() {
                    "system" => BusSetting::System,
                    "session" => BusSetting::Session,
                    a if a.contains(':') => BusSetting::Address(a.to_string()),
                    other => {
                        return Err(format!(
                            "bus must be \"system\", \"session\" or a D-Bus address such as \"unix:path=/run/dbus/system_bus_socket\", not \"{other}\""
                        ));
                    }
                };
            }
            "log_level" => {
                let s = value.string(key)?;
                if s.trim().is_empty() {
                    return Err("log_level must not be empty".to_string());
                }
                check_filter(&s)?;
                self.log_level = s;
            }
            "user" => self.user = Some(non_empty(key, value.string(key)?)?),
            "group" => self.group = Some(non_empty(key, value.string(key)?)?),
            "dynamic_ownership" => self.dynamic_ownership = value.flag(key)?,
            "seccomp_sandbox" => self.seccomp_sandbox = value.flag(key)?,
            "bios_firmware" => self.firmware.bios = value.path(key)?,
            "uefi_firmware" => self.firmware.uefi = value.path(key)?,
            "vnc_listen" => {
                let s = value.string(key)?;
                self.graphics.vnc_listen = s
                    .parse()
                    .map_err(|_| format!("vnc_listen must be an IP address, not \"{s}\""))?;
            }
            "vnc_password" => {
                let s = value.string(key)?;
                self.graphics.vnc_password = (!s.is_empty()).then_some(s);
            }
            other => {
                return Err(format!(
                    "unknown setting '{other}' (known: config_dir, run_dir, state_dir, vmm_path, rpc_enabled, rpc_socket, rpc_socket_ro, max_clients, max_anonymous_clients, max_queued_clients, max_client_requests, keepalive_interval, keepalive_count, bus, log_level, user, group, dynamic_ownership, seccomp_sandbox, bios_firmware, uefi_firmware, vnc_listen, vnc_password)"
                ));
            }
        }
        Ok(())
    }

    /// The settings as a configuration file (what `--check-config` prints).
    pub fn render(&self) -> String {
        let q = |p: &Path| quote(&p.display().to_string());
        let bus = match &self.bus {
            BusSetting::System => "system".to_string(),
            BusSetting::Session => "session".to_string(),
            BusSetting::Address(a) => a.clone(),
        };
        format!(
            "config_dir = {}\nrun_dir = {}\nstate_dir = {}\nvmm_path = {}\nrpc_enabled = {}\nrpc_socket = {}\nrpc_socket_ro = {}\nmax_clients = {}\nmax_anonymous_clients = {}\nmax_queued_clients = {}\nmax_client_requests = {}\nkeepalive_interval = {}\nkeepalive_count = {}\nbus = {}\nlog_level = {}\n{}{}dynamic_ownership = {}\nseccomp_sandbox = {}\nbios_firmware = {}\nuefi_firmware = {}\nvnc_listen = {}\n{}",
            q(&self.config_dir),
            q(&self.run_dir),
            q(&self.state_dir),
            q(&self.vmm_path),
            u8::from(self.rpc_enabled),
            q(&self.rpc_socket),
            self.rpc_socket_ro
                .as_deref()
                .map(q)
                .unwrap_or_else(|| "\"\"".to_string()),
            self.clients.max_clients,
            self.clients.max_anonymous_clients,
            self.clients.max_queued_clients,
            self.clients.max_client_requests,
            self.clients.keepalive_interval,
            self.clients.keepalive_count,
            quote(&bus),
            quote(&self.log_level),
            opt_line("user", self.user.as_deref(), DEFAULT_VMM_USER),
            opt_line("group", self.group.as_deref(), DEFAULT_VMM_USER),
            u8::from(self.dynamic_ownership),
            u8::from(self.seccomp_sandbox),
            q(&self.firmware.bios),
            q(&self.firmware.uefi),
            quote(&self.graphics.vnc_listen.to_string()),
            // The password is a secret: only whether one is set.
            if self.graphics.vnc_password.is_some() {
                "vnc_password = (set)\n"
            } else {
                ""
            },
        )
    }
}

impl Settings {
    /// How guests' VMMs are confined. A daemon not running as root keeps
    /// its own identity and has no jail; the default user falls back to
    /// root, with a warning, where it does not exist (a build tree run
    /// before the package created it); a named user must exist.
    pub fn confinement(&self) -> Result<crate::driver::Confinement, ConfigError> {
        use crate::driver::Confinement;
        if !nix::unistd::geteuid().is_root() {
            return Ok(Confinement {
                seccomp: self.seccomp_sandbox,
                ..Confinement::default()
            });
        }
        let name = self.user.as_deref().unwrap_or(DEFAULT_VMM_USER);
        let user = match lookup_user(name)? {
            Some(u) if u.uid.is_root() => None,
            Some(u) => Some(u),
            None if self.user.is_none() => {
                tracing::warn!(
                    "user '{DEFAULT_VMM_USER}' does not exist: guests' VMMs run as root \
                     (still without capabilities); set user in oxvirtd.conf"
                );
                None
            }
            None => return Err(ConfigError(format!("Failed to parse user '{name}'"))),
        };
        let identity = match user {
            None => None,
            Some(u) => {
                let gid = match &self.group {
                    Some(g) => lookup_group(g)?,
                    None => u.gid,
                };
                let c_name = std::ffi::CString::new(u.name.as_str())
                    .map_err(|_| ConfigError(format!("Failed to parse user '{name}'")))?;
                let groups = nix::unistd::getgrouplist(&c_name, gid)
                    .map_err(|e| ConfigError(format!("cannot list the groups of '{name}': {e}")))?;
                Some(crate::vmm::config::Identity {
                    uid: u.uid.as_raw(),
                    gid: gid.as_raw(),
                    groups: groups.iter().map(|g| g.as_raw()).collect(),
                })
            }
        };
        Ok(Confinement {
            user: identity,
            dynamic_ownership: self.dynamic_ownership,
            seccomp: self.seccomp_sandbox,
            jail: true,
        })
    }
}

/// A user by name or, as libvirt accepts, `+UID`.
fn lookup_user(name: &str) -> Result<Option<nix::unistd::User>, ConfigError> {
    use nix::unistd::{Uid, User};
    let found = match name.strip_prefix('+') {
        Some(n) => {
            let uid: u32 = n
                .parse()
                .map_err(|_| ConfigError(format!("Failed to parse user '{name}'")))?;
            User::from_uid(Uid::from_raw(uid))
        }
        None => User::from_name(name),
    };
    found.map_err(|e| ConfigError(format!("Failed to parse user '{name}': {e}")))
}

/// A group by name or `+GID`.
fn lookup_group(name: &str) -> Result<nix::unistd::Gid, ConfigError> {
    use nix::unistd::{Gid, Group};
    let bad = || ConfigError(format!("Failed to parse group '{name}'"));
    if let Some(n) = name.strip_prefix('+') {
        return n.parse().map(Gid::from_raw).map_err(|_| bad());
    }
    Group::from_name(name)
        .map_err(|_| bad())?
        .map(|g| g.gid)
        .ok_or_else(bad)
}

fn non_empty(key: &str, s: String) -> Result<String, String> {
    if s.trim().is_empty() {
        Err(format!("{key} must not be empty"))
    } else {
        Ok(s)
    }
}

/// `key = "value"` for a set optional setting, else the default as a
/// comment (unset, it is looked up when the daemon starts).
fn opt_line(key: &str, value: Option<&str>, default: &str) -> String {
    match value {
        Some(v) => format!("{key} = {}\n", quote(v)),
        None => format!("#{key} = {}\n", quote(default)),
    }
}

fn quote(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

/// Checks a `tracing` filter without installing it.
fn check_filter(s: &str) -> Result<(), String> {
    tracing_subscriber::EnvFilter::builder()
        .parse(s)
        .map(|_| ())
        .map_err(|e| format!("log_level \"{s}\" is not a valid filter: {e}"))
}

fn absolute(key: &str, s: String) -> Result<PathBuf, String> {
    let p = PathBuf::from(&s);
    if p.is_absolute() {
        Ok(p)
    } else {
        Err(format!("{key} must be an absolute path, not \"{s}\""))
    }
}

#[derive(Debug)]
enum Value {
    Str(String),
    Int(i64),
}

impl Value {
    fn string(self, key: &str) -> Result<String, String> {
        match self {
            Value::Str(s) => Ok(s),
            Value::Int(i) => Err(format!("{key} takes a quoted string, not the number {i}")),
        }
    }

    fn path(self, key: &str) -> Result<PathBuf, String> {
        absolute(key, self.string(key)?)
    }

    /// A positive count.
    fn count(self, key: &str) -> Result<usize, String> {
        match self {
            Value::Int(i) if i > 0 => usize::try_from(i).map_err(|_| format!("{key} is too large")),
            Value::Int(i) => Err(format!("{key} takes a positive number, not {i}")),
            Value::Str(s) => Err(format!("{key} takes a positive number, not \"{s}\"")),
        }
    }

    /// Any integer libvirt's `int` settings take.
    fn int(self, key: &str) -> Result<i32, String> {
        match self {
            Value::Int(i) => i32::try_from(i).map_err(|_| format!("{key} is out of range: {i}")),
            Value::Str(s) => Err(format!("{key} takes a number, not \"{s}\"")),
        }
    }

    /// Zero or more.
    fn unsigned(self, key: &str) -> Result<u32, String> {
        match self {
            Value::Int(i) => u32::try_from(i)
                .map_err(|_| format!("{key} takes a number from 0 to {}, not {i}", u32::MAX)),
            Value::Str(s) => Err(format!("{key} takes a number, not \"{s}\"")),
        }
    }

    fn flag(self, key: &str) -> Result<bool, String> {
        match self {
            Value::Int(0) => Ok(false),
            Value::Int(1) => Ok(true),
            Value::Int(i) => Err(format!("{key} takes 0 or 1, not {i}")),
            Value::Str(s) => Err(format!("{key} takes 0 or 1, not \"{s}\"")),
        }
    }
}

/// Splits one line into key and value; `None` for blank and comment lines.
fn split_line(raw: &str) -> Result<Option<(String, Value)>, String> {
    let line = raw.trim();
    if line.is_empty() || line.starts_with('#') {
        return Ok(None);
    }
    let Some((key, rest)) = line.split_once('=') else {
        return Err(format!("expected 'key = value', found \"{line}\""));
    };
    let key = key.trim();
    if key.is_empty() || !key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Err(format!("'{key}' is not a setting name"));
    }
    let rest = rest.trim_start();
    let (value, tail) = if let Some(body) = rest.strip_prefix('"') {
        let mut out = String::new();
        let mut chars = body.char_indices();
        let mut end = None;
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' => match chars.next() {
                    Some((_, e @ ('"' | '\\'))) => out.push(e),
                    Some((_, e)) => {
                        return Err(format!("unknown escape '\\{e}' in the value of {key}"));
                    }
                    None => break,
                },
                '"' => {
                    end = Some(i + 1);
                    break;
                }
                c => out.push(c),
            }
        }
        let Some(end) = end else {
            return Err(format!("unterminated string in the value of {key}"));
        };
        (Value::Str(out), &body[end..])
    } else {
        let end = rest
            .find(|c: char| c.is_whitespace() || c == '#')
            .unwrap_or(rest.len());
        let word = &rest[..end];
        if word.is_empty() {
            return Err(format!("missing value for {key}"));
        }
        let n = word.parse::<i64>().map_err(|_| {
            format!("the value of {key} must be a quoted string or a number, not {word}")
        })?;
        (Value::Int(n), &rest[end..])
    };
    let tail = tail.trim_start();
    if !(tail.is_empty() || tail.starts_with('#')) {
        return Err(format!("unexpected \"{tail}\" after the value of {key}"));
    }
    Ok(Some((key.to_string(), value)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn apply(text: &str) -> Result<Settings, ConfigError> {
        let mut s = Settings::system_default();
        s.apply(text, "test.conf").map(|()| s)
    }

    #[test]
    fn vmm_confinement_settings() {
        let mut s = Settings::system_default();
        assert!(s.dynamic_ownership && s.seccomp_sandbox && s.user.is_none());
        s.apply(
            "user = \"+65534\"\ngroup = \"+65534\"\ndynamic_ownership = 0\nseccomp_sandbox = 0\n",
            "t",
        )
        .unwrap();
        assert_eq!(s.user.as_deref(), Some("+65534"));
        assert!(!s.dynamic_ownership && !s.seccomp_sandbox);
        if nix::unistd::geteuid().is_root() {
            let c = s.confinement().unwrap();
            let id = c.user.unwrap();
            assert_eq!((id.uid, id.gid), (65534, 65534));
            assert!(c.jail && !c.seccomp && !c.dynamic_ownership);
            s.user = Some("no-such-user-here".into());
            assert_eq!(
                s.confinement().unwrap_err().0,
                "Failed to parse user 'no-such-user-here'"
            );
        }
        let mut t = Settings::system_default();
        assert!(t.apply("user = \"\"\n", "t").is_err());
    }

    #[test]
    fn empty_file_keeps_defaults() {
        assert_eq!(apply("# nothing\n\n").unwrap(), Settings::system_default());
    }

    #[test]
    fn every_setting() {
        let s = apply(
            "config_dir = \"/a\"\nrun_dir=\"/b\" # run\nstate_dir = \"/c\"\nvmm_path = \"/d/oxvirt-vmm\"\n\
             rpc_enabled = 0\nrpc_socket = \"/e/sock\"\nrpc_socket_ro = \"\"\nbus = \"unix:path=/x\"\nlog_level = \"debug\"\n",
        )
        .unwrap();
        assert_eq!(s.config_dir, PathBuf::from("/a"));
        assert_eq!(s.run_dir, PathBuf::from("/b"));
        assert!(!s.rpc_enabled);
        assert_eq!(s.rpc_socket_ro, None);
        assert_eq!(s.bus, BusSetting::Address("unix:path=/x".into()));
        assert_eq!(s.log_level, "debug");
        // What render prints reads back the same.
        let mut again = Settings::system_default();
        again.apply(&s.render(), "rendered").unwrap();
        assert_eq!(again, s);
    }

    #[test]
    fn client_limits() {
        let s = apply(
            "max_clients = 10\nmax_anonymous_clients = 10\nmax_queued_clients = 3\n\
             keepalive_interval = -1\nkeepalive_count = 0\n",
        )
        .unwrap();
        assert_eq!(
            s.clients,
            ClientLimits {
                max_clients: 10,
                max_anonymous_clients: 10,
                max_queued_clients: 3,
                max_client_requests: 5,
                keepalive_interval: -1,
                keepalive_count: 0,
            }
        );
        let mut again = Settings::system_default();
        again.apply(&s.render(), "rendered").unwrap();
        assert_eq!(again, s);
        // libvirt refuses fewer clients than may wait for authentication
        // (default 20), and so does oxvirtd.
        let e = apply("max_clients = 8\n").unwrap_err();
        assert!(
            e.0.contains("must not be less than the number of clients waiting for authentication"),
            "{e}"
        );
        assert!(apply("keepalive_count = -1\n").is_err());
        assert!(apply("max_queued_clients = 0\n").is_err());
    }

    #[test]
    fn errors_name_the_line() {
        let e = apply("\nlog_level = \"info\"\nnosuch = 1\n").unwrap_err();
        assert!(
            e.0.starts_with("test.conf:3: unknown setting 'nosuch'"),
            "{e}"
        );
        let e = apply("run_dir = \"/x\nbus = \"system\"").unwrap_err();
        assert!(e.0.starts_with("test.conf:1: unterminated string"), "{e}");
        let e = apply("run_dir relative").unwrap_err();
        assert!(
            e.0.starts_with("test.conf:1: expected 'key = value'"),
            "{e}"
        );
        let e = apply("run_dir = \"relative\"").unwrap_err();
        assert!(e.0.contains("absolute path"), "{e}");
        let e = apply("rpc_enabled = 2").unwrap_err();
        assert!(e.0.contains("takes 0 or 1"), "{e}");
        let e = apply("bus = \"nowhere\"").unwrap_err();
        assert!(e.0.starts_with("test.conf:1: bus must be"), "{e}");
        let e = apply("bus = \"system\"\n\nbus = \"session\"").unwrap_err();
        assert!(
            e.0.starts_with("test.conf:3: setting 'bus' given twice (first on line 1)"),
            "{e}"
        );
        let e = apply("log_level = \"info\" extra").unwrap_err();
        assert!(e.0.contains("unexpected"), "{e}");
        let e = apply("log_level = \"=,[\"").unwrap_err();
        assert!(e.0.contains("not a valid filter"), "{e}");
    }
}
