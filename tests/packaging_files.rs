//! The packaged configuration and generated documentation: the shipped
//! `oxvirtd.conf` reads back as the compiled-in defaults, a broken file is
//! refused with its line number, and `--generate-docs` writes the man
//! pages and completions `debian/rules` installs.

use std::path::{Path, PathBuf};
use std::process::Command;

fn oxvirtd() -> Command {
    Command::new(env!("CARGO_BIN_EXE_oxvirtd"))
}

fn repo(p: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(p)
}

fn tmpdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("oxvirt-pkgtest-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn shipped_config_is_the_defaults() {
    let shipped = oxvirtd()
        .args(["--system", "--check-config", "--config"])
        .arg(repo("packaging/oxvirtd.conf"))
        .output()
        .unwrap();
    assert!(shipped.status.success(), "{shipped:?}");
    let empty_dir = tmpdir("empty");
    let empty = empty_dir.join("empty.conf");
    std::fs::write(&empty, "").unwrap();
    let defaults = oxvirtd()
        .args(["--system", "--check-config", "--config"])
        .arg(&empty)
        .output()
        .unwrap();
    assert!(defaults.status.success());
    let body = |o: &std::process::Output| {
        String::from_utf8_lossy(&o.stdout)
            .lines()
            .skip(1)
            .collect::<Vec<_>>()
            .join("\n")
    };
    assert_eq!(body(&shipped), body(&defaults));
    // Every setting of the renderer is documented in the shipped file.
    let text = std::fs::read_to_string(repo("packaging/oxvirtd.conf")).unwrap();
    for line in body(&defaults).lines() {
        // Settings left unset are rendered as comments.
        let key = line.split(" = ").next().unwrap().trim_start_matches('#');
        assert!(
            text.contains(&format!("#{key} = ")),
            "{key} is not documented"
        );
    }
    let _ = std::fs::remove_dir_all(empty_dir);
}

#[test]
fn broken_config_names_the_line() {
    let dir = tmpdir("broken");
    let conf = dir.join("oxvirtd.conf");
    std::fs::write(&conf, "# ok\nlog_level = \"info\"\nrun_dir = /no/quotes\n").unwrap();
    let out = oxvirtd()
        .args(["--system", "--check-config", "--config"])
        .arg(&conf)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("{}:3:", conf.display())),
        "error does not name line 3: {err}"
    );
    let missing = oxvirtd()
        .args(["--check-config", "--config"])
        .arg(dir.join("nonexistent.conf"))
        .output()
        .unwrap();
    assert!(!missing.status.success(), "an explicit --config must exist");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn docs_are_generated() {
    let dir = tmpdir("docs");
    let st = oxvirtd().arg("--generate-docs").arg(&dir).status().unwrap();
    assert!(st.success());
    for f in [
        "oxvirtd.8",
        "oxvirt-vmm.8",
        "oxvirtd.bash",
        "_oxvirtd",
        "oxvirtd.fish",
    ] {
        let p = dir.join(f);
        let len = std::fs::metadata(&p).map(|m| m.len()).unwrap_or(0);
        assert!(len > 100, "{} missing or empty", p.display());
    }
    let page = std::fs::read_to_string(dir.join("oxvirtd.8")).unwrap();
    assert!(
        page.contains("check\\-config"),
        "man page lacks --check-config"
    );
    let _ = std::fs::remove_dir_all(dir);
}
