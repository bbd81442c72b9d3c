#!/usr/bin/env python3
"""Generates src/rpc/generated.rs from libvirt's remote_protocol.x.

usage: gen_protocol.py [REMOTE_PROTOCOL_X] [-o OUTPUT]

REMOTE_PROTOCOL_X defaults to libvirt 9.0.0's file under /var/cache/oxsrc
(or the only libvirt tree there); OUTPUT defaults to src/rpc/generated.rs
of the checkout this script is in.

What is generated, and how XDR maps to the codec in src/rpc/xdr.rs:

* every `const` as a `pub const`: `usize`, as they are lengths, except
  REMOTE_PROGRAM and REMOTE_PROTOCOL_VERSION, which are `u32` like the
  header fields they are compared with. The few `VIR_*` names the file
  takes from libvirt's public headers (buffer lengths, the typed
  parameter types) are read from the headers of the same source tree and
  emitted first.
* `enum remote_procedure` as `pub mod procs`, one `i32` per
  `REMOTE_PROC_*` with the prefix stripped; other enums as `i32`
  constants, and fields of an enum type as `i32` (rpcgen does not check
  enum values either).
* every `struct remote_x_y` as `XY` through `xdr_struct!`, fields in
  snake_case (`r#type` for `type`). Types: int/unsigned int/hyper/
  unsigned hyper/double/bool as i32/u32/i64/u64/f64/bool; the narrow C
  types rpcgen sends as a full word as that word (`char` and `short`
  i32, `unsigned char` and `unsigned short` u32); `T *` as Option<T>;
  `string<N>` as String; `opaque x<N>` as Opaque; `opaque x[N]` as
  [u8; N]; `char x<N>` as CharArray (text up to its NUL) or, for the SASL
  data listed in BINARY_CHAR_ARRAYS, CharBytes; `char x[N]` as
  CharFixed<N>; `T x<N>` as Vec<T>. Typedefs are resolved in place
  (`remote_string` is Option<String>, `remote_uuid` [u8; VIR_UUID_BUFLEN]).
* limits: a field declared `x<N>` is emitted `pub x: T [max = N]`, which
  `xdr_struct!` decodes with that limit (xdr::Bounded) instead of the
  codec's default, so an array of N + 1 is refused and an array allowed
  more than the default ARRAY_MAX is accepted. `string<REMOTE_STRING_MAX>`
  (remote_nonnull_string) is the codec's default STRING_MAX, which the
  output asserts at compile time; `x<>` without a limit gets the default.
* unions as a Rust enum with one variant per case, named after the case
  label without the labels' common prefix (VIR_TYPED_PARAM_INT -> Int),
  with a hand-written-style Xdr impl that dispatches on the discriminant
  and refuses unknown ones. `remote_typed_param_value` is generated as
  TypedParamValue rather than mapped to protocol.rs's TypedValue, so that
  the output stands alone; its `int b` arm stays an i32 as on the wire.

The text is written in rustfmt's style (rustfmt, when installed, is run
on it and changes nothing). Constructs remote_protocol.x does not use (fixed arrays of non-opaque
types, nested limits, default union arms, programs) stop the script with
an error rather than being guessed at.
"""

import argparse
import glob
import hashlib
import os
import re
import shutil
import subprocess
import sys

SRC_CACHE = "/var/cache/oxsrc"
PREFERRED_TREE = "libvirt-9.0.0"

# `char x<N>` fields that carry bytes, not NUL-terminated text.
BINARY_CHAR_ARRAYS = {
    ("remote_auth_sasl_start_args", "data"),
    ("remote_auth_sasl_start_ret", "data"),
    ("remote_auth_sasl_step_args", "data"),
    ("remote_auth_sasl_step_ret", "data"),
}

# Constants that identify the program in the message header.
U32_CONSTS = {"REMOTE_PROGRAM", "REMOTE_PROTOCOL_VERSION"}

# The limit xdr.rs applies to a String when a field gives none.
DEFAULT_STRING_MAX = "REMOTE_STRING_MAX"

RUST_KEYWORDS = {
    "as", "async", "await", "break", "const", "continue", "crate", "dyn",
    "else", "enum", "extern", "false", "fn", "for", "gen", "if", "impl",
    "in", "let", "loop", "match", "mod", "move", "mut", "pub", "ref",
    "return", "self", "static", "struct", "super", "trait", "true", "type",
    "unsafe", "use", "where", "while", "abstract", "become", "box", "do",
    "final", "macro", "override", "priv", "try", "typeof", "unsized",
    "virtual", "yield",
}


