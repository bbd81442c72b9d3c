//! `oxvirt-xml`: format, check and validate libvirt domain XML files with
//! oxvirt's model, without a daemon.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use clap::{Parser, Subcommand};
use oxvirt::driver::network::dnsmasq;
use oxvirt::xml::network::parse_network;
use oxvirt::xml::{FormatFlags, check_supported, parse_domain};

#[derive(Parser)]
#[command(
    name = "oxvirt-xml",
    about = "Work with libvirt domain XML as oxvirt reads it"
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Print each file in canonical form, defaults filled, as `virsh dumpxml` would.
    Format {
        /// Omit live-only state (ids, generated aliases).
        #[arg(long)]
        inactive: bool,
        /// Include secrets such as graphics passwords.
        #[arg(long)]
        secure: bool,
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Report whether oxvirt can run each domain.
    Check {
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Print each network definition as `virsh net-dumpxml` would.
    FormatNetwork {
        /// As `net-dumpxml --inactive`.
        #[arg(long)]
        inactive: bool,
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Print the dnsmasq configuration a network would be served with
    /// (bridge names and MACs as the files give them).
    DnsmasqConf {
        /// Directory of the hosts files named in it.
        #[arg(long, default_value = "/var/lib/libvirt/dnsmasq")]
        dir: PathBuf,
        /// Also print the DHCP hosts file after a line `--- hostsfile`.
        #[arg(long)]
        hostsfile: bool,
        file: PathBuf,
    },
    /// Validate each file against oxvirt's RelaxNG schema with xmllint.
    Validate {
        /// Directory holding domain.rng.
        #[arg(long)]
        schema_dir: Option<PathBuf>,
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
}

fn read(path: &Path) -> Result<String, String> {
    std::fs::read_to_string(path)
        .map_err(|e| format!("Failed to open file '{}': {e}", path.display()))
}

fn format_files(files: &[PathBuf], flags: FormatFlags) -> ExitCode {
    for f in files {
        let dom = read(f).and_then(|x| parse_domain(&x).map_err(|e| e.to_string()));
        match dom {
            Ok(d) => print!("{}", d.to_xml(flags)),
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    ExitCode::SUCCESS
}

fn format_networks(files: &[PathBuf], inactive: bool) -> ExitCode {
    for f in files {
        match read(f).and_then(|x| parse_network(&x).map_err(|e| e.to_string())) {
            Ok(n) => print!("{}", n.to_xml(inactive, 0)),
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    ExitCode::SUCCESS
}

fn dnsmasq_conf(file: &Path, dir: &Path, hostsfile: bool) -> ExitCode {
    let conf = read(file).and_then(|x| {
        let def = parse_network(&x).map_err(|e| e.to_string())?;
        dnsmasq::Config::new(&def, dir, None).map_err(|e| e.to_string())
    });
    match conf {
        Ok(c) => {
            print!("{}", c.conf);
            if hostsfile {
                println!("--- hostsfile");
                print!("{}", c.hostsfile);
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn check_files(files: &[PathBuf]) -> ExitCode {
    let mut status = ExitCode::SUCCESS;
    for f in files {
        let result = read(f).and_then(|x| {
            let d = parse_domain(&x).map_err(|e| e.to_string())?;
            check_supported(&d).map_err(|e| e.to_string())
        });
        match result {
            Ok(()) => println!("{}: ok", f.display()),
            Err(e) => {
                eprintln!("error: {}: {e}", f.display());
                status = ExitCode::FAILURE;
            }
        }
    }
    status
}

/// Where domain.rng lives: flag, environment, installed copy, source tree.
fn schema_dir(flag: Option<PathBuf>) -> PathBuf {
    if let Some(d) = flag {
        return d;
    }
    if let Some(d) = std::env::var_os("OXVIRT_SCHEMA_DIR") {
        return PathBuf::from(d);
    }
    let installed = PathBuf::from("/usr/share/oxvirt/schemas");
    if installed.is_dir() {
        return installed;
    }
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("xml-schemas")
}

fn validate_files(files: &[PathBuf], dir: PathBuf) -> ExitCode {
    let schema = dir.join("domain.rng");
    if !schema.is_file() {
        eprintln!("error: schema {} not found", schema.display());
        return ExitCode::FAILURE;
    }
    let mut status = ExitCode::SUCCESS;
    for f in files {
        let out = Command::new("xmllint")
            .arg("--noout")
            .arg("--relaxng")
            .arg(&schema)
            .arg(f)
            .output();
        match out {
            Ok(o) if o.status.success() => println!("{} validates", f.display()),
            Ok(o) => {
                eprint!("{}", String::from_utf8_lossy(&o.stderr));
                status = ExitCode::FAILURE;
            }
            Err(e) => {
                eprintln!("error: cannot run xmllint: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    status
}

fn main() -> ExitCode {
    match Cli::parse().command {
        Cmd::Format {
            inactive,
            secure,
            files,
        } => format_files(
            &files,
            FormatFlags {
                secure,
                inactive,
                ..FormatFlags::default()
            },
        ),
        Cmd::Check { files } => check_files(&files),
        Cmd::FormatNetwork { inactive, files } => format_networks(&files, inactive),
        Cmd::DnsmasqConf {
            dir,
            hostsfile,
            file,
        } => dnsmasq_conf(&file, &dir, hostsfile),
        Cmd::Validate {
            schema_dir: dir,
            files,
        } => validate_files(&files, schema_dir(dir)),
    }
}
