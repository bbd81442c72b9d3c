//! Every valid corpus domain parses, formats to XML that libvirt's own
//! schema accepts, and reads back to the same model.

mod ci_common;
use std::path::{Path, PathBuf};
use std::process::Command;

use oxvirt::xml::{FormatFlags, assign_aliases, parse_domain};

const LIBVIRT_SCHEMA: &str = "/usr/share/libvirt/schemas/domain.rng";

/// The valid corpus, libvirt's canonical output of it, and `model-extra/`:
/// documents using parts of libvirt's format that the model keeps but
/// oxvirt's schema does not describe.
fn corpus() -> Vec<PathBuf> {
    let base = Path::new(env!("CARGO_MANIFEST_DIR")).join("compat-tests/xml");
    let mut files: Vec<PathBuf> = ["valid", "model-extra", "libvirt-canonical"]
        .iter()
        .filter_map(|sub| std::fs::read_dir(base.join(sub)).ok())
        .flat_map(|rd| rd.filter_map(|e| e.ok().map(|e| e.path())))
        .filter(|p| p.extension().is_some_and(|x| x == "xml"))
        .collect();
    files.sort();
    files
}

fn xmllint_available() -> bool {
    Path::new(LIBVIRT_SCHEMA).is_file() && Command::new("xmllint").arg("--version").output().is_ok()
}

/// Validate `xml` against libvirt's domain schema; returns xmllint's complaint.
fn schema_errors(xml: &str, name: &str) -> Option<String> {
    let tmp = std::env::temp_dir().join(format!("oxvirt-roundtrip-{}-{name}", std::process::id()));
    std::fs::write(&tmp, xml).ok()?;
    let out = Command::new("xmllint")
        .args(["--noout", "--relaxng", LIBVIRT_SCHEMA])
        .arg(&tmp)
        .output()
        .ok()?;
    let _ = std::fs::remove_file(&tmp);
    (!out.status.success()).then(|| String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn corpus_round_trips_and_validates() {
    let files = corpus();
    assert!(!files.is_empty(), "no corpus files found");
    let lint = xmllint_available();
    if !lint {
        ci_common::skip("xmllint or libvirt's schema missing: no schema validation");
    }
    let mut failures = Vec::new();
    for path in &files {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let text = std::fs::read_to_string(path).expect("readable corpus file");
        let dom = match parse_domain(&text) {
            Ok(d) => d,
            Err(e) => {
                failures.push(format!("{name}: parse failed: {e}"));
                continue;
            }
        };
        for flags in [
            FormatFlags::from_bits(FormatFlags::INACTIVE),
            FormatFlags::from_bits(FormatFlags::SECURE),
        ] {
            let xml = dom.to_xml(flags);
            if lint && let Some(err) = schema_errors(&xml, &name) {
                failures.push(format!(
                    "{name}: formatted XML fails libvirt's schema:\n{err}\n{xml}"
                ));
            }
            match parse_domain(&xml) {
                Ok(again) if flags.secure && again != dom => {
                    failures.push(format!("{name}: re-parse differs from the first parse"));
                }
                Ok(again) if again.to_xml(flags) != xml => {
                    failures.push(format!("{name}: formatting is not a fixed point"));
                }
                Ok(_) => {}
                Err(e) => failures.push(format!("{name}: formatted XML does not parse: {e}")),
            }
        }
        // Live XML with aliases must also be schema-valid and parse back.
        let mut live = dom.clone();
        live.id = Some(7);
        assign_aliases(&mut live);
        let xml = live.to_xml(FormatFlags::from_bits(FormatFlags::SECURE));
        if lint && let Some(err) = schema_errors(&xml, &name) {
            failures.push(format!("{name}: live XML fails libvirt's schema:\n{err}"));
        }
        if let Err(e) = parse_domain(&xml) {
            failures.push(format!("{name}: live XML does not parse: {e}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    println!("{} corpus domains round-trip", files.len());
}
