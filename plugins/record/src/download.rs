//! `GET /vod/{app}/{stream}.mp4?start=…&end=…`: the fMP4 recordings of a
//! time range as one fragmented MP4, with `Range`.
//!
//! Nothing is re-encoded or re-muxed sample by sample: the download is the
//! first file's init segment followed by every file's fragments, each
//! `moof` put on one timeline that starts at 0 as it goes out
//! (`rill_mp4::retime`: the `tfdt` values change, no size does). So the
//! length is known before the first byte, and a byte range maps onto the
//! files directly. Files of one recording keep their spacing; after a gap
//! (the publisher went away) the next file is placed by its wall-clock
//! start. A file whose tracks differ from the first one's (a codec change)
//! ends the download before it: one init segment cannot describe both.
//!
//! The files' heads (init segment and first `moof`) are read one at a time
//! first; then the body is read in chunks, each `moof` whole before it is
//! sent (a chunk that ends inside one is cut before it, and the next read
//! starts there).

use rill_abi::sdk::{Conn, FileId, Flow, Result};
use rill_abi::*;
use rill_mp4::read::{parse_init, InitTrack};

use crate::vod::{respond_range, text, Request, Row, Stage, TOKEN_DOWNLOAD, TOKEN_HEAD};
use crate::Record;

/// Files one download may span.
pub(crate) const MAX_FILES: usize = 2000;
/// Bytes read at the head of each file: init segment and first `moof`.
const HEAD_READ: u64 = 64 << 10;
/// Bytes read at a time while sending.
const CHUNK: u64 = 256 << 10;
/// Bytes read at a box boundary before the range starts (only its headers
/// matter): a `moof` longer than this is read again with [`CHUNK`].
const SKIP_READ: u64 = 16 << 10;
/// A file starting later than this after the previous one ended starts a
/// new timeline (as the VOD playlist's discontinuity).
const GAP_US: i64 = 1_500_000;

/// What the head of one file told.
struct Head {
    init: Vec<u8>,
    tracks: Vec<InitTrack>,
    /// The earliest first `tfdt` over its tracks, in µs.
    first_us: i64,
}

/// One file of the download.
struct Part {
    path: String,
    /// Where its fragments start and where the file ends.
    body: std::ops::Range<u64>,
    /// Where its fragments start in the download.
    vstart: u64,
    /// Subtracted from every decode time (µs; negative moves it later).
    delta_us: i64,
}

/// The download being read and sent.
pub(crate) struct Download {
    init: Vec<u8>,
    /// Track ID → timescale.
    scales: Vec<(u32, u32)>,
    parts: Vec<Part>,
    /// `[at, end)` of the download still to send.
    at: u64,
    end: u64,
    /// The file being read.
    open: Option<Open>,
    reading: bool,
    /// Bytes a read asks for ([`CHUNK`], [`SKIP_READ`]; smaller in tests).
    chunk: u64,
    skip_read: u64,
}

struct Open {
    part: usize,
    file: FileId,
    /// File offset of the next top-level box not yet looked at.
    next_box: u64,
    /// File offset the next read starts at.
    pos: u64,
    /// The last read was a short one at a box boundary.
    short: bool,
}

/// Collects the heads, one file at a time.
pub(crate) struct Heads {
    rows: Vec<Row>,
    heads: Vec<Option<Head>>,
    file: Option<FileId>,
}

enum Step {
    /// Read `len` bytes at `offset` of the open file.
    Read {
        offset: u64,
        len: u64,
    },
    /// Open part `i` and read from it.
    Open(usize),
    Done,
}

fn track_key(t: &InitTrack) -> (u32, u32, [u8; 4], Option<&Vec<u8>>) {
    (
        t.track_id,
        t.timescale,
        t.entry.kind,
        t.entry.config.as_ref().map(|c| &c.1),
    )
}

/// Reads a file's head: `None` when it is no fMP4 this can serve.
fn head(data: &[u8]) -> Option<Head> {
    let moof = rill_mp4::retime::first_moof(data)?;
    let init = parse_init(&data[..moof.start]).ok()?;
    let times = rill_mp4::retime::decode_times(&data[moof]).ok()?;
    let first_us = times
        .iter()
        .filter_map(|&(id, t)| {
            let scale = init.tracks.iter().find(|k| k.track_id == id)?.timescale;
            (scale > 0).then(|| (t as i128 * 1_000_000 / scale as i128) as i64)
        })
        .min()?;
    let init_len = crate::vod::init_len(data)? as usize;
    Some(Head {
        init: data[..init_len].to_vec(),
        tracks: init.tracks,
        first_us,
    })
}

