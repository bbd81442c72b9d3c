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
            "attach-device",
            "attach-disk",
            "attach-interface",
            "autostart",
            "blockresize",
            "console",
            "create",
            "define",
            "destroy",
            "detach-device",
            "detach-disk",
            "detach-interface",
            "domdisplay",
            "dumpxml",
            "edit",
            "reboot",
            "reset",
            "managedsave",
            "managedsave-remove",
            "restore",
            "resume",
            "save",
            "save-image-define",
            "save-image-dumpxml",
            "screenshot",
            "send-key",
            "setmem",
            "setvcpus",
            "shutdown",
            "start",
            "suspend",
            "undefine",
            "vcpucount",
            "vncdisplay",
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
    ("Interface", "interface", &["iface-dumpxml", "iface-list"]),
    (
        "Networking",
        "network",
        &[
            "net-autostart",
            "net-create",
            "net-define",
            "net-destroy",
            "net-dhcp-leases",
            "net-dumpxml",
            "net-info",
            "net-list",
            "net-name",
            "net-start",
            "net-undefine",
            "net-update",
            "net-uuid",
        ],
    ),
    (
        "Node Device",
        "nodedev",
        &["nodedev-dumpxml", "nodedev-list"],
    ),
    (
        "Snapshot",
        "snapshot",
        &[
            "snapshot-create",
            "snapshot-create-as",
            "snapshot-current",
            "snapshot-delete",
            "snapshot-dumpxml",
            "snapshot-info",
            "snapshot-list",
            "snapshot-parent",
            "snapshot-revert",
        ],
    ),
    (
        "Storage Pool",
        "pool",
        &[
            "pool-autostart",
            "pool-build",
            "pool-create-as",
            "pool-create",
            "pool-define-as",
            "pool-define",
            "pool-delete",
            "pool-destroy",
            "pool-dumpxml",
            "pool-info",
            "pool-list",
            "pool-name",
            "pool-refresh",
            "pool-start",
            "pool-undefine",
            "pool-uuid",
        ],
    ),
    (
        "Storage Volume",
        "volume",
        &[
            "vol-clone",
            "vol-create-as",
            "vol-create",
            "vol-delete",
            "vol-dumpxml",
            "vol-info",
            "vol-key",
            "vol-list",
            "vol-name",
            "vol-path",
            "vol-pool",
            "vol-resize",
            "vol-wipe",
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

/// virsh's type word for an argument's value.
fn value_type(arg: &clap::Arg) -> &'static str {
    match arg.get_id().as_str() {
        "size" | "count" | "timeout" | "period" => "<number>",
        _ => "<string>",
    }
}

/// One command's help in virsh's layout: NAME, SYNOPSIS, DESCRIPTION and
/// OPTIONS, where a required positional argument is `<name>` in the
/// synopsis and `[--name] <type>` among the options.
fn command_help(cmd: &clap::Command) -> String {
    let name = cmd.get_name();
    let about = cmd.get_about().map(|a| a.to_string()).unwrap_or_default();
    let description = cmd
        .get_long_about()
        .map(|a| a.to_string())
        .unwrap_or_else(|| about.clone());
    let mut synopsis = vec![name.to_string()];
    let mut options = Vec::new();
    let args = cmd
        .get_arguments()
        .filter(|a| !a.is_hide_set() && !a.is_global_set())
        .filter(|a| !matches!(a.get_id().as_str(), "help" | "version"));
    for arg in args {
        let long = arg
            .get_long()
            .map(str::to_string)
            .unwrap_or_else(|| arg.get_id().to_string());
        let takes_value = arg.get_action().takes_values();
        let (synopsis_word, option_word) = if arg.is_positional() && arg.is_required_set() {
            (
                format!("<{long}>"),
                format!("[--{long}] {}", value_type(arg)),
            )
        } else if takes_value {
            let w = format!("--{long} {}", value_type(arg));
            (format!("[{w}]"), w)
        } else {
            (format!("[--{long}]"), format!("--{long}"))
        };
        synopsis.push(synopsis_word);
        let help = arg.get_help().map(|h| h.to_string()).unwrap_or_default();
        options.push(format!("    {option_word:<15}  {help}\n"));
    }
    let mut out = format!(
        "  NAME\n    {name} - {about}\n\n  SYNOPSIS\n    {}\n\n  DESCRIPTION\n    {description}\n\n",
        synopsis.join(" ")
    );
    if !options.is_empty() {
        out.push_str("  OPTIONS\n");
        out.extend(options);
        out.push('\n');
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
                Some(sub) if !sub.is_hide_set() => Ok(command_help(sub)),
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
        let dominfo = help(Some("dominfo")).unwrap();
        assert!(
            dominfo.starts_with(
                "  NAME\n    dominfo - domain information\n\n  SYNOPSIS\n    dominfo <domain>\n\n"
            ),
            "{dominfo}"
        );
        assert!(
            dominfo.ends_with("  OPTIONS\n    [--domain] <string>  domain name, id or uuid\n\n"),
            "{dominfo}"
        );
        assert!(text.starts_with("Grouped commands:\n\n Domain Management (help keyword 'domain'):\n    attach-device                  attach device from an XML file\n    attach-disk                    attach disk device\n"));
    }
}
