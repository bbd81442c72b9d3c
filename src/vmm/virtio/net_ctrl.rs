//! The virtio-net control virtqueue's requests (virtio 1.2 §5.1.6.5): a
//! class byte, a command byte and the command's data, all read by the
//! device, then one status byte the device writes. Only
//! `VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET` is offered (with `VIRTIO_NET_F_MQ`);
//! every other class needs a feature the device does not offer, so it is
//! answered `VIRTIO_NET_ERR`, as are malformed requests.

use virtio_bindings::virtio_net::{
    VIRTIO_NET_CTRL_MAC, VIRTIO_NET_CTRL_MQ, VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET, VIRTIO_NET_CTRL_RX,
    VIRTIO_NET_ERR, VIRTIO_NET_OK,
};

// The request's bytes, from `virtio_bindings` (which types them `u32`).

/// Status byte: done.
pub const OK: u8 = VIRTIO_NET_OK as u8;
/// Status byte: refused.
pub const ERR: u8 = VIRTIO_NET_ERR as u8;

/// Command classes.
pub const CLASS_RX: u8 = VIRTIO_NET_CTRL_RX as u8;
pub const CLASS_MAC: u8 = VIRTIO_NET_CTRL_MAC as u8;
pub const CLASS_MQ: u8 = VIRTIO_NET_CTRL_MQ as u8;
/// `VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET`: data is a le16 pair count.
pub const MQ_VQ_PAIRS_SET: u8 = VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET as u8;

/// Longest request looked at; longer ones are refused unread.
pub const MAX_REQUEST: usize = 64;

/// What a request asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    /// Use this many receive/transmit queue pairs (already range-checked).
    SetPairs(u16),
    /// Unknown, not offered or malformed: answer `ERR`, change nothing.
    Refused,
}

/// Parses the device-readable bytes `req` of one request. `mq` says
/// whether the driver accepted `VIRTIO_NET_F_MQ`; `max_pairs` is the
/// device's `max_virtqueue_pairs`.
pub fn parse(req: &[u8], mq: bool, max_pairs: u16) -> Command {
    let [class, cmd, data @ ..] = req else {
        return Command::Refused;
    };
    match (*class, *cmd, data) {
        (CLASS_MQ, MQ_VQ_PAIRS_SET, &[lo, hi]) if mq => {
            let n = u16::from_le_bytes([lo, hi]);
            if (1..=max_pairs).contains(&n) {
                Command::SetPairs(n)
            } else {
                Command::Refused
            }
        }
        _ => Command::Refused,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_set_in_range_only() {
        assert_eq!(parse(&[4, 0, 2, 0], true, 2), Command::SetPairs(2));
        assert_eq!(parse(&[4, 0, 1, 0], true, 2), Command::SetPairs(1));
        assert_eq!(parse(&[4, 0, 0, 0], true, 2), Command::Refused);
        assert_eq!(parse(&[4, 0, 3, 0], true, 2), Command::Refused);
        assert_eq!(parse(&[4, 0, 0, 1], true, 300), Command::SetPairs(256));
        assert_eq!(parse(&[4, 0, 0xff, 0xff], true, 2), Command::Refused);
        // Without MQ negotiated the command does not exist.
        assert_eq!(parse(&[4, 0, 1, 0], false, 2), Command::Refused);
    }

    #[test]
    fn bad_lengths_are_refused() {
        assert_eq!(parse(&[], true, 2), Command::Refused);
        assert_eq!(parse(&[4], true, 2), Command::Refused);
        assert_eq!(parse(&[4, 0], true, 2), Command::Refused);
        assert_eq!(parse(&[4, 0, 2], true, 2), Command::Refused);
        assert_eq!(parse(&[4, 0, 2, 0, 0], true, 2), Command::Refused);
    }

    #[test]
    fn other_classes_and_commands_are_refused() {
        // RX mode (promiscuous on) needs CTRL_RX, which is not offered.
        assert_eq!(parse(&[CLASS_RX, 0, 1], true, 2), Command::Refused);
        // MAC_ADDR_SET needs CTRL_MAC_ADDR.
        assert_eq!(
            parse(&[CLASS_MAC, 1, 1, 2, 3, 4, 5, 6], true, 2),
            Command::Refused
        );
        // RSS_CONFIG / HASH_CONFIG need RSS / HASH_REPORT.
        assert_eq!(parse(&[CLASS_MQ, 1, 2, 0], true, 2), Command::Refused);
        assert_eq!(parse(&[CLASS_MQ, 2, 2, 0], true, 2), Command::Refused);
        for class in 5..=255u8 {
            assert_eq!(parse(&[class, 0, 2, 0], true, 2), Command::Refused);
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic() {
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..20_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let len = (x % (MAX_REQUEST as u64 + 1)) as usize;
            let bytes: Vec<u8> = (0..len).map(|i| (x >> (i % 8 * 8)) as u8).collect();
            let max = (x >> 40) as u16;
            if let Command::SetPairs(n) = parse(&bytes, x & 1 == 1, max) {
                assert!(n >= 1 && n <= max);
            }
        }
    }
}
