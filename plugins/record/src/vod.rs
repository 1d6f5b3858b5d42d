//! Playback of recordings over HTTP:
//!
//! - `GET /vod/{app}/{stream}.m3u8?start=…&end=…`: a VOD HLS playlist of
//!   the complete recordings overlapping that range (RFC 3339, UTC;
//!   `start` defaults to the first, `end` to now). fMP4 files are listed
//!   by byte range (their init segment, then their fragments); TS, FLV and
//!   MP4 files as whole TS segments (FLV and MP4 remuxed, see
//!   [`crate::remux`]); a gap between two files is a discontinuity.
//! - `GET /vod/{app}/{stream}.mp4?start=…&end=…`: the recordings of that
//!   range as one MP4 download: fMP4 files with `Range` (see
//!   [`crate::download`]), others remuxed as they are read, without (see
//!   [`crate::remux`]).
//! - `GET /vod/seg/{id}.{ts|mp4|flv}`: a recording's file, with `Range`;
//!   `.ts` of an FLV or MP4 recording: remuxed to MPEG-TS.
//!
//! Who may watch is the host's decision (`admit`, as for live play), for
//! the stream the recording belongs to; the query a playlist came with
//! (a token) is carried into every URI it lists.

use rill_abi::sdk::{Admission, Body, Conn, Error, FileId, Flow, HttpRequest, Result};
use rill_abi::*;
use serde::Deserialize;

use crate::{lock, Record};

/// Rows one playlist lists at most.
const MAX_ROWS: u32 = 5000;
/// The longest range one playlist may span.
const MAX_SPAN_US: i64 = 31 * 24 * 3600 * 1_000_000;
/// Bytes read for an fMP4 file's init segment (ftyp + moov).
const INIT_READ: u64 = 64 << 10;
/// Bytes read and written at a time when serving a file.
const CHUNK: u64 = 256 << 10;

const TOKEN_ROWS: u64 = 1;
const TOKEN_CHUNK: u64 = 2;
/// A file's head, for a download.
pub(crate) const TOKEN_HEAD: u64 = 3;
/// A chunk of a download.
pub(crate) const TOKEN_DOWNLOAD: u64 = 4;
/// `TOKEN_INIT + i`: the head of the playlist's row `i`.
const TOKEN_INIT: u64 = 1 << 32;

#[derive(Debug, Clone, Deserialize)]
pub(crate) struct Row {
    pub id: u64,
    pub stream: String,
    pub format: String,
    pub path: String,
    pub start_us: i64,
    pub end_us: i64,
    pub duration_us: i64,
    pub bytes: u64,
    pub done: bool,
}

enum Want {
    Playlist {
        stream: String,
        from: Option<i64>,
        to: Option<i64>,
    },
    /// One MP4 of the range's fMP4 recordings.
    Download {
        stream: String,
        from: Option<i64>,
        to: Option<i64>,
    },
    File {
        id: u64,
        /// Asked as `.ts`: remuxed when the file is not TS.
        ts: bool,
    },
}

pub(crate) enum Stage {
    /// Waiting for `admit` (a playlist) or the row (a file).
    Start,
    /// A download reads its files' heads.
    Heads(crate::download::Heads),
    /// A download is sent.
    Download(crate::download::Download),
    /// A download of recordings not all fMP4, remuxed as it goes.
    Remux(Box<crate::remux::Remux>),
    /// Reading the fMP4 files' init segments.
    Inits {
        rows: Vec<Row>,
        inits: Vec<Option<u64>>,
        files: Vec<Option<FileId>>,
        left: usize,
    },
    /// Sending `[at, end)` of a file.
    Sending {
        file: FileId,
        at: u64,
        end: u64,
        reading: bool,
    },
    Done,
}

pub struct Request {
    want: Want,
    pub(crate) head: bool,
    /// The client's query (a token), carried into the playlist's URIs.
    query: String,
    pub(crate) range: Option<String>,
    pub(crate) stage: Stage,
    /// The file's row, once known.
    row: Option<Row>,
}

