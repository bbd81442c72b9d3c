//! virtio-vsock (placeholder until the unix-socket bridge lands).

use super::{Activation, TYPE_VSOCK, VirtioDevice};
use crate::vmm::config::VsockConfig;
use crate::vmm::error::Result;

pub struct Vsock {
    cid: u64,
    path: std::path::PathBuf,
}

impl Vsock {
    pub fn new(cfg: &VsockConfig) -> Result<Self> {
        Ok(Vsock {
            cid: cfg.cid,
            path: cfg.uds_path.clone(),
        })
    }
    pub fn listener_path(&self) -> std::path::PathBuf {
        self.path.clone()
    }
}

impl VirtioDevice for Vsock {
    fn device_type(&self) -> u32 {
        TYPE_VSOCK
    }
    fn queue_max_sizes(&self) -> Vec<u16> {
        vec![128, 128, 16]
    }
    fn features(&self) -> u64 {
        0
    }
    fn read_config(&self, offset: u64, data: &mut [u8]) {
        super::read_config_bytes(&self.cid.to_le_bytes(), offset, data);
    }
    fn activate(&mut self, _act: Activation) -> std::result::Result<(), String> {
        Err("vsock is not implemented yet".into())
    }
    fn reset(&mut self) {}
}
