//! A deterministic stand-in for the cargo-fuzz target: thousands of
//! mutated corpus documents go through parse, check, aliases and format,
//! and nothing may panic; whatever parses must format to XML that parses.

use std::path::Path;

use oxvirt::xml::{FormatFlags, assign_aliases, check_supported, parse_domain};

/// xorshift64*: small, seeded, good enough to pick mutations.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }
}

const TOKENS: &[&str] = &[
    "<",
    ">",
    "'",
    "\"",
    "&",
    "&amp;",
    "&#0;",
    "&#x110000;",
    "/>",
    "</disk>",
    "<disk>",
    "<backingStore type='file'><source file='/x'/>",
    "0",
    "-1",
    "0x",
    "99999999999999999999999",
    "<address type='pci' slot='0x1f'/>",
    "<target dev='sdzzzzzz'/>",
    "<boot order='1'/>",
    "<serial type='pty'/>",
    "<console type='pty'><target type='virtio'/></console>",
    "é",
    "\u{0}",
    "unit='EiB'",
    "<topology sockets='0' cores='1' threads='1'/>",
    "<genid/>",
    "xmlns:a='u'",
];

fn mutate(rng: &mut Rng, seed: &[u8]) -> Vec<u8> {
    let mut doc = seed.to_vec();
    for _ in 0..=rng.below(4) {
        let len = doc.len();
        let at = rng.below(len + 1);
        match rng.below(5) {
            0 if len > 0 => {
                let i = rng.below(len);
                doc[i] = rng.next() as u8;
            }
            1 => {
                let end = (at + rng.below(64)).min(len);
                doc.drain(at..end);
            }
            2 => {
                let end = (at + rng.below(256)).min(len);
                let chunk = doc[at..end].to_vec();
                doc.splice(at..at, chunk);
            }
            _ => {
                let token = TOKENS[rng.below(TOKENS.len())].as_bytes();
                doc.splice(at..at, token.iter().copied());
            }
        }
    }
    doc
}

fn exercise(text: &str) {
    let Ok(dom) = parse_domain(text) else {
        return;
    };
    let _ = check_supported(&dom);
    for bits in [0, 1, 2, 3] {
        let xml = dom.to_xml(FormatFlags::from_bits(bits));
        if let Err(e) = parse_domain(&xml) {
            panic!("formatted XML does not parse ({e}):\n{xml}\n--- from ---\n{text}");
        }
    }
    let mut live = dom;
    assign_aliases(&mut live);
    let xml = live.to_xml(FormatFlags::default());
    if let Err(e) = parse_domain(&xml) {
        panic!("live XML does not parse ({e}):\n{xml}");
    }
}

#[test]
fn mutated_corpus_never_panics() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("compat-tests/xml/valid");
    let mut seeds: Vec<Vec<u8>> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .filter_map(|e| std::fs::read(e.path()).ok())
                .collect()
        })
        .unwrap_or_default();
    seeds.sort();
    assert!(!seeds.is_empty());
    let seed = std::env::var("OXVIRT_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5eed_0f0c_51a7_e5a1);
    let mut rng = Rng(seed | 1);
    let rounds = std::env::var("OXVIRT_FUZZ_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(4000);
    for _ in 0..rounds {
        let seed = &seeds[rng.below(seeds.len())];
        let doc = mutate(&mut rng, seed);
        exercise(&String::from_utf8_lossy(&doc));
    }
}

#[test]
fn hostile_shapes_are_refused_cleanly() {
    let deep = "<a>".repeat(100_000);
    assert!(parse_domain(&deep).is_err());
    let wide = format!(
        "<domain type='kvm'><name>w</name><memory>1</memory><os><type>hvm</type></os><devices>{}</devices></domain>",
        "<interface type='network'><source network='n'/></interface>".repeat(2000)
    );
    assert!(parse_domain(&wide).is_err());
    let chain = format!(
        "<domain type='kvm'><name>c</name><memory>1</memory><os><type>hvm</type></os><devices><disk><source file='/a'/>{}{}<target dev='vda'/></disk></devices></domain>",
        "<backingStore type='file'><source file='/b'/>".repeat(60),
        "</backingStore>".repeat(60)
    );
    assert!(parse_domain(&chain).is_err());
    exercise(
        "<domain type='kvm'><name>\u{0}</name><memory unit='b'>1</memory><os><type>hvm</type></os></domain>",
    );
}
