//! Reading an FLV byte stream (an HTTP-FLV response body, an `.flv` file):
//! bytes in through [`Reader::feed`], [`Tag`]s out through
//! [`Reader::poll_tag`], the end of input through [`Reader::finish`].
//!
//! The stream is a 9-byte header (`FLV`, version 1, audio/video flags, the
//! header's length), PreviousTagSize0, then tags: an 11-byte tag header
//! (type, 24-bit body size, 24-bit timestamp and its extended upper byte,
//! stream id), the body, and a PreviousTagSize. Tag bodies are slices of
//! the reader's buffer, not copies; [`Tag::demux`] turns one into a frame.
//!
//! ```
//! use rill_flv::reader::Reader;
//! use rill_flv::stream;
//!
//! let mut bytes = stream::header(true, true).to_vec();
//! bytes.extend_from_slice(&stream::tag(stream::TAG_AUDIO, 23, &[0xaf, 0x01, 0x21]));
//! let mut reader = Reader::new();
//! reader.feed(&bytes)?;
//! let tag = reader.poll_tag().unwrap();
//! assert_eq!((tag.tag_type, tag.timestamp_ms, &tag.body[..]), (8, 23, &[0xaf, 0x01, 0x21][..]));
//! let frame = tag.demux()?.unwrap();
//! assert_eq!((frame.dts, &frame.payload[..]), (23_000, &[0x21][..]));
//! reader.finish()?; // at a tag boundary: a clean end
//! # Ok::<(), rill_flv::Error>(())
//! ```

use std::collections::VecDeque;

use bytes::{Buf, Bytes, BytesMut};

use crate::amf0;
use crate::error::Error;
use crate::stream::MAX_TAG_BODY;
use crate::tag::{self, Frame, TAG_AUDIO, TAG_SCRIPT, TAG_VIDEO};

/// Tag header plus PreviousTagSize: the bytes around a tag's body.
const TAG_OVERHEAD: usize = 11 + 4;

/// The largest header length (DataOffset) taken for real: the spec's is 9;
/// much more means the bytes are not FLV.
const MAX_DATA_OFFSET: u32 = 9 + 65_536;

/// What the reader accepts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReaderLimits {
    /// Largest tag body, in bytes (default: the 24-bit size field's range,
    /// 16 MiB - 1). A larger tag is refused. It also bounds buffering: the
    /// reader holds at most one such tag plus its framing unread before
    /// refusing more input.
    pub max_tag_size: usize,
    /// Tags of a type other than audio (8), video (9) and script data (18)
    /// are skipped, unbuffered; more than this many in a row (8) mean the
    /// reader lost the tag boundaries, and are refused.
    pub max_skipped_tags: usize,
    /// Refuse a PreviousTagSize that does not match the tag before it.
    /// Off by default: the field is redundant, some muxers write it wrong,
    /// and the tag sizes alone frame the stream; mismatches are counted
    /// ([`Reader::previous_tag_size_mismatches`]).
    pub strict_previous_tag_size: bool,
}

impl Default for ReaderLimits {
    fn default() -> Self {
        ReaderLimits {
            max_tag_size: MAX_TAG_BODY,
            max_skipped_tags: 8,
            strict_previous_tag_size: false,
        }
    }
}

/// The FLV header's content.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// The version (always 1: others are refused).
    pub version: u8,
    /// Audio tags announced (a hint: writers that do not know yet set both).
    pub audio: bool,
    /// Video tags announced.
    pub video: bool,
}

/// One audio, video or script data tag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tag {
    /// [`TAG_AUDIO`], [`TAG_VIDEO`] or [`TAG_SCRIPT`].
    pub tag_type: u8,
    /// Milliseconds: the 24-bit timestamp with its extended upper byte.
    pub timestamp_ms: u32,
    /// The tag body (a slice of the reader's buffer).
    pub body: Bytes,
}

