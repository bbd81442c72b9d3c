//! `oxvirtd`: the oxvirt daemon. Serves the libvirt-dbus API on the system
//! or session bus and runs each guest in its own `oxvirt-vmm` process.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use oxvirt::dbus::{self, Bus};
use oxvirt::driver::{Driver, DriverConfig};
use oxvirt::rpc;

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
    /// Print the introspection XML of an interface (Connect or Domain) and exit.
    #[arg(long, value_name = "INTERFACE")]
    print_introspection: Option<String>,
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// Unprivileged defaults under the XDG directories, as libvirt's session daemon.
fn session_dirs(cfg: &mut DriverConfig) {
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/tmp"));
    let config = std::env::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| home.join(".config"));
    let runtime = std::env::var_os("XDG_RUNTIME_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| home.join(".cache"));
    let data = std::env::var_os("XDG_DATA_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| home.join(".local/share"));
    cfg.config_dir = config.join("oxvirt/qemu");
    cfg.run_dir = runtime.join("oxvirt/qemu/run");
    cfg.state_dir = data.join("oxvirt/qemu");
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

fn main() -> ExitCode {
    let args = Args::parse();
    if let Some(which) = &args.print_introspection {
        return match dbus::interface_xml(which) {
            Some(xml) => {
                print!("{xml}");
                ExitCode::SUCCESS
            }
            None => {
                eprintln!("oxvirtd: unknown interface '{which}' (use Connect or Domain)");
                ExitCode::FAILURE
            }
        };
    }
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,zbus=error")),
        )
        .with_writer(std::io::stderr)
        .init();
    let bus = if let Some(a) = &args.bus_address {
        Bus::Address(a.clone())
    } else if args.system || (!args.session && is_root()) {
        Bus::System
    } else {
        Bus::Session
    };
    let mut cfg = DriverConfig::system_default();
    if !is_root() {
        session_dirs(&mut cfg);
    }
    if let Some(d) = args.config_dir {
        cfg.config_dir = d;
    }
    if let Some(d) = args.run_dir {
        cfg.run_dir = d;
    }
    if let Some(d) = args.state_dir {
        cfg.state_dir = d;
    }
    if let Some(v) = args.vmm {
        cfg.vmm_path = v;
    }
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
    let rpc_cfg = (!args.no_rpc).then(|| match (&args.rpc_socket, &args.rpc_socket_ro) {
        (None, None) => rpc::RpcConfig::system_default(),
        (rw, ro) => rpc::RpcConfig {
            socket: rw
                .clone()
                .unwrap_or_else(|| rpc::RpcConfig::system_default().socket),
            socket_ro: ro.clone(),
        },
    });
    let result = rt.block_on(async move {
        // Bind first: refuse to start when another daemon serves the socket.
        let listeners = rpc_cfg.as_ref().map(rpc::bind).transpose()?;
        let driver = Driver::open(cfg).await?;
        if let Some(l) = listeners {
            tokio::spawn(rpc::serve(l, driver.clone()));
        }
        tokio::select! {
            r = dbus::serve(bus, driver) => r,
            sig = stop_signal() => {
                // Guests keep running in their own VMMs; the next daemon
                // re-attaches to them.
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
