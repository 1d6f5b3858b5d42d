//! The initialization segment: `ftyp` + `moov` with one `trak` per track
//! (empty sample tables: every sample lives in fragments) and `mvex`.

use bytes::Bytes;
use rill_abi::{
    RILL_CODEC_AAC, RILL_CODEC_AV1, RILL_CODEC_H264, RILL_CODEC_H265, RILL_CODEC_OPUS,
    RILL_CODEC_VP9,
};

use crate::boxes::Writer;
use crate::codec::{hevc::hvc1_record, opus_head, vp9::Vp9Config, TrackInfo};
use crate::error::Error;

/// Most tracks in one init segment.
pub const MAX_TRACKS: usize = 16;

/// `ftyp`: major brand `iso6`; compatible `iso6`, `mp41`, and `cmfc` when
/// there is one track (a CMAF track holds one media track; several tracks
/// in one fragment are plain ISO BMFF, which HLS and MSE accept).
fn ftyp(w: &mut Writer, tracks: usize) {
    let at = w.begin(b"ftyp");
    w.bytes(b"iso6");
    w.u32(0);
    w.bytes(b"iso6");
    w.bytes(b"mp41");
    if tracks == 1 {
        w.bytes(b"cmfc");
    }
    w.end(at);
}

/// The initialization segment for `tracks`; track `i` has track ID
/// `i + 1`. Errors when a track's configuration does not parse (the
/// fields of [`TrackInfo`] are public) or when there are no tracks or more
/// than [`MAX_TRACKS`].
pub fn init_segment(tracks: &[TrackInfo]) -> Result<Bytes, Error> {
    if tracks.is_empty() {
        return Err(Error::Malformed("init segment without tracks"));
    }
    if tracks.len() > MAX_TRACKS {
        return Err(Error::Limit("tracks"));
    }
    let mut w =
        Writer::with_capacity(1024 + tracks.iter().map(|t| 512 + t.config.len()).sum::<usize>());
    ftyp(&mut w, tracks.len());
    let moov = w.begin(b"moov");
    let mvhd = w.begin_full(b"mvhd", 0, 0);
    w.u32(0); // creation_time
    w.u32(0); // modification_time
    w.u32(1000); // timescale
    w.u32(0); // duration: unknown, fragmented
    w.u32(0x0001_0000); // rate 1.0
    w.u16(0x0100); // volume 1.0
    w.zeros(2 + 8);
    w.matrix();
    w.zeros(24); // pre_defined
    w.u32(tracks.len() as u32 + 1); // next_track_ID
    w.end(mvhd);
    for (i, t) in tracks.iter().enumerate() {
        trak(&mut w, i as u32 + 1, t, None)?;
    }
    let mvex = w.begin(b"mvex");
    for i in 0..tracks.len() {
        let trex = w.begin_full(b"trex", 0, 0);
        w.u32(i as u32 + 1);
        w.u32(1); // default_sample_description_index
        w.u32(0); // default_sample_duration
        w.u32(0); // default_sample_size
        w.u32(0); // default_sample_flags
        w.end(trex);
    }
    w.end(mvex);
    w.end(moov);
    Ok(w.buf.freeze())
}

