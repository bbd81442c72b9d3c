//! The XDR subset libvirt's protocol uses (RFC 4506): big-endian 4-byte
//! words, 8-byte hypers, length-prefixed strings and opaques padded to a
//! multiple of 4, optional values as a 0/1 word, arrays as a count.
//!
//! Decoding never panics: every read is bounds-checked and every length is
//! checked against its limit before anything is allocated.

use std::fmt;

/// Longest string libvirt accepts (`REMOTE_STRING_MAX`).
pub const STRING_MAX: usize = 4 * 1024 * 1024;
/// Longest element array accepted when no tighter limit applies
/// (`REMOTE_DOMAIN_LIST_MAX`).
pub const ARRAY_MAX: usize = 16384;
/// Longest variable opaque accepted (`REMOTE_CPUMAPS_MAX`).
pub const OPAQUE_MAX: usize = 8 * 1024 * 1024;

/// Why a payload could not be decoded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum XdrError {
    /// The payload ended inside an item.
    Truncated,
    /// A length exceeded its limit.
    TooLong { len: usize, max: usize },
    /// A boolean or optional marker was neither 0 nor 1.
    BadBool(u32),
    /// A string was not UTF-8.
    BadUtf8,
    /// A union discriminant is not known.
    BadDiscriminant(i32),
}

impl fmt::Display for XdrError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            XdrError::Truncated => f.write_str("payload truncated"),
            XdrError::TooLong { len, max } => write!(f, "length {len} exceeds limit {max}"),
            XdrError::BadBool(v) => write!(f, "invalid boolean {v}"),
            XdrError::BadUtf8 => f.write_str("string is not UTF-8"),
            XdrError::BadDiscriminant(d) => write!(f, "unknown union discriminant {d}"),
        }
    }
}

impl std::error::Error for XdrError {}

pub type XResult<T> = Result<T, XdrError>;

/// Bytes of padding after `len` bytes of data.
fn pad(len: usize) -> usize {
    (4 - len % 4) % 4
}

/// A cursor over a payload being decoded.
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }

    /// Bytes not yet read.
    pub fn remaining(&self) -> usize {
        self.buf.len().saturating_sub(self.pos)
    }

    fn take(&mut self, n: usize) -> XResult<&'a [u8]> {
        if n > self.remaining() {
            return Err(XdrError::Truncated);
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    fn word(&mut self) -> XResult<[u8; 4]> {
        let s = self.take(4)?;
        Ok([s[0], s[1], s[2], s[3]])
    }

    /// `len` bytes followed by their padding.
    pub fn bytes_padded(&mut self, len: usize) -> XResult<&'a [u8]> {
        let data = self.take(len)?;
        self.take(pad(len))?;
        Ok(data)
    }

    /// A length word, checked against `max` and against what is left.
    pub fn length(&mut self, max: usize) -> XResult<usize> {
        let len = u32::decode(self)? as usize;
        if len > max {
            return Err(XdrError::TooLong { len, max });
        }
        Ok(len)
    }
}

