//! domblklist, domiflist, domblkstat, domifstat, dommemstat, vcpuinfo.

use std::collections::HashMap;

use super::bus::{Bus, DOMAIN, param_i64, param_str, param_u64};
use super::domain::{STATS_BLOCK, STATS_INTERFACE, STATS_VCPU, lookup};
use super::domain_info::XML_INACTIVE;
use super::error::{CliError, Result};
use super::format::{kv, table};
use super::xpath::Doc;

fn devices<'a>(doc: &Doc<'a>) -> Vec<usize> {
    doc.child(0, "domain")
        .and_then(|d| doc.child(d, "devices"))
        .map(|d| doc.nodes[d].children.clone())
        .unwrap_or_default()
}

pub fn domblklist(bus: &Bus, name: &str, inactive: bool, details: bool) -> Result<String> {
    let d = lookup(bus, name)?;
    let xml = d.xml(bus, if inactive { XML_INACTIVE } else { 0 })?;
    let doc = Doc::parse(&xml).map_err(CliError::msg)?;
    let mut rows = Vec::new();
    for n in devices(&doc) {
        if doc.nodes[n].name != "disk" {
            continue;
        }
        let target = doc
            .child(n, "target")
            .and_then(|t| doc.attr(t, "dev"))
            .unwrap_or("-")
            .to_string();
        let source = doc
            .child(n, "source")
            .and_then(|s| {
                ["file", "dev", "dir", "name", "volume"]
                    .iter()
                    .find_map(|a| doc.attr(s, a))
            })
            .unwrap_or("-")
            .to_string();
        if details {
            rows.push(vec![
                doc.attr(n, "type").unwrap_or("-").to_string(),
                doc.attr(n, "device").unwrap_or("disk").to_string(),
                target,
                source,
            ]);
        } else {
            rows.push(vec![target, source]);
        }
    }
    if details {
        Ok(table(&["Type", "Device", "Target", "Source"], &rows))
    } else {
        Ok(table(&["Target", "Source"], &rows))
    }
}

pub fn domiflist(bus: &Bus, name: &str, inactive: bool) -> Result<String> {
    let d = lookup(bus, name)?;
    let xml = d.xml(bus, if inactive { XML_INACTIVE } else { 0 })?;
    let doc = Doc::parse(&xml).map_err(CliError::msg)?;
    let mut rows = Vec::new();
    for n in devices(&doc) {
        if doc.nodes[n].name != "interface" {
            continue;
        }
        let get = |child: &str, attr: &str| {
            doc.child(n, child)
                .and_then(|c| doc.attr(c, attr))
                .map(str::to_string)
        };
        let ty = doc.attr(n, "type").unwrap_or("-").to_string();
        let source = doc
            .child(n, "source")
            .and_then(|s| {
                ["bridge", "dev", "network", "name", "path"]
                    .iter()
                    .find_map(|a| doc.attr(s, a))
            })
            .unwrap_or("-")
            .to_string();
        rows.push(vec![
            get("target", "dev").unwrap_or_else(|| "-".into()),
            ty,
            source,
            get("model", "type").unwrap_or_else(|| "-".into()),
            get("mac", "address").unwrap_or_else(|| "-".into()),
        ]);
    }
    Ok(table(
        &["Interface", "Type", "Source", "Model", "MAC"],
        &rows,
    ))
}

/// The index of the block or net entry called `dev` in a stats record.
fn find_entry(st: &super::bus::Params, group: &str, dev: &str) -> Option<u64> {
    let count = param_u64(st, &format!("{group}.count"))?;
    (0..count).find(|i| {
        param_str(st, &format!("{group}.{i}.name")).as_deref() == Some(dev)
            || param_str(st, &format!("{group}.{i}.path")).as_deref() == Some(dev)
    })
}