/// A `trak`: with `table`, a progressive file's sample table and
/// durations; without, the empty table of an init segment.
pub(crate) fn trak(
    w: &mut Writer,
    id: u32,
    t: &TrackInfo,
    table: Option<&crate::progressive::Table>,
) -> Result<(), Error> {
    let video = t.is_video();
    let trak = w.begin(b"trak");
    // Flags: track_enabled | track_in_movie.
    let tkhd = w.begin_full(b"tkhd", 0, 3);
    w.u32(0);
    w.u32(0);
    w.u32(id);
    w.u32(0);
    w.u32(table.map_or(0, |t| t.movie_duration())); // duration
    w.zeros(8);
    w.u16(0); // layer
    w.u16(0); // alternate_group
    w.u16(if video { 0 } else { 0x0100 }); // volume
    w.u16(0);
    w.matrix();
    w.u32(t.width.min(0xffff) << 16);
    w.u32(t.height.min(0xffff) << 16);
    w.end(tkhd);
    if let Some(table) = table {
        table.edit_list(w);
    }

    let mdia = w.begin(b"mdia");
    let mdhd = w.begin_full(b"mdhd", 0, 0);
    w.u32(0);
    w.u32(0);
    w.u32(t.timescale);
    w.u32(table.map_or(0, |t| t.media_duration()));
    w.u16(0x55c4); // language "und"
    w.u16(0);
    w.end(mdhd);
    let hdlr = w.begin_full(b"hdlr", 0, 0);
    w.u32(0);
    w.bytes(if video { b"vide" } else { b"soun" });
    w.zeros(12);
    w.bytes(if video {
        b"VideoHandler\0"
    } else {
        b"SoundHandler\0"
    });
    w.end(hdlr);

    let minf = w.begin(b"minf");
    if video {
        let vmhd = w.begin_full(b"vmhd", 0, 1);
        w.zeros(8); // graphicsmode, opcolor
        w.end(vmhd);
    } else {
        let smhd = w.begin_full(b"smhd", 0, 0);
        w.zeros(4); // balance, reserved
        w.end(smhd);
    }
    let dinf = w.begin(b"dinf");
    let dref = w.begin_full(b"dref", 0, 0);
    w.u32(1);
    let url = w.begin_full(b"url ", 0, 1); // media in the same file
    w.end(url);
    w.end(dref);
    w.end(dinf);

    let stbl = w.begin(b"stbl");
    let stsd = w.begin_full(b"stsd", 0, 0);
    w.u32(1);
    sample_entry(w, t)?;
    w.end(stsd);
    match table {
        Some(table) => table.boxes(w),
        None => {
            for kind in [b"stts", b"stsc", b"stco"] {
                let b = w.begin_full(kind, 0, 0);
                w.u32(0); // entry_count
                w.end(b);
            }
            let stsz = w.begin_full(b"stsz", 0, 0);
            w.u32(0); // sample_size
            w.u32(0); // sample_count
            w.end(stsz);
        }
    }
    w.end(stbl);
    w.end(minf);
    w.end(mdia);
    w.end(trak);
    Ok(())
}

fn visual_entry(w: &mut Writer, kind: &[u8; 4], t: &TrackInfo) -> usize {
    let at = w.begin(kind);
    w.zeros(6);
    w.u16(1); // data_reference_index
    w.zeros(16); // pre_defined, reserved, pre_defined[3]
    w.u16(t.width.min(0xffff) as u16);
    w.u16(t.height.min(0xffff) as u16);
    w.u32(0x0048_0000); // 72 dpi
    w.u32(0x0048_0000);
    w.u32(0);
    w.u16(1); // frame_count
    w.zeros(32); // compressorname
    w.u16(0x0018); // depth
    w.u16(0xffff); // pre_defined = -1
    at
}

fn audio_entry(w: &mut Writer, kind: &[u8; 4], channels: u16, rate: u32) -> usize {
    let at = w.begin(kind);
    w.zeros(6);
    w.u16(1); // data_reference_index
    w.zeros(8);
    w.u16(channels);
    w.u16(16); // samplesize
    w.u32(0); // pre_defined, reserved
              // 16.16; rates above 65535 do not fit (the decoder config has them).
    w.u32(if rate <= 0xffff { rate << 16 } else { 0 });
    at
}

fn config_box(w: &mut Writer, kind: &[u8; 4], body: &[u8]) {
    let at = w.begin(kind);
    w.bytes(body);
    w.end(at);
}

