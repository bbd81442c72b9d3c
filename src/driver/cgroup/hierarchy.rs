//! The hierarchies the host mounts, found in `/proc/self/mountinfo`, and
//! what a new group in each needs before it can take processes.

use std::path::{Path, PathBuf};

use crate::error::Result;

use super::{Controller, read_file, write_file};

/// One mounted hierarchy and the controllers of libvirt's it carries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Hierarchy {
    pub v2: bool,
    pub mount: PathBuf,
    pub controllers: Vec<Controller>,
}

impl Hierarchy {
    pub fn has(&self, c: Controller) -> bool {
        self.controllers.contains(&c)
    }

    /// Readies a new group `dir`: a v1 cpuset takes its parent's CPUs and
    /// memory nodes (it takes no task while they are empty); a v2 parent
    /// hands its controllers down.
    pub fn prepare(&self, dir: &Path) -> Result<()> {
        if self.v2 {
            return self.enable_in_parent(dir, |_| true);
        }
        if self.has(Controller::Cpuset) {
            inherit_cpuset(dir)?;
        }
        Ok(())
    }

    /// v2: has `dir`'s parent hand down its controllers that `which`
    /// picks (each named once: cpu and cpuacct are both `cpu` there).
    fn enable_in_parent(&self, dir: &Path, which: impl Fn(Controller) -> bool) -> Result<()> {
        let names: std::collections::BTreeSet<String> = self
            .controllers
            .iter()
            .filter(|c| which(**c))
            .map(|c| format!("+{}", c.v2_name()))
            .collect();
        if names.is_empty() {
            return Ok(());
        }
        let parent = dir.parent().unwrap_or(dir);
        let list: Vec<String> = names.into_iter().collect();
        write_file(&parent.join("cgroup.subtree_control"), &list.join(" "))
    }

    /// Readies a per-thread child (`vcpuN`, `emulator`): v2 makes it
    /// threaded; a v1 cpuset inherits as any group does.
    pub fn prepare_thread_child(&self, dir: &Path) -> Result<()> {
        if self.v2 {
            let type_file = dir.join("cgroup.type");
            if read_file(&type_file)? != "threaded" {
                write_file(&type_file, "threaded")?;
            }
            return self.enable_in_parent(dir, Controller::per_thread);
        }
        self.prepare(dir)
    }
}

/// Copies `cpuset.cpus` and `cpuset.mems` from the parent where empty.
fn inherit_cpuset(dir: &Path) -> Result<()> {
    let parent = dir.parent().unwrap_or(dir);
    for f in ["cpuset.mems", "cpuset.cpus"] {
        if read_file(&dir.join(f))?.is_empty() {
            write_file(&dir.join(f), &read_file(&parent.join(f))?)?;
        }
    }
    Ok(())
}

/// What the host offers.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Cgroups {
    hierarchies: Vec<Hierarchy>,
}

impl Cgroups {
    /// The hierarchies mounted here and writable; none when cgroups
    /// cannot be used (nothing mounted, or read-only as under systemd's
    /// `ProtectControlGroups=`).
    pub fn detect() -> Cgroups {
        let text = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        let hierarchies = parse_mountinfo(&text, |mount| {
            std::fs::read_to_string(mount.join("cgroup.controllers")).unwrap_or_default()
        });
        Cgroups { hierarchies }
    }

    /// Only the hierarchies carrying `wanted` (qemu.conf's
    /// `cgroup_controllers`).
    pub fn restricted_to(mut self, wanted: &[Controller]) -> Cgroups {
        for h in &mut self.hierarchies {
            h.controllers.retain(|c| wanted.contains(c));
        }
        self.hierarchies.retain(|h| !h.controllers.is_empty());
        self
    }

    pub(super) fn hierarchies(&self) -> &[Hierarchy] {
        &self.hierarchies
    }

    pub fn is_empty(&self) -> bool {
        self.hierarchies.is_empty()
    }

    /// The controllers available, for the log.
    pub fn describe(&self) -> String {
        self.hierarchies
            .iter()
            .map(|h| {
                let names: Vec<&str> = h.controllers.iter().map(|c| c.v1_name()).collect();
                format!(
                    "{} ({}) at {}",
                    names.join(","),
                    if h.v2 { "v2" } else { "v1" },
                    h.mount.display()
                )
            })
            .collect::<Vec<_>>()
            .join("; ")
    }
}

