//! `list`.

use super::bus::{Bus, DOMAIN};
use super::domain::Dom;
use super::error::Result;
use super::format::{state_name, table};

/// `virConnectListAllDomainsFlags`.
const ACTIVE: u32 = 1;
const INACTIVE: u32 = 2;
const RUNNING: u32 = 16;
const PAUSED: u32 = 32;
const SHUTOFF: u32 = 64;
const OTHER: u32 = 128;
const MANAGEDSAVE: u32 = 256;
const NO_MANAGEDSAVE: u32 = 512;
/// `VIR_DOMAIN_SHUTOFF` in `GetState`.
const STATE_SHUTOFF: i32 = 5;

#[derive(clap::Args, Debug, Clone, Default)]
pub struct ListArgs {
    /// list inactive & active domains
    #[arg(long)]
    pub all: bool,
    /// list inactive domains
    #[arg(long)]
    pub inactive: bool,
    /// list only domain names
    #[arg(long)]
    pub name: bool,
    /// list uuid's only
    #[arg(long)]
    pub uuid: bool,
    /// list domains in running state
    #[arg(long = "state-running")]
    pub state_running: bool,
    /// list domains in paused state
    #[arg(long = "state-paused")]
    pub state_paused: bool,
    /// list domains in shutoff state
    #[arg(long = "state-shutoff")]
    pub state_shutoff: bool,
    /// list domains in other states
    #[arg(long = "state-other")]
    pub state_other: bool,
    /// list table (default)
    #[arg(long)]
    pub table: bool,
    /// mark inactive domains with managed save state
    #[arg(long = "managed-save")]
    pub managed_save: bool,
    /// list domains with managed save state
    #[arg(long = "with-managed-save")]
    pub with_managed_save: bool,
    /// list domains without managed save
    #[arg(long = "without-managed-save")]
    pub without_managed_save: bool,
}

impl ListArgs {
    fn flags(&self) -> u32 {
        let mut f = 0;
        if self.state_running {
            f |= RUNNING;
        }
        if self.state_paused {
            f |= PAUSED;
        }
        if self.state_shutoff {
            f |= SHUTOFF;
        }
        if self.state_other {
            f |= OTHER;
        }
        if self.with_managed_save {
            f |= MANAGEDSAVE;
        }
        if self.without_managed_save {
            f |= NO_MANAGEDSAVE;
        }
        if self.all {
            return f;
        }
        if self.inactive {
            f |= INACTIVE;
        }
        // Only the active ones unless a state was asked for (the managed
        // save filters narrow the active list, as in virsh).
        if f & !(MANAGEDSAVE | NO_MANAGEDSAVE) == 0 {
            f |= ACTIVE;
        }
        f
    }
}

struct Row {
    id: Option<u32>,
    name: String,
    uuid: String,
    state: i32,
    saved: bool,
}

pub fn list(bus: &Bus, a: &ListArgs) -> Result<String> {
    let paths = bus.list_domains(a.flags())?;
    let mut rows = Vec::new();
    for p in paths {
        // A domain that vanished between the listing and the queries is skipped.
        let Ok(d) = Dom::from_path(bus, p.as_str()) else {
            continue;
        };
        let Ok(id) = d.id(bus) else { continue };
        let Ok((state, _)) = d.state(bus) else {
            continue;
        };
        // As virsh: a shut-off domain with a managed save image is "saved".
        let saved = a.managed_save
            && state == STATE_SHUTOFF
            && bus
                .call::<_, bool>(&d.path, DOMAIN, "HasManagedSaveImage", &(0u32,))
                .unwrap_or(false);
        let uuid = if a.uuid {
            bus.prop(&d.path, DOMAIN, "UUID").unwrap_or_default()
        } else {
            String::new()
        };
        rows.push(Row {
            id,
            name: d.name,
            uuid,
            state,
            saved,
        });
    }
    // Running domains by ID first, then the others by name.
    rows.sort_by(|x, y| match (x.id, y.id) {
        (Some(a), Some(b)) => a.cmp(&b),
        (Some(_), None) => std::cmp::Ordering::Less,
        (None, Some(_)) => std::cmp::Ordering::Greater,
        (None, None) => x.name.to_lowercase().cmp(&y.name.to_lowercase()),
    });
    let mut out = String::new();
    if a.name || a.uuid {
        if a.table {
            let mut hdr = vec!["Id", "Name"];
            if a.uuid {
                hdr = vec!["Id", "Name", "UUID"];
            }
            let t: Vec<Vec<String>> = rows
                .iter()
                .map(|r| {
                    let mut v = vec![id_str(r.id), r.name.clone()];
                    if a.uuid {
                        v.push(r.uuid.clone());
                    }
                    v
                })
                .collect();
            return Ok(table(&hdr, &t));
        }
        for r in &rows {
            match (a.uuid, a.name) {
                (true, true) => out.push_str(&format!("{:<36} {}\n", r.uuid, r.name)),
                (true, false) => out.push_str(&format!("{}\n", r.uuid)),
                _ => out.push_str(&format!("{}\n", r.name)),
            }
        }
        return Ok(out);
    }
    let t: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            vec![
                id_str(r.id),
                r.name.clone(),
                if r.saved {
                    "saved".to_string()
                } else {
                    state_name(r.state).to_string()
                },
            ]
        })
        .collect();
    Ok(table(&["Id", "Name", "State"], &t))
}

fn id_str(id: Option<u32>) -> String {
    id.map_or_else(|| "-".to_string(), |i| i.to_string())
}
