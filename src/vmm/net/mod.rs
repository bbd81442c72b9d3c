//! NICs other than virtio-net: the Intel 82540EM (`e1000/`), for guests
//! without virtio drivers. They share virtio-net's taps (`virtio/tap.rs`)
//! and its worker threads' seccomp kind.

pub mod e1000;