/// The hierarchies in a mountinfo text; `v2_controllers` reads a v2
/// mount's `cgroup.controllers`. A controller a v1 hierarchy holds cannot
/// be in the v2 one at the same time.
fn parse_mountinfo(text: &str, v2_controllers: impl Fn(&Path) -> String) -> Vec<Hierarchy> {
    let mut out: Vec<Hierarchy> = Vec::new();
    for line in text.lines() {
        let Some((left, right)) = line.split_once(" - ") else {
            continue;
        };
        // Field 5 is the mount point, field 6 its options.
        let mut fields = left.split(' ');
        let Some(mount) = fields.nth(4) else {
            continue;
        };
        // A read-only cgroupfs (systemd's ProtectControlGroups=) takes no
        // groups from this process.
        if fields
            .next()
            .is_some_and(|o| o.split(',').any(|x| x == "ro"))
        {
            continue;
        }
        let mut r = right.split(' ');
        let fstype = r.next().unwrap_or_default();
        let options = r.nth(1).unwrap_or_default();
        let mount = PathBuf::from(unescape(mount));
        match fstype {
            "cgroup" => {
                let opts: Vec<&str> = options.split(',').collect();
                let controllers: Vec<Controller> = Controller::ALL
                    .into_iter()
                    .filter(|c| opts.contains(&c.v1_name()))
                    .collect();
                if !controllers.is_empty() && !out.iter().any(|h| h.mount == mount) {
                    out.push(Hierarchy {
                        v2: false,
                        mount,
                        controllers,
                    });
                }
            }
            "cgroup2" => {
                let available = v2_controllers(&mount);
                let names: Vec<&str> = available.split_whitespace().collect();
                let controllers: Vec<Controller> = Controller::ALL
                    .into_iter()
                    .filter(|c| names.contains(&c.v2_name()))
                    .collect();
                if !controllers.is_empty() && !out.iter().any(|h| h.mount == mount) {
                    out.push(Hierarchy {
                        v2: true,
                        mount,
                        controllers,
                    });
                }
            }
            _ => {}
        }
    }
    // A controller bound to a v1 hierarchy is not usable in v2.
    let in_v1: Vec<Controller> = out
        .iter()
        .filter(|h| !h.v2)
        .flat_map(|h| h.controllers.clone())
        .collect();
    for h in out.iter_mut().filter(|h| h.v2) {
        h.controllers.retain(|c| !in_v1.contains(c));
    }
    out.retain(|h| !h.controllers.is_empty());
    out
}

/// mountinfo's octal escapes (`\040` for a space).
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && let Ok(v) = u8::from_str_radix(&s[i + 1..i + 4], 8)
        {
            out.push(v);
            i += 4;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    const HYBRID: &str = "\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
39 31 0:36 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
40 31 0:37 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
";

    #[test]
    fn a_hybrid_host_uses_its_v1_hierarchies() {
        let h = parse_mountinfo(HYBRID, |_| String::new());
        let mounts: Vec<_> = h.iter().map(|h| (h.mount.clone(), h.v2)).collect();
        assert_eq!(
            mounts,
            [
                (PathBuf::from("/sys/fs/cgroup/cpu"), false),
                (PathBuf::from("/sys/fs/cgroup/cpuacct"), false),
                (PathBuf::from("/sys/fs/cgroup/memory"), false),
            ]
        );
        // A v2 hierarchy only gets what v1 does not hold.
        let h = parse_mountinfo(HYBRID, |_| "cpu io memory pids".to_string());
        let v2 = h.iter().find(|h| h.v2).unwrap();
        assert_eq!(v2.controllers, [Controller::Blkio, Controller::Pids]);
    }

    #[test]
    fn read_only_hierarchies_are_not_used() {
        let text = "30 23 0:26 / /sys/fs/cgroup ro,nosuid - cgroup2 cgroup2 rw,nsdelegate\n\
                    32 31 0:29 / /sys/fs/cgroup/cpu ro,relatime - cgroup cgroup rw,cpu\n";
        assert!(parse_mountinfo(text, |_| "cpu memory".into()).is_empty());
    }

    #[test]
    fn a_unified_host() {
        let text = "30 23 0:26 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw,nsdelegate\n";
        let h = parse_mountinfo(text, |_| "cpuset cpu io memory hugetlb pids".into());
        assert_eq!(h.len(), 1);
        assert!(h[0].v2);
        assert_eq!(h[0].controllers, Controller::ALL);
    }

    #[test]
    fn escapes_in_mount_points() {
        assert_eq!(unescape("/a\\040b"), "/a b");
        assert_eq!(unescape("/plain"), "/plain");
    }
}
