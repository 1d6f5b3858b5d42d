//! Moving fragments onto another timeline: each `traf`'s `tfdt` in a
//! `moof`, read and rewritten in place. Sizes stay as they were, so a byte
//! range of the original file is the same byte range of the rewritten one:
//! what serving several fMP4 recordings as one download with `Range`
//! needs. Sample offsets are relative to the `moof` (default-base-is-moof,
//! as [`crate::mux`] writes), so fragments move between files unchanged.

use crate::read::boxes;
use crate::Error;

/// Most `traf`s one `moof` may have.
const MAX_TRAFS: usize = 64;

/// A `traf`'s `tfdt`: its track, and where its value is in the `moof`.
struct Field {
    track_id: u32,
    at: usize,
    /// Version 1: 64 bits; else 32.
    wide: bool,
}

/// The `tfdt` fields of `moof` (one whole `moof` box, header included).
fn fields(moof: &[u8]) -> Result<Vec<Field>, Error> {
    let m = boxes(moof, 0).next().ok_or(Error::Truncated("moof"))??;
    if &m.kind != b"moof" || m.size() != moof.len() {
        return Err(Error::Malformed("not one moof box"));
    }
    let mut out = Vec::new();
    for traf in boxes(m.body, m.body_offset()) {
        let traf = traf?;
        if &traf.kind != b"traf" {
            continue;
        }
        if out.len() == MAX_TRAFS {
            return Err(Error::Limit("trafs"));
        }
        let mut track_id = None;
        let mut field = None;
        for c in boxes(traf.body, traf.body_offset()) {
            let c = c?;
            match &c.kind {
                b"tfhd" => {
                    let b = c.body.get(4..8).ok_or(Error::Truncated("tfhd"))?;
                    track_id = Some(u32::from_be_bytes([b[0], b[1], b[2], b[3]]));
                }
                b"tfdt" => {
                    let wide = *c.body.first().ok_or(Error::Truncated("tfdt"))? == 1;
                    let need = if wide { 12 } else { 8 };
                    if c.body.len() < need {
                        return Err(Error::Truncated("tfdt"));
                    }
                    field = Some((c.body_offset() + 4, wide));
                }
                _ => {}
            }
        }
        let track_id = track_id.ok_or(Error::Malformed("traf without tfhd"))?;
        if let Some((at, wide)) = field {
            out.push(Field { track_id, at, wide });
        }
    }
    Ok(out)
}

/// Each track's `tfdt` in `moof`: (track ID, base media decode time).
pub fn decode_times(moof: &[u8]) -> Result<Vec<(u32, u64)>, Error> {
    Ok(fields(moof)?
        .into_iter()
        .map(|f| (f.track_id, read(moof, &f)))
        .collect())
}

fn read(moof: &[u8], f: &Field) -> u64 {
    if f.wide {
        u64::from_be_bytes(moof[f.at..f.at + 8].try_into().expect("8 bytes, checked"))
    } else {
        u32::from_be_bytes(moof[f.at..f.at + 4].try_into().expect("4 bytes, checked")) as u64
    }
}

/// Rewrites each `tfdt` of `moof` to `to(track ID, time)`. A 32-bit field
/// that cannot hold the new time is an error, and then nothing changed.
pub fn retime(moof: &mut [u8], mut to: impl FnMut(u32, u64) -> u64) -> Result<(), Error> {
    let fields = fields(moof)?;
    let new: Vec<u64> = fields
        .iter()
        .map(|f| to(f.track_id, read(moof, f)))
        .collect();
    if fields
        .iter()
        .zip(&new)
        .any(|(f, &t)| !f.wide && t > u32::MAX as u64)
    {
        return Err(Error::Timestamp("a 32-bit tfdt cannot hold it"));
    }
    for (f, t) in fields.iter().zip(new) {
        if f.wide {
            moof[f.at..f.at + 8].copy_from_slice(&t.to_be_bytes());
        } else {
            moof[f.at..f.at + 4].copy_from_slice(&(t as u32).to_be_bytes());
        }
    }
    Ok(())
}

/// Where the first `moof` lies in `head` (the start of a file), when it is
/// whole there.
pub fn first_moof(head: &[u8]) -> Option<std::ops::Range<usize>> {
    for b in boxes(head, 0) {
        let b = b.ok()?;
        if &b.kind == b"moof" {
            return Some(b.offset..b.offset + b.size());
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn moof(tfdt_version: u8) -> Vec<u8> {
        let mut tfdt = vec![tfdt_version, 0, 0, 0];
        if tfdt_version == 1 {
            tfdt.extend_from_slice(&90_000u64.to_be_bytes());
        } else {
            tfdt.extend_from_slice(&90_000u32.to_be_bytes());
        }
        let tfdt = [&((tfdt.len() + 8) as u32).to_be_bytes()[..], b"tfdt", &tfdt].concat();
        let tfhd = [
            &20u32.to_be_bytes()[..],
            b"tfhd",
            &[0, 2, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0],
        ]
        .concat();
        let body = [tfhd, tfdt].concat();
        let traf = [&((body.len() + 8) as u32).to_be_bytes()[..], b"traf", &body].concat();
        let mfhd = [&16u32.to_be_bytes()[..], b"mfhd", &[0, 0, 0, 0, 0, 0, 0, 7]].concat();
        let body = [mfhd, traf].concat();
        [&((body.len() + 8) as u32).to_be_bytes()[..], b"moof", &body].concat()
    }

    #[test]
    fn reads_and_rewrites_tfdt_in_place() {
        for v in [0, 1] {
            let mut m = moof(v);
            let len = m.len();
            assert_eq!(decode_times(&m).unwrap(), [(2, 90_000)]);
            retime(&mut m, |track, t| {
                assert_eq!(track, 2);
                t - 45_000
            })
            .unwrap();
            assert_eq!(m.len(), len);
            assert_eq!(decode_times(&m).unwrap(), [(2, 45_000)]);
        }
        // A 32-bit tfdt refuses what it cannot hold, and keeps its value.
        let mut m = moof(0);
        assert!(retime(&mut m, |_, _| 1 << 33).is_err());
        assert_eq!(decode_times(&m).unwrap(), [(2, 90_000)]);
    }

    #[test]
    fn finds_the_first_whole_moof() {
        let m = moof(1);
        let mut head = [&16u32.to_be_bytes()[..], b"ftypiso6", &[0; 4]].concat();
        let at = head.len();
        head.extend_from_slice(&m);
        head.extend_from_slice(&[0, 0, 0x10, 0, b'm', b'd', b'a', b't', 1, 2]);
        assert_eq!(first_moof(&head), Some(at..at + m.len()));
        assert_eq!(first_moof(&head[..at + 10]), None);
        assert!(decode_times(&head[at..at + 10]).is_err());
        assert!(decode_times(b"\0\0\0\x08mdat").is_err());
    }
}
