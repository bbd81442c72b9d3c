//! VNC Authentication (RFB security type 2) and the server-wide delay
//! that slows down password guessing.

use des::Des;
use des::cipher::{BlockEncrypt, KeyInit, generic_array::GenericArray};
use std::sync::Mutex;
use std::time::Duration;

pub const CHALLENGE_LEN: usize = 16;

/// A fresh random challenge, or `None` when the kernel gives no random
/// bytes (then the client must not be let in at all).
pub fn challenge() -> Option<[u8; CHALLENGE_LEN]> {
    let mut buf = [0u8; CHALLENGE_LEN];
    // SAFETY: the pointer and length describe `buf`, which outlives the call.
    let n = unsafe { libc::getrandom(buf.as_mut_ptr().cast(), buf.len(), 0) };
    (n == CHALLENGE_LEN as isize).then_some(buf)
}

/// The response a client knowing `password` sends: the challenge
/// encrypted with DES in ECB mode, keyed by the first eight bytes of the
/// password (zero padded) with the bits of each byte mirrored.
pub fn response(password: &str, challenge: &[u8; CHALLENGE_LEN]) -> [u8; CHALLENGE_LEN] {
    let mut key = [0u8; 8];
    for (k, p) in key.iter_mut().zip(password.as_bytes()) {
        *k = p.reverse_bits();
    }
    let cipher = Des::new(GenericArray::from_slice(&key));
    let mut out = *challenge;
    for block in out.chunks_exact_mut(8) {
        cipher.encrypt_block(GenericArray::from_mut_slice(block));
    }
    out
}

/// Whether `answer` proves knowledge of `password`. An empty password
/// never matches: libvirt's `passwd=''` means nobody may log in.
pub fn verify(
    password: &str,
    challenge: &[u8; CHALLENGE_LEN],
    answer: &[u8; CHALLENGE_LEN],
) -> bool {
    if password.is_empty() {
        return false;
    }
    let expected = response(password, challenge);
    // Compare without an early exit so timing tells nothing.
    expected
        .iter()
        .zip(answer)
        .fold(0u8, |acc, (a, b)| acc | (a ^ b))
        == 0
}

/// Consecutive failed logins on this server and the delay before the next
/// failure is answered: 1 s, doubling, at most 8 s, reset by a success.
#[derive(Default)]
pub struct FailureDelay {
    consecutive: Mutex<u32>,
}

const FIRST_DELAY: Duration = Duration::from_secs(1);
const MAX_DELAY: Duration = Duration::from_secs(8);

impl FailureDelay {
    /// Records a failure and returns how long to wait before saying so.
    pub fn failed(&self) -> Duration {
        let mut n = self.consecutive.lock().unwrap_or_else(|e| e.into_inner());
        let delay = FIRST_DELAY
            .saturating_mul(1u32 << (*n).min(8))
            .min(MAX_DELAY);
        *n = n.saturating_add(1);
        delay
    }

    pub fn succeeded(&self) {
        *self.consecutive.lock().unwrap_or_else(|e| e.into_inner()) = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn response_matches_reference_vector() {
        // Computed independently: DES-ECB with key "password" bit-mirrored
        // per byte (0e 86 ce ce ee f6 4e 26) over 16 zero bytes.
        let r = response("password", &[0u8; 16]);
        assert_eq!(r[..8], r[8..]);
        assert_eq!(r[..8], REFERENCE);
    }

    const REFERENCE: [u8; 8] = [0xff, 0x97, 0x50, 0x2e, 0x94, 0x22, 0xf0, 0x89];

    #[test]
    fn long_passwords_use_eight_bytes_and_empty_never_matches() {
        let c = [7u8; 16];
        assert_eq!(response("abcdefgh", &c), response("abcdefghXYZ", &c));
        assert_ne!(response("abcdefgh", &c), response("abcdefgi", &c));
        assert!(verify("secret", &c, &response("secret", &c)));
        assert!(!verify("secret", &c, &response("secreT", &c)));
        assert!(!verify("", &c, &response("", &c)));
    }

    #[test]
    fn delay_doubles_caps_and_resets() {
        let d = FailureDelay::default();
        let got: Vec<u64> = (0..6).map(|_| d.failed().as_secs()).collect();
        assert_eq!(got, [1, 2, 4, 8, 8, 8]);
        d.succeeded();
        assert_eq!(d.failed().as_secs(), 1);
    }

    #[test]
    fn challenges_differ() {
        assert_ne!(challenge(), challenge());
    }
}
