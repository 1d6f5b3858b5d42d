//! Bit-level reading for the codec parsers: a big-endian bit reader with
//! exp-Golomb codes (H.264/HEVC), AV1's `uvlc`/`leb128`, and removal of the
//! emulation-prevention bytes of NAL units.

use crate::error::Error;

/// Reads bits most significant first. Every read checks the end of input
/// and returns [`Error::Truncated`] with the caller's label.
pub(crate) struct BitReader<'a> {
    data: &'a [u8],
    /// Position in bits.
    pos: usize,
    what: &'static str,
}

impl<'a> BitReader<'a> {
    pub(crate) fn new(data: &'a [u8], what: &'static str) -> Self {
        BitReader { data, pos: 0, what }
    }

    pub(crate) fn bit(&mut self) -> Result<bool, Error> {
        let byte = *self
            .data
            .get(self.pos / 8)
            .ok_or(Error::Truncated(self.what))?;
        let b = (byte >> (7 - self.pos % 8)) & 1;
        self.pos += 1;
        Ok(b == 1)
    }

    /// Up to 32 bits.
    pub(crate) fn bits(&mut self, n: u32) -> Result<u32, Error> {
        debug_assert!(n <= 32);
        if self.pos + n as usize > self.data.len() * 8 {
            return Err(Error::Truncated(self.what));
        }
        let mut v: u64 = 0;
        for _ in 0..n {
            v = (v << 1) | self.bit()? as u64;
        }
        Ok(v as u32)
    }

    pub(crate) fn skip(&mut self, n: usize) -> Result<(), Error> {
        if self.pos + n > self.data.len() * 8 {
            return Err(Error::Truncated(self.what));
        }
        self.pos += n;
        Ok(())
    }

    /// Unsigned exp-Golomb, `ue(v)`; at most 31 leading zeros (values up
    /// to 2^32 - 2), anything longer is malformed.
    pub(crate) fn ue(&mut self) -> Result<u32, Error> {
        let mut zeros = 0;
        while !self.bit()? {
            zeros += 1;
            if zeros > 31 {
                return Err(Error::Malformed(self.what));
            }
        }
        if zeros == 0 {
            return Ok(0);
        }
        let rest = self.bits(zeros)? as u64;
        Ok(((1u64 << zeros) - 1 + rest) as u32)
    }

    /// Signed exp-Golomb, `se(v)`.
    pub(crate) fn se(&mut self) -> Result<i32, Error> {
        let k = self.ue()? as i64;
        Ok(if k % 2 == 1 { (k + 1) / 2 } else { -(k / 2) } as i32)
    }

    /// AV1 `uvlc()`: like `ue(v)`, values above 2^32 - 1 saturate.
    pub(crate) fn uvlc(&mut self) -> Result<u32, Error> {
        let mut zeros = 0u32;
        while !self.bit()? {
            zeros += 1;
            if zeros >= 32 {
                return Ok(u32::MAX);
            }
        }
        if zeros == 0 {
            return Ok(0);
        }
        let rest = self.bits(zeros)? as u64;
        Ok(((1u64 << zeros) - 1 + rest).min(u32::MAX as u64) as u32)
    }
}

/// The RBSP of a NAL unit: the bytes with every emulation-prevention byte
/// (the 0x03 of a 0x00 0x00 0x03 sequence) removed.
pub(crate) fn unescape(nal: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(nal.len());
    let mut zeros = 0;
    for &b in nal {
        if zeros >= 2 && b == 3 {
            zeros = 0;
            continue;
        }
        zeros = if b == 0 { zeros + 1 } else { 0 };
        out.push(b);
    }
    out
}

/// AV1 `leb128()`: up to 8 bytes, value below 2^32 (as the spec demands).
/// Returns the value and the number of bytes read.
pub(crate) fn leb128(data: &[u8]) -> Result<(u64, usize), Error> {
    let mut v: u64 = 0;
    for i in 0..8 {
        let b = *data.get(i).ok_or(Error::Truncated("leb128"))?;
        v |= ((b & 0x7f) as u64) << (7 * i);
        if b & 0x80 == 0 {
            if v > u32::MAX as u64 {
                return Err(Error::Malformed("leb128 above 2^32"));
            }
            return Ok((v, i + 1));
        }
    }
    Err(Error::Malformed("leb128 longer than 8 bytes"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_golomb() {
        // 1 | 010 | 011 | 00100 | 00101 → 0, 1, 2, 3, 4
        let data = [0b1010_0110, 0b0100_0010, 0b1000_0000];
        let mut r = BitReader::new(&data, "t");
        assert_eq!(
            [r.ue(), r.ue(), r.ue(), r.ue(), r.ue()].map(Result::unwrap),
            [0, 1, 2, 3, 4]
        );
        let mut r = BitReader::new(&data, "t");
        r.skip(1).unwrap();
        assert_eq!(r.se().unwrap(), 1);
        assert_eq!(r.se().unwrap(), -1);
        assert_eq!(r.se().unwrap(), 2);
        // All zeros: too many leading zeros, or the end.
        assert!(BitReader::new(&[0; 8], "t").ue().is_err());
        assert_eq!(
            BitReader::new(&[0, 0], "t").ue(),
            Err(Error::Truncated("t"))
        );
        let mut r = BitReader::new(&[0xff], "t");
        assert_eq!(r.bits(3).unwrap(), 7);
        assert!(r.bits(6).is_err());
        assert_eq!(r.bits(5).unwrap(), 31);
    }

    #[test]
    fn emulation_prevention_and_leb128() {
        assert_eq!(
            unescape(&[0x67, 0, 0, 3, 1, 0, 0, 3, 0, 3]),
            [0x67, 0, 0, 1, 0, 0, 0, 3]
        );
        assert_eq!(leb128(&[0x05]).unwrap(), (5, 1));
        assert_eq!(leb128(&[0x80 | 0x2c, 0x02]).unwrap(), (300, 2));
        assert!(leb128(&[0x80]).is_err());
        assert!(leb128(&[0xff; 9]).is_err());
    }
}