class XdrSyntaxError(Exception):
    pass


# ---------------------------------------------------------------- parsing

TOKEN = re.compile(
    r"\s*(?:(0[xX][0-9a-fA-F]+|-?\d+)|([A-Za-z_][A-Za-z0-9_]*)|(.))", re.S
)


def tokenize(text):
    text = re.sub(r"/\*.*?\*/", " ", text, flags=re.S)
    # `%` lines are passed through to the C output by rpcgen.
    text = "\n".join(
        line for line in text.splitlines() if not line.lstrip().startswith("%")
    )
    tokens = []
    pos = 0
    while pos < len(text):
        m = TOKEN.match(text, pos)
        if not m or m.end() == pos:
            break
        pos = m.end()
        num, ident, punct = m.groups()
        if num is not None:
            tokens.append(("num", num))
        elif ident is not None:
            tokens.append(("id", ident))
        elif punct is not None and not punct.isspace():
            tokens.append(("p", punct))
    return tokens


class Decl:
    """One declaration: `kind` is plain, optional (T *x), fixed (x[N]),
    var (x<N>, size None when unbounded) or void."""

    def __init__(self, kind, typ, name, size=None):
        self.kind, self.typ, self.name, self.size = kind, typ, name, size


class Parser:
    def __init__(self, tokens):
        self.toks = tokens
        self.i = 0
        self.consts = []  # (name, value token)
        self.typedefs = {}  # name -> Decl
        self.structs = []  # (name, [Decl])
        self.unions = []  # (name, Decl discriminant, [([labels], Decl)])
        self.enums = []  # (name, [(member, value token)])

    def peek(self, k=0):
        j = self.i + k
        return self.toks[j] if j < len(self.toks) else (None, None)

    def next(self):
        t = self.peek()
        if t[0] is None:
            raise XdrSyntaxError("unexpected end of file")
        self.i += 1
        return t

    def expect(self, value):
        t = self.next()
        if t[1] != value:
            raise XdrSyntaxError(f"expected {value!r}, got {t[1]!r}")

    def ident(self):
        kind, value = self.next()
        if kind != "id":
            raise XdrSyntaxError(f"expected a name, got {value!r}")
        return value

    def value(self):
        kind, value = self.next()
        if kind not in ("id", "num"):
            raise XdrSyntaxError(f"expected a value, got {value!r}")
        return value

    def parse(self):
        while self.peek()[0] is not None:
            word = self.ident()
            if word == "const":
                name = self.ident()
                self.expect("=")
                self.consts.append((name, self.value()))
                self.expect(";")
            elif word == "typedef":
                d = self.decl()
                self.typedefs[d.name] = d
                self.expect(";")
            elif word == "struct":
                self.structs.append(self.struct_body(self.ident()))
            elif word == "union":
                self.unions.append(self.union_body(self.ident()))
            elif word == "enum":
                self.enums.append(self.enum_body(self.ident()))
            else:
                raise XdrSyntaxError(f"unsupported definition {word!r}")
        return self

    def struct_body(self, name):
        self.expect("{")
        fields = []
        while self.peek()[1] != "}":
            fields.append(self.decl())
            self.expect(";")
        self.expect("}")
        self.expect(";")
        return name, fields

    def union_body(self, name):
        self.expect("switch")
        self.expect("(")
        disc = self.decl()
        self.expect(")")
        self.expect("{")
        arms = []
        while self.peek()[1] != "}":
            labels = []
            while self.peek()[1] in ("case", "default"):
                if self.next()[1] == "default":
                    raise XdrSyntaxError(f"union {name}: default arms are not supported")
                labels.append(self.value())
                self.expect(":")
            if not labels:
                raise XdrSyntaxError(f"union {name}: expected case")
            arms.append((labels, self.decl()))
            self.expect(";")
        self.expect("}")
        self.expect(";")
        return name, disc, arms

    def enum_body(self, name):
        self.expect("{")
        members = []
        while True:
            member = self.ident()
            self.expect("=")
            members.append((member, self.value()))
            if self.peek()[1] == ",":
                self.next()
                continue
            break
        self.expect("}")
        self.expect(";")
        return name, members

    def type_spec(self):
        word = self.ident()
        if word in ("struct", "union", "enum"):
            if self.peek(1)[1] == "{":
                raise XdrSyntaxError("inline type definitions are not supported")
            return self.ident()
        if word == "unsigned":
            if self.peek()[1] in ("int", "hyper", "char", "short", "long"):
                return "unsigned " + self.ident()
            return "unsigned int"
        return word

    def decl(self):
        if self.peek()[1] == "void":
            self.next()
            return Decl("void", None, None)
        typ = self.type_spec()
        if self.peek()[1] == "*":
            self.next()
            return Decl("optional", typ, self.ident())
        name = self.ident()
        nxt = self.peek()[1]
        if nxt == "[":
            self.next()
            size = self.value()
            self.expect("]")
            return Decl("fixed", typ, name, size)
        if nxt == "<":
            self.next()
            size = None if self.peek()[1] == ">" else self.value()
            self.expect(">")
            return Decl("var", typ, name, size)
        if typ in ("string", "opaque"):
            raise XdrSyntaxError(f"{typ} {name} needs a length")
        return Decl("plain", typ, name)