fn sample_entry(w: &mut Writer, t: &TrackInfo) -> Result<(), Error> {
    // Re-checked here: the fields are public and may have been changed.
    TrackInfo::new(t.codec, t.config.clone())?;
    match t.codec {
        RILL_CODEC_H264 | RILL_CODEC_AV1 => {
            let (entry, cfg) = match t.codec {
                RILL_CODEC_H264 => (b"avc1", b"avcC"),
                _ => (b"av01", b"av1C"),
            };
            let at = visual_entry(w, entry, t);
            config_box(w, cfg, &t.config);
            w.end(at);
        }
        RILL_CODEC_H265 => {
            let at = visual_entry(w, b"hvc1", t);
            config_box(w, b"hvcC", &hvc1_record(&t.config)?);
            w.end(at);
        }
        RILL_CODEC_VP9 => {
            let c = Vp9Config::parse(&t.config)?;
            let at = visual_entry(w, b"vp09", t);
            let vpcc = w.begin_full(b"vpcC", 1, 0);
            w.bytes(c.record(&t.config));
            w.end(vpcc);
            w.end(at);
        }
        RILL_CODEC_AAC => {
            let at = audio_entry(w, b"mp4a", t.channels, t.sample_rate);
            esds(w, &t.config);
            w.end(at);
        }
        RILL_CODEC_OPUS => {
            let head = opus_head(&t.config)?;
            let at = audio_entry(w, b"Opus", head.channels as u16, 48000);
            config_box(w, b"dOps", &head.dops());
            w.end(at);
        }
        _ => return Err(Error::Unsupported("codec has no fMP4 mapping here")),
    }
    Ok(())
}

/// An MPEG-4 descriptor header: tag and the expandable size (7 bits a
/// byte, high bit = more).
fn descriptor(w: &mut Writer, tag: u8, len: usize) {
    w.u8(tag);
    let mut groups = 1;
    while len >> (7 * groups) != 0 && groups < 4 {
        groups += 1;
    }
    for i in (0..groups).rev() {
        let more = if i > 0 { 0x80 } else { 0 };
        w.u8(((len >> (7 * i)) & 0x7f) as u8 | more);
    }
}

/// Bytes of a descriptor header for a body of `len`.
fn descriptor_len(len: usize) -> usize {
    let mut groups = 1;
    while len >> (7 * groups) != 0 && groups < 4 {
        groups += 1;
    }
    1 + groups + len
}

/// `esds` (ISO/IEC 14496-14 5.6): ES_Descriptor → DecoderConfigDescriptor
/// (MPEG-4 audio, audio stream) → DecoderSpecificInfo (the ASC), and the
/// SLConfigDescriptor.
fn esds(w: &mut Writer, asc: &[u8]) {
    let at = w.begin_full(b"esds", 0, 0);
    let dsi = descriptor_len(asc.len());
    let dcd = descriptor_len(13 + dsi);
    let sl = descriptor_len(1);
    descriptor(w, 0x03, 3 + dcd + sl);
    w.u16(0); // ES_ID
    w.u8(0); // no dependency, URL or OCR stream
    descriptor(w, 0x04, 13 + dsi);
    w.u8(0x40); // objectTypeIndication: MPEG-4 Audio
    w.u8(0x15); // streamType 5 (audio) << 2 | reserved 1
    w.bytes(&[0, 0, 0]); // bufferSizeDB
    w.u32(0); // maxBitrate
    w.u32(0); // avgBitrate
    descriptor(w, 0x05, asc.len());
    w.bytes(asc);
    descriptor(w, 0x06, 1);
    w.u8(0x02); // predefined: MP4
    w.end(at);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn descriptor_sizes() {
        for len in [0usize, 5, 127, 128, 300, 16383, 16384, 65536] {
            let mut w = Writer::with_capacity(8);
            descriptor(&mut w, 5, len);
            assert_eq!(w.buf.len() + len, descriptor_len(len), "{len}");
            // Decode it back.
            let (mut v, mut i) = (0usize, 1);
            loop {
                let b = w.buf[i];
                v = v << 7 | (b & 0x7f) as usize;
                i += 1;
                if b & 0x80 == 0 {
                    break;
                }
            }
            assert_eq!(v, len);
        }
    }
}
