//! The chunked transfer coding (RFC 9112 §7.1), decoded incrementally from
//! the reader's buffer: chunk data leaves as slices of it (no copy), chunk
//! extensions and trailer fields are read past and dropped.

use bytes::{Buf, Bytes, BytesMut};

use crate::error::Error;
use crate::limits::Limits;

/// Where the decoder is in the coding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Before a chunk-size line.
    Size,
    /// Inside a chunk's data, this many bytes to go.
    Data(u64),
    /// After a chunk's data, before its CRLF.
    DataEnd,
    /// After the last chunk (size 0): trailer lines until an empty one.
    Trailer,
    /// The empty line after the trailers was read.
    Done,
}

/// What one step of decoding gave.
#[derive(Debug)]
pub(crate) enum Step {
    /// Body bytes.
    Data(Bytes),
    /// More input is needed.
    NeedMore,
    /// The body ended.
    Done,
}

/// The decoder; the body bytes delivered so far are the reader's to count.
#[derive(Debug, Clone)]
pub(crate) struct Chunked {
    state: State,
    /// Trailer bytes and lines read, bounded as a head is.
    trailer_bytes: usize,
    trailer_lines: usize,
}

impl Chunked {
    pub(crate) fn new() -> Self {
        Chunked {
            state: State::Size,
            trailer_bytes: 0,
            trailer_lines: 0,
        }
    }

    /// Whether the last chunk was read: only trailers (which carry nothing
    /// a client of a live stream needs) could still be missing.
    pub(crate) fn saw_last_chunk(&self) -> bool {
        matches!(self.state, State::Trailer | State::Done)
    }

    /// Decodes what it can from the front of `buf`. `body_len` is the
    /// body delivered before this step, checked against `limits.max_body`
    /// when a chunk announces its size.
    pub(crate) fn step(
        &mut self,
        buf: &mut BytesMut,
        limits: &Limits,
        body_len: u64,
    ) -> Result<Step, Error> {
        loop {
            match self.state {
                State::Size => {
                    let Some(line) = take_line(buf, limits.max_chunk_line)
                        .map_err(|()| Error::ChunkLineTooLong(limits.max_chunk_line))?
                    else {
                        return Ok(Step::NeedMore);
                    };
                    let size = parse_size(&line)?;
                    if size == 0 {
                        self.state = State::Trailer;
                        continue;
                    }
                    if body_len.saturating_add(size) > limits.max_body {
                        return Err(Error::BodyTooLarge {
                            len: body_len.saturating_add(size),
                            max: limits.max_body,
                        });
                    }
                    self.state = State::Data(size);
                }
                State::Data(left) => {
                    if buf.is_empty() {
                        return Ok(Step::NeedMore);
                    }
                    // Bounded by the buffer's length, so it fits a usize.
                    let n = left.min(buf.len() as u64) as usize;
                    let data = buf.split_to(n).freeze();
                    let left = left - n as u64;
                    self.state = if left == 0 {
                        State::DataEnd
                    } else {
                        State::Data(left)
                    };
                    return Ok(Step::Data(data));
                }
                State::DataEnd => match (buf.first(), buf.get(1)) {
                    (None, _) | (Some(b'\r'), None) => return Ok(Step::NeedMore),
                    (Some(b'\r'), Some(b'\n')) => {
                        buf.advance(2);
                        self.state = State::Size;
                    }
                    // A bare LF, as some servers end lines.
                    (Some(b'\n'), _) => {
                        buf.advance(1);
                        self.state = State::Size;
                    }
                    _ => return Err(Error::Malformed("chunk (data longer than its size)")),
                },
                State::Trailer => {
                    let room = limits.max_head.saturating_sub(self.trailer_bytes);
                    // The line's length is checked with its LF, as the head's is.
                    let Some(line) = take_line(buf, room.saturating_sub(1))
                        .map_err(|()| Error::HeadTooLarge(limits.max_head))?
                    else {
                        return Ok(Step::NeedMore);
                    };
                    self.trailer_bytes += line.len() + 1;
                    if line.is_empty() || line[..] == b"\r"[..] {
                        self.state = State::Done;
                        return Ok(Step::Done);
                    }
                    self.trailer_lines += 1;
                    if self.trailer_lines > limits.max_headers {
                        return Err(Error::TooManyHeaders(limits.max_headers));
                    }
                }
                State::Done => return Ok(Step::Done),
            }
        }
    }
}

/// Takes one line (without its LF; a CR before it is left in) off the
/// front of `buf` if it is complete. `Err(())` if the line is, or already
/// is sure to be, longer than `max` bytes (CR included).
fn take_line(buf: &mut BytesMut, max: usize) -> Result<Option<BytesMut>, ()> {
    let window = &buf[..buf.len().min(max.saturating_add(1))];
    match window.iter().position(|&b| b == b'\n') {
        Some(p) => {
            let line = buf.split_to(p);
            buf.advance(1);
            Ok(Some(line))
        }
        None if buf.len() > max => Err(()),
        None => Ok(None),
    }
}

/// `chunk-size [ BWS ; chunk-ext ] [CR]`: hex digits, then optionally
/// whitespace and extensions, which are ignored.
fn parse_size(line: &[u8]) -> Result<u64, Error> {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let digits = line.iter().take_while(|b| b.is_ascii_hexdigit()).count();
    if digits == 0 {
        return Err(Error::Malformed("chunk size"));
    }
    let mut size: u64 = 0;
    for &b in &line[..digits] {
        let d = (b as char).to_digit(16).unwrap_or(0) as u64;
        size = size
            .checked_mul(16)
            .and_then(|s| s.checked_add(d))
            .ok_or(Error::Malformed("chunk size (overflows 64 bits)"))?;
    }
    let rest = &line[digits..];
    let rest = &rest[rest
        .iter()
        .take_while(|&&b| b == b' ' || b == b'\t')
        .count()..];
    if !(rest.is_empty() || rest[0] == b';') {
        return Err(Error::Malformed("chunk size"));
    }
    if rest.iter().any(|&b| (b < b' ' && b != b'\t') || b == 0x7F) {
        return Err(Error::Malformed("chunk extension"));
    }
    Ok(size)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size(b"1a\r"), Ok(26));
        assert_eq!(parse_size(b"0000000000000000000FF"), Ok(255));
        assert_eq!(parse_size(b"10 ; name=\"v\"\r"), Ok(16));
        assert_eq!(parse_size(b"ffffffffffffffff"), Ok(u64::MAX));
        for bad in [
            &b""[..],
            b"\r",
            b"x",
            b"-1",
            b"1x",
            b"1 2",
            b"10000000000000000",
            b"1;\x01",
        ] {
            assert!(parse_size(bad).is_err(), "{bad:?}");
        }
    }
}
