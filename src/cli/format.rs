//! virsh's two output layouts: tables (` Id   Name   State`, a dashes
//! line, rows; column widths from the content) and `Key:   value` lists.

/// Renders a table the way virsh lays it out. Every line starts with one
/// space; columns are separated by three spaces; the last column is not
/// padded. The dashes line is two characters longer than the widest line.
pub fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let n = headers.len();
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate().take(n) {
            widths[i] = widths[i].max(c.chars().count());
        }
    }
    let line = |cells: &mut dyn Iterator<Item = &str>| {
        let mut s = String::from(" ");
        for (i, c) in cells.enumerate() {
            if i > 0 {
                s.push_str("   ");
            }
            s.push_str(c);
            if i + 1 < n {
                let pad = widths[i].saturating_sub(c.chars().count());
                s.extend(std::iter::repeat_n(' ', pad));
            }
        }
        s
    };
    let total = 1 + widths.iter().sum::<usize>() + 3 * n.saturating_sub(1);
    let mut out = line(&mut headers.iter().copied());
    out.push('\n');
    out.extend(std::iter::repeat_n('-', total + 2));
    out.push('\n');
    for r in rows {
        out.push_str(&line(&mut r.iter().map(|s| s.as_str())));
        out.push('\n');
    }
    out
}

/// `Key:` padded to `width` columns, then the value.
pub fn kv(key: &str, value: impl std::fmt::Display, width: usize) -> String {
    format!("{:<width$}{value}\n", format!("{key}:"))
}

/// virsh's wording of a domain state (`virDomainState`).
pub fn state_name(state: i32) -> &'static str {
    match state {
        1 => "running",
        2 => "idle",
        3 => "paused",
        4 => "in shutdown",
        5 => "shut off",
        6 => "crashed",
        7 => "pmsuspended",
        _ => "no state",
    }
}

/// virsh's wording of a state reason.
pub fn reason_name(state: i32, reason: i32) -> &'static str {
    let table: &[&str] = match state {
        1 => &[
            "unknown",
            "booted",
            "migrated",
            "restored",
            "from snapshot",
            "unpaused",
            "migration canceled",
            "save canceled",
            "event wakeup",
            "crashed",
            "post-copy",
            "post-copy failed",
        ],
        3 => &[
            "unknown",
            "user",
            "migrating",
            "saving",
            "dumping",
            "I/O error",
            "watchdog",
            "from snapshot",
            "shutting down",
            "creating snapshot",
            "crashed",
            "starting up",
            "post-copy",
            "post-copy failed",
            "api error",
        ],
        4 => &["unknown", "user"],
        5 => &[
            "unknown",
            "shutdown",
            "destroyed",
            "crashed",
            "migrated",
            "saved",
            "failed",
            "from snapshot",
            "daemon",
        ],
        6 => &["unknown", "panicked"],
        _ => &["unknown"],
    };
    usize::try_from(reason)
        .ok()
        .and_then(|r| table.get(r))
        .copied()
        .unwrap_or("unknown")
}

/// virsh's `yes`/`no` for a boolean.
pub fn yes_no(b: bool) -> &'static str {
    if b { "yes" } else { "no" }
}

/// `%Y-%m-%d %H:%M:%S` of a Unix time, local time as virsh prints it.
pub fn local_time(secs: i64) -> String {
    // SAFETY: localtime_r writes only into the tm it is given.
    let tm = unsafe {
        let mut tm: libc::tm = std::mem::zeroed();
        let t: libc::time_t = secs;
        libc::localtime_r(&t, &mut tm);
        tm
    };
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02}",
        tm.tm_year + 1900,
        tm.tm_mon + 1,
        tm.tm_mday,
        tm.tm_hour,
        tm.tm_min,
        tm.tm_sec
    )
}

/// [`local_time`] with the zone offset (`%z`), as `snapshot-list` prints it.
pub fn local_time_zone(secs: i64) -> String {
    // SAFETY: localtime_r writes only into the tm it is given.
    let off = unsafe {
        let mut tm: libc::tm = std::mem::zeroed();
        let t: libc::time_t = secs;
        libc::localtime_r(&t, &mut tm);
        tm.tm_gmtoff
    };
    let sign = if off < 0 { '-' } else { '+' };
    let off = off.unsigned_abs();
    format!(
        "{} {sign}{:02}{:02}",
        local_time(secs),
        off / 3600,
        off % 3600 / 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_layout() {
        let t = table(
            &["Id", "Name", "State"],
            &[vec!["1".into(), "test".into(), "running".into()]],
        );
        assert_eq!(
            t,
            " Id   Name   State\n----------------------\n 1    test   running\n"
        );
        let empty = table(&["Id", "Name", "State"], &[]);
        assert_eq!(empty, " Id   Name   State\n--------------------\n");
    }

    #[test]
    fn keyvalue_layout() {
        assert_eq!(kv("Id", 1, 16), "Id:             1\n");
        assert_eq!(kv("Security model", "none", 16), "Security model: none\n");
        assert_eq!(kv("CPU model", "i686", 21), "CPU model:           i686\n");
    }
}
