//! Serializes element trees the way libvirt prints domain XML: two-space
//! indentation, single-quoted attributes, every markup character escaped,
//! empty elements self-closed.
//!
//! Metadata is the one exception: libvirt hands those foreign subtrees to
//! libxml2's own dumper, which uses double quotes and escapes less.

use super::tree::{Element, MAX_DEPTH};

/// Quoting and escaping convention for one subtree.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Style {
    /// libvirt's own formatter.
    Libvirt,
    /// libxml2's node dump, used for `<metadata>` children.
    Libxml,
}

fn escape_into(out: &mut String, s: &str, style: Style, in_attr: bool) {
    for ch in s.chars() {
        match (ch, style) {
            ('&', _) => out.push_str("&amp;"),
            ('<', _) => out.push_str("&lt;"),
            ('>', _) => out.push_str("&gt;"),
            ('\'', Style::Libvirt) => out.push_str("&apos;"),
            ('"', Style::Libvirt) => out.push_str("&quot;"),
            ('"', Style::Libxml) if in_attr => out.push_str("&quot;"),
            ('\n', Style::Libxml) if in_attr => out.push_str("&#10;"),
            _ => out.push(ch),
        }
    }
}

/// Append `elem` at indentation level `level` (two spaces each).
pub fn write_element(out: &mut String, elem: &Element, level: usize, style: Style) {
    write_bounded(out, elem, level, style, 0);
}

fn write_bounded(out: &mut String, elem: &Element, level: usize, style: Style, depth: usize) {
    // Trees come from the bounded reader or from the formatter; the guard
    // keeps the recursion finite even for a hand-built pathological tree.
    if depth > MAX_DEPTH * 2 {
        return;
    }
    let quote = if style == Style::Libvirt { '\'' } else { '"' };
    indent(out, level);
    out.push('<');
    out.push_str(&elem.name);
    for (k, v) in &elem.attrs {
        out.push(' ');
        out.push_str(k);
        out.push('=');
        out.push(quote);
        escape_into(out, v, style, true);
        out.push(quote);
    }
    if elem.children.is_empty() {
        if elem.text.is_empty() {
            out.push_str("/>\n");
        } else {
            out.push('>');
            escape_into(out, &elem.text, style, false);
            out.push_str("</");
            out.push_str(&elem.name);
            out.push_str(">\n");
        }
        return;
    }
    out.push_str(">\n");
    for child in &elem.children {
        write_bounded(out, child, level + 1, style, depth + 1);
    }
    indent(out, level);
    out.push_str("</");
    out.push_str(&elem.name);
    out.push_str(">\n");
}

fn indent(out: &mut String, level: usize) {
    for _ in 0..level {
        out.push_str("  ");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_like_libvirt() {
        let e = Element::new("a")
            .with_attr("x", "it's")
            .with_child(Element::new("b").with_text("1 & 2"))
            .with_child(Element::new("c"));
        let mut s = String::new();
        write_element(&mut s, &e, 0, Style::Libvirt);
        assert_eq!(s, "<a x='it&apos;s'>\n  <b>1 &amp; 2</b>\n  <c/>\n</a>\n");
    }

    #[test]
    fn formats_metadata_like_libxml() {
        let e = Element::new("m:a")
            .with_attr("x", "it's \"q\"")
            .with_text("'");
        let mut s = String::new();
        write_element(&mut s, &e, 1, Style::Libxml);
        assert_eq!(s, "  <m:a x=\"it's &quot;q&quot;\">'</m:a>\n");
    }
}