# ------------------------------------------------- libvirt's public headers


def header_symbols(x_path):
    """`# define VIR_X (expr)` lengths and `VIR_X = N` enum members from the
    public headers of the source tree remote_protocol.x is in."""
    root = os.path.normpath(os.path.join(os.path.dirname(x_path), "..", ".."))
    inc = os.path.join(root, "include", "libvirt")
    defines, members = {}, {}
    paths = glob.glob(os.path.join(inc, "*.h")) + glob.glob(os.path.join(inc, "*.h.in"))
    define = re.compile(r"^#\s*define\s+(VIR_\w+)\s+\(?\s*([\d\s+*]+?)\s*\)?\s*$", re.M)
    for path in sorted(paths):
        with open(path, encoding="utf-8") as f:
            text = f.read()
        for m in define.finditer(text):
            expr = m.group(2)
            if re.fullmatch(r"[\d\s+*]+", expr):
                defines[m.group(1)] = eval_int(expr)
        for m in re.finditer(r"^\s*(VIR_\w+)\s*=\s*(-?\d+)\s*,", text, re.M):
            members[m.group(1)] = int(m.group(2))
    return defines, members


def eval_int(expr):
    """Sum of products of decimal numbers: all a `#define` length uses."""
    total = 0
    for term in expr.split("+"):
        product = 1
        for factor in term.split("*"):
            product *= int(factor)
        total += product
    return total


def source_version(x_path):
    root = os.path.normpath(os.path.join(os.path.dirname(x_path), "..", ".."))
    try:
        with open(os.path.join(root, "meson.build"), encoding="utf-8") as f:
            m = re.search(r"version:\s*'([^']+)'", f.read())
            if m:
                return m.group(1)
    except OSError:
        pass
    m = re.search(r"libvirt-(\d+\.\d+\.\d+)", x_path)
    return m.group(1) if m else None


# ------------------------------------------------------------- generation


def camel(name):
    if name.startswith("remote_"):
        name = name[len("remote_"):]
    return "".join(part[:1].upper() + part[1:] for part in name.split("_") if part)


def snake(name):
    s = re.sub(r"([A-Z]+)([A-Z][a-z]{2,})", r"\1_\2", name)
    s = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", s).lower()
    return "r#" + s if s in RUST_KEYWORDS else s


WORD_TYPES = {
    "int": "i32",
    "unsigned int": "u32",
    "hyper": "i64",
    "unsigned hyper": "u64",
    "double": "f64",
    "bool": "bool",
    # rpcgen sends these as a full word.
    "char": "i32",
    "short": "i32",
    "unsigned char": "u32",
    "unsigned short": "u32",
}


