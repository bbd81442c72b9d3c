//! `org.oxvirt.Console`, an extension interface on each domain object:
//! `OpenConsole(s devname, u flags) -> h fd` hands the client the host
//! pty behind the domain's serial console as a unix fd, so a D-Bus client
//! can attach to the console as `virsh console` does over libvirt's RPC;
//! `Screenshot(h fd, u screen, u flags) -> s mime` writes an image of the
//! graphical console into the client's fd (libvirt-dbus has no
//! `virDomainScreenshot`).
//! Described in `dbus/interfaces/org.oxvirt.Console.xml`.

use std::os::unix::fs::OpenOptionsExt;
use std::sync::Arc;

use nix::sys::termios;
use zbus::zvariant::OwnedFd;

use crate::driver::DomainObj;
use crate::error::{Error, ErrorCode, ErrorDomain, Result};

use super::call::Call;
use super::spec_types::{Interface, Method};

pub static CONSOLE: Interface = Interface {
    name: "org.oxvirt.Console",
    methods: &[
        Method {
            name: "OpenConsole",
            input: &[("devname", "s"), ("flags", "u")],
            output: &[("fd", "h")],
            libvirt: "virDomainOpenConsole",
        },
        Method {
            name: "Screenshot",
            input: &[("fd", "h"), ("screen", "u"), ("flags", "u")],
            output: &[("mime", "s")],
            libvirt: "virDomainScreenshot",
        },
    ],
    properties: &[],
    signals: &[],
};

/// Opens the pty slave in raw mode, so that the line discipline neither
/// echoes nor rewrites the guest's bytes.
fn open_pty(path: &str) -> Result<std::fs::File> {
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NOCTTY)
        .open(path)
        .map_err(|e| {
            Error::new(
                ErrorCode::SystemError,
                ErrorDomain::None,
                format!("Unable to open {path}: {e}"),
            )
        })?;
    if let Ok(mut t) = termios::tcgetattr(&f) {
        termios::cfmakeraw(&mut t);
        let _ = termios::tcsetattr(&f, termios::SetArg::TCSANOW, &t);
    }
    Ok(f)
}

/// Handles a call on `org.oxvirt.Console` of an existing domain.
pub async fn handle(call: &Call, member: &str, obj: &Arc<DomainObj>) -> Result<()> {
    match member {
        "OpenConsole" => open_console(call, obj).await,
        "Screenshot" => screenshot(call, obj).await,
        _ => Err(Error::no_support(member)),
    }
}

/// Copies the driver's image into the client's fd, off the async workers
/// (the fd may be a pipe the client drains slowly).
async fn screenshot(call: &Call, obj: &Arc<DomainObj>) -> Result<()> {
    let (fd, screen, flags): (OwnedFd, u32, u32) = call.args()?;
    let (mut image, mime) = call.driver.screenshot(obj, screen, flags).await?;
    let mut out = std::fs::File::from(std::os::fd::OwnedFd::from(fd));
    tokio::task::spawn_blocking(move || std::io::copy(&mut image, &mut out))
        .await
        .map_err(|e| Error::internal(format!("screenshot writer failed: {e}")))?
        .map_err(|e| {
            Error::new(
                ErrorCode::SystemError,
                ErrorDomain::None,
                format!("unable to write screenshot: {e}"),
            )
        })?;
    call.ok(&(mime,)).await
}

async fn open_console(call: &Call, obj: &Arc<DomainObj>) -> Result<()> {
    let (dev, flags): (String, u32) = call.args()?;
    let dev = (!dev.is_empty()).then_some(dev.as_str());
    let path = call.driver.console_pty(obj, dev, flags)?;
    let file = open_pty(&path)?;
    let fd = OwnedFd::from(std::os::fd::OwnedFd::from(file));
    call.ok(&(fd,)).await
}