/// virsh's lines for block statistics, in its order: (stats key, label,
/// `--human` label).
const BLKSTAT_LINES: [(&str, &str, &str); 9] = [
    ("rd.reqs", "rd_req", "number of read operations:"),
    ("rd.bytes", "rd_bytes", "number of bytes read:"),
    ("wr.reqs", "wr_req", "number of write operations:"),
    ("wr.bytes", "wr_bytes", "number of bytes written:"),
    ("errors", "errs", "error count:"),
    ("fl.reqs", "flush_operations", "number of flush operations:"),
    (
        "rd.times",
        "rd_total_times",
        "total duration of reads (ns):",
    ),
    (
        "wr.times",
        "wr_total_times",
        "total duration of writes (ns):",
    ),
    (
        "fl.times",
        "flush_total_times",
        "total duration of flushes (ns):",
    ),
];

pub fn domblkstat(bus: &Bus, name: &str, dev: Option<&str>, human: bool) -> Result<String> {
    let d = lookup(bus, name)?;
    let devname = dev.unwrap_or("");
    if d.id(bus)?.is_none() {
        return Err(CliError::msg(
            "Requested operation is not valid: domain is not running",
        ));
    }
    let st = d.stats(bus, STATS_BLOCK)?;
    // No device: every disk summed, as libvirt reports it.
    let entries: Vec<u64> = if devname.is_empty() {
        (0..param_u64(&st, "block.count").unwrap_or(0)).collect()
    } else {
        match find_entry(&st, "block", devname) {
            Some(i) => vec![i],
            None => {
                return Err(CliError::msg(format!(
                    "invalid argument: invalid path: {devname}"
                )));
            }
        }
    };
    let mut out = String::new();
    // Human output names the device once, then leaves it out of each line.
    let prefix = if human {
        out.push_str(&format!("Device: {devname}\n"));
        ""
    } else {
        devname
    };
    for (key, label, human_label) in BLKSTAT_LINES {
        let values: Vec<i64> = entries
            .iter()
            .filter_map(|i| param_i64(&st, &format!("block.{i}.{key}")))
            .collect();
        if values.len() == entries.len() {
            let v: i64 = values.iter().sum();
            if human {
                out.push_str(&format!("{prefix} {human_label:<31} {v}\n"));
            } else {
                out.push_str(&format!("{prefix} {label} {v}\n"));
            }
        }
    }
    Ok(out)
}

/// Whether `s` is spelled as a MAC address (six hex octets).
fn looks_like_mac(s: &str) -> bool {
    let parts: Vec<&str> = s.split(':').collect();
    parts.len() == 6
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.len() <= 2 && p.chars().all(|c| c.is_ascii_hexdigit()))
}

/// The tap name of the interface whose MAC is `mac`, from the live XML.
fn tap_of_mac(bus: &Bus, d: &super::domain::Dom, mac: &str) -> Option<String> {
    let xml = d.xml(bus, 0).ok()?;
    let doc = Doc::parse(&xml).ok()?;
    let octets = |m: &str| -> Vec<u8> {
        m.split(':')
            .map(|p| u8::from_str_radix(p, 16).unwrap_or(0))
            .collect()
    };
    let want = octets(mac);
    devices(&doc)
        .into_iter()
        .filter(|&n| doc.nodes[n].name == "interface")
        .find(|&n| {
            doc.child(n, "mac")
                .and_then(|m| doc.attr(m, "address"))
                .is_some_and(|a| octets(a) == want)
        })
        .and_then(|n| doc.child(n, "target"))
        .and_then(|t| doc.attr(t, "dev"))
        .map(str::to_string)
}

