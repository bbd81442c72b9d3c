//! `oxvirt-vmm`: runs one guest. See `src/vmm/README.md` for the command
//! line, the control protocol and the exit statuses.

use clap::Parser;
use oxvirt::vmm::cli::Args;
use oxvirt::vmm::control::{ControlAddr, ControlServer};
use oxvirt::vmm::exit::EXIT_ERROR;
use oxvirt::vmm::vm::Vm;

fn fail(e: impl std::fmt::Display) -> ! {
    eprintln!("oxvirt-vmm: error: {e}");
    std::process::exit(EXIT_ERROR);
}

fn main() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("OXVIRT_VMM_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();

    let args = match Args::try_parse() {
        Ok(a) => a,
        Err(e) if !e.use_stderr() => {
            let _ = e.print();
            std::process::exit(0);
        }
        Err(e) => fail(e.to_string().trim_start_matches("error: ").trim_end()),
    };
    let cfg = args.to_config().unwrap_or_else(|e| fail(e));
    let control = match &args.control_socket {
        Some(s) => {
            let addr = ControlAddr::parse(s).unwrap_or_else(|e| fail(e));
            Some(ControlServer::bind(addr).unwrap_or_else(|e| fail(e)))
        }
        None => None,
    };
    let vm = match Vm::build(cfg) {
        Ok(vm) => vm,
        Err(e) => {
            if let Some(c) = &control {
                c.cleanup();
            }
            fail(e)
        }
    };
    match vm.run(control) {
        Ok(reason) => {
            tracing::info!("guest stopped: {}", reason.as_str());
            std::process::exit(reason.exit_code());
        }
        Err(e) => fail(e),
    }
}
