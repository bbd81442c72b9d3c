//! Storage besides virtio-blk: the MMC CD-ROM logical unit (`cdrom.rs`,
//! with the parameter data of its commands in `mmc.rs` and sense data in
//! `sense.rs`), shared by the virtio-scsi device and the AHCI
//! controller's ATAPI ports (`ahci.rs`: PCI function, host registers and
//! worker; `ahci_port.rs`: port registers; `ahci_cmd.rs`: one command
//! slot; `atapi.rs`: the ATA side of the drive); the AHCI controller's
//! hard disks (`ata_disk.rs`); `media_change.rs` names the CD-ROM drives
//! for the control socket and carries out `change-media`.

pub mod ahci;
pub mod ahci_cmd;
pub mod ahci_port;
pub mod ata_disk;
pub mod atapi;
pub mod cdrom;
pub mod media_change;
pub mod mmc;
pub mod qcow2_snapshot;
pub mod sense;