impl Tag {
    /// The frame the tag carries ([`tag::demux`] with the AMF0 limits the
    /// RTMP side uses by default: depth 32, [`amf0::DEFAULT_MAX_VALUES`]).
    /// `Ok(None)` for tags without one (sequence end, other script data).
    pub fn demux(&self) -> Result<Option<Frame>, Error> {
        self.demux_limited(32, amf0::DEFAULT_MAX_VALUES)
    }

    /// [`demux`](Self::demux) with the caller's AMF0 limits for script data.
    pub fn demux_limited(
        &self,
        max_amf_depth: usize,
        max_amf_values: usize,
    ) -> Result<Option<Frame>, Error> {
        tag::demux(
            self.tag_type,
            &self.body,
            self.timestamp_ms,
            max_amf_depth,
            max_amf_values,
        )
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// The 9-byte header.
    Header,
    /// Header bytes past the 9 known ones (DataOffset > 9).
    SkipHeader(u32),
    /// A PreviousTagSize, which should hold this value.
    PreviousSize(u32),
    /// An 11-byte tag header.
    TagHeader,
    /// A tag body to deliver.
    Body {
        tag_type: u8,
        timestamp_ms: u32,
        size: u32,
    },
    /// A tag body of an unknown type to skip: bytes left, body size.
    Skip { left: u32, size: u32 },
}

/// Reads one FLV stream.
#[derive(Debug)]
pub struct Reader {
    limits: ReaderLimits,
    buf: BytesMut,
    state: State,
    header: Option<Header>,
    tags: VecDeque<Tag>,
    /// Body bytes in `tags`.
    queued: usize,
    skipped_in_a_row: usize,
    mismatches: u64,
    fed: bool,
    error: Option<Error>,
}

impl Default for Reader {
    fn default() -> Self {
        Reader::new()
    }
}

impl Reader {
    /// A reader with the default limits.
    pub fn new() -> Reader {
        Reader::with_limits(ReaderLimits::default())
    }

    /// A reader with `limits`.
    pub fn with_limits(limits: ReaderLimits) -> Reader {
        Reader {
            limits,
            buf: BytesMut::new(),
            state: State::Header,
            header: None,
            tags: VecDeque::new(),
            queued: 0,
            skipped_in_a_row: 0,
            mismatches: 0,
            fed: false,
            error: None,
        }
    }

    /// Reads bytes of the stream. Tags become available to
    /// [`poll_tag`](Self::poll_tag), which the caller drains before
    /// feeding again: `feed` refuses more input while more than one
    /// largest tag is held unread. After an error every call returns it
    /// again; tags read before it can still be polled.
    pub fn feed(&mut self, data: &[u8]) -> Result<(), Error> {
        if let Some(e) = &self.error {
            return Err(e.clone());
        }
        if data.is_empty() {
            return Ok(());
        }
        if self.buf.len() + self.queued > self.limits.max_tag_size.saturating_add(TAG_OVERHEAD) {
            return self.fail(Error::Unsupported(
                "more than a tag held unread (drain poll_tag between feeds)",
            ));
        }
        self.fed = true;
        self.buf.extend_from_slice(data);
        match self.run() {
            Ok(()) => Ok(()),
            Err(e) => self.fail(e),
        }
    }

    /// The next tag, if any.
    pub fn poll_tag(&mut self) -> Option<Tag> {
        let tag = self.tags.pop_front()?;
        self.queued -= tag.body.len();
        Some(tag)
    }

    /// The input ended. `Ok` at a tag boundary (a missing last
    /// PreviousTagSize is forgiven: the tag before it is whole); an error
    /// inside the header or a tag.
    pub fn finish(&mut self) -> Result<(), Error> {
        if let Some(e) = &self.error {
            return Err(e.clone());
        }
        let e = match self.state {
            State::TagHeader if self.buf.is_empty() => return Ok(()),
            // After a tag (PreviousTagSize0 expects 0, the others 11 + size).
            State::PreviousSize(expected) if expected > 0 => return Ok(()),
            State::Header if !self.fed => Error::Truncated("FLV stream (no byte arrived)"),
            State::Header | State::SkipHeader(_) | State::PreviousSize(_) => {
                Error::Truncated("FLV header")
            }
            State::TagHeader | State::Body { .. } | State::Skip { .. } => {
                Error::Truncated("FLV tag")
            }
        };
        self.fail(e)
    }

