//! A line-oriented writer for the storage XML, which libvirt prints with
//! its buffer API: two-space indentation, single-quoted attributes.

#[derive(Default)]
pub(in crate::xml) struct Out {
    buf: String,
    level: usize,
}

/// Escapes text or an attribute value as libvirt's `virBufferEscapeString` does.
pub(crate) fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '\'' => o.push_str("&apos;"),
            '"' => o.push_str("&quot;"),
            _ => o.push(c),
        }
    }
    o
}

impl Out {
    /// One line at the current indentation.
    pub fn line(&mut self, text: &str) {
        for _ in 0..self.level {
            self.buf.push_str("  ");
        }
        self.buf.push_str(text);
        self.buf.push('\n');
    }

    /// `<name>text</name>`, escaped.
    pub fn text_elem(&mut self, name: &str, text: &str) {
        self.line(&format!("<{name}>{}</{name}>", esc(text)));
    }

    pub fn open(&mut self, tag: &str) {
        self.line(tag);
        self.level += 1;
    }

    pub fn close(&mut self, tag: &str) {
        self.level = self.level.saturating_sub(1);
        self.line(tag);
    }

    /// Text already indented and ended by a newline.
    pub fn raw(&mut self, text: &str) {
        self.buf.push_str(text);
    }

    /// The current indentation level.
    pub fn level(&self) -> usize {
        self.level
    }

    pub fn finish(self) -> String {
        self.buf
    }
}