class Generator:
    def __init__(self, parsed, defines, members, x_path, version, digest):
        self.p = parsed
        self.defines, self.members = defines, members
        self.x_path, self.version, self.digest = x_path, version, digest
        self.struct_names = {n for n, _ in parsed.structs}
        self.union_names = {n for n, _, _ in parsed.unions}
        self.enum_names = {n for n, _ in parsed.enums}
        self.const_names = {n for n, _ in parsed.consts}
        self.external = {}  # VIR_* name -> (rust type, value)
        self.imports = {"xdr_struct"}
        self.binary_chars_used = set()
        self.rust_names = {}

    # -- values

    def size(self, token):
        """A length as Rust: a literal or a constant name."""
        if re.fullmatch(r"0[xX][0-9a-fA-F]+|\d+", token):
            return str(int(token, 0))
        if token in self.const_names:
            return token
        if token in self.defines:
            self.external[token] = ("usize", self.defines[token])
            return token
        raise XdrSyntaxError(f"unknown length {token}")

    def label(self, token):
        """A union case label or enum value as Rust."""
        if re.fullmatch(r"-?\d+|0[xX][0-9a-fA-F]+", token):
            return str(int(token, 0))
        if token in self.members:
            self.external[token] = ("i32", self.members[token])
            return token
        for _, members in self.p.enums:
            if any(m == token for m, _ in members):
                return token
        raise XdrSyntaxError(f"unknown value {token}")

    # -- types

    def resolve(self, decl, where):
        """(Rust type, field limit or None) of a declaration; `where` is
        (struct or union, field) for the messages."""
        kind, typ = decl.kind, decl.typ
        if kind == "plain":
            return self.named(typ, where)
        if kind == "optional":
            inner, limit = self.named(typ, where)
            if limit is not None:
                raise XdrSyntaxError(f"{where[0]}.{where[1]}: a limit inside an optional value")
            return f"Option<{inner}>", None
        if kind == "fixed":
            n = self.size(decl.size)
            if typ == "opaque":
                return f"[u8; {n}]", None
            if typ == "char":
                self.imports.add("CharFixed")
                return f"CharFixed<{n}>", None
            raise XdrSyntaxError(f"{where[0]}.{where[1]}: fixed arrays of {typ} are not supported")
        if kind == "var":
            limit = self.size(decl.size) if decl.size is not None else None
            if typ == "string":
                if decl.size == DEFAULT_STRING_MAX:
                    limit = None
                return "String", limit
            if typ == "opaque":
                self.imports.add("Opaque")
                return "Opaque", limit
            if typ == "char":
                struct, field = where
                if (struct, field) in BINARY_CHAR_ARRAYS:
                    self.binary_chars_used.add((struct, field))
                    self.imports.add("CharBytes")
                    return "CharBytes", limit
                self.imports.add("CharArray")
                return "CharArray", limit
            inner, inner_limit = self.named(typ, where)
            if inner_limit is not None:
                raise XdrSyntaxError(f"{where[0]}.{where[1]}: a limit inside an array element")
            return f"Vec<{inner}>", limit
        raise XdrSyntaxError(f"{where[0]}.{where[1]}: unexpected {kind} declaration")

    def named(self, typ, where):
        if typ in WORD_TYPES:
            return WORD_TYPES[typ], None
        if typ in self.p.typedefs:
            return self.resolve(self.p.typedefs[typ], where)
        if typ in self.struct_names or typ in self.union_names:
            return camel(typ), None
        if typ in self.enum_names:
            return "i32", None
        raise XdrSyntaxError(f"{where[0]}.{where[1]}: unknown type {typ}")

    # -- output

    def field_line(self, decl, struct, indent):
        name = snake(decl.name)
        rust, limit = self.resolve(decl, (struct, decl.name))
        bound = f" [max = {limit}]" if limit is not None else ""
        return f"{indent}pub {name}: {rust}{bound},"

    def structs(self):
        out = []
        for name, fields in self.p.structs:
            rust = camel(name)
            if rust in self.rust_names:
                raise XdrSyntaxError(f"{name} and {self.rust_names[rust]} are both {rust}")
            self.rust_names[rust] = name
            names = [snake(f.name) for f in fields]
            if len(set(names)) != len(names):
                raise XdrSyntaxError(f"{name}: two fields with one Rust name")
            out.append("xdr_struct! {")
            out.append(f"    /// `{name}`.")
            out.append(f"    pub struct {rust} {{")
            for f in fields:
                if f.kind == "void":
                    raise XdrSyntaxError(f"{name}: void field")
                out.append(self.field_line(f, name, "        "))
            out.append("    }")
            out.append("}")
            out.append("")
        return out

    def unions(self):
        out = []
        self.imports.update({"Reader", "XResult", "Xdr", "XdrError"})
        for name, disc, arms in self.p.unions:
            rust = camel(name)
            self.rust_names[rust] = name
            disc_rust, _ = self.named(disc.typ, (name, disc.name))
            if disc_rust != "i32":
                raise XdrSyntaxError(f"union {name}: discriminant must be int or an enum")
            labels = [label for ls, _ in arms for label in ls]
            # Variants are named after the case labels without their common
            # prefix; after the arm's field when the labels are numbers.
            by_label = len(labels) > 1 and all(re.fullmatch(r"[A-Za-z_]\w*", x) for x in labels)
            prefix = os.path.commonprefix(labels)
            prefix = prefix[: prefix.rfind("_") + 1]
            variants = []  # (variant, label, rust type or None, limit, decl)
            for ls, decl in arms:
                for label in ls:
                    if by_label:
                        variant = camel(label[len(prefix):].lower())
                    else:
                        variant = camel(decl.name or f"case_{label}")
                    if decl.kind == "void":
                        variants.append((variant, self.label(label), None, None, decl))
                    else:
                        t, limit = self.resolve(decl, (name, decl.name))
                        variants.append((variant, self.label(label), t, limit, decl))
            if len({v[0] for v in variants}) != len(variants):
                raise XdrSyntaxError(f"union {name}: two arms with one variant name")
            out.append(f"/// `{name}`, a union on `{disc.typ} {disc.name}`.")
            out.append("#[derive(Clone, Debug, PartialEq)]")
            out.append(f"pub enum {rust} {{")
            for variant, label, t, _, decl in variants:
                what = f"`{decl.typ} {decl.name}`" if t else "no value"
                out.append(f"    /// `{label}`: {what}.")
                out.append(f"    {variant}({t})," if t else f"    {variant},")
            out.append("}")
            out.append("")
            first, _, t0, _, _ = variants[0]
            out.append(f"impl Default for {rust} {{")
            out.append("    fn default() -> Self {")
            value = "(Default::default())" if t0 else ""
            out.append(f"        {rust}::{first}{value}")
            out.append("    }")
            out.append("}")
            out.append("")
            out.append(f"impl Xdr for {rust} {{")
            out.append("    fn encode(&self, w: &mut Vec<u8>) {")
            out.append("        match self {")
            for variant, label, t, _, _ in variants:
                # A literal needs its type to pick the Xdr impl.
                if re.fullmatch(r"-?\d+", label):
                    label = f"({label}i32)" if label.startswith("-") else f"{label}i32"
                if t:
                    out.append(f"            {rust}::{variant}(v) => {{")
                    out.append(f"                {label}.encode(w);")
                    out.append("                v.encode(w);")
                    out.append("            }")
                else:
                    out.append(f"            {rust}::{variant} => {label}.encode(w),")
            out.append("        }")
            out.append("    }")
            out.append("    fn decode(r: &mut Reader<'_>) -> XResult<Self> {")
            out.append("        Ok(match i32::decode(r)? {")
            for variant, label, t, limit, _ in variants:
                if not t:
                    out.append(f"            {label} => {rust}::{variant},")
                elif limit is None:
                    out.append(f"            {label} => {rust}::{variant}(Xdr::decode(r)?),")
                else:
                    self.imports.add("Bounded")
                    out.append(f"            {label} => {rust}::{variant}(")
                    out.append(f"                Bounded::decode_max(r, {limit})?,")
                    out.append("            ),")
            out.append("            d => return Err(XdrError::BadDiscriminant(d)),")
            out.append("        })")
            out.append("    }")
            out.append("}")
            out.append("")
        return out

    def consts(self):
        out = ["// Constants of remote_protocol.x.", ""]
        for name, value in self.p.consts:
            typ = "u32" if name in U32_CONSTS else "usize"
            if re.fullmatch(r"0[xX][0-9a-fA-F]+|\d+", value):
                rust = value
            else:
                rust = self.size(value)
            out.append(f"pub const {name}: {typ} = {rust};")
        out.append("")
        if DEFAULT_STRING_MAX in self.const_names:
            out.append("// remote_nonnull_string is decoded with xdr.rs's default string limit.")
            out.append(f"const _: () = assert!({DEFAULT_STRING_MAX} == super::xdr::STRING_MAX);")
            out.append("")
        return out

    def enums(self):
        out = []
        procs = None
        for name, members in self.p.enums:
            if name == "remote_procedure":
                procs = members
                continue
            out.append(f"// `enum {name}`.")
            for member, value in members:
                out.append(f"pub const {member}: i32 = {self.label(value)};")
            out.append("")
        if procs is None:
            raise XdrSyntaxError("no enum remote_procedure")
        out.append("/// Procedure numbers: `REMOTE_PROC_*` without the prefix.")
        out.append("pub mod procs {")
        for member, value in procs:
            if not member.startswith("REMOTE_PROC_"):
                raise XdrSyntaxError(f"procedure {member} lacks REMOTE_PROC_")
            out.append(f"    pub const {member[len('REMOTE_PROC_'):]}: i32 = {int(value, 0)};")
        out.append("}")
        out.append("")
        self.nprocs = len(procs)
        return out

    def render(self):
        # Bodies first: they decide the imports and the external names.
        consts = self.consts()
        enums = self.enums()
        unions = self.unions()
        structs = self.structs()
        missing = BINARY_CHAR_ARRAYS - self.binary_chars_used
        if missing:
            raise XdrSyntaxError(f"BINARY_CHAR_ARRAYS names no field: {sorted(missing)}")
        rel = "src/remote/remote_protocol.x"
        origin = f"libvirt {self.version}'s" if self.version else "libvirt's"
        head = [
            f"//! Generated by compat-tests/rpc/gen_protocol.py from {origin}",
            f"//! {rel} (sha256 {self.digest[:16]}...).",
            "//! Do not edit: change the script and run it again.",
            "//!",
            "//! Every `const`, `enum remote_procedure` as [`procs`], every union and",
            "//! every `struct remote_*`, named in CamelCase without `remote_`. A field",
            "//! declared `x<N>` is decoded with its limit N (`[max = N]`).",
            "",
            *use_lines("super::xdr", sorted(self.imports, key=import_key)),
            "",
        ]
        external = []
        if self.external:
            external.append("// From libvirt's public headers.")
            external.append("")
            for name in sorted(self.external):
                typ, value = self.external[name]
                external.append(f"pub const {name}: {typ} = {value};")
            external.append("")
        lines = head + external + consts + enums + unions + structs
        while lines[-1] == "":
            lines.pop()
        self.nstructs = len(self.p.structs)
        return "\n".join(lines) + "\n"


