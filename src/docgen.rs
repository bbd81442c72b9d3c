//! Man pages and shell completions from the programs' clap definitions,
//! written at package build time (`oxvirtd --generate-docs DIR`).

use std::io;
use std::path::Path;

use clap::Command;
use clap_complete::Shell;

/// Writes `DIR/<name>.<section>` from `cmd`, and when `completions` is
/// set, `DIR/<name>.bash`, `DIR/_<name>` (zsh) and `DIR/<name>.fish`.
pub fn write(cmd: Command, section: &str, completions: bool, dir: &Path) -> io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let name = cmd.get_name().to_string();
    let mut page = Vec::new();
    clap_mangen::Man::new(cmd.clone())
        .section(section)
        .manual("oxvirt")
        .source(format!("oxvirt {}", env!("CARGO_PKG_VERSION")))
        .render(&mut page)?;
    if name == "oxvirtd" {
        page.extend_from_slice(OXVIRTD_EXTRA.as_bytes());
    }
    std::fs::write(dir.join(format!("{name}.{section}")), page)?;
    if completions {
        for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
            let mut cmd = cmd.clone();
            clap_complete::generate_to(shell, &mut cmd, &name, dir)?;
        }
    }
    Ok(())
}

/// The pages and completions of every program the library can describe:
/// `oxvirt-vmm` here; callers add their own (`oxvirtd` passes its own
/// command line definition).
pub fn write_library_programs(dir: &Path) -> io::Result<()> {
    use clap::CommandFactory;
    write(
        crate::vmm::cli::Args::command().name("oxvirt-vmm"),
        "8",
        false,
        dir,
    )
}

/// Sections of `oxvirtd(8)` that the option list cannot carry.
const OXVIRTD_EXTRA: &str = r#".SH CONFIGURATION
Settings come from the compiled-in defaults, then the configuration file,
then the command line. The file holds one \fBkey = value\fR per line;
values are double-quoted strings or, for switches, 0 and 1; \fB#\fR starts
a comment. Keys: \fBconfig_dir\fR, \fBrun_dir\fR, \fBstate_dir\fR,
\fBvmm_path\fR, \fBrpc_enabled\fR, \fBrpc_socket\fR, \fBrpc_socket_ro\fR
("" for none), \fBbus\fR ("system", "session" or a D\-Bus address) and
\fBlog_level\fR (a filter such as "info" or "info,oxvirt::rpc=debug").
A line the daemon cannot read stops it with an error naming the file and
the line; \fB\-\-check\-config\fR shows the settings in effect.
.SH SIGNALS
.TP
.B SIGHUP
Re\-read the configuration file. \fBlog_level\fR applies at once; other
changes are logged and apply at the next start. A broken file is logged
and the previous settings stay.
.TP
.BR SIGTERM ", " SIGINT
Exit. Running guests keep running in their own \fBoxvirt\-vmm\fR
processes; the next daemon re\-attaches to them.
.SH SYSTEMD
Under \fBoxvirtd.service\fR (Type=notify) the daemon sends READY=1 once
the RPC sockets listen and it owns \fBorg.libvirt\fR, RELOADING=1 and
READY=1 around a reload, and STOPPING=1 on exit. Sockets passed by
\fBoxvirtd.socket\fR and \fBoxvirtd\-ro.socket\fR (LISTEN_FDS, named
libvirt\-sock and libvirt\-sock\-ro) are used instead of binding.
.SH ENVIRONMENT
.TP
.B RUST_LOG
Log filter; overrides \fBlog_level\fR.
.TP
.BR NOTIFY_SOCKET ", " LISTEN_PID ", " LISTEN_FDS ", " LISTEN_FDNAMES
Set by systemd; see above.
.SH FILES
.TP
.I /etc/oxvirt/oxvirtd.conf
Configuration of the system daemon
(\fI$XDG_CONFIG_HOME/oxvirt/oxvirtd.conf\fR for a session daemon).
.TP
.I /etc/oxvirt/qemu/
Persistent domain definitions.
.TP
.I /run/oxvirt/qemu/
Status files and control sockets of running guests.
.TP
.I /var/lib/oxvirt/qemu/
Guest logs and other persistent state.
.TP
.IR /run/libvirt/libvirt\-sock ", " /run/libvirt/libvirt\-sock\-ro
libvirt RPC sockets: read\-write for root and group \fBlibvirt\fR,
read\-only for everyone.
.SH SEE ALSO
.BR virsh (1),
.BR oxvirt\-xml (1),
.BR oxvirt\-vmm (8),
.BR systemctl (1)
"#;
