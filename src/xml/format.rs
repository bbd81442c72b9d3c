//! Whole-document formatting: the domain tree through libvirt's
//! serializer, metadata through libxml2's.

use super::FormatFlags;
use super::model::Domain;
use super::writer::{Style, write_element};

pub fn domain_to_xml(dom: &Domain, flags: FormatFlags) -> String {
    let root = dom.to_element(flags.inactive, flags.secure);
    let mut out = String::with_capacity(4096);
    // Write the root by hand so metadata can use its own serializer.
    let mut open = root.clone();
    open.children.clear();
    open.text.clear();
    let mut head = String::new();
    write_element(&mut head, &open, 0, Style::Libvirt);
    // `head` is `<domain .../>\n`; turn it into an opening tag.
    let head = head.trim_end().trim_end_matches("/>");
    out.push_str(head);
    out.push_str(">\n");
    for child in &root.children {
        if child.name == "metadata" {
            out.push_str("  <metadata>\n");
            for m in &dom.metadata {
                write_element(&mut out, m, 2, Style::Libxml);
            }
            out.push_str("  </metadata>\n");
        } else {
            write_element(&mut out, child, 1, Style::Libvirt);
        }
    }
    out.push_str("</domain>\n");
    out
}
