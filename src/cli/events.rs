//! `event`: prints the daemon's domain events as virsh does.

use std::collections::HashMap;
use std::io::Write;
use std::time::Duration;

use futures_util::StreamExt;
use zbus::zvariant::OwnedObjectPath;
use zbus::{MatchRule, MessageStream};

use super::bus::{Bus, DOMAIN};
use super::domain::lookup;
use super::error::{CliError, Result};

#[derive(clap::Args, Debug, Clone)]
pub struct EventArgs {
    /// filter by domain name, id or uuid
    #[arg(long)]
    pub domain: Option<String>,
    /// which event type to wait for
    #[arg(long)]
    pub event: Option<String>,
    /// wait for all events instead of just one type
    #[arg(long)]
    pub all: bool,
    /// loop until timeout or interrupt, rather than one-shot
    #[arg(long = "loop")]
    pub r#loop: bool,
    /// timeout seconds
    #[arg(long)]
    pub timeout: Option<u64>,
    /// list valid event types
    #[arg(long)]
    pub list: bool,
    /// show timestamp for each printed event
    #[arg(long)]
    pub timestamp: bool,
}

const EVENTS: [&str; 9] = [
    "Defined",
    "Undefined",
    "Started",
    "Suspended",
    "Resumed",
    "Stopped",
    "Shutdown",
    "PMSuspended",
    "Crashed",
];

fn detail(event: i32, detail: i32) -> &'static str {
    let t: &[&str] = match event {
        0 => &["Added", "Updated", "Renamed", "Snapshot"],
        1 => &["Removed", "Renamed"],
        2 => &["Booted", "Migrated", "Restored", "Snapshot", "Event wakeup"],
        3 => &[
            "Paused",
            "Migrated",
            "I/O Error",
            "Watchdog",
            "Restored",
            "Snapshot",
            "API error",
            "Post-copy",
            "Post-copy Error",
        ],
        4 => &[
            "Unpaused",
            "Migrated",
            "Snapshot",
            "Post-copy",
            "Post-copy Error",
        ],
        5 => &[
            "Shutdown",
            "Destroyed",
            "Crashed",
            "Migrated",
            "Saved",
            "Failed",
            "Snapshot",
        ],
        6 => &[
            "Finished",
            "Finished after guest request",
            "Finished after host request",
        ],
        7 => &["Memory", "Disk"],
        8 => &["Panicked", "Crashloaded"],
        _ => &[],
    };
    usize::try_from(detail)
        .ok()
        .and_then(|d| t.get(d))
        .copied()
        .unwrap_or("unknown")
}

fn event_name(event: i32) -> &'static str {
    usize::try_from(event)
        .ok()
        .and_then(|e| EVENTS.get(e))
        .copied()
        .unwrap_or("unknown")
}

/// The event types virsh knows; oxvirt delivers `lifecycle` and `reboot`.
const TYPES: &[&str] = &["lifecycle", "reboot"];

