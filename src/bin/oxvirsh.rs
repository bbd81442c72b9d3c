//! `oxvirsh`: virsh-compatible client over the org.libvirt D-Bus API.

fn main() -> std::process::ExitCode {
    oxvirt::cli::main()
}
