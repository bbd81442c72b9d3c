//! Parse and format throughput of the domain XML model, and the
//! "10,000 domains in well under a second" claim for daemon start-up.

use std::hint::black_box;
use std::path::Path;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use oxvirt::xml::{FormatFlags, parse_domain};

fn corpus() -> Vec<String> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("compat-tests/xml/valid");
    let mut docs: Vec<String> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .filter(|e| e.path().extension().is_some_and(|x| x == "xml"))
                .filter_map(|e| std::fs::read_to_string(e.path()).ok())
                .collect()
        })
        .unwrap_or_default();
    docs.sort();
    docs
}

/// A typical persistent definition, as virt-install writes one, with a
/// distinct name per copy so a corpus of them is realistic.
fn typical_domain(i: usize) -> String {
    format!(
        "<domain type='kvm'><name>guest-{i}</name><memory unit='GiB'>2</memory><vcpu>2</vcpu>\
         <os><type arch='x86_64' machine='q35'>hvm</type><boot dev='hd'/></os>\
         <features><acpi/><apic/></features><cpu mode='host-passthrough'/>\
         <clock offset='utc'><timer name='rtc' tickpolicy='catchup'/><timer name='hpet' present='no'/></clock>\
         <devices><disk type='file' device='disk'><driver name='qemu' type='raw'/>\
         <source file='/var/lib/oxvirt/images/guest-{i}.img'/><target dev='vda' bus='virtio'/></disk>\
         <interface type='network'><source network='default'/><model type='virtio'/></interface>\
         <serial type='pty'/><channel type='unix'><target type='virtio' name='org.qemu.guest_agent.0'/></channel>\
         <rng model='virtio'><backend model='random'>/dev/urandom</backend></rng></devices></domain>"
    )
}

fn bench_corpus(c: &mut Criterion) {
    let docs = corpus();
    c.bench_function("parse corpus", |b| {
        b.iter(|| {
            for d in &docs {
                black_box(parse_domain(black_box(d)).ok());
            }
        })
    });
    let parsed: Vec<_> = docs.iter().filter_map(|d| parse_domain(d).ok()).collect();
    c.bench_function("format corpus", |b| {
        b.iter(|| {
            for d in &parsed {
                black_box(d.to_xml(FormatFlags::from_bits(FormatFlags::INACTIVE)));
            }
        })
    });
    let typical = typical_domain(0);
    c.bench_function("parse typical domain", |b| {
        b.iter(|| black_box(parse_domain(black_box(&typical)).ok()))
    });
}

fn ten_thousand_domains(c: &mut Criterion) {
    let docs: Vec<String> = (0..10_000).map(typical_domain).collect();
    // One timed pass, reported plainly, so the claim can be read off directly.
    let start = Instant::now();
    let parsed = docs.iter().filter(|d| parse_domain(d).is_ok()).count();
    println!(
        "parsed {parsed} of 10000 typical domains in {:?}",
        start.elapsed()
    );
    let mut group = c.benchmark_group("10k domains");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(10));
    group.bench_function("parse 10k typical domains", |b| {
        b.iter(|| {
            for d in &docs {
                black_box(parse_domain(black_box(d)).ok());
            }
        })
    });
    group.finish();
}

criterion_group!(benches, bench_corpus, ten_thousand_domains);
criterion_main!(benches);
