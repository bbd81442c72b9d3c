//! The domain XML compatibility corpus, `compat-tests/xml/`.
//!
//! - `valid/*.xml`: documents oxvirt must accept. Each one must parse, pass
//!   the driver's support check and format; the formatted XML must validate
//!   against libvirt's schema and against oxvirt's own (`xml-schemas/`), and
//!   formatting must be a fixed point: re-parsing the formatted XML gives an
//!   equal `Domain`, and formatting that gives the same text.
//! - `invalid/NAME.xml`: documents oxvirt must refuse, with exactly the error
//!   in `NAME.err`: one line `<code> <message>`, where a message of `*`
//!   means "any message" (used for XML syntax errors, which every parser
//!   words its own way).
//! - `virt-install-defaults/NAME.xml`: what virt-install adds by default
//!   (graphics, video, sound, TPM, tablet). A file with a `NAME.err` is
//!   expected to be refused like the invalid ones, one without like the
//!   valid ones.
//!
//! Every file is checked and all failures are reported together.
//!
//! Needs `xmllint` (Debian: libxml2-utils) and libvirt's schemas (Debian:
//! libvirt0, `/usr/share/libvirt/schemas/domain.rng`, or set
//! `LIBVIRT_SCHEMA`); `compat-tests/run-all.sh --install` installs both.

use std::fs;
use std::io::Write;
use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use oxvirt::xml::{self, Domain, FormatFlags};

const MIN_VALID: usize = 60;
const MIN_INVALID: usize = 40;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn corpus(sub: &str) -> PathBuf {
    root().join("compat-tests").join("xml").join(sub)
}

/// The `*.xml` files of one corpus directory, sorted by name.
fn xml_files(sub: &str) -> Vec<PathBuf> {
    let dir = corpus(sub);
    let entries = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot read corpus directory {}: {e}", dir.display()));
    let mut files: Vec<PathBuf> = entries
        .map(|entry| entry.expect("corpus directory entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "xml"))
        .collect();
    files.sort();
    files
}

fn display(path: &Path) -> String {
    path.strip_prefix(root())
        .unwrap_or(path)
        .display()
        .to_string()
}

/// What an `.err` file expects: a libvirt error code and its message, or
/// `None` for any message.
struct Expected {
    code: i32,
    message: Option<String>,
}

impl std::fmt::Display for Expected {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.message {
            Some(message) => write!(f, "{} {}", self.code, message),
            None => write!(f, "{} *", self.code),
        }
    }
}

fn read_expected(path: &Path) -> Result<Expected, String> {
    let text =
        fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", display(path)))?;
    let line = text.strip_suffix('\n').unwrap_or(&text);
    if line.contains('\n') {
        return Err(format!("{} must hold exactly one line", display(path)));
    }
    let (code, message) = line.split_once(' ').ok_or_else(|| {
        format!(
            "{}: expected `<code> <message>`, found {line:?}",
            display(path)
        )
    })?;
    let code = code
        .parse::<i32>()
        .map_err(|_| format!("{}: bad error code {code:?}", display(path)))?;
    let message = (message != "*").then(|| message.to_string());
    Ok(Expected { code, message })
}

/// The schemas every formatted document must satisfy: (label, path).
fn schemas() -> Vec<(&'static str, PathBuf)> {
    let libvirt = std::env::var_os("LIBVIRT_SCHEMA")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/share/libvirt/schemas/domain.rng"));
    let oxvirt = root().join("xml-schemas").join("domain.rng");
    vec![("libvirt", libvirt), ("oxvirt", oxvirt)]
}

/// Fails the test at once, with a clear message, if a tool the corpus needs
/// is missing: these tests must not pass by skipping.
fn require_tools() {
    let xmllint = Command::new("xmllint")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    if xmllint.is_err() {
        panic!(
            "xmllint is not installed: the XML corpus validates formatted domains with it \
             (Debian: apt-get install libxml2-utils, or compat-tests/run-all.sh --install)"
        );
    }
    for (label, schema) in schemas() {
        if !schema.is_file() {
            panic!(
                "{label} domain schema not found at {} (libvirt's comes with the Debian package \
                 libvirt0; set LIBVIRT_SCHEMA to use another path)",
                schema.display()
            );
        }
    }
}

/// Validates `document` against the RelaxNG schema at `schema` with xmllint.
fn validate(schema: &Path, document: &str) -> Result<(), String> {
    let mut child = Command::new("xmllint")
        .arg("--noout")
        .arg("--relaxng")
        .arg(schema)
        .arg("-")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run xmllint: {e}"))?;
    {
        let mut stdin = child.stdin.take().expect("xmllint stdin");
        stdin
            .write_all(document.as_bytes())
            .map_err(|e| format!("cannot write to xmllint: {e}"))?;
    }
    let output = child
        .wait_with_output()
        .map_err(|e| format!("xmllint failed: {e}"))?;
    if output.status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&output.stderr);
    let detail: Vec<&str> = stderr
        .lines()
        .filter(|line| !line.ends_with("fails to validate"))
        .take(6)
        .collect();
    Err(detail.join("\n"))
}

/// Where two texts first differ, line by line.
fn first_difference(a: &str, b: &str) -> String {
    let mut a_lines = a.lines();
    let mut b_lines = b.lines();
    let mut number = 1;
    loop {
        match (a_lines.next(), b_lines.next()) {
            (Some(x), Some(y)) if x == y => number += 1,
            (None, None) => return "texts differ only in line endings".to_string(),
            (x, y) => {
                return format!(
                    "line {number}: first {:?}, then {:?}",
                    x.unwrap_or("<end>"),
                    y.unwrap_or("<end>")
                );
            }
        }
    }
}

