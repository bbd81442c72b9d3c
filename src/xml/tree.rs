//! A small owned element tree read from XML text with quick-xml.
//!
//! The domain parser works on this tree rather than on the event stream:
//! typed parsing wants random access to children and attributes. Reading
//! is iterative (an explicit stack), and both nesting depth and document
//! size are bounded, so hostile input cannot exhaust the stack or memory.

use quick_xml::events::{BytesStart, Event};
use quick_xml::reader::Reader;

use crate::error::{Error, ErrorCode, ErrorDomain, Result};

/// Deepest element nesting accepted. libvirt's deepest real structure
/// (a backing chain inside a disk inside devices) stays far below this.
pub const MAX_DEPTH: usize = 64;
/// Largest document accepted, in bytes.
pub const MAX_DOCUMENT_BYTES: usize = 10 * 1024 * 1024;

/// One XML element: qualified name, attributes in document order, child
/// elements, and the concatenated character data directly inside it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Element {
    pub name: String,
    pub attrs: Vec<(String, String)>,
    pub children: Vec<Element>,
    pub text: String,
}

impl Element {
    pub fn new(name: impl Into<String>) -> Self {
        Element {
            name: name.into(),
            ..Default::default()
        }
    }

    /// The value of attribute `name`, if present.
    pub fn attr(&self, name: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The first child element called `name`.
    pub fn child(&self, name: &str) -> Option<&Element> {
        self.children.iter().find(|c| c.name == name)
    }

    /// Every child element called `name`, in document order.
    pub fn children_named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Element> + 'a {
        self.children.iter().filter(move |c| c.name == name)
    }

    /// Trimmed text of the first child called `name`.
    pub fn child_text(&self, name: &str) -> Option<&str> {
        self.child(name).map(|c| c.text.trim())
    }

    /// Builder: add an attribute.
    pub fn with_attr(mut self, name: &str, value: impl Into<String>) -> Self {
        self.attrs.push((name.to_string(), value.into()));
        self
    }

    /// Builder: add an attribute when a value is present.
    pub fn with_opt_attr<V: ToString>(mut self, name: &str, value: Option<V>) -> Self {
        if let Some(v) = value {
            self.attrs.push((name.to_string(), v.to_string()));
        }
        self
    }

    /// Builder: set the text content.
    pub fn with_text(mut self, text: impl Into<String>) -> Self {
        self.text = text.into();
        self
    }

    /// Builder: add a child element.
    pub fn with_child(mut self, child: Element) -> Self {
        self.children.push(child);
        self
    }

    /// Builder: add a child element when present.
    pub fn with_opt_child(mut self, child: Option<Element>) -> Self {
        if let Some(c) = child {
            self.children.push(c);
        }
        self
    }

    /// The prefix of a qualified name (`app` of `app:foo`).
    pub fn prefix(&self) -> Option<&str> {
        self.name.split_once(':').map(|(p, _)| p)
    }
}

fn syntax_error(detail: impl std::fmt::Display) -> Error {
    syntax_error_in("(domain_definition)", detail)
}

/// libvirt reports libxml2's parse failures as VIR_ERR_XML_DETAIL, naming
/// the document as the parser of that kind of XML does.
fn syntax_error_in(document: &str, detail: impl std::fmt::Display) -> Error {
    Error::new(
        ErrorCode::XmlDetail,
        ErrorDomain::Xml,
        format!("{document}:1: {detail}"),
    )
}

/// Parses a document of another kind than a domain (`document` is the
/// name libvirt's parser gives it in syntax errors, such as
/// `(storage_pool_definition)`) whose root must be `root`.
pub fn parse_document_as(xml: &str, document: &str, root: &str) -> Result<Element> {
    let elem = parse_document(xml).map_err(|e| {
        match e.message.strip_prefix("(domain_definition):1: ") {
            Some(detail) if e.code == ErrorCode::XmlDetail => syntax_error_in(document, detail),
            _ => e,
        }
    })?;
    if elem.name != root {
        return Err(Error::new(
            ErrorCode::XmlError,
            ErrorDomain::Xml,
            format!("expecting root element of '{root}', not '{}'", elem.name),
        ));
    }
    Ok(elem)
}