/// A value with an XDR encoding.
pub trait Xdr: Sized {
    fn encode(&self, w: &mut Vec<u8>);
    fn decode(r: &mut Reader<'_>) -> XResult<Self>;
}

/// Decodes a whole payload (trailing bytes are ignored, as libvirt does).
pub fn from_bytes<T: Xdr>(buf: &[u8]) -> XResult<T> {
    T::decode(&mut Reader::new(buf))
}

/// Encodes a value into a fresh buffer.
pub fn to_bytes<T: Xdr>(v: &T) -> Vec<u8> {
    let mut w = Vec::new();
    v.encode(&mut w);
    w
}

impl Xdr for u32 {
    fn encode(&self, w: &mut Vec<u8>) {
        w.extend_from_slice(&self.to_be_bytes());
    }
    fn decode(r: &mut Reader<'_>) -> XResult<Self> {
        Ok(u32::from_be_bytes(r.word()?))
    }
}

impl Xdr for i32 {
    fn encode(&self, w: &mut Vec<u8>) {
        w.extend_from_slice(&self.to_be_bytes());
    }
    fn decode(r: &mut Reader<'_>) -> XResult<Self> {
        Ok(i32::from_be_bytes(r.word()?))
    }
}

impl Xdr for u64 {
    fn encode(&self, w: &mut Vec<u8>) {
        w.extend_from_slice(&self.to_be_bytes());
    }
    fn decode(r: &mut Reader<'_>) -> XResult<Self> {
        let s = r.take(8)?;
        let mut b = [0u8; 8];
        b.copy_from_slice(s);
        Ok(u64::from_be_bytes(b))
    }
}

impl Xdr for i64 {
    fn encode(&self, w: &mut Vec<u8>) {
        w.extend_from_slice(&self.to_be_bytes());
    }
    fn decode(r: &mut Reader<'_>) -> XResult<Self> {
        Ok(u64::decode(r)? as i64)
    }
}

impl Xdr for f64 {
    fn encode(&self, w: &mut Vec<u8>) {
        self.to_bits().encode(w);
    }
    fn decode(r: &mut Reader<'_>) -> XResult<Self> {
        Ok(f64::from_bits(u64::decode(r)?))
    }
}

impl Xdr for bool {
    fn encode(&self, w: &mut Vec<u8>) {
        u32::from(*self).encode(w);
    }
    fn decode(r: &mut Reader<'_>) -> XResult<Self> {
        match u32::decode(r)? {
            0 => Ok(false),
            1 => Ok(true),
            v => Err(XdrError::BadBool(v)),
        }
    }
}

fn encode_padded(data: &[u8], w: &mut Vec<u8>) {
    w.extend_from_slice(data);
    w.extend(std::iter::repeat_n(0u8, pad(data.len())));
}

/// `string<REMOTE_STRING_MAX>`: length, bytes, padding; no terminator.
impl Xdr for String {
    fn encode(&self, w: &mut Vec<u8>) {
        (self.len() as u32).encode(w);
        encode_padded(self.as_bytes(), w);
    }
    fn decode(r: &mut Reader<'_>) -> XResult<Self> {
        Self::decode_max(r, STRING_MAX)
    }
}

/// A variable-length value (`x<N>`) that can be decoded with the limit of
/// its declaration instead of its type's default. `xdr_struct!` uses it for
/// fields written `pub x: T [max = N]`.
pub trait Bounded: Xdr {
    fn decode_max(r: &mut Reader<'_>, max: usize) -> XResult<Self>;
}

impl Bounded for String {
    fn decode_max(r: &mut Reader<'_>, max: usize) -> XResult<Self> {
        let len = r.length(max)?;
        let b = r.bytes_padded(len)?;
        String::from_utf8(b.to_vec()).map_err(|_| XdrError::BadUtf8)
    }
}

/// An optional value (`T *`): a 0/1 word, then the value if 1.
impl<T: Xdr> Xdr for Option<T> {
    fn encode(&self, w: &mut Vec<u8>) {
        match self {
            None => 0u32.encode(w),
            Some(v) => {
                1u32.encode(w);
                v.encode(w);
            }
        }
    }
    fn decode(r: &mut Reader<'_>) -> XResult<Self> {
        if bool::decode(r)? {
            Ok(Some(T::decode(r)?))
        } else {
            Ok(None)
        }
    }
}

/// A variable array (`T x<N>`) with the default limit [`ARRAY_MAX`].
impl<T: Xdr> Xdr for Vec<T> {
    fn encode(&self, w: &mut Vec<u8>) {
        (self.len() as u32).encode(w);
        for v in self {
            v.encode(w);
        }
    }
    fn decode(r: &mut Reader<'_>) -> XResult<Self> {
        decode_array(r, ARRAY_MAX)
    }
}

impl<T: Xdr> Bounded for Vec<T> {
    fn decode_max(r: &mut Reader<'_>, max: usize) -> XResult<Self> {
        decode_array(r, max)
    }
}

/// A variable array with an explicit limit. Each element takes at least
/// 4 bytes, so a count larger than a quarter of what is left is rejected
/// before allocating.
pub fn decode_array<T: Xdr>(r: &mut Reader<'_>, max: usize) -> XResult<Vec<T>> {
    let n = r.length(max)?;
    if n > r.remaining() / 4 {
        return Err(XdrError::Truncated);
    }
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        out.push(T::decode(r)?);
    }
    Ok(out)
}

/// Fixed opaque (`opaque x[N]`), e.g. a UUID: raw bytes and their
/// padding, no length.
impl<const N: usize> Xdr for [u8; N] {
    fn encode(&self, w: &mut Vec<u8>) {
        encode_padded(self, w);
    }
    fn decode(r: &mut Reader<'_>) -> XResult<Self> {
        let s = r.bytes_padded(N)?;
        let mut b = [0u8; N];
        b.copy_from_slice(s);
        Ok(b)
    }
}

/// Variable opaque (`opaque x<N>`): length, raw bytes, padding.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Opaque(pub Vec<u8>);

impl Xdr for Opaque {
    fn encode(&self, w: &mut Vec<u8>) {
        (self.0.len() as u32).encode(w);
        encode_padded(&self.0, w);
    }
    fn decode(r: &mut Reader<'_>) -> XResult<Self> {
        Self::decode_max(r, OPAQUE_MAX)
    }
}

impl Bounded for Opaque {
    fn decode_max(r: &mut Reader<'_>, max: usize) -> XResult<Self> {
        let len = r.length(max)?;
        Ok(Opaque(r.bytes_padded(len)?.to_vec()))
    }
}

/// A `char` array as rpcgen encodes it: a count, then one 4-byte word per
/// character. Encoded with a trailing NUL when non-empty, as C clients
/// copy it with `strcpy`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CharArray(pub String);

impl Xdr for CharArray {
    fn encode(&self, w: &mut Vec<u8>) {
        if self.0.is_empty() {
            0u32.encode(w);
            return;
        }
        ((self.0.len() + 1) as u32).encode(w);
        for b in self.0.bytes().chain(std::iter::once(0)) {
            i32::from(b as i8).encode(w);
        }
    }
    fn decode(r: &mut Reader<'_>) -> XResult<Self> {
        // The longest text libvirt sends this way, REMOTE_SECURITY_LABEL_MAX.
        Self::decode_max(r, 4097)
    }
}

impl Bounded for CharArray {
    fn decode_max(r: &mut Reader<'_>, max: usize) -> XResult<Self> {
        let chars: Vec<i32> = decode_array(r, max)?;
        text_until_nul(chars).map(CharArray)
    }
}

/// The characters up to the first NUL, as UTF-8.
fn text_until_nul(chars: Vec<i32>) -> XResult<String> {
    let bytes: Vec<u8> = chars
        .into_iter()
        .map(|c| c as u8)
        .take_while(|&b| b != 0)
        .collect();
    String::from_utf8(bytes).map_err(|_| XdrError::BadUtf8)
}

/// A `char` array that carries bytes rather than text (the SASL data): a
/// count, then one word per byte, kept as they are.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CharBytes(pub Vec<u8>);

impl Xdr for CharBytes {
    fn encode(&self, w: &mut Vec<u8>) {
        (self.0.len() as u32).encode(w);
        for &b in &self.0 {
            i32::from(b as i8).encode(w);
        }
    }
    fn decode(r: &mut Reader<'_>) -> XResult<Self> {
        Self::decode_max(r, ARRAY_MAX)
    }
}

impl Bounded for CharBytes {
    fn decode_max(r: &mut Reader<'_>, max: usize) -> XResult<Self> {
        let chars: Vec<i32> = decode_array(r, max)?;
        Ok(CharBytes(chars.into_iter().map(|c| c as u8).collect()))
    }
}

/// A fixed `char x[N]` array: exactly N words, NUL-padded.
pub fn encode_char_fixed(s: &str, n: usize, w: &mut Vec<u8>) {
    let b = s.as_bytes();
    for i in 0..n {
        // Keep the last slot a terminator.
        let c = if i + 1 < n {
            b.get(i).copied().unwrap_or(0)
        } else {
            0
        };
        i32::from(c as i8).encode(w);
    }
}

/// A fixed `char x[N]` array holding text (`remote_node_get_info_ret`'s
/// model): exactly N words, NUL-padded, the last one always NUL.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CharFixed<const N: usize>(pub String);

impl<const N: usize> Xdr for CharFixed<N> {
    fn encode(&self, w: &mut Vec<u8>) {
        encode_char_fixed(&self.0, N, w);
    }
    fn decode(r: &mut Reader<'_>) -> XResult<Self> {
        let mut chars = Vec::with_capacity(N.min(r.remaining() / 4));
        for _ in 0..N {
            chars.push(i32::decode(r)?);
        }
        // The last slot is the terminator, whatever the sender put there.
        chars.truncate(N.saturating_sub(1));
        text_until_nul(chars).map(CharFixed)
    }
}

/// An empty payload.
impl Xdr for () {
    fn encode(&self, _w: &mut Vec<u8>) {}
    fn decode(_r: &mut Reader<'_>) -> XResult<Self> {
        Ok(())
    }
}

/// Declares a struct whose XDR encoding is its fields in order.
///
/// A field declared with its own limit in the `.x` file (`T x<N>`) is
/// written `pub x: T [max = N]`: it is decoded with [`Bounded::decode_max`]
/// and that limit instead of the default limit of its type.
macro_rules! xdr_struct {
    (@decode $r:ident) => {
        $crate::rpc::xdr::Xdr::decode($r)?
    };
    (@decode $r:ident $max:expr) => {
        $crate::rpc::xdr::Bounded::decode_max($r, $max)?
    };
    ($(#[$m:meta])* pub struct $name:ident {
        $($(#[$fm:meta])* pub $f:ident : $t:ty $([max = $max:expr])?),* $(,)?
    }) => {
        $(#[$m])*
        #[derive(Clone, Debug, Default, PartialEq)]
        pub struct $name { $($(#[$fm])* pub $f: $t),* }

        impl $crate::rpc::xdr::Xdr for $name {
            #[allow(unused_variables)]
            fn encode(&self, w: &mut Vec<u8>) {
                $($crate::rpc::xdr::Xdr::encode(&self.$f, w);)*
            }
            #[allow(unused_variables)]
            fn decode(r: &mut $crate::rpc::xdr::Reader<'_>) -> $crate::rpc::xdr::XResult<Self> {
                Ok($name { $($f: $crate::rpc::xdr::xdr_struct!(@decode r $($max)?)),* })
            }
        }
    };
}
pub(crate) use xdr_struct;

#[cfg(test)]
mod tests {
    use super::*;

    fn rt<T: Xdr + PartialEq + fmt::Debug>(v: T, bytes: &[u8]) {
        let enc = to_bytes(&v);
        assert_eq!(enc, bytes, "encoding of {v:?}");
        assert_eq!(from_bytes::<T>(&enc).unwrap(), v);
        // Every strict prefix is truncated.
        for n in 0..enc.len() {
            assert!(from_bytes::<T>(&enc[..n]).is_err(), "prefix {n} of {v:?}");
        }
    }

    #[test]
    fn integers() {
        rt(0u32, &[0, 0, 0, 0]);
        rt(0xdead_beefu32, &[0xde, 0xad, 0xbe, 0xef]);
        rt(-1i32, &[0xff; 4]);
        rt(i32::MIN, &[0x80, 0, 0, 0]);
        rt(0x0102_0304_0506_0708u64, &[1, 2, 3, 4, 5, 6, 7, 8]);
        rt(-2i64, &[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfe]);
        rt(u64::MAX, &[0xff; 8]);
        rt(1.5f64, &1.5f64.to_bits().to_be_bytes());
    }

    #[test]
    fn booleans() {
        rt(true, &[0, 0, 0, 1]);
        rt(false, &[0, 0, 0, 0]);
        assert_eq!(from_bytes::<bool>(&[0, 0, 0, 2]), Err(XdrError::BadBool(2)));
    }

    #[test]
    fn strings_are_padded() {
        rt(String::new(), &[0, 0, 0, 0]);
        rt("a".to_string(), &[0, 0, 0, 1, b'a', 0, 0, 0]);
        rt("abcd".to_string(), &[0, 0, 0, 4, b'a', b'b', b'c', b'd']);
        rt(
            "qemu:///system".to_string(),
            &[
                0, 0, 0, 14, b'q', b'e', b'm', b'u', b':', b'/', b'/', b'/', b's', b'y', b's',
                b't', b'e', b'm', 0, 0,
            ],
        );
        assert_eq!(
            from_bytes::<String>(&[0, 0, 0, 2, 0xff, 0xfe, 0, 0]),
            Err(XdrError::BadUtf8)
        );
    }

    #[test]
    fn string_limit_is_enforced_before_allocating() {
        let too_long = ((STRING_MAX + 1) as u32).to_be_bytes();
        assert!(matches!(
            from_bytes::<String>(&too_long),
            Err(XdrError::TooLong { .. })
        ));
        assert_eq!(
            from_bytes::<String>(&u32::MAX.to_be_bytes()),
            Err(XdrError::TooLong {
                len: u32::MAX as usize,
                max: STRING_MAX
            })
        );
        // Within the limit but longer than the payload.
        assert_eq!(
            from_bytes::<String>(&[0, 0, 1, 0, b'x']),
            Err(XdrError::Truncated)
        );
    }

    #[test]
    fn optionals() {
        rt(None::<String>, &[0, 0, 0, 0]);
        rt(Some(7u32), &[0, 0, 0, 1, 0, 0, 0, 7]);
        assert!(from_bytes::<Option<u32>>(&[0, 0, 0, 3, 0, 0, 0, 7]).is_err());
    }

    #[test]
    fn arrays() {
        rt(Vec::<u32>::new(), &[0, 0, 0, 0]);
        rt(
            vec![1i32, -1],
            &[0, 0, 0, 2, 0, 0, 0, 1, 0xff, 0xff, 0xff, 0xff],
        );
        let huge = (ARRAY_MAX as u32 + 1).to_be_bytes();
        assert!(matches!(
            from_bytes::<Vec<u32>>(&huge),
            Err(XdrError::TooLong { .. })
        ));
        // A count within the limit that the payload cannot hold.
        assert_eq!(
            from_bytes::<Vec<u32>>(&[0, 0, 0x10, 0]),
            Err(XdrError::Truncated)
        );
        let mut r = Reader::new(&[0, 0, 0, 3, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3]);
        assert!(matches!(
            decode_array::<u32>(&mut r, 2),
            Err(XdrError::TooLong { len: 3, max: 2 })
        ));
    }

    #[test]
    fn opaques() {
        let uuid = [7u8; 16];
        rt(uuid, &[7u8; 16]);
        rt(Opaque(vec![]), &[0, 0, 0, 0]);
        rt(Opaque(vec![9, 8, 7]), &[0, 0, 0, 3, 9, 8, 7, 0]);
        assert!(matches!(
            from_bytes::<Opaque>(&((OPAQUE_MAX + 1) as u32).to_be_bytes()),
            Err(XdrError::TooLong { .. })
        ));
    }

    #[test]
    fn char_arrays_use_a_word_per_char() {
        rt(CharArray(String::new()), &[0, 0, 0, 0]);
        rt(
            CharArray("no".into()),
            &[0, 0, 0, 3, 0, 0, 0, b'n', 0, 0, 0, b'o', 0, 0, 0, 0],
        );
        let mut w = Vec::new();
        encode_char_fixed("x86_64", 32, &mut w);
        assert_eq!(w.len(), 128);
        assert_eq!(&w[..8], &[0, 0, 0, b'x', 0, 0, 0, b'8']);
        assert!(w[24..].iter().all(|&b| b == 0));
        let mut w = Vec::new();
        encode_char_fixed(&"y".repeat(40), 4, &mut w);
        assert_eq!(w, [0, 0, 0, b'y', 0, 0, 0, b'y', 0, 0, 0, b'y', 0, 0, 0, 0]);
    }

    #[test]
    fn fixed_opaques_of_any_size_are_padded() {
        rt([1u8, 2, 3], &[1, 2, 3, 0]);
        rt([5u8; 4], &[5; 4]);
        rt([0u8; 0], &[]);
    }

    #[test]
    fn fixed_char_arrays() {
        let mut w = Vec::new();
        encode_char_fixed("ab", 4, &mut w);
        rt(CharFixed::<4>("ab".into()), &w);
        // Text after the first NUL is not part of the value.
        let mut b = w.clone();
        b[15] = b'z';
        assert_eq!(from_bytes::<CharFixed<4>>(&b).unwrap().0, "ab");
        // Nor is a character in the terminator's slot.
        let full: Vec<u8> = [b'a', b'b', b'c', b'd']
            .iter()
            .flat_map(|&c| i32::from(c).to_be_bytes())
            .collect();
        assert_eq!(from_bytes::<CharFixed<4>>(&full).unwrap().0, "abc");
    }

    #[test]
    fn char_bytes_keep_nul_and_high_bytes() {
        rt(
            CharBytes(vec![0, 0xff]),
            &[0, 0, 0, 2, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff],
        );
    }

    xdr_struct! {
        pub struct Limited {
            pub name: String [max = 2],
            pub ids: Vec<u32> [max = 1],
            pub raw: Opaque [max = 3],
            pub text: CharArray [max = 2],
            pub plain: Vec<u32>,
        }
    }

    #[test]
    fn field_limits_replace_the_default() {
        let v = Limited {
            name: "ab".into(),
            ids: vec![7],
            raw: Opaque(vec![1, 2, 3]),
            text: CharArray("x".into()),
            plain: vec![1, 2],
        };
        let ok = to_bytes(&v);
        assert_eq!(from_bytes::<Limited>(&ok).unwrap(), v);
        let over = |v: Limited, max: usize| {
            assert!(
                matches!(
                    from_bytes::<Limited>(&to_bytes(&v)),
                    Err(XdrError::TooLong { max: m, .. }) if m == max
                ),
                "{v:?}"
            );
        };
        over(
            Limited {
                name: "abc".into(),
                ..v.clone()
            },
            2,
        );
        over(
            Limited {
                ids: vec![1, 2],
                ..v.clone()
            },
            1,
        );
        over(
            Limited {
                raw: Opaque(vec![0; 4]),
                ..v.clone()
            },
            3,
        );
        // "xy" goes out with its NUL: three characters.
        over(
            Limited {
                text: CharArray("xy".into()),
                ..v.clone()
            },
            2,
        );
    }

    xdr_struct! {
        pub struct Sample {
            pub name: String,
            pub id: i32,
            pub opt: Option<String>,
        }
    }

    #[test]
    fn structs_encode_fields_in_order() {
        let s = Sample {
            name: "t1".into(),
            id: -1,
            opt: Some("x".into()),
        };
        rt(
            s,
            &[
                0, 0, 0, 2, b't', b'1', 0, 0, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 1, 0, 0, 0, 1, b'x',
                0, 0, 0,
            ],
        );
    }

    #[test]
    fn garbage_never_panics() {
        let mut seed = 0x1234_5678u32;
        for len in 0..200 {
            let buf: Vec<u8> = (0..len)
                .map(|_| {
                    seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12345);
                    (seed >> 16) as u8
                })
                .collect();
            let _ = from_bytes::<Sample>(&buf);
            let _ = from_bytes::<Vec<Sample>>(&buf);
            let _ = from_bytes::<CharArray>(&buf);
            let _ = from_bytes::<Opaque>(&buf);
        }
    }
}
