//! A small XML tree and the subset of XPath that `dumpxml --xpath` and
//! the device listings need: absolute (`/domain/name`) and descendant
//! (`//disk`) steps, `*`, `[n]`, a final `@attr` or `text()`.

use quick_xml::Reader;
use quick_xml::events::Event;

/// One element: its name, attributes, children and where its markup
/// starts and ends in the source text.
#[derive(Debug, Default)]
pub struct Node {
    pub name: String,
    pub attrs: Vec<(String, String)>,
    pub children: Vec<usize>,
    pub text: String,
    pub start: usize,
    pub end: usize,
}

/// A parsed document; node 0 is a virtual root above the document element.
pub struct Doc<'a> {
    pub src: &'a str,
    pub nodes: Vec<Node>,
}

impl<'a> Doc<'a> {
    pub fn parse(src: &'a str) -> Result<Doc<'a>, String> {
        let mut nodes = vec![Node::default()];
        let mut stack = vec![0usize];
        let mut reader = Reader::from_str(src);
        loop {
            let before = reader.buffer_position() as usize;
            let ev = reader.read_event().map_err(|e| e.to_string())?;
            let after = reader.buffer_position() as usize;
            match ev {
                Event::Start(e) | Event::Empty(e) => {
                    let empty = src.get(before..after).is_some_and(|s| s.ends_with("/>"));
                    let mut n = Node {
                        name: String::from_utf8_lossy(e.name().as_ref()).into_owned(),
                        start: before,
                        end: after,
                        ..Node::default()
                    };
                    for a in e.attributes().flatten() {
                        let k = String::from_utf8_lossy(a.key.as_ref()).into_owned();
                        let v = a
                            .normalized_value(quick_xml::XmlVersion::Implicit1_0)
                            .map(|v| v.into_owned())
                            .unwrap_or_default();
                        n.attrs.push((k, v));
                    }
                    let idx = nodes.len();
                    nodes.push(n);
                    let parent = *stack.last().unwrap_or(&0);
                    nodes[parent].children.push(idx);
                    if !empty {
                        stack.push(idx);
                    }
                }
                Event::End(_) => {
                    if let Some(idx) = stack.pop()
                        && idx != 0
                    {
                        nodes[idx].end = after;
                    }
                }
                Event::Text(t) => {
                    let parent = *stack.last().unwrap_or(&0);
                    if let Ok(s) = t.decode() {
                        nodes[parent].text.push_str(&s);
                    }
                }
                Event::GeneralRef(r) => {
                    let parent = *stack.last().unwrap_or(&0);
                    let bytes: &[u8] = &r;
                    let s = match bytes {
                        b"lt" => "<",
                        b"gt" => ">",
                        b"amp" => "&",
                        b"quot" => "\"",
                        b"apos" => "'",
                        _ => "",
                    };
                    nodes[parent].text.push_str(s);
                }
                Event::Eof => break,
                _ => {}
            }
        }
        Ok(Doc { src, nodes })
    }

    pub fn attr(&self, n: usize, name: &str) -> Option<&str> {
        self.nodes[n]
            .attrs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The first child element of `n` called `name`.
    pub fn child(&self, n: usize, name: &str) -> Option<usize> {
        self.nodes[n]
            .children
            .iter()
            .copied()
            .find(|c| self.nodes[*c].name == name)
    }

    fn descendants(&self, n: usize, out: &mut Vec<usize>) {
        for c in &self.nodes[n].children {
            out.push(*c);
            self.descendants(*c, out);
        }
    }

    /// The markup of element `n` as it appears in the source.
    pub fn markup(&self, n: usize) -> &str {
        self.src
            .get(self.nodes[n].start..self.nodes[n].end)
            .unwrap_or("")
    }

    /// The markup of `n` with the indentation of its own line taken off
    /// its inner lines, as a node written out on its own reads.
    fn dedent(&self, n: usize) -> String {
        let start = self.nodes[n].start;
        let line_start = self.src[..start].rfind('\n').map_or(0, |i| i + 1);
        let indent = &self.src[line_start..start];
        let markup = self.markup(n);
        if indent.is_empty() || !indent.chars().all(|c| c == ' ' || c == '\t') {
            return markup.to_string();
        }
        let mut out = String::with_capacity(markup.len());
        for (i, line) in markup.split('\n').enumerate() {
            if i > 0 {
                out.push('\n');
                out.push_str(line.strip_prefix(indent).unwrap_or(line));
            } else {
                out.push_str(line);
            }
        }
        out
    }

    /// Evaluates `expr`; the results are serialized markup for elements,
    /// values for attributes and text.
    pub fn select(&self, expr: &str) -> Result<Vec<String>, String> {
        let expr = expr.trim();
        if !expr.starts_with('/') {
            return Err(format!("Unable to evaluate xpath '{expr}'"));
        }
        let mut cur = vec![0usize];
        let mut rest = expr;
        while !rest.is_empty() {
            let deep = rest.starts_with("//");
            rest = rest.trim_start_matches('/');
            let (step, next) = match rest.find('/') {
                Some(i) => (&rest[..i], &rest[i..]),
                None => (rest, ""),
            };
            rest = next;
            let mut pool = Vec::new();
            for n in &cur {
                if deep {
                    self.descendants(*n, &mut pool);
                } else {
                    pool.extend(self.nodes[*n].children.iter().copied());
                }
            }
            if let Some(a) = step.strip_prefix('@') {
                if !rest.is_empty() {
                    return Err(format!("Unable to evaluate xpath '{expr}'"));
                }
                let base: Vec<usize> = if deep { pool } else { cur };
                return Ok(base
                    .iter()
                    .filter_map(|n| {
                        self.attr(*n, a)
                            .map(|v| format!(" {a}=\"{}\"", escape_attr(v)))
                    })
                    .collect());
            }
            if step == "text()" {
                return Ok(cur.iter().map(|n| self.nodes[*n].text.clone()).collect());
            }
            let (name, index) = match step.split_once('[') {
                Some((n, i)) => {
                    let i = i
                        .strip_suffix(']')
                        .and_then(|i| i.parse::<usize>().ok())
                        .filter(|i| *i > 0)
                        .ok_or_else(|| format!("Unable to evaluate xpath '{expr}'"))?;
                    (n, Some(i))
                }
                None => (step, None),
            };
            if name.is_empty() {
                return Err(format!("Unable to evaluate xpath '{expr}'"));
            }
            let mut matched: Vec<usize> = pool
                .into_iter()
                .filter(|c| name == "*" || self.nodes[*c].name == name)
                .collect();
            if let Some(i) = index {
                matched = matched.get(i - 1).copied().into_iter().collect();
            }
            cur = matched;
        }
        Ok(cur
            .iter()
            .map(|n| double_quoted(&self.dedent(*n)))
            .collect())
    }
}

fn escape_attr(v: &str) -> String {
    v.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('"', "&quot;")
}

/// Markup with its attribute values in double quotes, as libxml2 writes
/// nodes out.
fn double_quoted(markup: &str) -> String {
    let mut out = String::with_capacity(markup.len());
    let mut in_tag = false;
    for c in markup.chars() {
        match c {
            '<' => in_tag = true,
            '>' => in_tag = false,
            _ => {}
        }
        out.push(if in_tag && c == '\'' { '"' } else { c });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const X: &str = "<domain type='kvm'>\n  <name>a</name>\n  <devices>\n    <disk type='file'><target dev='vda'/></disk>\n    <disk type='file'><target dev='vdb'/></disk>\n  </devices>\n</domain>\n";

    #[test]
    fn selects() {
        let d = Doc::parse(X).unwrap();
        assert_eq!(d.select("//name").unwrap(), vec!["<name>a</name>"]);
        assert_eq!(d.select("/domain/@type").unwrap(), vec![" type=\"kvm\""]);
        assert_eq!(
            d.select("//disk/target/@dev").unwrap(),
            vec![" dev=\"vda\"", " dev=\"vdb\""]
        );
        assert_eq!(
            d.select("/domain/devices/disk[2]/target").unwrap(),
            vec!["<target dev=\"vdb\"/>"]
        );
        assert_eq!(d.select("/domain/name/text()").unwrap(), vec!["a"]);
        assert!(d.select("//nothing").unwrap().is_empty());
    }
}