fn start_element(start: &BytesStart<'_>) -> Result<Element> {
    let name = String::from_utf8_lossy(start.name().as_ref()).into_owned();
    let mut elem = Element::new(name);
    for attr in start.attributes() {
        let attr = attr.map_err(syntax_error)?;
        let key = String::from_utf8_lossy(attr.key.as_ref()).into_owned();
        let value = attr
            .normalized_value(quick_xml::XmlVersion::Implicit1_0)
            .map_err(syntax_error)?
            .into_owned();
        if elem.attr(&key).is_some() {
            return Err(syntax_error(format!("Attribute {key} redefined")));
        }
        elem.attrs.push((key, value));
    }
    Ok(elem)
}

/// Parse a whole document into its root element.
pub fn parse_document(xml: &str) -> Result<Element> {
    if xml.len() > MAX_DOCUMENT_BYTES {
        return Err(syntax_error("document too large"));
    }
    let mut reader = Reader::from_str(xml);
    reader.config_mut().check_end_names = true;
    let mut stack: Vec<Element> = Vec::new();
    let mut root: Option<Element> = None;
    loop {
        let event = reader.read_event().map_err(syntax_error)?;
        match event {
            Event::Start(start) => {
                if root.is_some() {
                    return Err(syntax_error("Extra content at the end of the document"));
                }
                if stack.len() >= MAX_DEPTH {
                    return Err(syntax_error("Excessive depth in document"));
                }
                stack.push(start_element(&start)?);
            }
            Event::Empty(start) => {
                if root.is_some() {
                    return Err(syntax_error("Extra content at the end of the document"));
                }
                let elem = start_element(&start)?;
                match stack.last_mut() {
                    Some(parent) => parent.children.push(elem),
                    None => root = Some(elem),
                }
            }
            Event::End(_) => {
                let Some(mut done) = stack.pop() else {
                    return Err(syntax_error("unexpected end tag"));
                };
                // Text between child elements is layout; the formatter
                // writes its own, so it is not kept.
                if !done.children.is_empty() {
                    done.text.clear();
                }
                match stack.last_mut() {
                    Some(parent) => parent.children.push(done),
                    None => root = Some(done),
                }
            }
            Event::Text(text) => {
                let decoded = text.xml10_content().map_err(syntax_error)?;
                match stack.last_mut() {
                    Some(cur) => cur.text.push_str(&decoded),
                    None if decoded.trim().is_empty() => {}
                    None => return Err(syntax_error("Start tag expected, '<' not found")),
                }
            }
            Event::CData(data) => {
                let decoded = data.decode().map_err(syntax_error)?;
                if let Some(cur) = stack.last_mut() {
                    cur.text.push_str(&decoded);
                }
            }
            Event::GeneralRef(reference) => {
                let resolved =
                    if let Some(ch) = reference.resolve_char_ref().map_err(syntax_error)? {
                        ch.to_string()
                    } else {
                        let name = reference.decode().map_err(syntax_error)?;
                        match quick_xml::escape::resolve_predefined_entity(&name) {
                            Some(s) => s.to_string(),
                            None => {
                                return Err(syntax_error(format!("Entity '{name}' not defined")));
                            }
                        }
                    };
                match stack.last_mut() {
                    Some(cur) => cur.text.push_str(&resolved),
                    None => return Err(syntax_error("Start tag expected, '<' not found")),
                }
            }
            Event::Eof => break,
            Event::Decl(_) | Event::Comment(_) | Event::PI(_) | Event::DocType(_) => {}
        }
    }
    if !stack.is_empty() {
        return Err(syntax_error("Premature end of data"));
    }
    root.ok_or_else(|| syntax_error("Document is empty"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_nested_elements_attributes_and_text() {
        let e =
            parse_document("<?xml version='1.0'?><a x='1' y=\"&amp;\"><b>t&lt;&#65;</b><c/></a>")
                .unwrap();
        assert_eq!(e.name, "a");
        assert_eq!(e.attr("y"), Some("&"));
        assert_eq!(e.child_text("b"), Some("t<A"));
        assert!(e.child("c").is_some());
    }

    #[test]
    fn rejects_malformed_and_deep_documents() {
        assert!(parse_document("<a><b></a>").is_err());
        assert!(parse_document("<a>").is_err());
        assert!(parse_document("").is_err());
        assert!(parse_document("<a/><b/>").is_err());
        assert!(parse_document("<a x='1' x='2'/>").is_err());
        let deep = "<a>".repeat(MAX_DEPTH + 1) + &"</a>".repeat(MAX_DEPTH + 1);
        assert!(parse_document(&deep).is_err());
        let err = parse_document("<a>&foo;</a>").unwrap_err();
        assert_eq!(err.code, ErrorCode::XmlDetail);
    }
}
