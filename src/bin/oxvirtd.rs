//! `oxvirtd`: the oxvirt daemon. Serves the libvirt-dbus API on the system
//! or session bus and runs each guest in its own `oxvirt-vmm` process.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{CommandFactory, Parser};
use oxvirt::daemon_config::{self, BusSetting, Settings};
use oxvirt::dbus::{self, Bus};
use oxvirt::driver::{Driver, DriverConfig};
use oxvirt::{docgen, rpc, systemd};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

#[derive(Debug, Parser)]
#[command(
    name = "oxvirtd",
    version,
    about = "libvirt-compatible hypervisor daemon"
)]
struct Args {
    /// Serve on the system bus (the default when run as root).
    #[arg(long, conflicts_with_all = ["session", "bus_address"])]
    system: bool,
    /// Serve on the session bus (the default otherwise).
    #[arg(long, conflicts_with = "bus_address")]
    session: bool,
    /// Serve on the bus at this D-Bus address.
    #[arg(long, value_name = "ADDR")]
    bus_address: Option<String>,
    /// Persistent domain definitions [default: /etc/oxvirt/qemu].
    #[arg(long, value_name = "DIR")]
    config_dir: Option<PathBuf>,
    /// Runtime status and control sockets [default: /run/oxvirt/qemu].
    #[arg(long, value_name = "DIR")]
    run_dir: Option<PathBuf>,
    /// Persistent state such as VMM logs [default: /var/lib/oxvirt/qemu].
    #[arg(long, value_name = "DIR")]
    state_dir: Option<PathBuf>,
    /// The VMM binary [default: oxvirt-vmm next to this binary].
    #[arg(long, value_name = "PATH")]
    vmm: Option<PathBuf>,
    /// libvirt RPC read-write socket [default: /run/libvirt/libvirt-sock].
    #[arg(long, value_name = "PATH")]
    rpc_socket: Option<PathBuf>,
    /// libvirt RPC read-only socket [default: /run/libvirt/libvirt-sock-ro,
    /// or none when --rpc-socket is given].
    #[arg(long, value_name = "PATH")]
    rpc_socket_ro: Option<PathBuf>,
    /// Do not serve the libvirt RPC protocol.
    #[arg(long, conflicts_with_all = ["rpc_socket", "rpc_socket_ro"])]
    no_rpc: bool,
    /// Print the introspection XML of an interface (Connect, Domain, StoragePool or
    /// StorageVol) and exit.
    #[arg(long, value_name = "INTERFACE")]
    print_introspection: Option<String>,
    /// Configuration file [default: /etc/oxvirt/oxvirtd.conf, or
    /// $XDG_CONFIG_HOME/oxvirt/oxvirtd.conf when not run as root].
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Print the settings in effect (defaults, file, options) and exit;
    /// a broken configuration file is reported with its line number.
    #[arg(long)]
    check_config: bool,
    /// Write man pages and shell completions into DIR and exit.
    #[arg(long, value_name = "DIR", hide = true)]
    generate_docs: Option<PathBuf>,
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// Waits for SIGTERM or SIGINT and names it.
async fn stop_signal() -> &'static str {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        std::future::pending::<()>().await;
        return "no signal";
    };
    tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = int.recv() => "SIGINT",
    }
}

/// Lifts the soft limit on open files to the hard one: each RPC client,
/// guest console and tap takes descriptors, and the common default of
/// 1024 would run out long before `max_clients`.
fn raise_open_file_limit(max_clients: usize) {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit with a valid rlimit struct.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return;
        }
        if lim.rlim_cur < lim.rlim_max {
            lim.rlim_cur = lim.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
    // Read-only and read-write clients may each reach max_clients.
    let need = (max_clients as u64).saturating_mul(2).saturating_add(256);
    if lim.rlim_cur < need {
        tracing::warn!(
            open_files = lim.rlim_cur,
            max_clients,
            "the open-file limit is below what max_clients may need"
        );
    }
}