impl Download {
    /// Plans the download of `rows` (complete fMP4 files, by start) whose
    /// heads are `heads`.
    fn plan(rows: &[Row], heads: &[Option<Head>]) -> Option<Download> {
        let first = heads.first()?.as_ref()?;
        let keys: Vec<_> = first.tracks.iter().map(track_key).collect();
        let mut parts: Vec<Part> = Vec::new();
        let mut vat = first.init.len() as u64;
        // The wall clock of the download's 0, and of where the last file
        // ended on its timeline (µs).
        let mut origin = None;
        let mut out_end = 0i64;
        let mut prev: Option<(&Row, i64, i64)> = None; // row, first_us, delta
        for (row, h) in rows.iter().zip(heads) {
            let Some(h) = h else { continue };
            if h.tracks.iter().map(track_key).ne(keys.iter().cloned()) {
                break;
            }
            let init_len = h.init.len() as u64;
            if row.bytes <= init_len {
                continue;
            }
            let origin = *origin.get_or_insert(row.start_us);
            let delta_us = match prev {
                // The same recording: the same timeline.
                Some((p, p_first, d))
                    if row.start_us - p.end_us <= GAP_US && h.first_us >= p_first =>
                {
                    d
                }
                // A new one: where the wall clock puts it, after the last.
                Some(_) => h.first_us - (row.start_us - origin).max(out_end),
                None => h.first_us,
            };
            out_end = h.first_us - delta_us + row.duration_us;
            parts.push(Part {
                path: row.path.clone(),
                body: init_len..row.bytes,
                vstart: vat,
                delta_us,
            });
            vat += row.bytes - init_len;
            prev = Some((row, h.first_us, delta_us));
        }
        if parts.is_empty() {
            return None;
        }
        Some(Download {
            init: first.init.clone(),
            scales: first
                .tracks
                .iter()
                .map(|t| (t.track_id, t.timescale))
                .collect(),
            parts,
            at: 0,
            end: vat,
            open: None,
            reading: false,
            chunk: CHUNK,
            skip_read: SKIP_READ,
        })
    }

    /// Bytes in the whole download.
    fn len(&self) -> u64 {
        self.parts.last().map_or(self.init.len() as u64, |p| {
            p.vstart + (p.body.end - p.body.start)
        })
    }

    /// The part holding download offset `v` (past the init segment).
    fn part_at(&self, v: u64) -> usize {
        self.parts
            .partition_point(|p| p.vstart <= v)
            .saturating_sub(1)
    }

    /// What to do next to send `[at, end)`.
    fn next(&mut self) -> Step {
        if self.at >= self.end {
            return Step::Done;
        }
        let want = self.part_at(self.at);
        let Some(o) = self.open.as_mut().filter(|o| o.part == want) else {
            return Step::Open(want);
        };
        let p = &self.parts[o.part];
        let target = p.body.start + (self.at - p.vstart);
        // Before the range: skip what needs no look (inside an mdat).
        if o.pos < o.next_box && target > o.pos {
            o.pos = target.min(o.next_box);
        }
        let left = p.body.end - o.pos;
        let len = if o.pos == o.next_box && target > o.pos && !o.short {
            self.skip_read
        } else {
            self.chunk
        };
        Step::Read {
            offset: o.pos,
            len: len.min(left),
        }
    }

