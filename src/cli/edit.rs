//! `edit`: the persistent definition in `$VISUAL`/`$EDITOR`, defined
//! again when it changed. A definition that fails keeps the old one; on
//! a terminal the user is asked what to do, as virsh asks.

use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;
use std::process::Command;

use zbus::zvariant::OwnedObjectPath;

use super::bus::Bus;
use super::domain::lookup;
use super::domain_info::{XML_INACTIVE, XML_SECURE};
use super::error::{CliError, Result};

fn editor() -> String {
    ["VISUAL", "EDITOR"]
        .iter()
        .find_map(|v| std::env::var(v).ok().filter(|s| !s.is_empty()))
        .unwrap_or_else(|| "vi".to_string())
}

struct TempFile(PathBuf);

impl TempFile {
    fn create(text: &str) -> Result<TempFile> {
        let dir = std::env::temp_dir();
        for n in 0..1000u32 {
            let p = dir.join(format!("oxvirsh{}-{n}.xml", std::process::id()));
            match std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&p)
            {
                Ok(mut f) => {
                    f.write_all(text.as_bytes())
                        .map_err(|e| CliError::msg(format!("cannot write {}: {e}", p.display())))?;
                    return Ok(TempFile(p));
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => {
                    return Err(CliError::msg(format!(
                        "cannot create a temporary file: {e}"
                    )));
                }
            }
        }
        Err(CliError::msg("cannot create a temporary file"))
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn run_editor(file: &PathBuf) -> Result<()> {
    let ed = editor();
    // The editor setting may carry arguments, as a shell would split them.
    let status = Command::new("/bin/sh")
        .arg("-c")
        .arg(format!("{ed} \"$1\""))
        .arg("sh")
        .arg(file)
        .status()
        .map_err(|e| CliError::msg(format!("cannot run {ed}: {e}")))?;
    if !status.success() {
        return Err(CliError::msg(format!(
            "{ed} {}: command failed",
            file.display()
        )));
    }
    Ok(())
}

/// Asks the reedit question; returns the answer letter.
fn ask() -> char {
    let stdin = std::io::stdin();
    loop {
        say!("Failed. Try again? [y,n,i,f,?]:");
        let _ = std::io::stdout().flush();
        let mut line = String::new();
        if stdin.lock().read_line(&mut line).unwrap_or(0) == 0 {
            return 'n';
        }
        match line.trim().chars().next() {
            Some(c @ ('y' | 'n' | 'i' | 'f')) => return c,
            _ => {
                sayln!("y - yes, start editor again");
                sayln!("n - no, throw away my changes");
                sayln!("i - turn off validation and try to redefine again");
                sayln!("f - force, try to redefine again");
                sayln!("? - print this help");
            }
        }
    }
}

pub fn edit(bus: &Bus, name: &str) -> Result<String> {
    let d = lookup(bus, name)?;
    let orig = d.xml(bus, XML_INACTIVE | XML_SECURE)?;
    let tmp = TempFile::create(&orig)?;
    loop {
        run_editor(&tmp.0)?;
        let new = std::fs::read_to_string(&tmp.0)
            .map_err(|e| CliError::msg(format!("cannot read {}: {e}", tmp.0.display())))?;
        if new == orig {
            return Ok(format!(
                "Domain '{}' XML configuration not changed.\n",
                d.name
            ));
        }
        match bus.connect::<_, OwnedObjectPath>("DomainDefineXML", &(new.as_str(),)) {
            Ok(p) => {
                let n: String = bus
                    .prop(p.as_str(), super::bus::DOMAIN, "Name")
                    .unwrap_or_else(|_| d.name.clone());
                return Ok(format!("Domain '{n}' XML configuration edited.\n"));
            }
            Err(e) => {
                if !std::io::stdin().is_terminal() {
                    return Err(e);
                }
                e.report();
                match ask() {
                    'y' | 'i' | 'f' => continue,
                    _ => return Err(CliError::default()),
                }
            }
        }
    }
}