fn main() -> ExitCode {
    // Before anything else: take the sockets systemd passed (if any) and
    // clear LISTEN_* so no child inherits them.
    let passed_fds = systemd::take_listen_fds();
    let args = Args::parse();
    if let Some(dir) = &args.generate_docs {
        let r = docgen::write(Args::command(), "8", true, dir)
            .and_then(|()| docgen::write_library_programs(dir));
        return match r {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("oxvirtd: cannot write into {}: {e}", dir.display());
                ExitCode::FAILURE
            }
        };
    }
    if let Some(which) = &args.print_introspection {
        return match dbus::interface_xml(which) {
            Some(xml) => {
                print!("{xml}");
                ExitCode::SUCCESS
            }
            None => {
                eprintln!(
                    "oxvirtd: unknown interface '{which}' (use one of {})",
                    dbus::SERVED.join(", ")
                );
                ExitCode::FAILURE
            }
        };
    }

    // Compiled-in defaults, then the configuration file, then options.
    let defaults = if is_root() {
        Settings::system_default()
    } else {
        Settings::session_default()
    };
    let conf_path = args.config.clone().unwrap_or_else(|| {
        if is_root() {
            PathBuf::from(daemon_config::SYSTEM_CONFIG)
        } else {
            Settings::session_config_path()
        }
    });
    let must_exist = args.config.is_some();
    let mut from_file = defaults.clone();
    if let Err(e) = from_file.load_file(&conf_path, must_exist) {
        eprintln!("oxvirtd: {e}");
        return ExitCode::FAILURE;
    }
    let mut s = from_file.clone();
    if let Some(a) = &args.bus_address {
        s.bus = BusSetting::Address(a.clone());
    } else if args.system {
        s.bus = BusSetting::System;
    } else if args.session {
        s.bus = BusSetting::Session;
    }
    if let Some(d) = &args.config_dir {
        s.config_dir = d.clone();
    }
    if let Some(d) = &args.run_dir {
        s.run_dir = d.clone();
    }
    if let Some(d) = &args.state_dir {
        s.state_dir = d.clone();
    }
    if let Some(v) = &args.vmm {
        s.vmm_path = v.clone();
    }
    if args.no_rpc {
        s.rpc_enabled = false;
    }
    if args.rpc_socket.is_some() || args.rpc_socket_ro.is_some() {
        if let Some(p) = &args.rpc_socket {
            s.rpc_socket = p.clone();
        }
        s.rpc_socket_ro = args.rpc_socket_ro.clone();
    }
    if args.check_config {
        print!("# {}\n{}", conf_path.display(), s.render());
        return ExitCode::SUCCESS;
    }

    let log_filter = |level: &str| {
        let mut f = level.to_string();
        if !f.contains("zbus") {
            f.push_str(",zbus=error");
        }
        EnvFilter::new(f)
    };
    let env_log = std::env::var_os("RUST_LOG").is_some();
    let filter = if env_log {
        EnvFilter::try_from_default_env().unwrap_or_else(|_| log_filter(&s.log_level))
    } else {
        log_filter(&s.log_level)
    };
    let (filter, log_handle) = tracing_subscriber::reload::Layer::new(filter);
    tracing_subscriber::registry()
        .with(filter)
        .with(tracing_subscriber::fmt::layer().with_writer(std::io::stderr))
        .init();

    let bus = match &s.bus {
        BusSetting::System => Bus::System,
        BusSetting::Session => Bus::Session,
        BusSetting::Address(a) => Bus::Address(a.clone()),
    };
    let mut cfg = DriverConfig::system_default();
    cfg.config_dir = s.config_dir.clone();
    cfg.run_dir = s.run_dir.clone();
    cfg.state_dir = s.state_dir.clone();
    cfg.vmm_path = s.vmm_path.clone();
    cfg.firmware = s.firmware.clone();
    cfg.graphics = s.graphics.clone();
    cfg.confinement = match s.confinement() {
        Ok(c) => c,
        Err(e) => {
            tracing::error!("{e}");
            return ExitCode::FAILURE;
        }
    };
    // Guests' cgroups, as a root libvirtd keeps them; a daemon with a
    // run directory of its own keeps its guests in a partition of its own.
    if nix::unistd::geteuid().is_root() {
        cfg.cgroups = oxvirt::driver::cgroup::Cgroups::detect();
        cfg.cgroup_partition = oxvirt::driver::cgroup::partition_for(
            &cfg.run_dir,
            &DriverConfig::system_default().run_dir,
        );
        if cfg.cgroups.is_empty() {
            tracing::warn!("no cgroup controller is mounted: guests run without cgroups");
        } else {
            tracing::info!(
                partition = cfg.cgroup_partition,
                "guest cgroups: {}",
                cfg.cgroups.describe()
            );
        }
    }
    raise_open_file_limit(s.clients.max_clients);
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!("cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let rpc_cfg = s.rpc_enabled.then(|| rpc::RpcConfig {
        socket: s.rpc_socket.clone(),
        socket_ro: s.rpc_socket_ro.clone(),
        limits: s.clients,
    });
    let result = rt.block_on(async move {
        // SIGHUP re-reads the configuration file.
        let reload = Reload {
            path: conf_path,
            must_exist,
            defaults,
            loaded: from_file,
            env_log,
        };
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
            Ok(hup) => {
                tokio::spawn(reload.run(hup, move |f| log_filter(f), log_handle));
            }
            Err(e) => tracing::warn!("cannot handle SIGHUP: {e}"),
        }
        // Sockets from systemd (socket activation) or bound here. Binding
        // refuses to start when another daemon serves the socket.
        let listeners = match &rpc_cfg {
            None => None,
            Some(c) => {
                let (rw, ro) = systemd::rpc_sockets(passed_fds);
                match rw {
                    Some(rw) => Some(rpc::adopt(rw, ro, c.limits)?),
                    None => Some(rpc::bind(c)?),
                }
            }
        };
        let driver = Driver::open(cfg).await?;
        if let Some(l) = listeners {
            tokio::spawn(rpc::serve(l, driver.clone()));
        }
        if std::env::var_os("NOTIFY_SOCKET").is_some() {
            tokio::spawn(announce_ready(bus.clone()));
        }
        tokio::select! {
            r = dbus::serve(bus, driver) => r,
            sig = stop_signal() => {
                // Guests keep running in their own VMMs; the next daemon
                // re-attaches to them.
                systemd::notify("STOPPING=1");
                tracing::info!("{sig} received, exiting; guests keep running");
                Ok(())
            }
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            ExitCode::FAILURE
        }
    }
}