    /// `data`, read at the open file's `pos`: what of it to send, with the
    /// `moof`s in it retimed. `Err`: the file is not what its index said.
    fn take(&mut self, data: &[u8]) -> std::result::Result<Vec<u8>, &'static str> {
        let o = self.open.as_mut().ok_or("no file open")?;
        let p = &self.parts[o.part];
        let fo = o.pos;
        let mut out = data.to_vec();
        let mut cut = data.len() as u64;
        while o.next_box >= fo && o.next_box < fo + data.len() as u64 {
            let rel = (o.next_box - fo) as usize;
            let Some(h) = data.get(rel..rel + 8) else {
                cut = rel as u64;
                break;
            };
            let size = match u32::from_be_bytes([h[0], h[1], h[2], h[3]]) {
                0 => p.body.end - o.next_box,
                1 => match data.get(rel + 8..rel + 16) {
                    Some(b) => u64::from_be_bytes(b.try_into().expect("8 bytes")),
                    None => {
                        cut = rel as u64;
                        break;
                    }
                },
                n => n as u64,
            };
            if size < 8 || o.next_box + size > p.body.end {
                return Err("a box runs past the end of its file");
            }
            if &h[4..8] == b"moof" {
                if rel as u64 + size > data.len() as u64 {
                    cut = rel as u64;
                    break;
                }
                let scales = &self.scales;
                let delta = p.delta_us as i128;
                rill_mp4::retime::retime(&mut out[rel..rel + size as usize], |id, t| {
                    let scale = scales.iter().find(|s| s.0 == id).map_or(0, |s| s.1);
                    let shift = delta * scale as i128 / 1_000_000;
                    (t as i128 - shift).clamp(0, u64::MAX as i128) as u64
                })
                .map_err(|_| "a moof that cannot be retimed")?;
            }
            o.next_box += size;
        }
        if cut == 0 {
            if o.short || data.len() as u64 >= self.chunk {
                return Err("a moof longer than a read");
            }
            o.short = true;
            return Ok(Vec::new());
        }
        o.short = false;
        o.pos = fo + cut;
        out.truncate(cut as usize);
        // What lies in [at, end) of the download.
        let vfrom = p.vstart + (fo - p.body.start);
        let skip = self.at.saturating_sub(vfrom).min(cut) as usize;
        let keep = (self.end - self.at.max(vfrom)).min(cut - skip as u64) as usize;
        let sent: Vec<u8> = out.drain(skip..skip + keep).collect();
        self.at += sent.len() as u64;
        Ok(sent)
    }
}

impl Record {
    /// The rows of a download: read their heads (all fMP4), or remux them.
    pub(crate) fn download_rows(&self, r: &mut Request, conn: &Conn, rows: Vec<Row>) -> Result<()> {
        let rows: Vec<Row> = rows.into_iter().filter(|row| row.done).collect();
        if rows.is_empty() {
            return text(conn, 404, "no recordings in that range\n");
        }
        if rows.len() > MAX_FILES {
            let why = format!(
                "{} files in that range; one download takes at most {MAX_FILES}\n",
                rows.len()
            );
            return text(conn, 400, &why);
        }
        if rows.iter().any(|row| row.format != "fmp4") {
            return self.remux_rows(r, conn, rows, crate::remux::Output::Download);
        }
        r.stage = Stage::Heads(Heads {
            rows,
            heads: Vec::new(),
            file: None,
        });
        self.next_head(r, conn)
    }

    /// Reads the next file's head, or, all read, answers.
    fn next_head(&self, r: &mut Request, conn: &Conn) -> Result<()> {
        let Stage::Heads(h) = &mut r.stage else {
            return Ok(());
        };
        if let Some(row) = h.rows.get(h.heads.len()) {
            let f = self.host.file_open(conn.id(), &row.path, RILL_FILE_READ)?;
            h.file = Some(f);
            return self.host.file_read(f, 0, HEAD_READ, TOKEN_HEAD);
        }
        let Stage::Heads(h) = std::mem::replace(&mut r.stage, Stage::Done) else {
            return Ok(());
        };
        let Some(mut dl) = Download::plan(&h.rows, &h.heads) else {
            return text(conn, 404, "no readable fMP4 recordings in that range\n");
        };
        let name = format!(
            "attachment; filename=\"{}.mp4\"",
            h.rows[0].stream.replace(['/', '"', '\\'], "_")
        );
        let headers = [
            ("content-type", "video/mp4"),
            ("content-disposition", name.as_str()),
        ];
        let sending = respond_range(conn, r.range.as_deref(), dl.len(), &headers)?;
        let Some((start, end)) = sending.filter(|(a, b)| !r.head && a < b) else {
            return conn.close(RILL_END_NORMAL);
        };
        (dl.at, dl.end) = (start, end);
        r.stage = Stage::Download(dl);
        self.pump(r, conn)
    }

    /// A file's head was read.
    pub(crate) fn head_read(
        &self,
        r: &mut Request,
        conn: &Conn,
        result: Result<i64>,
        data: &[u8],
    ) -> Result<()> {
        let Stage::Heads(h) = &mut r.stage else {
            return Ok(());
        };
        if let Some(f) = h.file.take() {
            let _ = self.host.file_close(f, 0);
        }
        let parsed = result.ok().and_then(|_| head(data));
        if parsed.is_none() {
            let path = h
                .rows
                .get(h.heads.len())
                .map_or("", |row| row.path.as_str());
            rill_log!(
                self.host,
                Warn,
                "{path}: not an fMP4 recording this can serve; left out of the download"
            );
        }
        h.heads.push(parsed);
        self.next_head(r, conn)
    }