pub(crate) fn text(conn: &Conn, status: u16, body: &str) -> Result<()> {
    conn.http_respond(
        status,
        &[
            ("content-type", "text/plain; charset=utf-8"),
            ("access-control-allow-origin", "*"),
        ],
        Body::Fixed(body.len() as u64),
    )?;
    conn.write(body.as_bytes())?;
    conn.close(RILL_END_NORMAL)
}

/// RFC 3339 UTC (`…Z`) to wall µs.
pub(crate) fn parse_time(s: &str) -> std::result::Result<i64, String> {
    if !s.ends_with('Z') {
        return Err(format!("{s:?}: times are UTC and end with Z"));
    }
    let t = humantime::parse_rfc3339_weak(&s[..s.len() - 1]).map_err(|e| format!("{s:?}: {e}"))?;
    t.duration_since(std::time::UNIX_EPOCH)
        .map_err(|_| format!("{s:?}: before 1970"))
        .map(|d| d.as_micros() as i64)
}

fn param<'a>(query: &'a str, key: &str) -> Option<&'a str> {
    query
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == key)
        .map(|(_, v)| v)
}

/// `%XX` decoding of a query value (times carry `:` as `%3A`).
fn unescape(v: &str) -> String {
    let b = v.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let Ok(x) = u8::from_str_radix(&v[i + 1..i + 3], 16) {
                out.push(x);
                i += 3;
                continue;
            }
        }
        out.push(if b[i] == b'+' { b' ' } else { b[i] });
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Answers a request for a body of `len` bytes and its `Range` header
/// (`range`): the head, 200 or 206 with Content-Range, with `headers`,
/// Accept-Ranges and CORS; or 416 (then `None`). Returns the bytes to send,
/// `[start, end)`.
pub(crate) fn respond_range(
    conn: &Conn,
    range: Option<&str>,
    len: u64,
    headers: &[(&str, &str)],
) -> Result<Option<(u64, u64)>> {
    let (start, end, status) = match rill_abi::sdk::range::byte_range(range, len) {
        Ok(None) => (0, len, 200),
        Ok(Some((a, b))) => (a, b, 206),
        Err(_) => {
            let cr = format!("bytes */{len}");
            conn.http_respond(416, &[("content-range", &cr)], Body::Fixed(0))?;
            return Ok(None);
        }
    };
    let cr = format!("bytes {start}-{}/{len}", end.saturating_sub(1));
    let mut all = headers.to_vec();
    all.extend([
        ("accept-ranges", "bytes"),
        ("access-control-allow-origin", "*"),
    ]);
    if status == 206 {
        all.push(("content-range", &cr));
    }
    conn.http_respond(status, &all, Body::Fixed(end - start))?;
    Ok(Some((start, end)))
}

/// The rows a `recordings_query` brought, or `Err` when the index could
/// not answer.
pub(crate) fn rows_of(result: Result<i64>, data: &[u8]) -> Result<Vec<Row>> {
    result.map(|_| serde_json::from_slice(data).unwrap_or_default())
}

/// The size of the leading `ftyp` and `moov` boxes of an fMP4 file, when
/// `head` holds them whole (a damaged file's `moov` can claim more).
pub(crate) fn init_len(head: &[u8]) -> Option<u64> {
    let mut at = 0usize;
    let mut end = None;
    while at + 8 <= head.len() {
        let size = u32::from_be_bytes(head[at..at + 4].try_into().ok()?) as usize;
        let kind = &head[at + 4..at + 8];
        if size < 8 {
            return None;
        }
        match kind {
            b"ftyp" => {}
            b"moov" => {
                end = Some(at + size);
                break;
            }
            _ => return None,
        }
        at += size;
    }
    end.filter(|e| *e <= INIT_READ as usize && *e <= head.len())
        .map(|e| e as u64)
}