pub fn domifstat(bus: &Bus, name: &str, iface: &str) -> Result<String> {
    let d = lookup(bus, name)?;
    let ctx = format!("Failed to get interface stats {} {iface}", d.name);
    if d.id(bus)?.is_none() {
        return Err(
            CliError::ctx(ctx).with_msg("Requested operation is not valid: domain is not running")
        );
    }
    let st = d
        .stats(bus, STATS_INTERFACE)
        .map_err(|e| e.with_ctx(ctx.clone()))?;
    // An interface may be named by its MAC, as libvirt allows.
    let tap = if looks_like_mac(iface) {
        tap_of_mac(bus, &d, iface).unwrap_or_else(|| iface.to_string())
    } else {
        iface.to_string()
    };
    let Some(i) = find_entry(&st, "net", &tap) else {
        return Err(CliError::ctx(ctx).with_msg(format!(
            "invalid argument: '{iface}' is not a known interface"
        )));
    };
    let mut out = String::new();
    for (key, label) in [
        ("rx.bytes", "rx_bytes"),
        ("rx.pkts", "rx_packets"),
        ("rx.errs", "rx_errs"),
        ("rx.drop", "rx_drop"),
        ("tx.bytes", "tx_bytes"),
        ("tx.pkts", "tx_packets"),
        ("tx.errs", "tx_errs"),
        ("tx.drop", "tx_drop"),
    ] {
        if let Some(v) = param_i64(&st, &format!("net.{i}.{key}")) {
            out.push_str(&format!("{iface} {label} {v}\n"));
        }
    }
    Ok(out)
}

/// `virDomainMemoryStatTags` in the order the QEMU driver reports them.
const MEM_TAGS: [(i32, &str); 13] = [
    (6, "actual"),
    (0, "swap_in"),
    (1, "swap_out"),
    (2, "major_fault"),
    (3, "minor_fault"),
    (4, "unused"),
    (5, "available"),
    (8, "usable"),
    (9, "last_update"),
    (10, "disk_caches"),
    (11, "hugetlb_pgalloc"),
    (12, "hugetlb_pgfail"),
    (7, "rss"),
];

pub fn dommemstat(bus: &Bus, name: &str) -> Result<String> {
    let d = lookup(bus, name)?;
    let stats: HashMap<i32, u64> =
        bus.call(&d.path, DOMAIN, "MemoryStats", &(0u32,))
            .map_err(|e| {
                e.with_ctx(format!(
                    "Failed to get memory statistics for domain {}",
                    d.name
                ))
            })?;
    let mut out = String::new();
    for (tag, label) in MEM_TAGS {
        if let Some(v) = stats.get(&tag) {
            out.push_str(&format!("{label} {v}\n"));
        }
    }
    Ok(out)
}

fn affinity(bus: &Bus, path: &str, vcpu: usize) -> String {
    if let Ok(pins) = bus.call::<_, Vec<Vec<bool>>>(path, DOMAIN, "GetVcpuPinInfo", &(0u32,))
        && let Some(p) = pins.get(vcpu)
    {
        return p.iter().map(|b| if *b { 'y' } else { '-' }).collect();
    }
    let map: Vec<bool> = bus.connect("NodeGetCPUMap", &(0u32,)).unwrap_or_default();
    map.iter().map(|b| if *b { 'y' } else { '-' }).collect()
}

pub fn vcpuinfo(bus: &Bus, name: &str) -> Result<String> {
    let d = lookup(bus, name)?;
    let active = d.id(bus)?.is_some();
    let st = d.stats(bus, STATS_VCPU)?;
    let n = param_u64(&st, "vcpu.current").unwrap_or(0) as usize;
    let w = 16;
    let mut blocks = Vec::new();
    for i in 0..n {
        let mut b = String::new();
        b += &kv("VCPU", i, w);
        if active {
            b += &kv("CPU", 0, w);
            let state = param_i64(&st, &format!("vcpu.{i}.state")).unwrap_or(1);
            let s = match state {
                0 => "offline",
                2 => "blocked",
                _ => "running",
            };
            b += &kv("State", s, w);
            let t = param_u64(&st, &format!("vcpu.{i}.time")).unwrap_or(0);
            b += &kv("CPU time", format!("{:.1}s", t as f64 / 1e9), w);
        } else {
            b += &kv("CPU", "N/A", w);
            b += &kv("State", "N/A", w);
            // virsh writes this one line without its colon.
            b += "CPU time        N/A\n";
        }
        b += &kv("CPU Affinity", affinity(bus, &d.path, i), w);
        blocks.push(b);
    }
    Ok(blocks.join("\n"))
}