    /// Sends what it can: the init segment, then reads of the files.
    pub(crate) fn pump(&self, r: &mut Request, conn: &Conn) -> Result<()> {
        let Stage::Download(dl) = &mut r.stage else {
            return Ok(());
        };
        if dl.reading {
            return Ok(());
        }
        loop {
            if dl.at < dl.end && dl.at < dl.init.len() as u64 {
                let to = dl.end.min(dl.init.len() as u64);
                let flow = conn.write(&dl.init[dl.at as usize..to as usize])?;
                dl.at = to;
                if matches!(flow, Flow::Full) {
                    return Ok(());
                }
                continue;
            }
            match dl.next() {
                Step::Done => {
                    self.close_open(dl);
                    r.stage = Stage::Done;
                    return conn.close(RILL_END_NORMAL);
                }
                Step::Open(i) => {
                    self.close_open(dl);
                    let p = &dl.parts[i];
                    let Ok(file) = self.host.file_open(conn.id(), &p.path, RILL_FILE_READ) else {
                        return self.cut_short(r, conn, "cannot be opened");
                    };
                    dl.open = Some(Open {
                        part: i,
                        file,
                        next_box: p.body.start,
                        pos: p.body.start,
                        short: false,
                    });
                }
                Step::Read { offset, len } => {
                    let file = dl.open.as_ref().map(|o| o.file).expect("open to read");
                    dl.reading = true;
                    return self.host.file_read(file, offset, len, TOKEN_DOWNLOAD);
                }
            }
        }
    }

    /// A read of the download's open file came.
    pub(crate) fn download_read(
        &self,
        r: &mut Request,
        conn: &Conn,
        result: Result<i64>,
        data: &[u8],
    ) -> Result<()> {
        let Stage::Download(dl) = &mut r.stage else {
            return Ok(());
        };
        dl.reading = false;
        if result.is_err() || data.is_empty() {
            return self.cut_short(r, conn, "ended early or failed");
        }
        let sent = match dl.take(data) {
            Ok(sent) => sent,
            Err(why) => return self.cut_short(r, conn, why),
        };
        if !sent.is_empty() && matches!(conn.write(&sent)?, Flow::Full) {
            return Ok(());
        }
        self.pump(r, conn)
    }

    fn close_open(&self, dl: &mut Download) {
        if let Some(o) = dl.open.take() {
            let _ = self.host.file_close(o.file, 0);
        }
    }

    /// A file changed or went behind the server's back: the response is
    /// cut short (its length was promised).
    fn cut_short(&self, r: &mut Request, conn: &Conn, why: &str) -> Result<()> {
        rill_log!(
            self.host,
            Warn,
            "a recording in a download {why}: the download is cut short"
        );
        if let Stage::Download(dl) = &mut r.stage {
            self.close_open(dl);
        }
        r.stage = Stage::Done;
        conn.close(RILL_END_ERROR)
    }

