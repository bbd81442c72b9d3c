//! `help`: the command list grouped as virsh groups it, or one group,
//! or one command's options.

use clap::CommandFactory;

use super::Cli;
use super::error::{CliError, Result};

const GROUPS: &[(&str, &str, &[&str])] = &[
    (
        "Domain Management",
        "domain",
        &[
            "autostart",
            "console",
            "create",
            "define",
            "destroy",
            "dumpxml",
            "edit",
            "reboot",
            "reset",
            "resume",
            "setmem",
            "setvcpus",
            "shutdown",
            "start",
            "suspend",
            "undefine",
        ],
    ),
    (
        "Domain Monitoring",
        "monitor",
        &[
            "domblklist",
            "domblkstat",
            "domid",
            "domifstat",
            "domiflist",
            "dominfo",
            "dommemstat",
            "domname",
            "domstate",
            "domuuid",
            "list",
            "vcpuinfo",
        ],
    ),
    ("Domain Events", "events", &["event"]),
    (
        "Host and Hypervisor",
        "host",
        &[
            "capabilities",
            "hostname",
            "nodeinfo",
            "sysinfo",
            "uri",
            "version",
        ],
    ),
    ("Virsh itself", "virsh", &["exit", "help", "quit"]),
];

fn group_text(cmd: &clap::Command, title: &str, keyword: &str, names: &[&str]) -> String {
    let mut out = format!(" {title} (help keyword '{keyword}'):\n");
    for n in names {
        let about = cmd
            .find_subcommand(n)
            .and_then(|s| s.get_about())
            .map(|a| a.to_string())
            .unwrap_or_default();
        out.push_str(&format!("    {n:<30} {about}\n"));
    }
    out
}

pub fn help(topic: Option<&str>) -> Result<String> {
    let mut cmd = Cli::command();
    match topic {
        None => {
            let mut out = String::from("Grouped commands:\n\n");
            for (title, kw, names) in GROUPS {
                out.push_str(&group_text(&cmd, title, kw, names));
                out.push('\n');
            }
            Ok(out)
        }
        Some(t) => {
            if let Some((title, kw, names)) = GROUPS.iter().find(|(_, kw, _)| *kw == t) {
                return Ok(group_text(&cmd, title, kw, names));
            }
            match cmd.find_subcommand_mut(t) {
                Some(sub) if !sub.is_hide_set() => Ok(sub.render_help().to_string()),
                _ => Err(CliError::ctx(format!(
                    "command or command group '{t}' doesn't exist"
                ))),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_command_is_in_a_group() {
        let cmd = Cli::command();
        for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
            let name = sub.get_name();
            assert!(
                GROUPS.iter().any(|(_, _, n)| n.contains(&name)),
                "{name} is in no help group"
            );
        }
        let text = help(None).unwrap();
        assert!(text.starts_with("Grouped commands:\n\n Domain Management (help keyword 'domain'):\n    autostart                      autostart a domain\n"));
    }
}
