//! Field-level helpers: big-endian integers and NUL-padded text fields.

use bytes::{BufMut, BytesMut};

use crate::status::ProtoError;

/// Writes `text` into a field of exactly `width` bytes, NUL padded; longer
/// text is truncated (the C client truncates group names the same way).
pub fn put_fixed(buf: &mut BytesMut, text: &[u8], width: usize) {
    let n = text.len().min(width);
    buf.put_slice(&text[..n]);
    buf.put_bytes(0, width - n);
}

/// Reads a NUL-padded text field: everything up to the first NUL. C servers
/// sometimes leave garbage after the terminator, so nothing after it counts.
pub fn fixed_str(field: &[u8]) -> String {
    let end = field.iter().position(|&b| b == 0).unwrap_or(field.len());
    String::from_utf8_lossy(&field[..end]).into_owned()
}

/// A bounds-checked cursor over a received body.
pub struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub fn new(data: &'a [u8]) -> Self {
        Reader { data, pos: 0 }
    }

    pub fn remaining(&self) -> usize {
        self.data.len() - self.pos
    }

    pub fn bytes(&mut self, n: usize) -> Result<&'a [u8], ProtoError> {
        if self.remaining() < n {
            return Err(ProtoError::Short {
                need: self.pos + n,
                got: self.data.len(),
            });
        }
        let out = &self.data[self.pos..self.pos + n];
        self.pos += n;
        Ok(out)
    }

    pub fn rest(&mut self) -> &'a [u8] {
        let out = &self.data[self.pos..];
        self.pos = self.data.len();
        out
    }

    pub fn u8(&mut self) -> Result<u8, ProtoError> {
        Ok(self.bytes(1)?[0])
    }

    pub fn i32(&mut self) -> Result<i32, ProtoError> {
        let b = self.bytes(4)?;
        Ok(i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    pub fn i64(&mut self) -> Result<i64, ProtoError> {
        let b = self.bytes(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(i64::from_be_bytes(a))
    }

    pub fn fixed_str(&mut self, width: usize) -> Result<String, ProtoError> {
        Ok(fixed_str(self.bytes(width)?))
    }

    /// Rest of the body as UTF-8 text (lossy: peer bytes never panic).
    pub fn rest_str(&mut self) -> String {
        String::from_utf8_lossy(self.rest()).into_owned()
    }

    pub fn expect_end(&self) -> Result<(), ProtoError> {
        if self.remaining() != 0 {
            return Err(ProtoError::BadLength(self.data.len()));
        }
        Ok(())
    }
}

/// Converts a length read from the wire into usize, rejecting negatives.
pub fn wire_len(value: i64) -> Result<usize, ProtoError> {
    usize::try_from(value).map_err(|_| ProtoError::invalid(format!("negative length {value}")))
}

/// A request head whose fixed fields start with the int64 length of a name
/// that follows them. A server reads `FIXED_LEN` bytes, asks `name_len` how
/// many name bytes follow, reads those too, and then decodes the whole head.
pub trait NamedHead {
    /// Bytes of the fixed fields.
    const FIXED_LEN: usize;

    /// The declared name length as usize, or an error where this request may
    /// not carry a name that long (or short).
    fn check_name_len(declared: i64) -> Result<usize, ProtoError>;

    /// The name length the fixed fields declare.
    fn name_len(fixed: &[u8]) -> Result<usize, ProtoError> {
        Self::read_name_len(&mut Reader::new(fixed))
    }

    /// Reads the declared name length at the cursor and checks it.
    fn read_name_len(r: &mut Reader<'_>) -> Result<usize, ProtoError> {
        Self::check_name_len(r.i64()?)
    }
}