    /// The stream's header, once read.
    pub fn header(&self) -> Option<Header> {
        self.header
    }

    /// PreviousTagSize fields that did not match the tag before them.
    pub fn previous_tag_size_mismatches(&self) -> u64 {
        self.mismatches
    }

    fn fail(&mut self, e: Error) -> Result<(), Error> {
        self.error = Some(e.clone());
        self.buf = BytesMut::new();
        Err(e)
    }

    fn run(&mut self) -> Result<(), Error> {
        loop {
            match self.state {
                State::Header => {
                    // Refuse what is not FLV at its first bytes (an HTML
                    // error page, a TS stream) rather than at the 9th.
                    let n = self.buf.len().min(3);
                    if self.buf[..n] != b"FLV"[..n] {
                        return Err(Error::Malformed("FLV header (no FLV signature)"));
                    }
                    if self.buf.len() < 9 {
                        return Ok(());
                    }
                    let h = self.buf.split_to(9);
                    if h[3] != 1 {
                        return Err(Error::Unsupported("FLV version other than 1"));
                    }
                    let offset = u32::from_be_bytes([h[5], h[6], h[7], h[8]]);
                    if !(9..=MAX_DATA_OFFSET).contains(&offset) {
                        return Err(Error::Malformed("FLV header (data offset)"));
                    }
                    self.header = Some(Header {
                        version: h[3],
                        audio: h[4] & 0x04 != 0,
                        video: h[4] & 0x01 != 0,
                    });
                    self.state = State::SkipHeader(offset - 9);
                }
                State::SkipHeader(left) => {
                    let n = (left as usize).min(self.buf.len());
                    self.buf.advance(n);
                    let left = left - n as u32;
                    if left > 0 {
                        self.state = State::SkipHeader(left);
                        return Ok(());
                    }
                    self.state = State::PreviousSize(0);
                }
                State::PreviousSize(expected) => {
                    if self.buf.len() < 4 {
                        return Ok(());
                    }
                    if self.buf.get_u32() != expected {
                        if self.limits.strict_previous_tag_size {
                            return Err(Error::Malformed("FLV PreviousTagSize"));
                        }
                        self.mismatches += 1;
                    }
                    self.state = State::TagHeader;
                }
                State::TagHeader => {
                    if self.buf.len() < 11 {
                        return Ok(());
                    }
                    let h = self.buf.split_to(11);
                    // Two reserved bits, the filter bit, five bits of type.
                    if h[0] & 0x20 != 0 {
                        return Err(Error::Unsupported("encrypted FLV tag (filter bit)"));
                    }
                    let tag_type = h[0] & 0x1F;
                    let size = u32::from_be_bytes([0, h[1], h[2], h[3]]);
                    if size as usize > self.limits.max_tag_size {
                        return Err(Error::Unsupported(
                            "FLV tag larger than ReaderLimits::max_tag_size",
                        ));
                    }
                    let timestamp_ms = u32::from_be_bytes([h[7], h[4], h[5], h[6]]);
                    // The stream id (h[8..11]) is always 0 and means nothing.
                    self.state = if matches!(tag_type, TAG_AUDIO | TAG_VIDEO | TAG_SCRIPT) {
                        self.skipped_in_a_row = 0;
                        State::Body {
                            tag_type,
                            timestamp_ms,
                            size,
                        }
                    } else {
                        self.skipped_in_a_row += 1;
                        if self.skipped_in_a_row > self.limits.max_skipped_tags {
                            return Err(Error::Malformed(
                                "FLV stream (a run of unknown tag types: lost the tag boundaries?)",
                            ));
                        }
                        State::Skip { left: size, size }
                    };
                }
                State::Body {
                    tag_type,
                    timestamp_ms,
                    size,
                } => {
                    if self.buf.len() < size as usize {
                        return Ok(());
                    }
                    let body = self.buf.split_to(size as usize).freeze();
                    self.queued += body.len();
                    self.tags.push_back(Tag {
                        tag_type,
                        timestamp_ms,
                        body,
                    });
                    self.state = State::PreviousSize(11 + size);
                }
                State::Skip { left, size } => {
                    let n = (left as usize).min(self.buf.len());
                    self.buf.advance(n);
                    let left = left - n as u32;
                    if left > 0 {
                        self.state = State::Skip { left, size };
                        return Ok(());
                    }
                    self.state = State::PreviousSize(11 + size);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fuzzing::seeds::{metadata, AVC_SEQ};
    use crate::fuzzing::{read_stream, ReadOutcome};
    use crate::stream;
    use rill_abi::{RILL_CODEC_AAC, RILL_CODEC_H264, RILL_CODEC_METADATA, RILL_FRAME_CONFIG};

    fn tag(tag_type: u8, timestamp_ms: u32, body: &[u8]) -> Tag {
        Tag {
            tag_type,
            timestamp_ms,
            body: Bytes::copy_from_slice(body),
        }
    }

    /// What ffmpeg's FLV muxer starts a live stream with, then frames with
    /// a timestamp past 24 bits.
    fn sample() -> (Vec<u8>, Vec<Tag>) {
        let tags = vec![
            tag(TAG_SCRIPT, 0, &metadata()[16..]),
            tag(TAG_VIDEO, 0, AVC_SEQ),
            tag(TAG_AUDIO, 0, &[0xaf, 0x00, 0x12, 0x10]),
            tag(
                TAG_VIDEO,
                40,
                &[0x17, 0x01, 0, 0, 0, 0, 0, 0, 2, 0x65, 0x88],
            ),
            tag(TAG_AUDIO, 0x0123_4567, &[0xaf, 0x01, 0x21, 0x10, 0x04]),
            tag(
                TAG_VIDEO,
                0xFFFF_FFFF,
                &[0x27, 0x01, 0, 0, 0, 0, 0, 0, 1, 0x41],
            ),
            tag(TAG_AUDIO, 7, &[]),
        ];
        let mut bytes = stream::header(true, true).to_vec();
        for t in &tags {
            bytes.extend_from_slice(&stream::tag(t.tag_type, t.timestamp_ms, &t.body));
        }
        (bytes, tags)
    }

    /// Whole, cut in two at every position, byte by byte: all agree.
    fn every_cut(limits: &ReaderLimits, data: &[u8]) -> ReadOutcome {
        let one = read_stream(limits, data, &[usize::MAX]);
        for cut in 1..data.len() {
            assert_eq!(
                read_stream(limits, data, &[cut, usize::MAX]),
                one,
                "cut at {cut}"
            );
        }
        assert_eq!(read_stream(limits, data, &[1]), one, "byte by byte");
        one
    }

    #[test]
    fn round_trip_split_at_every_byte() {
        let (bytes, tags) = sample();
        let o = every_cut(&ReaderLimits::default(), &bytes);
        assert_eq!(o.error, None);
        assert_eq!(o.mismatches, 0);
        assert_eq!(
            o.header,
            Some(Header {
                version: 1,
                audio: true,
                video: true
            })
        );
        assert_eq!(o.tags, tags);
    }

    #[test]
    fn tags_demux_to_frames() {
        let (bytes, _) = sample();
        let o = read_stream(&ReaderLimits::default(), &bytes, &[usize::MAX]);
        let frames: Vec<_> = o.tags.iter().map(|t| t.demux()).collect();
        let meta = frames[0].clone().unwrap().unwrap();
        assert_eq!(meta.codec, RILL_CODEC_METADATA);
        let avc = frames[1].clone().unwrap().unwrap();
        assert_eq!((avc.codec, avc.flags), (RILL_CODEC_H264, RILL_FRAME_CONFIG));
        assert_eq!(&avc.payload[..], &AVC_SEQ[5..]);
        let aac = frames[4].clone().unwrap().unwrap();
        assert_eq!((aac.codec, aac.dts), (RILL_CODEC_AAC, 0x0123_4567 * 1000));
        // The empty audio tag carries nothing: an error, not a panic.
        assert!(frames[6].is_err());
        assert!(o.tags[0].demux_limited(32, 1).is_err());
    }

    #[test]
    fn tag_bodies_are_slices_of_one_buffer() {
        let (bytes, _) = sample();
        let mut r = Reader::new();
        r.feed(&bytes).unwrap();
        let a = r.poll_tag().unwrap();
        let b = r.poll_tag().unwrap();
        // Adjacent in the input, adjacent in memory: no copy per tag.
        let gap = b.body.as_ptr() as usize - a.body.as_ptr() as usize;
        assert_eq!(gap, a.body.len() + TAG_OVERHEAD);
    }

    #[test]
    fn header_extra_bytes_and_flags() {
        let mut bytes = b"FLV\x01\x04\x00\x00\x00\x0dXXXX\x00\x00\x00\x00".to_vec();
        bytes.extend_from_slice(&stream::tag(TAG_AUDIO, 1, &[0x2f, 1]));
        let o = every_cut(&ReaderLimits::default(), &bytes);
        assert_eq!(o.error, None);
        let h = o.header.unwrap();
        assert!(h.audio && !h.video);
        assert_eq!(o.tags, vec![tag(TAG_AUDIO, 1, &[0x2f, 1])]);
    }

    #[test]
    fn unknown_tags_are_skipped_within_a_bound() {
        let mut bytes = stream::header(true, false).to_vec();
        bytes.extend_from_slice(&stream::tag(15, 0, &[1; 300]));
        bytes.extend_from_slice(&stream::tag(TAG_AUDIO, 5, &[0x2f, 9]));
        // Reserved bits set: ignored, the type is the low five bits.
        let mut odd = stream::tag(TAG_VIDEO, 6, &[0x17, 2, 0, 0, 0]).to_vec();
        odd[0] |= 0xC0;
        bytes.extend_from_slice(&odd);
        let o = every_cut(&ReaderLimits::default(), &bytes);
        assert_eq!(o.error, None);
        assert_eq!(
            o.tags,
            vec![
                tag(TAG_AUDIO, 5, &[0x2f, 9]),
                tag(TAG_VIDEO, 6, &[0x17, 2, 0, 0, 0])
            ]
        );

        let mut run = stream::header(true, true).to_vec();
        for i in 20..29 {
            run.extend_from_slice(&stream::tag(i, 0, b"x"));
        }
        let o = read_stream(&ReaderLimits::default(), &run, &[usize::MAX]);
        assert!(matches!(o.error, Some(Error::Malformed(_))), "{o:?}");
        run.truncate(run.len() - 16);
        assert_eq!(
            read_stream(&ReaderLimits::default(), &run, &[usize::MAX]).error,
            None
        );
    }

    #[test]
    fn previous_tag_size_mismatches() {
        let (mut bytes, tags) = sample();
        // PreviousTagSize0 and the one after the first tag, wrong.
        bytes[12] = 1;
        let first_end = 13 + 11 + tags[0].body.len();
        bytes[first_end + 3] ^= 0xFF;
        let o = every_cut(&ReaderLimits::default(), &bytes);
        assert_eq!((o.error, o.mismatches), (None, 2));
        assert_eq!(o.tags, tags);
        let strict = ReaderLimits {
            strict_previous_tag_size: true,
            ..ReaderLimits::default()
        };
        let o = every_cut(&strict, &bytes);
        assert_eq!(o.error, Some(Error::Malformed("FLV PreviousTagSize")));
        assert!(o.tags.is_empty());
    }

    #[test]
    fn garbage_is_refused() {
        for (bad, first_byte) in [
            (&b"<html>"[..], true),
            (b"\x47\x40\x00\x10", true),
            (b"FLX\x01\x05\x00\x00\x00\x09", false),
            (b"FLV\x02\x05\x00\x00\x00\x09", false),
            (b"FLV\x01\x05\x00\x00\x00\x08", false),
            (b"FLV\x01\x05\x7f\x00\x00\x00", false),
        ] {
            let o = every_cut(&ReaderLimits::default(), bad);
            assert!(
                matches!(o.error, Some(Error::Malformed(_) | Error::Unsupported(_))),
                "{bad:?}: {o:?}"
            );
            if first_byte {
                assert!(Reader::new().feed(&bad[..1]).is_err());
            }
        }
        // The filter (encryption) bit.
        let mut bytes = stream::header(true, true).to_vec();
        let mut t = stream::tag(TAG_VIDEO, 0, b"x").to_vec();
        t[0] |= 0x20;
        bytes.extend_from_slice(&t);
        assert_eq!(
            every_cut(&ReaderLimits::default(), &bytes).error,
            Some(Error::Unsupported("encrypted FLV tag (filter bit)"))
        );
    }

    #[test]
    fn oversize_tags_and_unread_input_are_bounded() {
        let limits = ReaderLimits {
            max_tag_size: 100,
            ..ReaderLimits::default()
        };
        let mut bytes = stream::header(true, true).to_vec();
        bytes.extend_from_slice(&stream::tag(TAG_VIDEO, 0, &[0x17; 100]));
        assert_eq!(every_cut(&limits, &bytes).error, None);
        bytes.extend_from_slice(&stream::tag(TAG_VIDEO, 0, &[0x17; 101]));
        let o = every_cut(&limits, &bytes);
        assert_eq!(o.tags.len(), 1);
        assert!(matches!(o.error, Some(Error::Unsupported(_))));
        // Only the size field is needed to refuse: the body never arrives.
        let mut r = Reader::with_limits(limits.clone());
        let mut head = stream::header(true, true).to_vec();
        head.extend_from_slice(&stream::tag_header(TAG_VIDEO, 0, 0xFF_FFFF));
        assert!(r.feed(&head).is_err());

        // A caller that never polls is stopped past one tag's worth.
        let mut r = Reader::with_limits(limits);
        r.feed(&stream::header(true, true)).unwrap();
        let small = stream::tag(TAG_AUDIO, 0, &[0x2f; 20]);
        let mut fed = 0;
        let err = loop {
            match r.feed(&small) {
                Ok(()) => fed += 1,
                Err(e) => break e,
            }
        };
        assert!(matches!(err, Error::Unsupported(_)));
        // 6 × 20 body bytes held > 100 + 15.
        assert_eq!(fed, 6);
        assert_eq!(std::iter::from_fn(|| r.poll_tag()).count(), 6);

        // No limit at all is a limit too (no overflow).
        let unlimited = ReaderLimits {
            max_tag_size: usize::MAX,
            ..ReaderLimits::default()
        };
        let (bytes, tags) = sample();
        assert_eq!(read_stream(&unlimited, &bytes, &[3]).tags, tags);
    }

    #[test]
    fn ends() {
        let (bytes, tags) = sample();
        let read = |data: &[u8]| read_stream(&ReaderLimits::default(), data, &[usize::MAX]);
        assert_eq!(
            read(b"").error,
            Some(Error::Truncated("FLV stream (no byte arrived)"))
        );
        assert_eq!(
            read(&bytes[..5]).error,
            Some(Error::Truncated("FLV header"))
        );
        assert_eq!(
            read(&bytes[..9]).error,
            Some(Error::Truncated("FLV header"))
        );
        assert_eq!(read(&bytes[..13]).error, None);
        assert_eq!(read(&bytes[..20]).error, Some(Error::Truncated("FLV tag")));
        // Cut inside the last tag's body: the others are delivered.
        let o = read(&bytes[..bytes.len() - 6]);
        assert_eq!(o.error, Some(Error::Truncated("FLV tag")));
        assert_eq!(o.tags.len(), tags.len() - 1);
        // Without (part of) the last PreviousTagSize: whole.
        for cut in 1..=4 {
            let o = read(&bytes[..bytes.len() - cut]);
            assert_eq!((o.error, o.tags.len()), (None, tags.len()), "{cut}");
        }
        // An error sticks.
        let mut r = Reader::new();
        assert!(r.feed(b"nope").is_err());
        assert!(r.feed(&bytes).is_err());
        assert!(r.finish().is_err());
    }
}
