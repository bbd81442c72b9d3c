//! Parse arbitrary text as domain XML; whatever parses must format to XML
//! that parses again, with and without live aliases.
#![no_main]

use libfuzzer_sys::fuzz_target;
use oxvirt::xml::{FormatFlags, assign_aliases, check_supported, parse_domain};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(mut dom) = parse_domain(text) else {
        return;
    };
    let _ = check_supported(&dom);
    for bits in 0..4 {
        let xml = dom.to_xml(FormatFlags::from_bits(bits));
        parse_domain(&xml).expect("formatted XML parses");
    }
    assign_aliases(&mut dom);
    parse_domain(&dom.to_xml(FormatFlags::default())).expect("live XML parses");
});