/// Tells systemd the daemon is ready once this process owns `org.libvirt`
/// (the RPC sockets are listening by then).
async fn announce_ready(bus: Bus) {
    use zbus::names::BusName;
    let builder = match &bus {
        Bus::System => zbus::connection::Builder::system(),
        Bus::Session => zbus::connection::Builder::session(),
        Bus::Address(a) => zbus::connection::Builder::address(a.as_str()),
    };
    let conn = match builder {
        Ok(b) => b.build().await,
        Err(e) => Err(e),
    };
    let proxy = match conn {
        Ok(c) => zbus::fdo::DBusProxy::new(&c).await.map(|p| (c, p)),
        Err(e) => Err(e),
    };
    let Ok((_conn, proxy)) = proxy else {
        tracing::warn!("cannot watch the bus for readiness; reporting ready now");
        systemd::notify("READY=1");
        return;
    };
    let me = std::process::id();
    let Ok(name) = BusName::from_static_str(dbus::BUS_NAME) else {
        return;
    };
    loop {
        if let Ok(owner) = proxy.get_name_owner(name.clone()).await
            && let Ok(pid) = proxy
                .get_connection_unix_process_id(BusName::from(owner.into_inner()))
                .await
            && pid == me
        {
            systemd::notify(&format!(
                "READY=1\nSTATUS=serving {} and the libvirt RPC sockets",
                dbus::BUS_NAME
            ));
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

type LogHandle = tracing_subscriber::reload::Handle<EnvFilter, tracing_subscriber::Registry>;

/// What SIGHUP needs to re-read the configuration file.
struct Reload {
    path: PathBuf,
    must_exist: bool,
    defaults: Settings,
    loaded: Settings,
    env_log: bool,
}

impl Reload {
    async fn run(
        self,
        mut hup: tokio::signal::unix::Signal,
        filter: impl Fn(&str) -> EnvFilter + Send + 'static,
        handle: LogHandle,
    ) {
        while hup.recv().await.is_some() {
            systemd::notify("RELOADING=1");
            let mut fresh = self.defaults.clone();
            match fresh.load_file(&self.path, self.must_exist) {
                Ok(()) => {
                    if self.env_log {
                        tracing::info!(
                            "reloaded {}; RUST_LOG sets the log level",
                            self.path.display()
                        );
                    } else if let Err(e) = handle.reload(filter(&fresh.log_level)) {
                        tracing::warn!("cannot change the log level: {e}");
                    } else {
                        tracing::info!(
                            "reloaded {}; log level {}",
                            self.path.display(),
                            fresh.log_level
                        );
                    }
                    let mut other = fresh.clone();
                    other.log_level = self.loaded.log_level.clone();
                    if other != self.loaded {
                        tracing::warn!(
                            "{} changes settings other than log_level; they take effect when oxvirtd restarts",
                            self.path.display()
                        );
                    }
                }
                Err(e) => tracing::error!("{e}; keeping the previous settings"),
            }
            systemd::notify("READY=1");
        }
    }
}