impl Request {
    /// A request already answered (an error).
    pub fn answered() -> Request {
        Request {
            want: Want::File { id: 0, ts: false },
            head: false,
            query: String::new(),
            range: None,
            stage: Stage::Done,
            row: None,
        }
    }

    /// The request for `req`, or `None` when the path is not a VOD URL.
    pub fn parse(req: &HttpRequest<'_>) -> std::result::Result<Request, (u16, String)> {
        let path = req.path();
        let query = req.query().to_owned();
        let rest = path
            .strip_prefix("/vod/")
            .ok_or((404, "not found\n".to_owned()))?;
        let want = if let Some(file) = rest.strip_prefix("seg/") {
            let (id, ext) = file
                .split_once('.')
                .filter(|(_, ext)| matches!(*ext, "ts" | "mp4" | "flv"))
                .and_then(|(id, ext)| Some((id.parse().ok()?, ext)))
                .ok_or((404, "no such recording\n".to_owned()))?;
            Want::File {
                id,
                ts: ext == "ts",
            }
        } else if let Some((stream, ext)) = rest.rsplit_once('.') {
            if !matches!(ext, "m3u8" | "mp4")
                || stream.is_empty()
                || !stream.contains('/')
                || stream.contains("..")
            {
                return Err((
                    404,
                    "expected /vod/{app}/{stream}.m3u8 or .mp4\n".to_owned(),
                ));
            }
            let time = |k: &str| {
                param(&query, k)
                    .map(|v| parse_time(&unescape(v)).map_err(|e| (400, format!("{k}: {e}\n"))))
                    .transpose()
            };
            let (from, to) = (time("start")?, time("end")?);
            if let (Some(f), Some(t)) = (from, to) {
                if f >= t {
                    return Err((400, "start must be before end\n".to_owned()));
                }
                if t - f > MAX_SPAN_US {
                    return Err((400, "the range is longer than 31 days\n".to_owned()));
                }
            }
            let stream = stream.to_owned();
            if ext == "mp4" {
                Want::Download { stream, from, to }
            } else {
                Want::Playlist { stream, from, to }
            }
        } else {
            return Err((404, "not found\n".to_owned()));
        };
        // The client's other parameters (a token) go on in the URIs.
        let query = query
            .split('&')
            .filter(|kv| !kv.is_empty() && !kv.starts_with("start=") && !kv.starts_with("end="))
            .collect::<Vec<_>>()
            .join("&");
        Ok(Request {
            want,
            head: req.method() == "HEAD",
            query,
            range: req.header("range").map(str::to_owned),
            stage: Stage::Start,
            row: None,
        })
    }
}

