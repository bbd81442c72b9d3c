//! Whole-document formatting: the domain tree through libvirt's
//! serializer, metadata through libxml2's.

use super::FormatFlags;
use super::model::Domain;
use super::writer::{Style, write_element};

pub fn domain_to_xml(dom: &Domain, flags: FormatFlags) -> String {
    let root = dom.to_element(flags.inactive, flags.secure);
    let mut out = String::with_capacity(4096);
    // Write the root by hand so metadata can use its own serializer.
    let mut open = super::tree::Element::new(root.name.as_str());
    open.attrs = root.attrs.clone();
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

#[cfg(test)]
mod tests {
    use crate::xml::{FormatFlags, parse_domain};

    #[test]
    fn writes_libvirt_layout_with_libxml_metadata() {
        let d = parse_domain(
            "<domain type='kvm' id='4'><name>m</name><uuid>12345678-1234-5678-1234-567812345678</uuid>\
             <title>it's &amp;</title><metadata><a:x xmlns:a='urn:a' k=\"v'\">t</a:x></metadata>\
             <memory>65536</memory><os><type>hvm</type></os></domain>",
        )
        .unwrap();
        let live = d.to_xml(FormatFlags::default());
        assert!(live.starts_with("<domain type='kvm' id='4'>\n  <name>m</name>\n"));
        assert!(live.contains("  <title>it&apos;s &amp;</title>\n"));
        assert!(live.contains(
            "  <metadata>\n    <a:x xmlns:a=\"urn:a\" k=\"v'\">t</a:x>\n  </metadata>\n"
        ));
        assert!(live.ends_with("</domain>\n"));
        let inactive = d.to_xml(FormatFlags::from_bits(FormatFlags::INACTIVE));
        assert!(inactive.starts_with("<domain type='kvm'>\n"));
    }
}