pub fn event(bus: &Bus, a: &EventArgs) -> Result<()> {
    if a.list {
        for t in TYPES {
            sayln!("{t}");
        }
        return Ok(());
    }
    if !a.all && a.event.is_none() {
        return Err(CliError::ctx(
            "one of --list, --all, or --event <type> is required",
        ));
    }
    if let Some(e) = &a.event
        && !TYPES.contains(&e.as_str())
    {
        return Err(CliError::ctx(format!("unknown event type {e}")));
    }
    let want = |t: &str| a.all || a.event.as_deref() == Some(t);
    let only: Option<String> = match &a.domain {
        Some(d) => Some(lookup(bus, d)?.path),
        None => None,
    };
    // Names of the domains known now; events about domains that are
    // gone by the time they arrive still get a name.
    let mut names: HashMap<String, String> = HashMap::new();
    if let Ok(paths) = bus.list_domains(0) {
        for p in paths {
            if let Ok(n) = bus.prop::<String>(p.as_str(), DOMAIN, "Name") {
                names.insert(p.to_string(), n);
            }
        }
    }
    let conn = bus.connection().clone();
    let root = bus.root.clone();
    let mut count = 0u64;
    let timed_out = bus.block_on(async {
        let rules = [
            MatchRule::builder()
                .msg_type(zbus::message::Type::Signal)
                .interface("org.libvirt.Connect")?
                .member("DomainEvent")?
                .path(root.as_str())?
                .build(),
            MatchRule::builder()
                .msg_type(zbus::message::Type::Signal)
                .interface("org.libvirt.Domain")?
                .member("Reboot")?
                .build(),
        ];
        let mut streams = Vec::new();
        for r in rules {
            streams.push(MessageStream::for_match_rule(r, &conn, None).await?);
        }
        let mut merged = futures_util::stream::select_all(streams);
        let deadline = a
            .timeout
            .map(|t| tokio::time::Instant::now() + Duration::from_secs(t));
        loop {
            let next = async {
                match deadline {
                    Some(d) => tokio::time::timeout_at(d, merged.next()).await.ok(),
                    None => Some(merged.next().await),
                }
            };
            let item = tokio::select! {
                i = next => i,
                _ = tokio::signal::ctrl_c() => return Ok::<bool, zbus::Error>(false),
            };
            let Some(item) = item else {
                return Ok(true);
            };
            let Some(Ok(msg)) = item else { continue };
            let hdr = msg.header();
            let member = hdr.member().map(|m| m.to_string()).unwrap_or_default();
            let sig_path = hdr.path().map(|p| p.to_string()).unwrap_or_default();
            drop(hdr);
            let (dom_path, line) = if member == "DomainEvent" {
                if !want("lifecycle") {
                    continue;
                }
                let Ok((p, ev, det)) = msg.body().deserialize::<(OwnedObjectPath, i32, i32)>()
                else {
                    continue;
                };
                (
                    p.to_string(),
                    format!("'lifecycle'|: {} {}", event_name(ev), detail(ev, det)),
                )
            } else {
                if !want("reboot") {
                    continue;
                }
                (sig_path, "'reboot'|".to_string())
            };
            if only.as_ref().is_some_and(|o| *o != dom_path) {
                continue;
            }
            let name = match names.get(&dom_path) {
                Some(n) => n.clone(),
                None => {
                    let n = conn
                        .call_method(
                            Some(super::bus::DEST),
                            dom_path.as_str(),
                            Some("org.freedesktop.DBus.Properties"),
                            "Get",
                            &(DOMAIN, "Name"),
                        )
                        .await
                        .ok()
                        .and_then(|m| m.body().deserialize::<zbus::zvariant::OwnedValue>().ok())
                        .and_then(|v| String::try_from(v).ok())
                        .unwrap_or_default();
                    names.insert(dom_path.clone(), n.clone());
                    n
                }
            };
            let (kind, rest) = line.split_once('|').unwrap_or((&line, ""));
            let stamp = if a.timestamp {
                format!("{}: ", timestamp())
            } else {
                String::new()
            };
            sayln!("{stamp}event {kind} for domain '{name}'{rest}");
            let _ = std::io::stdout().flush();
            count += 1;
            if !a.r#loop {
                return Ok(false);
            }
        }
    })?;
    if timed_out {
        sayln!("event loop timed out");
    }
    sayln!("events received: {count}");
    Ok(())
}

/// Local time as `YYYY-MM-DD hh:mm:ss.mmm+0000` (UTC).
fn timestamp() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let secs = now.as_secs();
    let (days, rem) = (secs / 86400, secs % 86400);
    let (y, m, d) = civil(days as i64);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}.{:03}+0000",
        rem / 3600,
        (rem / 60) % 60,
        rem % 60,
        now.subsec_millis()
    )
}

/// Days since 1970-01-01 to a civil date.
fn civil(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}