fn describe(err: &oxvirt::error::Error) -> String {
    format!("{} {}", err.code as i32, err.message)
}

fn format_domain(dom: &Domain) -> String {
    dom.to_xml(FormatFlags::default())
}

/// The whole life of a document oxvirt must accept.
fn check_accepted(path: &Path) -> Result<(), String> {
    let text = fs::read_to_string(path).map_err(|e| format!("cannot read: {e}"))?;
    let dom = xml::parse_domain(&text).map_err(|e| format!("parse fails: {}", describe(&e)))?;
    xml::check_supported(&dom)
        .map_err(|e| format!("check_supported refuses it: {}", describe(&e)))?;

    let formatted = format_domain(&dom);
    for (label, schema) in schemas() {
        validate(&schema, &formatted).map_err(|e| {
            format!("formatted XML fails {label}'s schema:\n{e}\n--- formatted XML:\n{formatted}")
        })?;
    }

    let reparsed = xml::parse_domain(&formatted).map_err(|e| {
        format!(
            "re-parsing the formatted XML fails: {}\n--- formatted XML:\n{formatted}",
            describe(&e)
        )
    })?;
    xml::check_supported(&reparsed).map_err(|e| {
        format!(
            "check_supported refuses the formatted XML: {}",
            describe(&e)
        )
    })?;
    let formatted_again = format_domain(&reparsed);
    if reparsed != dom {
        return Err(format!(
            "re-parsing the formatted XML gives a different Domain ({})\n--- formatted XML:\n{formatted}",
            if formatted_again == formatted {
                "though it formats the same".to_string()
            } else {
                first_difference(&formatted, &formatted_again)
            }
        ));
    }
    if formatted_again != formatted {
        return Err(format!(
            "formatting is not a fixed point: {}",
            first_difference(&formatted, &formatted_again)
        ));
    }
    Ok(())
}

/// A document oxvirt must refuse with the error of its `.err` file.
fn check_refused(path: &Path) -> Result<(), String> {
    let expected = read_expected(&path.with_extension("err"))?;
    let text = fs::read_to_string(path).map_err(|e| format!("cannot read: {e}"))?;
    let outcome = xml::parse_domain(&text).and_then(|dom| xml::check_supported(&dom));
    let err = match outcome {
        Ok(()) => return Err(format!("accepted, but expected error `{expected}`")),
        Err(err) => err,
    };
    let code_ok = err.code as i32 == expected.code;
    let message_ok = expected
        .message
        .as_ref()
        .is_none_or(|message| *message == err.message);
    if code_ok && message_ok {
        Ok(())
    } else {
        Err(format!(
            "wrong error\n    expected: {expected}\n    got:      {}",
            describe(&err)
        ))
    }
}

/// Runs `check` on every file, turning panics into failures too (the model
/// must never panic on input), and returns the failures as report lines.
fn run_all(files: &[PathBuf], check: impl Fn(&Path) -> Result<(), String>) -> Vec<String> {
    let mut failures = Vec::new();
    for path in files {
        let result = panic::catch_unwind(AssertUnwindSafe(|| check(path)));
        let failure = match result {
            Ok(Ok(())) => continue,
            Ok(Err(reason)) => reason,
            Err(payload) => {
                let what = payload
                    .downcast_ref::<String>()
                    .map(String::as_str)
                    .or_else(|| payload.downcast_ref::<&str>().copied())
                    .unwrap_or("(no message)");
                format!("panicked: {what}")
            }
        };
        failures.push(format!("{}: {failure}", display(path)));
    }
    failures
}

fn assert_no_failures(what: &str, total: usize, failures: &[String]) {
    assert!(
        failures.is_empty(),
        "{} of {total} {what} failed:\n\n{}\n",
        failures.len(),
        failures.join("\n\n")
    );
}

#[test]
fn valid_domains_parse_check_format_and_round_trip() {
    require_tools();
    let files = xml_files("valid");
    assert!(
        files.len() >= MIN_VALID,
        "expected at least {MIN_VALID} files in compat-tests/xml/valid, found {}",
        files.len()
    );
    let failures = run_all(&files, check_accepted);
    assert_no_failures("valid domains", files.len(), &failures);
}

#[test]
fn invalid_domains_fail_with_the_recorded_error() {
    let files = xml_files("invalid");
    assert!(
        files.len() >= MIN_INVALID,
        "expected at least {MIN_INVALID} files in compat-tests/xml/invalid, found {}",
        files.len()
    );
    let mut failures = run_all(&files, check_refused);

    // Every .err belongs to a document.
    let dir = corpus("invalid");
    let mut orphans: Vec<String> = fs::read_dir(&dir)
        .expect("invalid/ directory")
        .map(|entry| entry.expect("directory entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "err"))
        .filter(|path| !path.with_extension("xml").is_file())
        .map(|path| format!("{}: no matching .xml", display(&path)))
        .collect();
    orphans.sort();
    failures.extend(orphans);

    assert_no_failures("invalid domains", files.len(), &failures);
}

#[test]
fn virt_install_defaults_follow_the_recorded_decision() {
    let files = xml_files("virt-install-defaults");
    let needs_tools = files
        .iter()
        .any(|path| !path.with_extension("err").is_file());
    if needs_tools {
        require_tools();
    }
    let failures = run_all(&files, |path| {
        if path.with_extension("err").is_file() {
            check_refused(path)
        } else {
            check_accepted(path)
        }
    });
    assert_no_failures(
        "virt-install default configurations",
        files.len(),
        &failures,
    );
}
