//! `oxvirt-vmm`: runs one guest. See `src/vmm/README.md` for the command
//! line, the control protocol and the exit statuses.

use clap::Parser;
use oxvirt::vmm::cli::Args;
use oxvirt::vmm::control::{ControlAddr, ControlServer};
use oxvirt::vmm::exit::EXIT_ERROR;
use oxvirt::vmm::vm::Vm;
use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

fn fail(e: impl std::fmt::Display) -> ! {
    eprintln!("oxvirt-vmm: error: {e}");
    std::process::exit(EXIT_ERROR);
}

fn main() {
    // `Targets` rather than `EnvFilter`: the same `level,target=level`
    // syntax without a regex engine, which keeps the per-guest process
    // small.
    let filter: Targets = std::env::var("OXVIRT_VMM_LOG")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| Targets::new().with_default(LevelFilter::WARN));
    tracing_subscriber::registry()
        .with(tracing_subscriber::fmt::layer().with_writer(std::io::stderr))
        .with(filter)
        .init();

    let args = match Args::try_parse() {
        Ok(a) => a,
        Err(e) if !e.use_stderr() => {
            let _ = e.print();
            std::process::exit(0);
        }
        Err(e) => fail(e.to_string().trim_start_matches("error: ").trim_end()),
    };
    if args.probe_host {
        let probe = oxvirt::vmm::probe::probe_host().unwrap_or_else(|e| fail(e));
        println!(
            "{}",
            serde_json::to_string(&probe).unwrap_or_else(|e| fail(e))
        );
        std::process::exit(0);
    }
    let cfg = args.to_config().unwrap_or_else(|e| fail(e));
    let control = match &args.control_socket {
        Some(s) => {
            let addr = ControlAddr::parse(s).unwrap_or_else(|e| fail(e));
            Some(ControlServer::bind(addr).unwrap_or_else(|e| fail(e)))
        }
        None => None,
    };
    let restore = args.restore_source();
    let built = restore.and_then(|source| {
        let mut vm = Vm::build(cfg)?;
        if let Some(mut source) = source {
            vm.restore(&mut std::io::BufReader::with_capacity(1 << 20, &mut source))?;
        }
        Ok(vm)
    });
    let vm = match built {
        Ok(vm) => vm,
        Err(e) => {
            if let Some(c) = &control {
                c.cleanup();
            }
            fail(e)
        }
    };
    match vm.run(control, args.paused) {
        Ok(reason) => {
            tracing::info!("guest stopped: {}", reason.as_str());
            let finished = oxvirt::vmm::cpu::finish::FINISHED.summary();
            if !finished.is_empty() {
                tracing::info!("instructions KVM could not emulate, finished here: {finished}");
            }
            std::process::exit(reason.exit_code());
        }
        Err(e) => fail(e),
    }
}