    /// The session ended: files it held are closed.
    pub(crate) fn download_closed(&self, stage: Stage) {
        match stage {
            Stage::Heads(h) => {
                if let Some(f) = h.file {
                    let _ = self.host.file_close(f, 0);
                }
            }
            Stage::Download(mut dl) => self.close_open(&mut dl),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn boxed(kind: &[u8; 4], body: &[u8]) -> Vec<u8> {
        [&((body.len() + 8) as u32).to_be_bytes()[..], kind, body].concat()
    }

    /// A `moof` of one track (ID 1) whose `tfdt` is `t`.
    fn moof(t: u64) -> Vec<u8> {
        let tfhd = boxed(b"tfhd", &[0, 2, 0, 0, 0, 0, 0, 1]);
        let tfdt = boxed(b"tfdt", &[&[1, 0, 0, 0][..], &t.to_be_bytes()].concat());
        let traf = boxed(b"traf", &[tfhd, tfdt].concat());
        let mfhd = boxed(b"mfhd", &[0; 8]);
        boxed(b"moof", &[mfhd, traf].concat())
    }

    /// A file body: `n` fragments of 1 s at 90 kHz from `t0`, each with an
    /// mdat of `size` bytes.
    fn body(t0: u64, n: u64, size: usize) -> Vec<u8> {
        (0..n)
            .flat_map(|i| {
                let payload: Vec<u8> = (0..size).map(|b| (b as u64 * 7 + i) as u8).collect();
                [moof(t0 + i * 90_000), boxed(b"mdat", &payload)].concat()
            })
            .collect()
    }

    /// Runs a download of `files` (bodies after a 100-byte init) for
    /// `[at, end)`, reading `chunk` bytes at a time.
    fn run(files: &[(Vec<u8>, i64)], at: u64, end: u64, chunk: u64) -> Vec<u8> {
        let init = vec![0xAA; 100];
        let mut parts = Vec::new();
        let mut v = init.len() as u64;
        for (i, (b, delta_us)) in files.iter().enumerate() {
            parts.push(Part {
                path: i.to_string(),
                body: 100..100 + b.len() as u64,
                vstart: v,
                delta_us: *delta_us,
            });
            v += b.len() as u64;
        }
        let end = end.min(v);
        let mut dl = Download {
            init: init.clone(),
            scales: vec![(1, 90_000)],
            parts,
            at,
            end,
            open: None,
            reading: false,
            chunk,
            skip_read: chunk / 3,
        };
        let mut out = Vec::new();
        if dl.at < 100 {
            out.extend_from_slice(&init[dl.at as usize..100.min(end) as usize]);
            dl.at = 100.min(end);
        }
        loop {
            match dl.next() {
                Step::Done => return out,
                Step::Open(i) => {
                    dl.open = Some(Open {
                        part: i,
                        file: FileId(0),
                        next_box: 100,
                        pos: 100,
                        short: false,
                    })
                }
                Step::Read { offset, len } => {
                    let part = dl.open.as_ref().unwrap().part;
                    let file = &files[part].0;
                    let from = (offset - 100) as usize;
                    let to = (from + len as usize).min(file.len());
                    out.extend(dl.take(&file[from..to]).unwrap_or_else(|e| {
                        panic!(
                            "{e} at {offset}+{len} chunk {chunk} range {at}..{end} next_box {}",
                            dl.open.as_ref().unwrap().next_box
                        )
                    }));
                }
            }
        }
    }

    #[test]
    fn fragments_go_out_retimed_and_ranges_are_slices_of_the_whole() {
        // Two files of one timeline (10 s on), then one of a new timeline
        // placed at 20 s.
        let files = vec![
            (body(900_000, 4, 3000), 10_000_000),
            (body(1_260_000, 3, 5000), 10_000_000),
            (body(0, 2, 4000), -20_000_000),
        ];
        let whole = run(&files, 0, u64::MAX, CHUNK);
        let total = 100 + files.iter().map(|f| f.0.len()).sum::<usize>();
        assert_eq!(whole.len(), total);
        // The moofs' times, in order: 0..7 s, then 20, 21 s.
        let at = rill_mp4::read::boxes(&whole[100..], 0)
            .filter_map(|b| b.ok())
            .filter(|b| &b.kind == b"moof")
            .map(|b| {
                let m = &whole[100 + b.offset..100 + b.offset + b.size()];
                rill_mp4::retime::decode_times(m).unwrap()[0].1 / 90_000
            })
            .collect::<Vec<_>>();
        assert_eq!(at, [0, 1, 2, 3, 4, 5, 6, 20, 21]);
        // Reads that end anywhere (inside moofs and box headers) give the
        // same; a moof is 68 bytes.
        for chunk in [1000, 333, 100, 69] {
            assert!(run(&files, 0, u64::MAX, chunk) == whole, "reads of {chunk}");
        }
        // Any range is the same bytes as in the whole.
        let len = whole.len() as u64;
        for (a, b) in [
            (0, 50),
            (90, 400),
            (3100, 3200),
            (5000, 20_000),
            (len - 7, len),
        ] {
            for chunk in [CHUNK, 100] {
                let got = run(&files, a, b, chunk);
                assert!(got == whole[a as usize..b as usize], "{a}..{b} by {chunk}");
            }
        }
    }

    #[test]
    fn a_box_past_its_file_is_an_error() {
        let mut b = body(0, 2, 1000);
        let n = b.len();
        b.truncate(n - 10);
        let init = vec![0; 100];
        let mut dl = Download {
            init,
            scales: vec![(1, 90_000)],
            parts: vec![Part {
                path: String::new(),
                body: 100..100 + b.len() as u64,
                vstart: 100,
                delta_us: 0,
            }],
            at: 100,
            end: 100 + b.len() as u64,
            open: Some(Open {
                part: 0,
                file: FileId(0),
                next_box: 100,
                pos: 100,
                short: false,
            }),
            reading: false,
            chunk: CHUNK,
            skip_read: SKIP_READ,
        };
        assert!(dl.take(&b).is_err());
    }
}
