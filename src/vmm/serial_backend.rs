//! Host side of COM1: where guest output goes and where input comes from.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use super::config::SerialConfig;
use super::error::{Error, Result};

/// The unix-socket backend's current client, shared by writer and loop.
pub type SharedClient = Arc<Mutex<Option<UnixStream>>>;

/// A ready backend.
pub struct SerialBackend {
    /// Guest output sink handed to the UART.
    pub out: Box<dyn Write + Send>,
    /// Input source to poll (stdin, pty master), if any.
    pub input: Option<RawFd>,
    /// Keeps the pty master open.
    pub pty_master: Option<OwnedFd>,
    /// Path of the pty slave.
    pub pty_path: Option<String>,
    /// Listening socket of the unix backend and its path (removed on exit).
    pub listener: Option<(UnixListener, PathBuf)>,
    /// Current client of the unix backend.
    pub client: SharedClient,
}

/// Writes to a non-blocking fd, dropping what does not fit: a console
/// nobody reads must never stall the guest.
struct LossyFd(File);

impl Write for LossyFd {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self.0.write(buf) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(buf.len()),
            Err(e) if e.raw_os_error() == Some(libc::EIO) => Ok(buf.len()),
            r => r,
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

struct ClientWriter(SharedClient);

impl Write for ClientWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let mut guard = match self.0.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        if let Some(s) = guard.as_mut() {
            match s.write(buf) {
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(_) => *guard = None,
            }
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn set_nonblocking(fd: RawFd) -> io::Result<()> {
    // SAFETY: fcntl on an fd we own with valid flag arguments.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
    if flags < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: as above.
    if unsafe { libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Opens a pseudo-terminal in raw mode; returns the master and the slave path.
pub fn open_pty() -> io::Result<(OwnedFd, String)> {
    // SAFETY: posix_openpt has no memory-safety preconditions.
    let fd = unsafe { libc::posix_openpt(libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fd is a fresh descriptor we exclusively own.
    let master = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: grantpt/unlockpt take a valid pty master fd.
    if unsafe { libc::grantpt(fd) } < 0 || unsafe { libc::unlockpt(fd) } < 0 {
        return Err(io::Error::last_os_error());
    }
    let path = pty_slave_path(&master)?;
    // SAFETY: termios is plain data; tcgetattr fills it for a valid fd.
    let mut tio: libc::termios = unsafe { std::mem::zeroed() };
    // SAFETY: valid fd and pointer to a termios.
    if unsafe { libc::tcgetattr(fd, &mut tio) } == 0 {
        // SAFETY: tio is initialised by tcgetattr.
        unsafe { libc::cfmakeraw(&mut tio) };
        // SAFETY: valid fd and termios.
        unsafe { libc::tcsetattr(fd, libc::TCSANOW, &tio) };
    }
    set_nonblocking(fd)?;
    Ok((master, path))
}

/// The slave's path of the pty whose master is `master`.
fn pty_slave_path(master: &OwnedFd) -> io::Result<String> {
    let mut buf = [0 as libc::c_char; 128];
    // SAFETY: buf is writable for buf.len() bytes.
    if unsafe { libc::ptsname_r(master.as_raw_fd(), buf.as_mut_ptr(), buf.len()) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: ptsname_r wrote a NUL-terminated string into buf.
    Ok(unsafe { std::ffi::CStr::from_ptr(buf.as_ptr()) }
        .to_string_lossy()
        .into_owned())
}

impl SerialBackend {
    fn discarding() -> Self {
        SerialBackend {
            out: Box::new(io::sink()),
            input: None,
            pty_master: None,
            pty_path: None,
            listener: None,
            client: Arc::new(Mutex::new(None)),
        }
    }

    fn appending_to(file: File) -> Self {
        SerialBackend {
            out: Box::new(file),
            ..Self::discarding()
        }
    }

    fn on_pty(master: OwnedFd, path: String) -> Result<Self> {
        set_nonblocking(master.as_raw_fd())
            .map_err(|e| Error::Serial(format!("pty {path}: {e}")))?;
        let dup = master
            .try_clone()
            .map_err(|e| Error::Serial(format!("cannot duplicate the pty: {e}")))?;
        Ok(SerialBackend {
            out: Box::new(LossyFd(File::from(dup))),
            input: Some(master.as_raw_fd()),
            pty_master: Some(master),
            pty_path: Some(path),
            ..Self::discarding()
        })
    }

    fn listening(l: UnixListener, path: PathBuf) -> Result<Self> {
        l.set_nonblocking(true)
            .map_err(|e| Error::Serial(format!("socket: {e}")))?;
        let b = Self::discarding();
        Ok(SerialBackend {
            out: Box::new(ClientWriter(b.client.clone())),
            listener: Some((l, path)),
            ..b
        })
    }

    /// Opens the configured backend.
    pub fn open(cfg: &SerialConfig) -> Result<Self> {
        match cfg {
            SerialConfig::Null => Ok(Self::discarding()),
            SerialConfig::File { path } => OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .map(Self::appending_to)
                .map_err(|e| Error::Serial(format!("cannot open {}: {e}", path.display()))),
            SerialConfig::Stdio => Ok(SerialBackend {
                out: Box::new(io::stdout()),
                input: Some(io::stdin().as_raw_fd()),
                ..Self::discarding()
            }),
            SerialConfig::Pty => {
                let (master, path) =
                    open_pty().map_err(|e| Error::Serial(format!("cannot open a pty: {e}")))?;
                Self::on_pty(master, path)
            }
            SerialConfig::PtyFd { fd, path } => {
                // SAFETY: the daemon passed this descriptor for the
                // serial port alone; nothing else in the VMM owns it.
                let master = unsafe { OwnedFd::from_raw_fd(*fd) };
                Self::on_pty(master, path.clone())
            }
            SerialConfig::Unix { path } => {
                if path.exists() {
                    // Only a stale socket may be replaced.
                    let meta = std::fs::symlink_metadata(path).map_err(|e| {
                        Error::Serial(format!("cannot stat {}: {e}", path.display()))
                    })?;
                    use std::os::unix::fs::FileTypeExt;
                    if !meta.file_type().is_socket() || UnixStream::connect(path).is_ok() {
                        return Err(Error::Serial(format!(
                            "{} exists and is not a stale socket",
                            path.display()
                        )));
                    }
                    let _ = std::fs::remove_file(path);
                }
                let l = UnixListener::bind(path).map_err(|e| {
                    Error::Serial(format!("cannot listen on {}: {e}", path.display()))
                })?;
                Self::listening(l, path.clone())
            }
        }
    }

    /// The backend `cfg` describes on `fd`, which the daemon opened for a
    /// confined VMM that opens nothing itself: the file to append to, the
    /// pty's master, or the socket listening at the path.
    pub fn adopt(cfg: &SerialConfig, fd: OwnedFd) -> Result<Self> {
        match cfg {
            SerialConfig::File { .. } => Ok(Self::appending_to(File::from(fd))),
            // The path comes along: a confined VMM may not ask the
            // terminal for it.
            SerialConfig::PtyFd { path, .. } => Self::on_pty(fd, path.clone()),
            SerialConfig::Unix { path } => Self::listening(UnixListener::from(fd), path.clone()),
            SerialConfig::Pty | SerialConfig::Null | SerialConfig::Stdio => Err(Error::Serial(
                "this backend takes no file descriptor (a pty's master comes as pty-fd)".into(),
            )),
        }
    }

    /// Accepts a new console client on the unix backend, replacing any
    /// previous one. Returns the client's fd to poll for input.
    pub fn accept(&self) -> Option<RawFd> {
        let (l, _) = self.listener.as_ref()?;
        let (s, _) = l.accept().ok()?;
        s.set_nonblocking(true).ok()?;
        let fd = s.as_raw_fd();
        let mut g = match self.client.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        *g = Some(s);
        Some(fd)
    }

    /// Removes the unix backend's socket file.
    pub fn cleanup(&self) {
        if let Some((_, path)) = &self.listener {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// Reads whatever is available from `fd` (non-blocking or ready).
pub fn read_available(fd: RawFd, buf: &mut [u8]) -> io::Result<usize> {
    // SAFETY: buf is valid for writes of buf.len() bytes.
    let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}
