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