impl Record {
    pub(crate) fn vod_start(&self, r: &mut Request, conn: &Conn) -> Result<()> {
        match &r.want {
            Want::Playlist { stream, .. } | Want::Download { stream, .. } => {
                if conn.admit(&Admission::play(stream, &r.query), 1)? {
                    self.vod_admitted(r, conn)?;
                }
                Ok(())
            }
            Want::File { id, .. } => {
                let q = format!(r#"{{"id": {id}}}"#);
                self.host.recordings_query(conn.id(), &q, TOKEN_ROWS)
            }
        }
    }

    /// Allowed: the playlist's rows, or the file.
    pub(crate) fn vod_admitted(&self, r: &mut Request, conn: &Conn) -> Result<()> {
        match &r.want {
            Want::Playlist { stream, from, to } | Want::Download { stream, from, to } => {
                let mut q = serde_json::json!({ "stream": stream, "limit": MAX_ROWS });
                if let Some(f) = from {
                    q["from"] = (*f).into();
                }
                q["to"] = to.unwrap_or_else(|| self.host.wall_us()).into();
                self.host
                    .recordings_query(conn.id(), &q.to_string(), TOKEN_ROWS)
            }
            Want::File { .. } => self.send_file(r, conn),
        }
    }

    pub(crate) fn vod_refused(&self, conn: &Conn, e: Error) -> Result<()> {
        text(conn, e.refusal_status(), "playing not allowed\n")
    }

    pub(crate) fn vod_io(
        &self,
        r: &mut Request,
        conn: &Conn,
        token: u64,
        result: Result<i64>,
        data: &[u8],
    ) -> Result<()> {
        match token {
            TOKEN_ROWS => {
                let Ok(rows) = rows_of(result, data) else {
                    return text(conn, 503, "the recording index is not available\n");
                };
                match r.want {
                    Want::Playlist { .. } => self.playlist_rows(r, conn, rows),
                    Want::Download { .. } => self.download_rows(r, conn, rows),
                    Want::File { .. } => {
                        let Some(row) = rows.into_iter().find(|row| row.done) else {
                            return text(conn, 404, "no such recording\n");
                        };
                        let stream = row.stream.clone();
                        r.row = Some(row);
                        if conn.admit(&Admission::play(&stream, &r.query), 1)? {
                            self.send_file(r, conn)?;
                        }
                        Ok(())
                    }
                }
            }
            TOKEN_CHUNK => self.chunk_read(r, conn, result, data),
            TOKEN_HEAD => self.head_read(r, conn, result, data),
            TOKEN_DOWNLOAD => self.download_read(r, conn, result, data),
            crate::remux::TOKEN_REMUX => self.remux_read(r, conn, result, data),
            t if t >= TOKEN_INIT => {
                let i = (t - TOKEN_INIT) as usize;
                let Stage::Inits {
                    rows,
                    inits,
                    files,
                    left,
                } = &mut r.stage
                else {
                    return Ok(());
                };
                if let Some(Some(f)) = files.get_mut(i).map(Option::take) {
                    let _ = self.host.file_close(f, 0);
                }
                if let Some(slot) = inits.get_mut(i) {
                    *slot = result.ok().and_then(|_| init_len(data));
                    if let (Some(len), Some(row)) = (*slot, rows.get(i)) {
                        lock(&self.init_lens).insert(row.id, len);
                    }
                    *left -= 1;
                }
                if *left == 0 {
                    let (rows, inits) = (std::mem::take(rows), std::mem::take(inits));
                    r.stage = Stage::Done;
                    return self.respond_playlist(r, conn, &rows, &inits);
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }

    fn playlist_rows(&self, r: &mut Request, conn: &Conn, rows: Vec<Row>) -> Result<()> {
        let mut rows: Vec<Row> = rows
            .into_iter()
            .filter(|row| row.done && crate::source::Source::reads(&row.format))
            .collect();
        let Some(fmp4) = rows.first().map(|row| row.format == "fmp4") else {
            return text(conn, 404, "no recordings in that range\n");
        };
        // One playlist, one kind of segment: fMP4, or TS (the others).
        rows.retain(|row| (row.format == "fmp4") == fmp4);
        if !fmp4 {
            r.stage = Stage::Done;
            return self.respond_playlist(r, conn, &rows, &[]);
        }
        let known = lock(&self.init_lens);
        let inits: Vec<Option<u64>> = rows.iter().map(|row| known.get(&row.id).copied()).collect();
        drop(known);
        let mut files = vec![None; rows.len()];
        let mut left = 0;
        for (i, row) in rows.iter().enumerate() {
            if inits[i].is_some() {
                continue;
            }
            let f = self.host.file_open(conn.id(), &row.path, RILL_FILE_READ)?;
            self.host
                .file_read(f, 0, INIT_READ, TOKEN_INIT + i as u64)?;
            files[i] = Some(f);
            left += 1;
        }
        if left == 0 {
            r.stage = Stage::Done;
            return self.respond_playlist(r, conn, &rows, &inits);
        }
        r.stage = Stage::Inits {
            rows,
            inits,
            files,
            left,
        };
        Ok(())
    }

    fn respond_playlist(
        &self,
        r: &Request,
        conn: &Conn,
        rows: &[Row],
        inits: &[Option<u64>],
    ) -> Result<()> {
        let q = if r.query.is_empty() {
            String::new()
        } else {
            format!("?{}", r.query)
        };
        let fmp4 = !inits.is_empty();
        let target = rows
            .iter()
            .map(|row| (row.duration_us + 999_999) / 1_000_000)
            .max()
            .unwrap_or(1)
            .max(1);
        let mut p = format!(
            "#EXTM3U\n#EXT-X-VERSION:{}\n#EXT-X-TARGETDURATION:{target}\n#EXT-X-PLAYLIST-TYPE:VOD\n#EXT-X-MEDIA-SEQUENCE:0\n#EXT-X-INDEPENDENT-SEGMENTS\n",
            if fmp4 { 7 } else { 3 }
        );
        // The previous file: its end, whether it was TS, its start.
        let mut prev: Option<(i64, bool, i64)> = None;
        for (i, row) in rows.iter().enumerate() {
            let init = inits.get(i).copied().flatten();
            if fmp4 && init.is_none() {
                continue;
            }
            // A gap (the publisher went away): the timeline starts over.
            // So it does between a TS file and a remuxed one (which count
            // the time of day), and at midnight in remuxed ones.
            let day = |us: i64| us.div_euclid(86_400_000_000);
            let new_timeline = prev.is_some_and(|(end, was_ts, start)| {
                row.start_us > end + 1_500_000
                    || was_ts != (row.format == "ts")
                    || (!fmp4 && row.format != "ts" && day(start) != day(row.start_us))
            });
            if new_timeline {
                p.push_str("#EXT-X-DISCONTINUITY\n");
            }
            prev = Some((row.end_us, row.format == "ts", row.start_us));
            let t = std::time::UNIX_EPOCH
                + std::time::Duration::from_micros(row.start_us.max(0) as u64);
            p.push_str(&format!(
                "#EXT-X-PROGRAM-DATE-TIME:{}\n",
                humantime::format_rfc3339_millis(t)
            ));
            let secs = row.duration_us as f64 / 1e6;
            match init {
                Some(init) => {
                    let uri = format!("/vod/seg/{}.mp4{q}", row.id);
                    p.push_str(&format!(
                        "#EXT-X-MAP:URI=\"{uri}\",BYTERANGE=\"{init}@0\"\n#EXTINF:{secs:.3},\n#EXT-X-BYTERANGE:{}@{init}\n{uri}\n",
                        row.bytes.saturating_sub(init)
                    ));
                }
                None => p.push_str(&format!("#EXTINF:{secs:.3},\n/vod/seg/{}.ts{q}\n", row.id)),
            }
        }
        p.push_str("#EXT-X-ENDLIST\n");
        conn.http_respond(
            200,
            &[
                ("content-type", "application/vnd.apple.mpegurl"),
                ("access-control-allow-origin", "*"),
                ("cache-control", "no-cache"),
            ],
            Body::Fixed(p.len() as u64),
        )?;
        if !r.head {
            conn.write(p.as_bytes())?;
        }
        conn.close(RILL_END_NORMAL)
    }

    fn send_file(&self, r: &mut Request, conn: &Conn) -> Result<()> {
        let Some(row) = r.row.as_ref() else {
            return text(conn, 404, "no such recording\n");
        };
        if matches!(r.want, Want::File { ts: true, .. }) && row.format != "ts" {
            let rows = vec![row.clone()];
            return self.remux_rows(r, conn, rows, crate::remux::Output::Segment);
        }
        let ctype = match row.format.as_str() {
            "ts" => "video/mp2t",
            "flv" => "video/x-flv",
            _ => "video/mp4",
        };
        let file = match self.host.file_open(conn.id(), &row.path, RILL_FILE_READ) {
            Ok(f) => f,
            Err(_) => return text(conn, 500, "the recording cannot be read\n"),
        };
        let sending = respond_range(
            conn,
            r.range.as_deref(),
            row.bytes,
            &[("content-type", ctype)],
        )?;
        let Some((start, end)) = sending.filter(|(a, b)| !r.head && a < b) else {
            let _ = self.host.file_close(file, 0);
            r.stage = Stage::Done;
            return conn.close(RILL_END_NORMAL);
        };
        r.stage = Stage::Sending {
            file,
            at: start,
            end,
            reading: false,
        };
        self.next_chunk(r)
    }

    fn next_chunk(&self, r: &mut Request) -> Result<()> {
        if let Stage::Sending {
            file,
            at,
            end,
            reading,
        } = &mut r.stage
        {
            if !*reading && *at < *end {
                *reading = true;
                self.host
                    .file_read(*file, *at, CHUNK.min(*end - *at), TOKEN_CHUNK)?;
            }
        }
        Ok(())
    }

    fn chunk_read(
        &self,
        r: &mut Request,
        conn: &Conn,
        result: Result<i64>,
        data: &[u8],
    ) -> Result<()> {
        let Stage::Sending {
            file,
            at,
            end,
            reading,
        } = &mut r.stage
        else {
            return Ok(());
        };
        *reading = false;
        let file = *file;
        if result.is_err() || data.is_empty() {
            // Changed or removed behind our back: the response is cut short.
            rill_log!(
                self.host,
                Warn,
                "a recording file ended early or failed while served"
            );
            let _ = self.host.file_close(file, 0);
            r.stage = Stage::Done;
            return conn.close(RILL_END_ERROR);
        }
        let n = (data.len() as u64).min(*end - *at);
        *at += n;
        let done = *at >= *end;
        let flow = conn.write(&data[..n as usize])?;
        if done {
            let _ = self.host.file_close(file, 0);
            r.stage = Stage::Done;
            return conn.close(RILL_END_NORMAL);
        }
        match flow {
            Flow::Ready => self.next_chunk(r),
            Flow::Full => Ok(()),
        }
    }

    pub(crate) fn vod_writable(&self, r: &mut Request, conn: &Conn) -> Result<()> {
        match r.stage {
            Stage::Download(_) => self.pump(r, conn),
            Stage::Remux(_) => self.remux_pump(r, conn),
            _ => self.next_chunk(r),
        }
    }

    pub(crate) fn vod_closed(&self, r: Request) {
        match r.stage {
            Stage::Sending { file, .. } => {
                let _ = self.host.file_close(file, 0);
            }
            Stage::Inits { files, .. } => {
                for f in files.into_iter().flatten() {
                    let _ = self.host.file_close(f, 0);
                }
            }
            s @ (Stage::Heads(_) | Stage::Download(_)) => self.download_closed(s),
            Stage::Remux(m) => self.remux_closed(*m),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn init_lengths() {
        let mut b = Vec::new();
        b.extend_from_slice(&[0, 0, 0, 16]);
        b.extend_from_slice(b"ftypiso6\0\0\0\0");
        b.extend_from_slice(&[0, 0, 0, 12]);
        b.extend_from_slice(b"moov\0\0\0\0");
        b.extend_from_slice(&[0, 0, 0, 8]);
        b.extend_from_slice(b"moof");
        assert_eq!(init_len(&b), Some(28));
        assert_eq!(init_len(&b[..20]), None);
        // A moov cut short: not whole, so no length.
        assert_eq!(init_len(&b[..27]), None);
        assert_eq!(init_len(b"\0\0\0\x08mdat"), None);
    }

    #[test]
    fn unescapes_times() {
        assert_eq!(unescape("2026-12-02T10%3A00%3A00Z"), "2026-12-02T10:00:00Z");
        assert_eq!(unescape("a%2"), "a%2");
    }
}