def use_lines(path, names):
    """A `use` as rustfmt writes it: one line if it fits in 100 columns,
    else the names filled into indented lines."""
    one = f"use {path}::{{{', '.join(names)}}};"
    if len(one) <= 100:
        return [one]
    lines, line = [f"use {path}::{{"], "   "
    for name in names:
        if len(line) + 1 + len(name) + 1 > 100:
            lines.append(line)
            line = "   "
        line += f" {name},"
    lines.append(line)
    lines.append("};")
    return lines


def import_key(name):
    # rustfmt's order: lowercase (snake_case) after CamelCase, by ASCII.
    return (name[:1].islower(), name)


def default_source():
    preferred = os.path.join(SRC_CACHE, PREFERRED_TREE, "src/remote/remote_protocol.x")
    if os.path.exists(preferred):
        return preferred
    found = sorted(glob.glob(os.path.join(SRC_CACHE, "libvirt-*/src/remote/remote_protocol.x")))
    if len(found) == 1:
        return found[0]
    sys.exit(
        f"gen_protocol.py: give the path of remote_protocol.x "
        f"({len(found)} libvirt trees under {SRC_CACHE})"
    )


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    repo = os.path.normpath(os.path.join(here, "..", ".."))
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("source", nargs="?", help="remote_protocol.x")
    ap.add_argument(
        "-o",
        "--output",
        default=os.path.join(repo, "src", "rpc", "generated.rs"),
        help="the Rust file to write (default: src/rpc/generated.rs)",
    )
    args = ap.parse_args()
    source = args.source or default_source()
    try:
        with open(source, "rb") as f:
            raw = f.read()
    except OSError as e:
        sys.exit(f"gen_protocol.py: {e}")
    try:
        parsed = Parser(tokenize(raw.decode("utf-8"))).parse()
        defines, members = header_symbols(source)
        gen = Generator(
            parsed, defines, members, source, source_version(source),
            hashlib.sha256(raw).hexdigest(),
        )
        text = gen.render()
    except XdrSyntaxError as e:
        sys.exit(f"gen_protocol.py: {source}: {e}")
    with open(args.output, "w", encoding="utf-8") as f:
        f.write(text)
    # The text is written in rustfmt's style already; rustfmt, when it is
    # installed, only keeps it so if the script changes.
    if shutil.which("rustfmt"):
        subprocess.run(["rustfmt", "--edition", "2024", args.output], check=True)
    print(
        f"{args.output}: {gen.nstructs} structs, {len(parsed.unions)} unions, "
        f"{gen.nprocs} procedures, {len(parsed.consts)} constants"
    )


if __name__ == "__main__":
    main()
